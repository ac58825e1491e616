"""What a newcomer tries first: a short ``--demo`` training, then ``--demo`` testing. A run without a refinement head
(too few windows overlapped an object, or a 2016 weights file) reports the hierarchy's windows with one warning where
``refine`` comes from ``--demo``, and is one error with the right advice where ``--refine 1`` is asked for; a run
without a score head ranks by the trigger's Q-value the same way (``score``)."""
import json
import warnings

import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
import pool45_crops_testing
import pool45_crops_training
from conftest import STATE_SIZE, tiny_backbone
from runs.errors import UserError
from test_legacy_weights import write_keras1

SCRIPTS = {"image_zooms": (image_zooms_training, image_zooms_testing),
           "pool45_crops": (pool45_crops_training, pool45_crops_testing)}


def tiny_image_zooms(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=0)


def short_demo_training(model, dataset, path_model, monkeypatch, *extra):
    """``--demo --epochs 1 --max_images 1``: one image, fewer visited windows than a refinement head needs."""
    training, testing = SCRIPTS[model]
    if model == "image_zooms":
        monkeypatch.setattr(training, "make_features", tiny_image_zooms)
        monkeypatch.setattr(testing, "make_features", tiny_image_zooms)
    training.main(["--demo", "--path_voc", str(dataset), "--path_model", str(path_model), "--epochs", "1",
                   "--max_images", "1", "--path_vgg", "random", *extra])


def demo_test(model, dataset, path_model, out, *extra):
    """``--demo`` testing; returns its warnings' messages."""
    testing = SCRIPTS[model][1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        testing.main(["--demo", "--path_voc_test", str(dataset), "--path_model", str(path_model),
                      "--path_testing_folder", str(out), "--max_images", "2", "--number_of_steps", "3",
                      "--path_vgg", "random", *extra])
    return [str(warning.message) for warning in caught]


@pytest.mark.parametrize("model", ["image_zooms", "pool45_crops"])
def test_a_short_demo_training_tests_with_demo(model, dataset, tmp_path, monkeypatch, small_q_network):
    short_demo_training(model, dataset, tmp_path / "models", monkeypatch)
    assert not list((tmp_path / "models").glob("refiner_*.npz"))
    messages = demo_test(model, dataset, tmp_path / "models", tmp_path / "out")
    assert len(messages) == 2 and "no refinement head refiner_model0.npz" in messages[0], messages
    assert "windows are reported" in messages[0]
    assert "no score head scorer_model0.npz" in messages[1] and "ranked by the trigger's Q-value" in messages[1]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["refine"] is False and "no refinement head" in results["refine_missing"]
    assert results["score"] == "trigger" and "no score head" in results["score_missing"]
    assert all("window" not in detection for detection in results["detections"])
    from compare_results import compare
    row, = compare([tmp_path / "out" / "results.json"], labels=["trained"], output=tmp_path / "comparison.png")
    assert row["label"] == "trained, windows (no refinement head), trigger score (no score head)"
    # asked for on the command line, it is an error whose advice fits: more training, or --refine 0 (--score trigger)
    with pytest.raises(UserError, match=r"refine 1: no refinement head .*train on more images or epochs .*--refine 0"):
        demo_test(model, dataset, tmp_path / "models", tmp_path / "explicit", "--refine", "1")
    with pytest.raises(UserError, match=r"score learned: no score head .*--score_head 1 .*--score trigger"):
        demo_test(model, dataset, tmp_path / "models", tmp_path / "explicit", "--score", "learned")


def test_a_short_demo_training_of_a_class_list_tests_with_demo(dataset, tmp_path, monkeypatch, small_q_network,
                                                              capsys):
    short_demo_training("image_zooms", dataset, tmp_path / "models", monkeypatch, "--class_object", "aeroplane,bird")
    messages = demo_test("image_zooms", dataset, tmp_path / "models", tmp_path / "out", "--class_object",
                         "aeroplane,bird")
    tested = [folder.name for folder in (tmp_path / "out").iterdir() if (folder / "results.json").is_file()]
    assert tested and len(messages) == 2 * len(tested), (tested, messages)      # no refinement head, no score head
    assert sum("no refinement head" in message for message in messages) == len(tested)
    # -n with a list says, class by class, where each continues
    capsys.readouterr()
    short_demo_training("image_zooms", dataset, tmp_path / "models", monkeypatch, "--class_object",
                        "aeroplane,car", "-n", "1", "--epochs", "2")
    output = capsys.readouterr().out
    assert "each class continues after its own latest saved epoch" in output
    assert "aeroplane: continues at epoch 1 (its latest saved epoch is 0)" in output
    assert f"car: no saved epoch in {tmp_path / 'models'}/: starts at epoch 0" in output


def test_a_2016_weights_file_tests_with_demo(dataset, tmp_path):
    """The authors' Q-network file can never have a head: ``--demo --model_name`` reports the windows."""
    from reinforcement import build_q_network
    arrays = [np.random.default_rng(3).normal(0, 0.01, array.shape).astype(np.float32)
              for array in build_q_network(STATE_SIZE, seed=0).get_weights()]
    write_keras1(tmp_path / "model_image_zooms_2", arrays)
    messages = demo_test("pool45_crops", dataset, tmp_path, tmp_path / "out", "--model_name", "model_image_zooms_2")
    assert len(messages) == 2 and "model_name 'model_image_zooms_2' is a weights file without a refinement head" \
        in messages[0] and "without a score head" in messages[1]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["refine"] is False
    with pytest.raises(UserError, match="without a refinement head .*test it with --refine 0"):
        demo_test("pool45_crops", dataset, tmp_path, tmp_path / "explicit", "--model_name", "model_image_zooms_2",
                  "--refine", "1")
