"""End-to-end runs of the Image-Zooms scripts on a tiny synthetic dataset with tiny budgets."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
from runs.errors import UserError

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4", "--cache_mb", "64"]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """One epoch on four images, then ``-n 1`` for a second epoch."""
    models = tmp_path_factory.mktemp("models")
    args = ["--path_voc", str(dataset), "--path_model", str(models), "--max_images", "4", *TINY]
    image_zooms_training.main([*args, "--epochs", "1"])
    first = {path.name: path.stat().st_mtime_ns for path in models.iterdir()}
    image_zooms_training.main([*args, "--epochs", "2", "-n", "1"])
    return models, first


def read_log(models):
    with open(models / "training_log_model0.csv") as handle:
        return list(csv.DictReader(handle))


def test_training_writes_checkpoints_and_log(trained):
    models, first = trained
    assert {"model0_epoch_0.weights.h5", "model0.weights.h5", "training_log_model0.csv"} <= set(first)
    rows = read_log(models)
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert int(rows[0]["steps"]) > 0 and int(rows[0]["searches"]) > 0


def test_resume_continues_at_epoch_one_with_epsilon_point_nine(trained):
    models, _ = trained
    rows = read_log(models)
    assert float(rows[0]["epsilon"]) == 1.0 and float(rows[1]["epsilon"]) == pytest.approx(0.9)
    assert (models / "model0_epoch_1.weights.h5").is_file()


def test_resume_from_missing_checkpoint_lists_existing(trained, dataset, capsys):
    models, _ = trained
    with pytest.raises(SystemExit) as exit_info:
        from runs.runtime import main_guard
        main_guard(lambda: image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models),
                                                      *TINY, "-n", "7"]))
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "epoch_6" in message and "[0, 1]" in message


def run_test(dataset, models, out, *extra):
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(models), "--path_vgg", "random",
                              "--path_testing_folder", str(out), "--number_of_steps", "4", *extra])
    return json.loads((out / "results.json").read_text())


def test_testing_writes_results_with_the_documented_keys(trained, dataset, tmp_path):
    models, _ = trained
    results = run_test(dataset, models, tmp_path, "--bool_draw", "1")
    for key in ("model", "agent", "class_object", "scale_subregion", "num_images", "num_objects", "detections",
                "precision", "recall", "ap", "ap_voc07", "max_recall", "regions_per_found_object"):
        assert key in results
    assert results["model"] == "image_zooms" and results["agent"] == "trained"
    assert results["num_images"] > 0 and len(results["detections"]) > 0
    detection = results["detections"][0]
    assert {"image", "box", "score", "step", "triggered"} <= set(detection) and len(detection["box"]) == 4
    assert 0 <= results["ap"] <= 1 and 0 <= results["max_recall"] <= 1
    assert len(results["precision"]) == len(results["recall"])
    # every image analysed at most number_of_steps regions
    counts = {}
    for item in results["detections"]:
        counts[item["image"]] = counts.get(item["image"], 0) + 1
    assert max(counts.values()) <= 4
    assert (tmp_path / "precision_recall.png").stat().st_size > 0
    assert len(list((tmp_path / "searches").glob("*.png"))) == results["num_images"]
    # and each search as an animated GIF beside its PNG: one frame per analysed region
    from PIL import Image
    gifs = sorted((tmp_path / "searches").glob("*.gif"))
    assert [gif.stem for gif in gifs] == sorted(png.stem for png in (tmp_path / "searches").glob("*.png"))
    with Image.open(gifs[0]) as gif:
        assert gif.is_animated and gif.n_frames == counts[gifs[0].stem] > 1


def test_draw_images_draws_the_first_searches_only_and_tests_every_image(trained, dataset, tmp_path):
    models, _ = trained
    every = run_test(dataset, models, tmp_path / "every")
    first = run_test(dataset, models, tmp_path / "first", "--bool_draw", "1", "--draw_images", "2")
    assert first["num_images"] == every["num_images"] > 2 and first["detections"] == every["detections"]
    first_two = sorted(list(first["trajectories"])[:2])
    assert sorted(png.stem for png in (tmp_path / "first" / "searches").glob("*.png")) == first_two
    assert sorted(gif.stem for gif in (tmp_path / "first" / "searches").glob("*.gif")) == first_two
    with pytest.raises(UserError, match="draw_images must be a whole number ≥ 0"):
        run_test(dataset, models, tmp_path / "bad", "--bool_draw", "1", "--draw_images", "-1")


def test_same_seed_same_results(trained, dataset, tmp_path):
    models, _ = trained
    first = run_test(dataset, models, tmp_path / "a")
    second = run_test(dataset, models, tmp_path / "b")
    assert first["detections"] == second["detections"] and first["ap"] == second["ap"]


def test_same_seed_same_training(dataset, tmp_path):
    weights = []
    for name in ("a", "b"):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / name),
                                   "--max_images", "3", "--epochs", "1", *TINY])
        import h5py
        with h5py.File(tmp_path / name / "model0.weights.h5") as handle:
            arrays = []
            handle.visititems(lambda _, item: arrays.append(np.asarray(item)) if isinstance(item, h5py.Dataset)
                              else None)
        weights.append(arrays)
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert (tmp_path / "a" / "training_log_model0.csv").read_text().split("\n")[1].split(",")[:10] == \
        (tmp_path / "b" / "training_log_model0.csv").read_text().split("\n")[1].split(",")[:10]


def test_random_agent_runs_without_checkpoint(dataset, tmp_path):
    results = run_test(dataset, tmp_path / "no_models", tmp_path, "--agent", "random")
    assert results["agent"] == "random" and results["vgg_forwards"] is None


def test_user_error_is_one_line_without_traceback(tmp_path):
    completed = subprocess.run([sys.executable, "image_zooms_testing.py", "--path_voc_test", str(tmp_path / "nope"),
                                "--agent", "random"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert str(tmp_path / "nope") in completed.stderr


def test_unknown_flag_is_an_error():
    with pytest.raises(SystemExit) as exit_info:
        image_zooms_training.main(["--no_such_setting", "1"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        image_zooms_training.main(["--epochs", "many"])


def test_several_epochs_are_tested_and_compared(trained, dataset, tmp_path):
    models, _ = trained
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(models), "--path_vgg", "random",
                              "--path_testing_folder", str(tmp_path), "--number_of_steps", "2", "--epoch", "0,1"])
    for epoch in (0, 1):
        assert json.loads((tmp_path / f"epoch_{epoch}" / "results.json").read_text())["epoch"] == epoch
    assert (tmp_path / "epochs.png").stat().st_size > 0


def test_epoch_flag_parsing():
    from settings import parse_epochs
    assert parse_epochs("-1") == -1 and parse_epochs("3") == 3
    assert parse_epochs("0,4,9") == [0, 4, 9] and parse_epochs("all") == "all"
    with pytest.raises(Exception):
        parse_epochs("x")


