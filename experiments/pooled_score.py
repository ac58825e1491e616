"""Would Image-Zooms' score head do as well on a cheaper descriptor of each reported box? The refinement benchmark
run with the box described by Pool45-Crops' pooling of the unpainted image's pool4 and pool5 maps (one VGG-16
forward an image, kept over epochs) instead of a forward of its 224 × 224 crop.

    python experiments/pooled_score.py --datasets synthetic --models image_zooms --output results/pooled_score
    python experiments/pooled_score.py --score_rate 1 --datasets synthetic --models image_zooms --output …
    python experiments/pooled_score.py --with_window --datasets cluttered --models image_zooms --output …

It takes ``experiments/refinement_benchmark.py``'s flags and runs it with ``refinement.reported_boxes`` replaced: the
boxes are the same (refined by the head in force, else the windows), only their descriptors change, for the score
head's training sample and for testing alike (without a refinement head the window is pooled too, where the
product reads the window's own descriptor). The agent and the refinement head are those of the benchmark's runs
(the score sample draws from its own stream). Pool45-Crops already describes its boxes this way: run it for
Image-Zooms. The pooled describer's whole-image forwards are printed after each run (the training log's
``vgg_forwards`` counts the agent's). The benchmark's ``--score_rate`` sets the sample's share of the distinct
visited windows (pooled boxes cost next to nothing, so the sample may take them all).

``--with_window``: the score head reads the window's own descriptor (the agent's, free) beside the pooled one, each
scaled to a root-mean-square value of 1 (their sizes weigh alike in the ridge fit).
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

import refinement
from experiments import refinement_benchmark
from runs.runtime import main_guard

POOLED = {}         # the one pooled describer: VGG-16 to pool4 and pool5, 'hed' weights as the demo's runs


def pooled_reported_boxes(windows, descriptors, environments, images, describer, refiner=None):
    """:func:`refinement.reported_boxes`, each box described from its unpainted image's pooled maps."""
    from features import Pool45CropsFeatures
    boxes = np.asarray(windows, np.float64).reshape(-1, 4)
    if refiner is not None:
        sizes = np.array([[env.width, env.height] * 2 for env in environments])
        boxes = np.clip(refiner.refine(descriptors, windows), 0, sizes)
    pooled = POOLED.get("describer") or POOLED.setdefault("describer", Pool45CropsFeatures("hed", precision="auto"))
    return boxes, pooled.describe([(((env.image_id, "reported box"), ()), image, box)
                                   for env, image, box in zip(environments, images, boxes)])


def unit_rms(descriptors):
    descriptors = np.asarray(descriptors, np.float32)
    return descriptors / np.maximum(np.sqrt((descriptors ** 2).mean(axis=1, keepdims=True)), 1e-12)


def with_window(windows, descriptors, environments, images, describer, refiner=None):
    """The pooled descriptor of each reported box after its window's own (the agent's), each at unit RMS."""
    boxes, pooled = pooled_reported_boxes(windows, descriptors, environments, images, describer, refiner)
    return boxes, np.concatenate([unit_rms(descriptors), unit_rms(pooled)], axis=1)


class WindowAndBoxSample(refinement.ScoreSample):
    def __init__(self, descriptor_size, **keywords):
        super().__init__(2 * descriptor_size, **keywords)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    refinement.reported_boxes = pooled_reported_boxes
    if "--with_window" in argv:
        argv.remove("--with_window")
        load_refiner = refinement.load_refiner
        refinement.reported_boxes, refinement.ScoreSample = with_window, WindowAndBoxSample
        refinement.load_refiner = lambda path, size, head=refinement.BoxRefiner: load_refiner(
            path, 2 * size if head is refinement.ScoreHead else size, head)
    trained_run = refinement_benchmark.trained_run

    def counted(*arguments, **keywords):
        before = POOLED["describer"].forward_count if POOLED else 0
        training = trained_run(*arguments, **keywords)
        print(f"{arguments[1]}: the pooled describer's whole-image forwards in training: "
              f"{(POOLED['describer'].forward_count if POOLED else 0) - before}", flush=True)
        return training
    refinement_benchmark.trained_run = counted
    refinement_benchmark.main(argv)


if __name__ == "__main__":
    main_guard(main)
