"""The time to draw a test search, the two ways ``--bool_draw 1`` can write its animation, side by side.

The testing scripts' ``--bool_draw 1`` (on in the demo) writes for every test image a figure of the whole search
(``draw_search``, Matplotlib) and an animated GIF (``animate_search``, Pillow). A GIF frame holds 256 colours; left
to Pillow, each frame's palette is found by median cut, which took most of the drawing's time; ``animate_search``
now gives each frame a fast octree palette. This script draws the upper bound's searches of the first test images
(no VGG-16 needed; six Q-values drawn at random per step stand in for a trained agent's, so the figure has its
panels) and times, image by image in turn, the figure, the animation with the fast palette and the animation with
Pillow's default, then prints the medians and the ratio.

    python experiments/draw_benchmark.py                      # data/synthetic_voc, 12 test images
    python experiments/draw_benchmark.py --path_voc my_voc --images 30
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from episodes import UpperBoundAgent, make_environment, run_searches   # noqa: E402
from runs.runtime import OneLineParser, main_guard                          # noqa: E402
from image_helper import image_path, load_image                        # noqa: E402
from parse_xml_annotations import load_records                         # noqa: E402
from visualization import animate_search, draw_search                  # noqa: E402


def searches(path_voc, class_name, count, steps=10, seed=0):
    """(image, trajectory) of the upper bound on the first ``count`` test images, each step with six Q-values."""
    rng = np.random.default_rng(seed)
    records = load_records([path_voc], class_name, "test", max_images=count)
    images = [load_image(image_path(record.path_voc, record.image_id)) for record in records]
    environments = [make_environment(record, class_name, 0.75, image) for record, image in zip(records, images)]
    trajectories = run_searches(environments, UpperBoundAgent(), None, steps, only_first_object=False)
    for trajectory in trajectories:
        for step in trajectory:
            step["q_values"] = rng.normal(0, 1, 6)
    return list(zip(images, trajectories))


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0], listed="option")
    parser.add_argument("--path_voc", default="data/synthetic_voc")
    parser.add_argument("--class_name", default="aeroplane")
    parser.add_argument("--images", type=int, default=12)
    args = parser.parse_args(argv)
    pairs = searches(args.path_voc, args.class_name, args.images)
    times = {"figure": [], "animation, fast palette": [], "animation, Pillow's default palette": []}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for index, (image, trajectory) in enumerate(pairs):
            times["figure"].append(timed(lambda: draw_search(image, trajectory, out / f"{index}.png")))
            times["animation, fast palette"].append(
                timed(lambda: animate_search(image, trajectory, out / f"{index}_fast.gif")))
            times["animation, Pillow's default palette"].append(
                timed(lambda: animate_search(image, trajectory, out / f"{index}_default.gif", fast_palette=False)))
    steps = np.median([len(trajectory) for _, trajectory in pairs])
    print(f"{len(pairs)} test images of {args.path_voc}, median {steps:.0f} steps a search; median seconds an image:")
    for name, values in times.items():
        print(f"  {name:40s} {np.median(values):.3f}")
    fast, default = np.median(times["animation, fast palette"]), np.median(times["animation, Pillow's default palette"])
    figure = np.median(times["figure"])
    print(f"animation: Pillow's default / fast palette = {default / fast:.1f}x; figure + animation: "
          f"{(figure + default) / (figure + fast):.2f}x")


if __name__ == "__main__":
    main_guard(main)
