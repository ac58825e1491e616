"""experiments/learning_benchmark.py: the rows, summary and figure it writes (a tiny run with the stand-in backbone)."""
import json

import pytest

import image_zooms_testing
import image_zooms_training
from conftest import tiny_backbone
from runs.errors import UserError
from experiments import learning_benchmark

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)


def stand_in_features(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=16)


def test_summary_is_last_and_best_epoch_over_seeds():
    rows = [{"model": "image_zooms", "split": "test", "seed": seed, "epoch": epoch, "ap": ap, "max_recall": ap}
            for seed, aps in ((0, [0.1, 0.3, 0.2]), (1, [0.0, 0.1, 0.4])) for epoch, ap in enumerate(aps)]
    baselines = [{"model": "image_zooms", "split": "test", "seed": seed, "agent": agent, "ap": level,
                  "max_recall": level} for seed in (0, 1) for agent, level in (("random", 0.05), ("upper_bound", 0.6))]
    entry = learning_benchmark.summarise(rows, baselines)["image_zooms/demo/test"]
    assert entry["final_epoch"] == 2
    assert entry["final_ap"]["mean"] == pytest.approx(0.3) and entry["final_ap"]["min"] == 0.2
    assert entry["best_ap"]["mean"] == pytest.approx(0.35) and entry["best_ap"]["max"] == 0.4
    assert entry["random_ap"]["mean"] == pytest.approx(0.05) and entry["upper_bound_max_recall"]["n"] == 2
    assert "| image_zooms | demo | test | 2 |" in learning_benchmark.format_summary({"image_zooms/demo/test": entry})


def test_summary_keeps_variants_apart():
    rows = [{"model": "image_zooms", "variant": variant, "split": "test", "seed": 0, "epoch": 0, "ap": ap,
             "max_recall": ap} for variant, ap in (("demo", 0.1), ("expert_margin=0", 0.3))]
    baselines = [{"model": "image_zooms", "split": "test", "seed": 0, "agent": agent, "ap": 0.0, "max_recall": 0.0}
                 for agent in ("random", "upper_bound")]
    summary = learning_benchmark.summarise(rows, baselines)
    assert summary["image_zooms/demo/test"]["final_ap"]["mean"] == pytest.approx(0.1)
    assert summary["image_zooms/expert_margin=0/test"]["final_ap"]["mean"] == pytest.approx(0.3)


def test_rows_of_a_run_with_validation_are_summarised_as_any_rows():
    """learning.json files written while validation_images existed (rows with ``validation_picked``) merge and
    summarise as any: their last and best epochs, nothing of the epoch validation picked."""
    rows = [{"model": "image_zooms", "variant": "validation_images=2", "split": "test", "seed": seed, "epoch": epoch,
             "ap": ap, "max_recall": ap, "validation_picked": epoch == picked}
            for seed, picked, aps in ((0, 1, [0.1, 0.3, 0.2]), (1, 0, [0.2, 0.1, 0.4])) for epoch, ap in enumerate(aps)]
    baselines = [{"model": "image_zooms", "split": "test", "seed": seed, "agent": agent, "ap": 0.0, "max_recall": 0.0}
                 for seed in (0, 1) for agent in ("random", "upper_bound")]
    summary = learning_benchmark.summarise(rows, baselines)
    entry = summary["image_zooms/validation_images=2/test"]
    assert entry["final_ap"]["mean"] == pytest.approx(0.3) and entry["best_ap"]["mean"] == pytest.approx(0.35)
    assert not any(key.startswith("validation") for key in entry)
    assert "validation picked" not in learning_benchmark.format_summary(summary)
    assert learning_benchmark.summarise([dict(row, validation_picked=None) for row in rows], baselines) == summary


def test_tested_epochs_are_every_kth_and_the_last():
    assert learning_benchmark.tested_epochs(list(range(10)), 1) == list(range(10))
    assert learning_benchmark.tested_epochs(list(range(10)), 4) == [3, 7, 9]
    assert learning_benchmark.variant_settings("expert_margin=0.8,learning_rate=1e-5") == ["expert_margin=0.8",
                                                                                        "learning_rate=1e-5"]
    assert learning_benchmark.variant_settings("demo") == []


def test_merge_joins_the_rows_of_two_runs(tmp_path):
    from runs.runtime import write_json
    for model in ("image_zooms", "pool45_crops"):
        rows = [{"model": model, "split": split, "seed": 0, "epoch": epoch, "ap": 0.1 * epoch, "max_recall": 0.2,
                 "training_seconds": 10.0 * (epoch + 1)} for epoch in (0, 1) for split in ("test", "train")]
        baselines = [{"model": model, "split": split, "seed": 0, "agent": agent, "ap": 0.0, "max_recall": 0.1}
                     for split in ("test", "train") for agent in ("random", "upper_bound")]
        write_json(tmp_path / model / "learning.json", {"command": f"python experiments/learning_benchmark.py --models {model}",
                                                        "wall_seconds": 1.0, "rows": rows, "baselines": baselines})
    merged = learning_benchmark.main(["--merge", str(tmp_path / "image_zooms" / "learning.json"),
                                      str(tmp_path / "pool45_crops" / "learning.json"), "--output", str(tmp_path)])
    assert len(merged["rows"]) == 8 and set(merged["summary"]) == {
        "image_zooms/demo/test", "image_zooms/demo/train", "pool45_crops/demo/test", "pool45_crops/demo/train"}
    assert merged["summary"]["pool45_crops/demo/test"]["final_ap"]["mean"] == pytest.approx(0.1)
    assert (tmp_path / "learning.png").stat().st_size > 0 and (tmp_path / "variants.png").stat().st_size > 0
    # two runs of one variant kept apart by --label; a file of several variants keeps them inside its label
    labelled = learning_benchmark.main(["--merge", str(tmp_path / "image_zooms" / "learning.json"),
                                        str(tmp_path / "learning.json"), "--label", "first", "--label", "both",
                                        "--output", str(tmp_path / "labelled")])
    assert set(labelled["summary"]) == {"image_zooms/first/test", "image_zooms/first/train",
                                        "image_zooms/both/test", "image_zooms/both/train",
                                        "pool45_crops/both/test", "pool45_crops/both/train"}
    assert len(labelled["baselines"]) == 8      # image_zooms' four are in both files: each counted once
    two_variants = learning_benchmark.main(["--merge", str(tmp_path / "labelled" / "learning.json"), "--label", "x",
                                            "--output", str(tmp_path / "again")])
    assert {key.split("/")[1] for key in two_variants["summary"]} == {"x: first", "x: both"}
    with pytest.raises(SystemExit):
        learning_benchmark.main(["--merge", str(tmp_path / "learning.json"), "--label", "a", "--label", "b"])


def test_bad_arguments_stop_with_exit_code_two():
    for argv in (["--models", "image_zooms,nope"], ["--set", "learning_rate"], ["--seeds", "0"],
                 ["--variant", "gamma"], ["--variant", "demo", "--variant", "demo"], ["--splits", "validation"],
                 ["--test_every", "0"], ["--first_seed", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            learning_benchmark.parse_arguments(argv)
        assert exit_info.value.code == 2


def test_a_removed_option_stops_with_one_line_and_exit_code_two():
    import subprocess
    import sys
    from pathlib import Path
    from settings import removed_message
    for argv, name in ((["--variant", "flip=1"], "flip"), (["--variant", "gamma=0.5,update_every=2"], "update_every"),
                       (["--variant", "target_update=100,double_dqn=1,loss=huber"], "target_update"),
                       (["--set", "loss=huber"], "loss"), (["--variant", "validation_images=4"], "validation_images"),
                       (["--set", "weight_decay=1e-4"], "weight_decay"), (["--variant", "standardize"], "standardize"),
                       (["--test_set", "trigger_bias=1"], "trigger_bias")):
        with pytest.raises(UserError) as error:
            learning_benchmark.parse_arguments(argv)
        assert str(error.value) == removed_message(name)
    script = Path(learning_benchmark.__file__)
    completed = subprocess.run([sys.executable, str(script), "--variant", "guided_exploration=1"],
                               capture_output=True, text=True, cwd=script.parent.parent)
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.splitlines() == [f"error: {removed_message('guided_exploration')}"]


def tiny_run(dataset, output, monkeypatch, seeds, epochs, max_images, *flags):
    """An Image-Zooms learning benchmark on the stand-in backbone: 2 test images, 3 regions per search."""
    monkeypatch.setattr(image_zooms_training, "make_features", stand_in_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", stand_in_features)
    learning_benchmark.main(["--models", "image_zooms", "--seeds", str(seeds), "--epochs", str(epochs),
                             "--max_images", str(max_images), "--max_test_images", "2", "--path_voc", str(dataset),
                             "--output", str(output), "--set", "buffer_experience_replay=8", "--set", "batch_size=4",
                             "--set", "number_of_steps=3", *flags])


def test_a_validation_variant_stops_before_any_training(dataset, tmp_path, monkeypatch):
    from settings import removed_message
    output = tmp_path / "learning"
    with pytest.raises(UserError) as error:
        tiny_run(dataset, output, monkeypatch, 1, 3, 4, "--splits", "test", "--test_every", "10",
                 "--variant", "validation_images=2")
    assert str(error.value) == removed_message("validation_images") and not output.exists()


@pytest.mark.slow
def test_tiny_run_writes_rows_for_every_seed_epoch_and_split(dataset, tmp_path, monkeypatch):
    output = tmp_path / "learning"
    tiny_run(dataset, output, monkeypatch, 2, 2, 3, "--variant", "demo", "--variant", "scale_subregion=0.5")
    report = json.loads((output / "learning.json").read_text())
    rows = report["rows"]
    assert {(row["variant"], row["seed"], row["epoch"], row["split"]) for row in rows} == \
        {(variant, seed, epoch, split) for variant in ("demo", "scale_subregion=0.5") for seed in (0, 1)
         for epoch in (0, 1) for split in ("test", "train")}
    # each variant trained with its settings: the half-scale run's log differs from the plain one's
    logs = [(output / f"models/image_zooms/{folder}/seed0/training_log_model0.csv").read_text().splitlines()[1:]
            for folder in ("demo", "scale_subregion_0.5")]
    assert [line.split(",")[5] for line in logs[0]] != [line.split(",")[5] for line in logs[1]]
    for row in rows:
        assert 0 <= row["ap"] <= 1 and 0 <= row["max_recall"] <= 1 and row["num_images"] == 2
        assert row["training_seconds"] > 0 and row["hit_rate"] is not None and row["training_steps"] > 0
    # cumulative training seconds grow with the epoch
    seed_zero = sorted((row["epoch"], row["training_seconds"]) for row in rows if row["seed"] == 0)
    assert seed_zero[-1][1] >= seed_zero[0][1]
    # the train split tests the images trained on (trainval), the test split the test images
    trained_on = (dataset / "ImageSets/Main/trainval.txt").read_text().split()
    train_results = json.loads((output / "tests/image_zooms/demo/seed0/epoch_1/train/results.json").read_text())
    test_results = json.loads((output / "tests/image_zooms/demo/seed0/epoch_1/test/results.json").read_text())
    assert set(train_results["trajectories"]) <= set(trained_on)
    assert not set(test_results["trajectories"]) & set(trained_on)
    # the training used the passed-through settings; the tests use the paper's 10 regions per image
    assert max(len(trajectory) for trajectory in test_results["trajectories"].values()) <= 10
    assert report["overrides"] == ["buffer_experience_replay=8", "batch_size=4", "number_of_steps=3"]
    assert {baseline["agent"] for baseline in report["baselines"]} == {"random", "upper_bound"}
    assert report["summary"]["image_zooms/scale_subregion=0.5/test"]["final_ap"]["n"] == 2
    assert (output / "learning.png").stat().st_size > 0 and (output / "variants.png").stat().st_size > 0


@pytest.mark.slow
def test_first_seed_adds_later_seeds(dataset, tmp_path, monkeypatch):
    output = tmp_path / "learning"
    tiny_run(dataset, output, monkeypatch, 1, 1, 3, "--first_seed", "2", "--splits", "test")
    report = json.loads((output / "learning.json").read_text())
    assert {row["seed"] for row in report["rows"]} == {2} and report["first_seed"] == 2
    assert (output / "models/image_zooms/demo/seed2/model0.weights.h5").is_file()


@pytest.mark.slow
def test_keep_checkpoints_tested_leaves_only_the_tested_epochs(dataset, tmp_path, monkeypatch):
    output = tmp_path / "learning"
    tiny_run(dataset, output, monkeypatch, 1, 3, 3, "--splits", "test", "--test_every", "2",
             "--keep_checkpoints", "tested")
    folder = output / "models/image_zooms/demo/seed0"
    assert sorted(path.name for path in folder.glob("model0_epoch_*")) == \
        ["model0_epoch_1.weights.h5", "model0_epoch_2.weights.h5"]         # every 2nd epoch and the last
    assert not list(folder.glob("resume_model0_*")) and (folder / "model0.weights.h5").is_file()
    report = json.loads((output / "learning.json").read_text())
    assert sorted(row["epoch"] for row in report["rows"]) == [1, 2]


@pytest.mark.slow
def test_models_from_tests_earlier_checkpoints_with_the_test_settings(dataset, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    tiny_run(dataset, first, monkeypatch, 1, 1, 3, "--splits", "test")
    weights = first / "models/image_zooms/demo/seed0/model0.weights.h5"
    trained = weights.read_bytes()
    tiny_run(dataset, second, monkeypatch, 1, 1, 3, "--splits", "test", "--models_from", str(first),
             "--test_set", "number_of_steps=1")
    assert not (second / "models").exists() and weights.read_bytes() == trained        # nothing trained
    results = json.loads((second / "tests/image_zooms/demo/seed0/epoch_0/test/results.json").read_text())
    steps = [step for trajectory in results["trajectories"].values() for step in trajectory]
    assert results["number_of_steps"] == 1 and steps and all(len(trajectory) == 1
                                                             for trajectory in results["trajectories"].values())
    random = json.loads((second / "tests/image_zooms/seed0/random/test/results.json").read_text())
    assert random["number_of_steps"] == 10                   # the baselines take no test settings
    assert len(json.loads((second / "learning.json").read_text())["rows"]) == 1
    with pytest.raises(UserError, match="seed1"):
        tiny_run(dataset, tmp_path / "third", monkeypatch, 2, 1, 3, "--splits", "test", "--models_from", str(first))


def test_training_images_tested_are_the_first_max_images_trained_on(dataset, tmp_path):
    training_module, testing_module = learning_benchmark.script_modules("image_zooms")
    for flags, train_limit in (([], 3), (["--max_test_images", "2"], 2)):
        arguments = learning_benchmark.parse_arguments(["--path_voc", str(dataset), "--max_images", "3", *flags])
        training = learning_benchmark.training_settings(arguments, training_module, tmp_path / "models", 0)
        tests = {split: learning_benchmark.testing_settings(arguments, testing_module, training, split, "trained", 0,
                                                            tmp_path / split) for split in ("train", "test")}
        assert (tests["train"].max_images, tests["train"].image_set) == (train_limit, "trainval")
        assert (tests["test"].max_images, tests["test"].image_set) == (arguments.max_test_images, "test")


@pytest.mark.parametrize("path_voc", [None, "dataset"])
def test_an_oracle_variant_leaves_the_demos_trigger_targets_and_expert_margin_off(path_voc, dataset, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr("synthetic_dataset.ensure_synthetic_voc", lambda folder: None)   # settings only
    flags = ["--models", "image_zooms"] + ([] if path_voc is None else ["--path_voc", str(dataset)])
    arguments = learning_benchmark.parse_arguments(flags)

    def settings(variant):
        return learning_benchmark.training_settings(arguments, image_zooms_training, tmp_path / "m", 0, variant)

    demo, oracle = settings("demo"), settings("oracle=1")
    assert (demo.trigger_targets, demo.expert_margin) == (1, 0.8)
    assert (oracle.oracle, oracle.trigger_targets, oracle.expert_margin, oracle.learning_rate) == (1, 0, 0, 1e-5)
    assert settings("oracle=0").trigger_targets == 1
    with pytest.raises(UserError, match="oracle 1 regresses"):            # given: the variant cannot run
        settings("oracle=1,trigger_targets=1")
