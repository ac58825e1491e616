"""Would the score head do with fewer boxes? Each refinement-benchmark run's score sample thinned to a lower rate,
the head refitted, the same agent tested again; no retraining.

    python experiments/score_sample_rate.py --rate 0.25 --benchmark results/score --datasets synthetic,cluttered,plain

Why this is exact in distribution: the score sample takes each distinct visited window with probability
``refinement.SCORE_RATE`` from its own random stream, and while its reservoir has not filled it keeps every box taken
(checked here: a run whose sample filled is refused). Keeping each of those boxes again with probability
``rate / SCORE_RATE``, independently, is a sample at ``rate``, as a training with that rate would have drawn it; the
agent and the refinement head are the same either way (the sample draws from its own stream). Only the random draws
differ from such a training.

For each run in ``--benchmark``'s ``models/<dataset>/<model>/seed<S>`` (as ``experiments/refinement_benchmark.py``
leaves them, with their last resume state), the head is refitted on the thinned sample into
``--output/models/…`` (beside links to the run's weights, refinement head and features file) and the last epoch is
tested with ``refine 1`` and ``score learned``, ``duplicates demote`` and ``keep``; rows go to
``--output/score_sample_rate.json``. ``--rate`` equal to the runs' own rate refits the whole sample: it reproduces
the benchmark's rows (a check of this instrument).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.errors import UserError
from runs.runtime import OneLineParser, main_guard, write_json

LINKED = ("model0.weights.h5", "refiner_model0.npz", "features_model0.json")


def thinned_head(path_model, epoch, rate, seed):
    """The score head refitted on the run's final score sample, each box kept with probability rate / SCORE_RATE."""
    from metrics import iou_many
    from refinement import SCORE_RATE, ScoreHead
    from runs.run_folder import read_resume_state, resume_state_path
    sample = read_resume_state(resume_state_path(path_model, 0, epoch), epoch)["score_sample"]
    if sample is None:
        raise UserError(f"{path_model}: its resume state has no score sample (trained without score_head 1)")
    count = len(sample["windows"])
    if int(sample["seen"]) != count or not 0 < rate <= SCORE_RATE:
        raise UserError(f"{path_model}: thinning is exact only for a sample that never filled ({count} kept of "
                        f"{int(sample['seen'])}) and a rate in (0, {SCORE_RATE}], not {rate}")
    kept = np.random.default_rng([seed, 25]).random(count) < rate / SCORE_RATE
    ious = np.array([iou_many(found[None], box)[0] for box, found in zip(sample["windows"], sample["boxes"])])
    return ScoreHead.fit(sample["descriptors"][kept], ious[kept][:, None]), int(kept.sum()), count


def main(argv=None):
    from experiments.learning_benchmark import script_modules, shared_features, training_settings
    from experiments.refinement_benchmark import DATASETS, MODELS, dataset_folder, test_ways
    parser = OneLineParser(description=__doc__.split("\n")[0], listed="option")
    parser.add_argument("--rate", type=float, default=0.25, help="the lower share of distinct windows (default 0.25)")
    parser.add_argument("--benchmark", default="results/score", help="a refinement benchmark's --output folder")
    parser.add_argument("--datasets", default="synthetic", help=f"comma-separated: {','.join(DATASETS)}")
    parser.add_argument("--models", default="image_zooms", help=f"comma-separated: {','.join(MODELS)}")
    parser.add_argument("--output", default="results/score_rate", help="folder for the heads, tests and rows")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    output, rows = Path(arguments.output), []
    ways = ((1, "demote", "learned"), (1, "keep", "learned"))
    for model in arguments.models.split(","):
        training_module, testing_module = script_modules(model)
        shared = {}

        def features_for(settings):
            return shared.setdefault("testing", shared_features(testing_module, settings, 4096))
        for dataset in arguments.datasets.split(","):
            path_voc = dataset_folder(dataset)
            runs = sorted((Path(arguments.benchmark) / "models" / dataset / model).glob("seed*"))
            if not runs:
                raise UserError(f"{arguments.benchmark}/models/{dataset}/{model}/: no runs (run "
                                f"experiments/refinement_benchmark.py --output {arguments.benchmark} first)")
            for run in runs:
                seed, started = int(run.name[4:]), time.perf_counter()
                target = output / "models" / dataset / model / run.name
                training = training_settings(SimpleNamespace(path_voc=path_voc, epochs=None, max_images=None,
                                                             overrides=["refine=1", "score_head=1"]),
                                             training_module, target, seed)
                epoch = training.epochs - 1
                target.mkdir(parents=True, exist_ok=True)
                for name in (*LINKED, f"model0_epoch_{epoch}.weights.h5"):
                    (target / name).unlink(missing_ok=True)
                    (target / name).symlink_to((run / name).resolve())
                head, kept, count = thinned_head(run, epoch, arguments.rate, seed)
                head.save(target / "scorer_model0.npz")
                for row in test_ways(training, testing_module, model, "trained", output / "tests" / dataset / model /
                                     run.name, features_for, path_voc, ways):
                    rows.append({"dataset": dataset, "model": model, "seed": seed, "rate": arguments.rate,
                                 "boxes": kept, "of": count, **row})
                    print(f"{dataset} {model} seed {seed} rate {arguments.rate} ({kept} of {count} boxes) duplicates "
                          f"{row['duplicates']}: AP {row['ap']:.3f} AUC {row['score_auc']['learned']:.3f} "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
                write_json(output / "score_sample_rate.json", {"command": " ".join(sys.argv), "rows": rows})
    print(f"rows in {output / 'score_sample_rate.json'}")


if __name__ == "__main__":
    main_guard(main)
