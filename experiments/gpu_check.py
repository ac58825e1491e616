"""The check the first machine with a GPU runs: what a training step and an update cost there, in one JSON file.

    python experiments/gpu_check.py                 # 2 minutes on a 2-core CPU; gpu_check.json
    python experiments/gpu_check.py --quick         # fewer repeats and a shorter training (a smoke test)

It names the device TensorFlow sees (without a GPU it says so and measures the CPU) and measures, each side by side
in this run:

- the precision ``vgg_precision auto`` picks there, and why;
- a bare VGG-16 forward per image in float32 and bfloat16, at batch 1 (a training step) and 32 (testing);
- ``QLearner.update`` at the paper's settings (minibatch 100, 25,112 → 1024 → 1024 → 6, float32), its floor (its
  floating-point operations at the float32 matrix-multiply rate and Adam's memory traffic at the bandwidth of an
  element-wise pass, measured beside it) and the ratio of the two;
- a short demo training in its own process (``image_zooms_training.py --demo``, ``auto`` precision, one epoch) whose
  replay memory of 100 fills after 100 steps, each later step updating on a minibatch of 100 (the paper's): its wall
  time and steps per second, from its log.

docs/paper-scale.md ("On a GPU") says what these figures fill in.
"""
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the top-level modules

from experiments.benchmark import STATE_SIZE, MatmulTimer, log, machine, time_precisions, update_flops  # noqa: E402
from runs.runtime import OneLineParser, import_tensorflow, main_guard, write_json  # noqa: E402

output = "gpu_check.json"
update_repeats = 10                     # QLearner.update timed this many times (after two warm-up updates)
floor_repeats = 5                       # VGG-16 forwards and products timed this many times each
training_images = 60                    # the demo training's images (one epoch, about 240 steps)
QUICK = dict(update_repeats=3, floor_repeats=2, training_images=3)


def random_minibatches():
    """Two random minibatches of 100 of the paper's states."""
    from reinforcement import Minibatch
    rng = np.random.default_rng(0)
    return [Minibatch(rng.random((100, STATE_SIZE), np.float32), rng.integers(0, 6, 100),
                      rng.choice([-1.0, 1.0, 3.0, -3.0], 100), rng.random((100, STATE_SIZE), np.float32),
                      (rng.random(100) < 0.2).astype(np.float32)) for _ in range(2)]


def time_updates(repeats):
    """Seconds of ``QLearner.update`` on random minibatches of 100 (medians), and its floor beside each."""
    from reinforcement import QLearner, build_q_network
    learner = QLearner(build_q_network(STATE_SIZE, seed=0), 0.9, 1e-6, 100)
    batches = random_minibatches()
    for batch in batches:
        learner.update(batch)                       # compiling
    timer, seconds, floors, rates = MatmulTimer(), [], [], []
    for index in range(repeats):
        floor, rate = timer.floor(100)
        floors.append(floor)
        rates.append(rate)
        started = time.perf_counter()
        learner.update(batches[index % 2])
        seconds.append(time.perf_counter() - started)
    return {"update_s": float(np.median(seconds)), "update_floor_s": float(np.median(floors)),
            "update_over_floor": float(np.median([s / floor for s, floor in zip(seconds, floors)])),
            "matmul_gflops": float(np.median(rates)) / 1e9, "update_gflop": update_flops(100) / 1e9}


def demo_training(images):
    """One epoch of the demo's Image-Zooms training on ``images`` images, in its own process: wall seconds and the
    epoch's steps per second."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, "image_zooms_training.py", "--demo", "--epochs", "1",
                                    "--max_images", str(images), "--buffer_experience_replay", "100",
                                    "--batch_size", "100", "--path_model", folder, "--path_testing_folder", folder],
                                   cwd=ROOT, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:] or ["exit code " + str(completed.returncode)]}
    rates = [float(value) for value in re.findall(r"([\d.]+) steps/s", completed.stdout)]
    updates = re.findall(r"loss ([\d.]+)", completed.stdout)
    picked = re.search(r"vgg_precision auto: (\w+)", completed.stdout)
    return {"wall_s": round(seconds, 1), "steps_per_s": rates, "precision": picked.group(1) if picked else None,
            "images": images, "updated": bool(updates) and float(updates[0]) > 0}


def main(argv=None):
    parser = OneLineParser(prog="python experiments/gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter training")
    parser.add_argument("--output", default=output, help="the JSON file to write (default: %(default)s)")
    arguments = parser.parse_args(argv)
    settings = SimpleNamespace(update_repeats=update_repeats, floor_repeats=floor_repeats,
                               training_images=training_images, path_vgg="random")
    if arguments.quick:
        vars(settings).update(QUICK)
    started = time.perf_counter()
    tf = import_tensorflow()
    from features import build_vgg16, native_bfloat16
    from runs.runtime import describe_device
    gpus = tf.config.list_physical_devices("GPU")
    device = describe_device(tf, gpus)
    log(f"device: {device}" + ("" if gpus else " (no GPU: the CPU is measured)"))
    native, reason = native_bfloat16()
    report = {"device": device, "gpu": bool(gpus), "machine": machine(),
              "auto_precision": {"picks": "bfloat16" if native else "float32", "why": reason}}
    log(f"vgg_precision auto picks {report['auto_precision']['picks']} ({reason})")
    report["vgg16_seconds_per_image"] = time_precisions(settings, build_vgg16("random", (224, 224, 3)))
    report["update"] = time_updates(settings.update_repeats)
    log(f"update {report['update']['update_s']:.4f} s, its floor {report['update']['update_floor_s']:.4f} s "
        f"({report['update']['update_over_floor']:.2f}x)")
    report["demo_training"] = demo_training(settings.training_images)
    log(f"demo training: {report['demo_training']}")
    report["wall_s"] = round(time.perf_counter() - started, 1)
    write_json(Path(arguments.output), report)
    log(f"written {arguments.output} ({report['wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main_guard(main)
