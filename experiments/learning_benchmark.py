"""Does the agent learn? Learning curves over seeds for both models, on the test split and on the training images.

    python experiments/learning_benchmark.py                         # the demo's settings, 3 seeds, both models
    python experiments/learning_benchmark.py --seeds 3 --epochs 10 --max_images 15 --max_test_images 15
    python experiments/learning_benchmark.py --path_voc VOC2012 --set learning_rate=1e-5 --set batch_size=100
    python experiments/learning_benchmark.py --merge a/learning.json b/learning.json --output both  # side by side
    python experiments/learning_benchmark.py --merge a/learning.json b/learning.json --label "50 images" \
        --label "143 images" --output both                     # two runs of one variant, named apart

For each model and seed it runs the training script's own run (``episodes.train``, a checkpoint per epoch) at
the demo's settings (the ``DEMO`` dicts of image_zooms_training.py / pool45_crops_training.py) unless a flag says
otherwise, then tests every epoch's checkpoint with the testing script's run (``testing_run.test``) with the
greedy agent and the paper's protocol (all objects, ``number_of_steps`` 10 regions per image, every visited region a
detection) twice: on the dataset's test split and on the training images themselves, so that overfitting shows. The
random agent and the upper bound are tested once per seed on the same images (annotations only, cheap).

Writes to ``--output``: ``learning.json`` (one row per model, seed, epoch and split: AP, AP-07, max recall, and
from the training log the trigger hit rate, mean reward, mean loss, cumulative training seconds and steps
(transitions); the baselines; a summary of final and best values over seeds) and ``learning.png`` (AP and max
recall against epoch, against cumulative training seconds and against cumulative training transitions, mean over
seeds with the min–max spread shaded); with several variants also
``variants.png`` (each variant's last tested epoch on the test split: every seed and the mean).

``--set name=value`` (repeatable) passes a training setting through (``--set learning_rate=1e-5``); settings that
also describe a region at test time (``path_vgg``, ``vgg_precision``, ``class_object``, ``scale_subregion``) go
to the tests too. ``--variant`` (repeatable) compares settings side by side in one run, each over the same seeds
(``--variant demo --variant trigger_targets=0 --variant expert_margin=0.8,learning_rate=1e-5``); ``demo`` is no
change.
``--test_set name=value`` (repeatable) passes a testing setting to the trained agent's tests (``--test_set
only_first_object=1``), and ``--models_from OUTPUT`` trains nothing and tests the checkpoints an earlier run left in
``OUTPUT/models`` (same models, variants and seeds): a test-time setting measured on agents already trained. A
removed option (``settings.REMOVED_OPTIONS``) in any of them stops the run with one line saying where its
measurement is kept.

Seeds and variants of a model share one descriptor cache for training and one for testing (``--cache_mb`` each):
a region described once is not computed again. The caches are exact (the key names the crop's pixels) and
training descriptors are always computed one region at a time, as in the training script, so sharing changes no
result, only the time (the ``training_seconds`` of later runs are shorter for it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.errors import UserError
from runs.runtime import OneLineParser, main_guard, write_json
from runs.run_folder import DESCRIBING_SETTINGS
from settings import (DEMO_DATA, REMOVED_OPTIONS, apply_demo, apply_demo_values, check_settings, class_index,
                      configure, removed_message, script_settings, testing_flags, training_flags)

MODELS = ("image_zooms", "pool45_crops")
SPLITS = ("test", "train")
# settings that change what a region's descriptor or target is: a test must use the training's values (the
# describing settings that testing checks against features_model<k>.json, and the class)
SHARED_WITH_TESTING = (*DESCRIBING_SETTINGS, "class_object")
# the paper's test protocol (docs/method.md §7): 10 regions per image, all objects, every visited region a detection
TEST_PROTOCOL = ["--number_of_steps", "10", "--only_first_object", "0", "--detections", "visited"]


def parse_arguments(argv):
    parser = OneLineParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                           listed="option")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: image_zooms,pool45_crops")
    parser.add_argument("--seeds", type=int, default=3, help="seeds first_seed .. first_seed + N - 1")
    parser.add_argument("--first_seed", type=int, default=0,
                        help="the first seed (a later run adds seeds to an earlier one's; --merge joins them)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's)")
    parser.add_argument("--max_images", type=int, default=None, help="training images (default: the demo's)")
    parser.add_argument("--max_test_images", type=int, default=None,
                        help="images of each test split (test, and the training images); default: all")
    parser.add_argument("--path_voc", default=None,
                        help="VOC-format folder (trainval to train, test to test); default: the synthetic dataset")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="a training setting passed through (repeatable)")
    parser.add_argument("--variant", action="append", default=None, metavar="NAME=VALUE[,NAME=VALUE]",
                        dest="variants", help="settings compared side by side, each over all seeds (repeatable); "
                                              "'demo' adds nothing (default: one variant, 'demo')")
    parser.add_argument("--test_set", action="append", default=[], metavar="NAME=VALUE", dest="test_overrides",
                        help="a testing setting for the trained agent's tests (repeatable; e.g. only_first_object=1)")
    parser.add_argument("--models_from", default=None, metavar="OUTPUT",
                        help="train nothing: test the checkpoints an earlier run (its --output) left for the same "
                             "models, variants and seeds, with this run's other flags")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help="what each epoch is tested on: test (the test split), train (the training images)")
    parser.add_argument("--test_every", type=int, default=1, metavar="K",
                        help="test every K-th epoch's checkpoint (and the last); 1: every epoch")
    parser.add_argument("--keep_checkpoints", choices=("all", "tested"), default="all",
                        help="all: every epoch's weights and the resume state stay in --output/models (about 1.5 GB "
                             "a demo-sized run); tested: once a run is tested, only the tested epochs' weights stay")
    parser.add_argument("--cache_mb", type=int, default=4096,
                        help="descriptor cache (MiB) shared by all training runs of a model, and one as large for "
                             "its tests")
    parser.add_argument("--output", default="results/learning", help="folder for learning.json, learning.png, runs")
    parser.add_argument("--merge", nargs="+", default=None, metavar="LEARNING_JSON",
                        help="train nothing: merge these learning.json files (e.g. one model each, run side by "
                             "side) into --output's learning.json and learning.png")
    parser.add_argument("--label", action="append", default=None, metavar="NAME",
                        help="with --merge, one per file in its order: the name its rows take in the summary and "
                             "figures instead of their variant (a file of several variants: 'NAME: variant'), so "
                             "two runs of one variant (e.g. demo on 50 and on 143 images) stay apart")
    arguments = parser.parse_args(argv)
    if arguments.label is not None and (arguments.merge is None or len(arguments.label) != len(arguments.merge)):
        parser.error(f"--label names each --merge file: {len(arguments.merge or [])} files, "
                     f"{len(arguments.label)} labels")
    arguments.models = [name.strip() for name in arguments.models.split(",") if name.strip()]
    unknown = [name for name in arguments.models if name not in MODELS]
    if unknown or not arguments.models:
        parser.error(f"--models takes {','.join(MODELS)}, got {','.join(unknown) or 'none'}")
    if arguments.first_seed < 0:
        parser.error("--first_seed cannot be negative")
    if arguments.seeds < 1:
        parser.error("--seeds must be 1 or more")
    arguments.variants = arguments.variants or ["demo"]
    named = [override.split("=")[0].strip() for override in arguments.overrides + arguments.test_overrides]
    named += [part.split("=")[0].strip() for variant in arguments.variants if variant != "demo"
              for part in variant.split(",")]
    for name in named:
        if name in REMOVED_OPTIONS:         # measured dead ends: one line saying where the measurement is
            raise UserError(removed_message(name))
    for flag, overrides in (("--set", arguments.overrides), ("--test_set", arguments.test_overrides)):
        for override in overrides:
            if "=" not in override:
                parser.error(f"{flag} takes NAME=VALUE, got {override!r}")
    for variant in arguments.variants:
        if variant != "demo" and any("=" not in part for part in variant.split(",")):
            parser.error(f"--variant takes 'demo' or NAME=VALUE[,NAME=VALUE], got {variant!r}")
    if len(set(arguments.variants)) != len(arguments.variants):
        parser.error("--variant: each variant once")
    arguments.splits = [name.strip() for name in arguments.splits.split(",") if name.strip()]
    if not arguments.splits or any(name not in SPLITS for name in arguments.splits):
        parser.error(f"--splits takes {','.join(SPLITS)}, got {','.join(arguments.splits) or 'none'}")
    if arguments.test_every < 1:
        parser.error("--test_every must be 1 or more")
    return arguments


def variant_settings(variant):
    """``expert_margin=0.8,learning_rate=1e-5`` → ``["expert_margin=0.8", "learning_rate=1e-5"]``; ``demo`` →
    ``[]``."""
    return [] if variant == "demo" else [part.strip() for part in variant.split(",") if part.strip()]


def variant_folder(variant):
    return "demo" if variant == "demo" else variant.replace("=", "_").replace(",", "__").replace("/", "_")


def script_modules(model):
    """The training and testing script of a model (their settings, DEMO dicts and make_features)."""
    import importlib
    return importlib.import_module(f"{model}_training"), importlib.import_module(f"{model}_testing")


def dataset_flags(arguments, path_flag):
    """``--demo`` on the synthetic dataset; on another folder, that folder (:func:`apply_demo_budgets` adds the
    demo's budgets)."""
    return ["--demo"] if arguments.path_voc is None else [f"--{path_flag}", str(arguments.path_voc)]


def apply_demo_budgets(arguments, settings, demo_values):
    """The demo's values where no flag was given: ``--demo``'s own on the synthetic dataset, and on another folder
    the same values less the demo's dataset paths (the excluded options left off alike: ``oracle=1`` takes no
    ``trigger_targets`` or ``expert_margin``), checked (:func:`settings.check_settings`)."""
    if arguments.path_voc is None:
        apply_demo(settings, demo_values)
    else:
        apply_demo_values(settings, {name: value for name, value in demo_values.items()
                                     if name not in ("path_voc", "path_voc_test")})
        check_settings(settings)        # as apply_demo does: a variant that cannot run stops here


def training_settings(arguments, module, path_model, seed, variant="demo"):
    argv = dataset_flags(arguments, "path_voc") + ["--path_model", str(path_model), "--seed", str(seed),
                                                   "--checkpoint_every", "1"]
    argv += [] if arguments.epochs is None else ["--epochs", str(arguments.epochs)]
    argv += [] if arguments.max_images is None else ["--max_images", str(arguments.max_images)]
    argv += [f"--{override}" for override in arguments.overrides + variant_settings(variant)]
    settings = configure(script_settings(vars(module)), argv, module.__doc__, training_flags)
    apply_demo_budgets(arguments, settings, module.DEMO)
    return settings


def testing_settings(arguments, module, training, split, agent, epoch, folder):
    """The testing script's settings for one test: the training's dataset and descriptors, the paper's protocol,
    the test split or the training images (``image_set`` trainval, its first ``max_images`` are those trained on)."""
    argv = dataset_flags(arguments, "path_voc_test") + TEST_PROTOCOL + [
        "--path_model", str(training.path_model), "--path_testing_folder", str(folder), "--seed", str(training.seed),
        "--agent", agent, "--epoch", str(epoch)]
    argv += [f"--{name}={getattr(training, name)}" for name in SHARED_WITH_TESTING]
    # the agent's own windows in the paper's ranking (not the demo's)
    argv += ["--refine", "0", "--duplicates", "keep", "--score", "trigger"]
    if agent == "trained":
        argv += [f"--{override}" for override in arguments.test_overrides]
    settings = configure(script_settings(vars(module)), argv, module.__doc__, testing_flags)
    apply_demo_budgets(arguments, settings, module.DEMO)
    settings.path_voc_test = training.path_voc
    limits = [arguments.max_test_images] + ([training.max_images] if split == "train" else [])
    limits = [limit for limit in limits if limit is not None]
    settings.max_images = min(limits) if limits else None
    settings.image_set = "test" if split == "test" else "trainval"
    return settings


def test_quietly(settings, make_features, model):
    """``testing_run.test`` without its per-chunk lines; the metrics that go into learning.json."""
    import contextlib
    import io
    from runs.testing_run import test
    with contextlib.redirect_stdout(io.StringIO()):
        results = test(settings, make_features, model)
    return {"ap": results["ap"], "ap_voc07": results["ap_voc07"], "max_recall": results["max_recall"],
            "num_images": results["num_images"], "num_objects": results["num_objects"],
            "score": results["score"], "score_auc": results["score_auc"]}


def shared_features(module, settings, cache_mb):
    """One features object for many runs: its cache (``cache_mb``) serves every seed and variant."""
    features = module.make_features(settings)
    features.cache = type(features.cache)(cache_mb)     # DescriptorCache or FeatureMapCache
    return features


def tested_epochs(epochs, every):
    """The epochs a run's checkpoints are tested at: every ``every``-th and the last."""
    return [epoch for epoch in epochs if (epoch + 1) % every == 0 or epoch == epochs[-1]]


def run_model(arguments, model, output, rows, baselines, after_run):
    from episodes import train
    training_module, testing_module = script_modules(model)
    shared = {}         # one features object for training and one for testing per model: caches serve every run

    def features_for(kind, module, settings):
        key = (kind, str(settings.path_vgg), settings.vgg_precision)     # a variant may describe regions otherwise
        if key not in shared:
            shared[key] = shared_features(module, settings, arguments.cache_mb)
        return shared[key]

    for seed in range(arguments.first_seed, arguments.first_seed + arguments.seeds):
        for variant in arguments.variants:
            models = output if arguments.models_from is None else Path(arguments.models_from)
            path_model = models / "models" / model / variant_folder(variant) / f"seed{seed}"
            training = training_settings(arguments, training_module, path_model, seed, variant)
            if arguments.models_from is not None:
                if not path_model.is_dir():
                    raise UserError(f"--models_from {arguments.models_from}: no checkpoints of {model}, variant "
                                    f"{variant}, seed {seed} (looked for {path_model})")
            else:
                if path_model.exists():     # a fresh run: a stale checkpoint would be tested as if trained now
                    import shutil
                    shutil.rmtree(path_model)
                started = time.perf_counter()
                train(training, lambda settings: features_for("training", training_module, settings), model)
                print(f"{model} {variant} seed {seed}: trained in {time.perf_counter() - started:.0f} s", flush=True)
            run_tests(arguments, model, variant, seed, training, testing_module, output, rows, baselines,
                      lambda settings: features_for("testing", testing_module, settings))
            if arguments.keep_checkpoints == "tested" and arguments.models_from is None:
                drop_untested_checkpoints(training.path_model, class_index(training), arguments.test_every)
            after_run()


def drop_untested_checkpoints(path_model, class_idx, test_every):
    """``--keep_checkpoints tested``: the weights of the epochs that were not tested and the resume state go (a run
    that is over is not resumed); the tested epochs' weights, the latest weights and the log stay."""
    from runs.run_folder import checkpoint_path, existing_epochs, resume_epochs, resume_state_path
    epochs = existing_epochs(path_model, class_idx)
    kept = set(tested_epochs(epochs, test_every))
    freed = 0
    paths = [checkpoint_path(path_model, class_idx, epoch) for epoch in epochs if epoch not in kept]
    paths += [resume_state_path(path_model, class_idx, epoch) for epoch in resume_epochs(path_model, class_idx)]
    for path in paths:
        freed += path.stat().st_size
        path.unlink()
    print(f"{path_model}: {len(paths)} untested checkpoint and resume files removed ({freed / 2**20:.0f} MiB)",
          flush=True)


def run_tests(arguments, model, variant, seed, training, testing_module, output, rows, baselines, features_for):
    """The baselines (once per seed) and every tested epoch's checkpoint on each split."""
    from runs.run_folder import existing_epochs, log_path, read_log
    class_idx = class_index(training)
    log = {row["epoch"]: row for row in read_log(log_path(training.path_model, class_idx))}
    cumulative, steps, seconds_by_epoch, steps_by_epoch = 0.0, 0, {}, {}
    for epoch in sorted(log):
        cumulative += log[epoch]["seconds"]
        steps += int(log[epoch]["steps"])
        seconds_by_epoch[epoch], steps_by_epoch[epoch] = cumulative, steps
    # baselines on the same images (annotations only): once per seed, as the random agent depends on it
    for split in arguments.splits:
        for agent in ("random", "upper_bound"):
            if any(b["model"] == model and b["seed"] == seed and b["split"] == split and b["agent"] == agent
                   for b in baselines):
                continue
            folder = output / "tests" / model / f"seed{seed}" / agent / split
            settings = testing_settings(arguments, testing_module, training, split, agent, -1, folder)
            baselines.append({"model": model, "seed": seed, "split": split, "agent": agent,
                              **test_quietly(settings, None, model)})
    started = time.perf_counter()
    for epoch in tested_epochs(existing_epochs(training.path_model, class_idx), arguments.test_every):
        tested = {}
        for split in arguments.splits:
            folder = output / "tests" / model / variant_folder(variant) / f"seed{seed}" / f"epoch_{epoch}" / split
            settings = testing_settings(arguments, testing_module, training, split, "trained", epoch, folder)
            metrics = test_quietly(settings, features_for, model)
            entry = log.get(epoch, {})
            rows.append({"model": model, "variant": variant, "seed": seed, "epoch": epoch, "split": split,
                         **metrics, "hit_rate": entry.get("hit_rate"), "mean_reward": entry.get("mean_reward"),
                         "mean_loss": entry.get("mean_loss"), "epsilon": entry.get("epsilon"),
                         "training_seconds": round(seconds_by_epoch.get(epoch, float("nan")), 2),
                         "training_steps": steps_by_epoch.get(epoch)})
            tested[split] = rows[-1]
        print(f"{model} {variant} seed {seed} epoch {epoch}: " + " | ".join(
            f"{split} AP {row['ap']:.3f} max recall {row['max_recall']:.3f}" for split, row in tested.items())
            + f" | hit rate {log.get(epoch, {}).get('hit_rate', float('nan')):.2f} loss "
              f"{log.get(epoch, {}).get('mean_loss', float('nan')):.4f}", flush=True)
    print(f"{model} {variant} seed {seed}: tested in {time.perf_counter() - started:.0f} s", flush=True)


def spread(values):
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max()), "n": int(values.size)}


def variant_of(row):
    return row.get("variant", "demo")       # learning.json files written before variants existed


def summarise(rows, baselines):
    """Per model, variant and split: the last tested epoch's and the best epoch's AP and max recall, over seeds;
    the baselines."""
    summary = {}
    for model in sorted({row["model"] for row in rows}):
        variants = list(dict.fromkeys(variant_of(row) for row in rows if row["model"] == model))
        for variant in variants:
            for split in SPLITS:
                mine = [row for row in rows if row["model"] == model and variant_of(row) == variant
                        and row["split"] == split]
                if not mine:
                    continue
                seeds = sorted({row["seed"] for row in mine})
                last = max(row["epoch"] for row in mine)
                entry = {}
                for metric in ("ap", "max_recall"):
                    entry[f"final_{metric}"] = spread([row[metric] for row in mine if row["epoch"] == last])
                    entry[f"best_{metric}"] = spread([max(row[metric] for row in mine if row["seed"] == seed)
                                                      for seed in seeds])
                for agent in ("random", "upper_bound"):
                    for metric in ("ap", "max_recall"):
                        entry[f"{agent}_{metric}"] = spread([b[metric] for b in baselines if b["model"] == model
                                                             and b["split"] == split and b["agent"] == agent
                                                             and b["seed"] in seeds])
                entry["final_epoch"] = last
                summary[f"{model}/{variant}/{split}"] = entry
    return summary


def format_summary(summary):
    def cell(value):
        return f"{value['mean']:.3f} ({value['min']:.3f}–{value['max']:.3f})"
    lines = ["| model | variant | split | seeds | final AP | best AP | final max recall | best max recall | "
             "random AP / recall | upper bound AP / recall |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, entry in summary.items():
        model, variant, split = key.split("/")
        lines.append(f"| {model} | {variant} | {split} | {entry['final_ap']['n']} | {cell(entry['final_ap'])} | "
                     f"{cell(entry['best_ap'])} | {cell(entry['final_max_recall'])} | "
                     f"{cell(entry['best_max_recall'])} | "
                     f"{entry['random_ap']['mean']:.3f} / {entry['random_max_recall']['mean']:.3f} | "
                     f"{entry['upper_bound_ap']['mean']:.3f} / {entry['upper_bound_max_recall']['mean']:.3f} |")
    return "\n".join(lines)


def merge(paths, output, labels=None):
    """``--merge``: the rows and baselines of several learning.json files in one learning.json and figure; with
    ``labels`` (one per file) each file's rows are renamed by :func:`relabel`."""
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:
            raise UserError(f"cannot read {path}: {error}") from None
        if not isinstance(reports[-1], dict) or not isinstance(reports[-1].get("rows"), list):
            raise UserError(f"cannot read {path}: not a learning.json (no rows)")
    for report, label in zip(reports, labels or []):
        relabel(report["rows"], label)
    rows = [row for report in reports for row in report["rows"]]
    baselines = []      # a baseline that two files share (the same seed's, in both runs) counts once in the means
    for baseline in (baseline for report in reports for baseline in report["baselines"]):
        if baseline not in baselines:
            baselines.append(baseline)
    merged = {"merged": [str(path) for path in paths], "labels": labels,
              "commands": [command for report in reports for command in as_list(report, "command", "commands")],
              "wall_seconds": [seconds for report in reports for seconds in as_list(report, "wall_seconds")],
              "summary": summarise(rows, baselines), "baselines": baselines, "rows": rows}
    write_json(Path(output) / "learning.json", merged)
    plot_learning_curves(rows, baselines, Path(output) / "learning.png")
    if len({(row["model"], variant_of(row)) for row in rows}) > 1:
        plot_variants(rows, baselines, Path(output) / "variants.png")
    print(format_summary(merged["summary"]))
    print(f"merged into {Path(output) / 'learning.json'} and {Path(output) / 'learning.png'}")
    return merged


def as_list(report, key, merged_key=None):
    """A run's ``key`` as a one-item list, or a merged file's list of them (under ``merged_key`` or ``key``)."""
    value = report.get(merged_key or key, report.get(key))
    return value if isinstance(value, list) else [value]


def relabel(rows, label):
    """The rows' variant becomes ``label`` (``'label: variant'`` where the rows hold several variants)."""
    variants = {variant_of(row) for row in rows}
    for row in rows:
        row["variant"] = label if len(variants) == 1 else f"{label}: {variant_of(row)}"


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    output = Path(arguments.output)
    if arguments.merge:
        return merge(arguments.merge, output, arguments.label)
    if arguments.path_voc is None:
        from synthetic_dataset import ensure_synthetic_voc
        ensure_synthetic_voc(DEMO_DATA)
    elif not Path(arguments.path_voc).is_dir():
        raise UserError(f"--path_voc {arguments.path_voc}: no such folder")
    started = time.perf_counter()
    rows, baselines = [], []
    command = "python experiments/learning_benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def write_report():
        """learning.json and learning.png of what has run so far (after every seed: a long run shows progress)."""
        report = {"command": command, "models": arguments.models, "seeds": arguments.seeds, "first_seed": arguments.first_seed,
                  "epochs": arguments.epochs, "max_images": arguments.max_images,
                  "max_test_images": arguments.max_test_images, "path_voc": arguments.path_voc or str(DEMO_DATA),
                  "overrides": arguments.overrides, "variants": arguments.variants, "splits": arguments.splits,
                  "test_every": arguments.test_every, "wall_seconds": round(time.perf_counter() - started, 1),
                  "summary": summarise(rows, baselines), "baselines": baselines, "rows": rows}
        write_json(output / "learning.json", report)
        plot_learning_curves(rows, baselines, output / "learning.png")
        if len(arguments.variants) > 1:
            plot_variants(rows, baselines, output / "variants.png")
        return report

    for model in arguments.models:
        run_model(arguments, model, output, rows, baselines, write_report)
    report = write_report()
    summary = report["summary"]
    print(format_summary(summary))
    print(f"learning curves in {output / 'learning.json'} and {output / 'learning.png'} "
          f"({report['wall_seconds']:.0f} s)")
    return report


# ---------------------------------------------------------------------------------------------------------------
# figures (matplotlib only when drawn)

LEARNING_COLOURS = {'image_zooms': 'tab:blue', 'pool45_crops': 'tab:orange'}
LEARNING_LINE_STYLES = {'test': '-', 'train': '--'}


def _mean_and_range(rows, x_key, y_key):
    """Per epoch: the mean over seeds of ``x_key`` and of ``y_key``, and the min and max of ``y_key``."""
    epochs = sorted({row['epoch'] for row in rows})
    xs, means, lows, highs = [], [], [], []
    for epoch in epochs:
        at_epoch = [row for row in rows if row['epoch'] == epoch]
        values = np.array([row[y_key] for row in at_epoch], dtype=np.float64)
        xs.append(float(np.mean([row[x_key] for row in at_epoch])))
        means.append(values.mean())
        lows.append(values.min())
        highs.append(values.max())
    return np.array(xs), np.array(means), np.array(lows), np.array(highs)


def plot_learning_curves(rows, baselines, path, title='Learning curves (mean over seeds, min–max shaded)'):
    from matplotlib.ticker import MaxNLocator

    from visualization import _new_figure, _save
    """AP and max recall against epoch, against cumulative training seconds and, where the rows have it, against
    cumulative training transitions (agent steps: runs of different budgets on one axis); returns the path.

    rows: dicts {'model', 'seed', 'epoch', 'split' ('test' or 'train'), 'ap', 'max_recall', 'training_seconds'}
    and optionally 'training_steps' (rows without it are left out of that column) and 'variant' (the learning
    benchmark's). One colour per model (per model and variant when there are
    several variants), solid on the test split and dashed on the training images;
    the shaded band is the min–max over seeds. baselines: dicts {'agent' ('random', 'upper_bound'), 'split', 'ap',
    'max_recall'}; their mean on the test split is drawn as horizontal lines (dotted: random, dash-dot: upper bound).
    """
    x_axes = [('epoch', 'epoch'), ('training_seconds', 'cumulative training seconds')]
    if any(row.get('training_steps') is not None for row in rows):
        x_axes.append(('training_steps', 'cumulative training transitions'))
    figure = _new_figure(5.5 * len(x_axes), 8.0)
    all_axes = figure.subplots(2, len(x_axes), squeeze=False)
    curves = sorted(dict.fromkeys((row['model'], row.get('variant', 'demo')) for row in rows))
    several = len({variant for _, variant in curves}) > 1       # colours by curve, the same in every column
    for row_index, (metric, label) in enumerate((('ap', 'AP'), ('max_recall', 'max recall'))):
        for column, (x_key, x_label) in enumerate(x_axes):
            axes = all_axes[row_index, column]
            for index, (model, variant) in enumerate(curves):
                for split in ('test', 'train'):
                    mine = [row for row in rows if row['model'] == model and row.get('variant', 'demo') == variant
                            and row['split'] == split and row.get(x_key) is not None]
                    if not mine:
                        continue
                    xs, means, lows, highs = _mean_and_range(mine, x_key, metric)
                    colour = f'C{index % 10}' if several else LEARNING_COLOURS.get(model)
                    name = f'{model} {variant}' if several else model
                    axes.plot(xs, means, LEARNING_LINE_STYLES[split], color=colour, marker='o', markersize=3,
                              linewidth=1.5, label=f'{name} {split}')
                    axes.fill_between(xs, lows, highs, color=colour, alpha=0.15 if split == 'test' else 0.07,
                                      linewidth=0)
                    if len(xs) == 1:        # one tested epoch (a short run beside a long one): its spread as a bar
                        axes.errorbar(xs, means, yerr=[means - lows, highs - means], color=colour, capsize=3,
                                      linewidth=1.0)
            for agent, style in (('random', ':'), ('upper_bound', '-.')):
                levels = [b[metric] for b in baselines if b['agent'] == agent and b['split'] == 'test']
                if levels:
                    axes.axhline(float(np.mean(levels)), color='black', linestyle=style, linewidth=1.0,
                                 label=f'{agent.replace("_", " ")} (test) {np.mean(levels):.3f}')
            axes.set_xlabel(x_label)
            axes.set_ylabel(label)
            axes.set_ylim(bottom=0.0)
            axes.grid(True, alpha=0.3)
            if x_key == 'epoch':
                axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = all_axes[0, 0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc='lower center', ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_variants(rows, baselines, path, split='test', title='Learning options: last tested epoch, every seed'):
    from visualization import _new_figure, _save
    """AP and max recall of each (model, variant) at its last tested epoch on ``split``: one dot per seed, a bar
    for the mean; the random agent's and the upper bound's mean as horizontal lines. Returns the path, or None
    when ``rows`` hold no ``split`` rows. rows and baselines: the learning benchmark's."""
    mine = [row for row in rows if row['split'] == split]
    if not mine:
        return None
    runs = list(dict.fromkeys((row['model'], row.get('variant', 'demo')) for row in mine))
    figure = _new_figure(max(6.0, 1.6 * len(runs) + 2.0), 4.2)
    all_axes = figure.subplots(1, 2, squeeze=False)[0]
    for axes, (metric, label) in zip(all_axes, (('ap', 'AP'), ('max_recall', 'max recall'))):
        for position, (model, variant) in enumerate(runs):
            run = [row for row in mine if row['model'] == model and row.get('variant', 'demo') == variant]
            last = max(row['epoch'] for row in run)
            values = np.array([row[metric] for row in run if row['epoch'] == last], dtype=np.float64)
            axes.bar(position, values.mean(), width=0.6, color=f'C{position % 10}', alpha=0.5)
            axes.plot(np.full(len(values), position), values, 'o', color='black', markersize=4)
            axes.annotate(f'{values.mean():.3f}', (position, values.max()), textcoords='offset points',
                          xytext=(0, 4), ha='center', fontsize=8)
        for agent, style in (('random', ':'), ('upper_bound', '-.')):
            levels = [b[metric] for b in baselines if b['agent'] == agent and b['split'] == split]
            if levels:
                axes.axhline(float(np.mean(levels)), color='black', linestyle=style, linewidth=1.0,
                             label=f'{agent.replace("_", " ")} {np.mean(levels):.3f}')
        names = [variant if len({m for m, _ in runs}) == 1 else f'{model}\n{variant}' for model, variant in runs]
        axes.set_xticks(range(len(runs)))
        # one setting a line, each as name=value on two lines: long names do not run into their neighbours
        axes.set_xticklabels(['\n'.join(part.replace('=', '=\n') if len(part) > 10 else part
                                        for part in name.split(',')) for name in names], fontsize=7)
        axes.set_ylabel(f'{label} ({split} split)')
        axes.set_ylim(bottom=0.0)
        axes.grid(True, axis='y', alpha=0.3)
        axes.legend(fontsize=7, loc='upper right')
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


if __name__ == "__main__":
    main_guard(main)
