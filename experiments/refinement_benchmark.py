"""Do the box-refinement and score heads help? The same searches' windows, refined boxes and learnt scores, over
seeds, datasets and both models.

    python experiments/refinement_benchmark.py                                   # the demo's data, 3 seeds
    python experiments/refinement_benchmark.py --datasets synthetic,plain,cluttered --models image_zooms
    python experiments/refinement_benchmark.py --figure_only                     # redraw from refinement.json

For each dataset, model and seed it trains the demo's run with ``refine 1`` and ``score_head 1``
(``episodes.train`` at the demo's settings, as ``experiments/learning_benchmark.py`` does; the agent's training is
the same as without them, only the heads are fitted beside it), unless ``OUTPUT/models/<dataset>/<model>/seed<S>``
already holds that run's last epoch and its heads (an interrupted benchmark goes on where it stopped). Then it
tests the last epoch on the dataset's test split with the paper's protocol (all objects, 10 regions per image, every
visited region a detection), for the trained agent and the upper bound, four ways each: the windows (``refine 0``,
the paper's) and the refined boxes (``refine 1``), each with ``duplicates keep`` (the paper's) and ``duplicates
demote``; the trained agent's refined boxes twice more, ranked by the score head (``score learned``). The searches
are the same every time (the heads do not change them; the descriptor cache serves the repeats). Each row has each
score's AUC for IoU ≥ 0.5.

Datasets: ``synthetic`` (the demo's, ``synthetic_dataset.py``), ``plain`` and ``cluttered``
(``experiments/other_voc.py``'s, drawn into ``data/other_voc_<kind>`` if absent).

Writes to ``--output``: ``refinement.json`` (rows of earlier runs into the same folder are kept, but for the
datasets, models and seeds run again; a row per dataset, model, seed, agent, refine, duplicates and score: AP,
AP-07, max recall and the precision–recall curve; a summary of means over seeds) and ``refinement.png`` (the
precision–recall curves of the trained agents, every seed, one panel per dataset and model).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.errors import UserError
from runs.runtime import OneLineParser, main_guard, write_json

DATASETS = {"synthetic": None, "plain": "data/other_voc_plain", "cluttered": "data/other_voc_cluttered"}
MODELS = ("image_zooms", "pool45_crops")
AGENTS = ("trained", "upper_bound")
# (refine, duplicates, score); (0, keep, trigger): the paper's; score learned: the trained agent's only
WAYS = ((0, "keep", "trigger"), (0, "demote", "trigger"), (1, "keep", "trigger"), (1, "demote", "trigger"),
        (1, "keep", "learned"), (1, "demote", "learned"))


def parse_arguments(argv):
    parser = OneLineParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                           listed="option")
    parser.add_argument("--datasets", default="synthetic", help=f"comma-separated: {','.join(DATASETS)}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {','.join(MODELS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds first_seed .. first_seed + N - 1")
    parser.add_argument("--first_seed", type=int, default=0, help="the first seed (a later run adds seeds)")
    parser.add_argument("--output", default="results/refinement", help="folder for refinement.json, the figure, runs")
    parser.add_argument("--figure_only", action="store_true", help="train and test nothing: redraw the figure")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="a training setting passed through (repeatable); runs of other settings want another "
                             "--output")
    parser.add_argument("--score_rate", type=float, default=None,
                        help="the share of distinct visited windows the score sample takes (default: "
                             "refinement.SCORE_RATE); runs of another rate want another --output")
    arguments = parser.parse_args(argv)
    arguments.datasets = [name.strip() for name in arguments.datasets.split(",") if name.strip()]
    arguments.models = [name.strip() for name in arguments.models.split(",") if name.strip()]
    for flag, names, known in (("--datasets", arguments.datasets, DATASETS), ("--models", arguments.models, MODELS)):
        if not names or any(name not in known for name in names):
            parser.error(f"{flag} takes {','.join(known)}, got {','.join(names) or 'none'}")
    if arguments.seeds < 1 or arguments.first_seed < 0:
        parser.error("--seeds must be 1 or more, --first_seed 0 or more")
    if arguments.score_rate is not None and not 0 < arguments.score_rate <= 1:
        parser.error(f"--score_rate must be in (0, 1], got {arguments.score_rate}")
    arguments.seed_list = list(range(arguments.first_seed, arguments.first_seed + arguments.seeds))
    return arguments


def dataset_folder(dataset):
    """The dataset's VOC folder (None: the synthetic one, ``--demo``'s), drawn first if absent."""
    folder = DATASETS[dataset]
    if folder is None:
        from settings import DEMO_DATA
        from synthetic_dataset import ensure_synthetic_voc
        ensure_synthetic_voc(DEMO_DATA)
    elif not (Path(folder) / "Annotations").is_dir():
        from experiments.other_voc import generate
        print(generate(folder, dataset))
    return folder


def trained_run(module, path_model, seed, path_voc, model, features_for, overrides=()):
    """The demo's training with ``refine 1``, ``score_head 1`` and ``overrides`` (``NAME=VALUE``) into
    ``path_model``, unless its last epoch (and its heads) is there already."""
    from experiments.learning_benchmark import training_settings
    from runs.run_folder import checkpoint_path
    from refinement import refiner_path, scorer_path
    from settings import class_index
    benchmark = SimpleNamespace(path_voc=path_voc, epochs=None, max_images=None,
                                overrides=["refine=1", "score_head=1", *overrides])
    training = training_settings(benchmark, module, path_model, seed)
    last = checkpoint_path(path_model, class_index(training), training.epochs - 1)
    if last.is_file() and refiner_path(last).is_file() and scorer_path(last).is_file():
        print(f"{path_model}: trained already (epoch {training.epochs - 1} and its heads are there)", flush=True)
        return training
    from episodes import train
    started = time.perf_counter()
    train(training, features_for, model)
    print(f"{path_model}: trained in {time.perf_counter() - started:.0f} s", flush=True)
    return training


def test_ways(training, module, model, agent, folder, features_for, path_voc, ways=WAYS):
    """The last epoch tested each way of ``ways`` (the upper bound: by its own score): one row each."""
    from experiments.learning_benchmark import testing_settings
    from runs.testing_run import test
    import contextlib
    import io
    benchmark = SimpleNamespace(path_voc=path_voc, max_test_images=None, test_overrides=[])
    rows = []
    for refine, duplicates, score in ways:
        if score == "learned" and agent != "trained":
            continue
        settings = testing_settings(benchmark, module, training, "test", agent, -1,
                                    folder / f"refine{refine}_{duplicates}_{score}")
        settings.refine, settings.duplicates, settings.score = refine, duplicates, score
        with contextlib.redirect_stdout(io.StringIO()):
            results = test(settings, features_for if agent == "trained" or refine else None, model)
        rows.append({"agent": agent, "refine": refine, "duplicates": duplicates, "score": score,
                     "score_auc": results["score_auc"], "ap": results["ap"],
                     "ap_voc07": results["ap_voc07"], "max_recall": results["max_recall"],
                     "num_objects": results["num_objects"], "recall": results["recall"],
                     "precision": results["precision"]})
    return rows


def earlier_rows(report_path, arguments):
    """The rows of earlier runs into the same folder, less those this run tests again, and those runs' commands."""
    import json
    if not report_path.is_file():
        return [], []
    try:
        report = json.loads(report_path.read_text())
        rows, commands = report["rows"], report.get("commands", [report.get("command")])
        again = {(dataset, model, seed) for dataset in arguments.datasets for model in arguments.models
                 for seed in arguments.seed_list}
        return [row for row in rows if (row["dataset"], row["model"], row["seed"]) not in again], list(commands)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{report_path}: not a refinement benchmark report ({error}); move it away") from None


def summarise(rows):
    """Means (and min–max) over seeds of each dataset, model, agent and way."""
    groups = {}
    for row in rows:
        key = (row["dataset"], row["model"], row["agent"], row["refine"], row["duplicates"],
               row.get("score", "trigger"))     # rows of runs before the score head: the trigger's
        groups.setdefault(key, []).append(row)
    summary = []
    for (dataset, model, agent, refine, duplicates, score), group in groups.items():
        entry = {"dataset": dataset, "model": model, "agent": agent, "refine": refine, "duplicates": duplicates,
                 "score": score, "seeds": sorted(row["seed"] for row in group)}
        aucs = [row["score_auc"].get(score if score == "learned" or "trigger" in row["score_auc"] else "score")
                for row in group if row.get("score_auc")]
        entry["auc"] = float(np.mean(aucs)) if aucs and None not in aucs else None
        for metric in ("ap", "ap_voc07", "max_recall"):
            values = [row[metric] for row in group]
            entry[metric] = {"mean": float(np.mean(values)), "min": float(np.min(values)),
                             "max": float(np.max(values))}
        summary.append(entry)
    return summary


def format_summary(summary):
    lines = [f"{'dataset':10} {'model':13} {'agent':12} {'refine':>6} {'duplicates':>10} {'score':>8}   AP (min-max)"
             f"        AP-07   max recall (min-max)   AUC"]
    for entry in summary:
        ap, ap07, recall = entry["ap"], entry["ap_voc07"], entry["max_recall"]
        auc = "" if entry.get("auc") is None else f"{entry['auc']:.3f}"
        lines.append(f"{entry['dataset']:10} {entry['model']:13} {entry['agent']:12} {entry['refine']:>6} "
                     f"{entry['duplicates']:>10} {entry.get('score', 'trigger'):>8}   {ap['mean']:.3f} "
                     f"({ap['min']:.3f}-{ap['max']:.3f})  {ap07['mean']:.3f}   {recall['mean']:.3f} "
                     f"({recall['min']:.3f}-{recall['max']:.3f})   {auc}")
    return "\n".join(lines)


def plot(rows, path):
    """Precision–recall curves of the trained agents: a panel per dataset and model, every seed a thin line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted({(row["dataset"], row["model"]) for row in rows if row["agent"] == "trained"},
                    key=lambda panel: (list(DATASETS).index(panel[0]), MODELS.index(panel[1])))
    if not panels:
        return
    styles = {(0, "keep", "trigger"): ("tab:grey", "windows (the paper's)"),
              (1, "keep", "trigger"): ("tab:blue", "refine 1"),
              (1, "demote", "trigger"): ("tab:orange", "refine 1, duplicates demote"),
              (1, "demote", "learned"): ("tab:green", "and score learned")}
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for axis, (dataset, model) in zip(axes[0], panels):
        for way, (colour, label) in styles.items():
            chosen = [row for row in rows if (row["dataset"], row["model"], row["agent"]) == (dataset, model, "trained")
                      and (row["refine"], row["duplicates"], row.get("score", "trigger")) == way]
            for index, row in enumerate(chosen):
                mean_ap = np.mean([other["ap"] for other in chosen])
                axis.plot(row["recall"], row["precision"], color=colour, linewidth=1.0, alpha=0.8,
                          label=f"{label}: AP {mean_ap:.3f}" if index == 0 else None)
        seeds = len({row["seed"] for row in rows if (row["dataset"], row["model"]) == (dataset, model)})
        axis.set(title=f"{model.replace('_', '-')}, {dataset} ({seeds} seeds)",
                 xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    output = Path(arguments.output)
    report_path = output / "refinement.json"
    if arguments.figure_only:
        import json
        if not report_path.is_file():
            raise UserError(f"{report_path}: no such file (run the benchmark first)")
        plot(json.loads(report_path.read_text())["rows"], output / "refinement.png")
        return print(f"figure in {output / 'refinement.png'}")
    from experiments.learning_benchmark import script_modules, shared_features
    if arguments.score_rate is not None:
        import refinement
        refinement.SCORE_RATE = arguments.score_rate
    rows, commands = earlier_rows(report_path, arguments)
    started = time.perf_counter()
    commands.append("python experiments/refinement_benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv))
    for model in arguments.models:
        training_module, testing_module = script_modules(model)
        shared = {}

        def features_for(kind, module):
            return lambda settings: shared.setdefault(kind, shared_features(module, settings, 4096))
        for dataset in arguments.datasets:
            path_voc = dataset_folder(dataset)
            for seed in arguments.seed_list:
                path_model = output / "models" / dataset / model / f"seed{seed}"
                training = trained_run(training_module, path_model, seed, path_voc, model,
                                       features_for("training", training_module), arguments.overrides)
                for agent in AGENTS:
                    folder = output / "tests" / dataset / model / f"seed{seed}" / agent
                    for row in test_ways(training, testing_module, model, agent, folder,
                                         features_for("testing", testing_module), path_voc):
                        rows.append({"dataset": dataset, "model": model, "seed": seed, **row})
                        print(f"{dataset} {model} seed {seed} {agent} refine {row['refine']} duplicates "
                              f"{row['duplicates']} score {row['score']}: AP {row['ap']:.3f} AP-07 "
                              f"{row['ap_voc07']:.3f} max recall {row['max_recall']:.3f} AUC {row['score_auc']}",
                              flush=True)
                summary = summarise(rows)
                write_json(report_path, {"commands": commands, "wall_seconds": round(time.perf_counter() - started, 1),
                                         "summary": summary, "rows": rows})
                plot(rows, output / "refinement.png")
    print(format_summary(summarise(rows)))
    print(f"results in {report_path} and {output / 'refinement.png'} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main_guard(main)
