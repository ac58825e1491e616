"""Your own images (issue 6, item 5): ``--image`` on the testing scripts and ``detection.detect``.

A Q-network from a tiny training run gives the real thing end to end; hand-set Q-networks (constant Q-values:
always trigger, always up-left) make the search predictable, so the boxes, scores and trajectory can be checked
exactly. Most searches here use Image-Zooms with a tiny fixed backbone instead of VGG-16; the command line test
uses the random VGG-16.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import image_zooms_testing
import image_zooms_training
from detection import detect, detect_many, select_detections
from runs.errors import UserError
from runs.runtime import main_guard
from conftest import STATE_SIZE, tiny_backbone
from image_helper import crop
from reinforcement import TRIGGER, build_q_network
from synthetic_dataset import generate_synthetic_voc

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4", "--max_images", "3", "--epochs", "1"]


@pytest.fixture(scope="module")
def features():
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Weights from a tiny demo training (one epoch on three synthetic images)."""
    from features import ImageZoomsFeatures
    dataset = generate_synthetic_voc(tmp_path_factory.mktemp("voc"), num_trainval=8, num_test=6, seed=1,
                                     min_size=64, max_size=96)
    models = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_zooms_training, "make_features",
                      lambda settings: ImageZoomsFeatures(backbone=tiny_backbone()))
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TINY])
    return models


def constant_q_network(q_values):
    """A Q-network whose Q-values are ``q_values`` in every state."""
    model = build_q_network(STATE_SIZE)
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([np.zeros_like(kernel), np.asarray(q_values, dtype=np.float32)])
    return model


ALWAYS_TRIGGER = [0, 0, 0, 0, 0, 1.5]
ALWAYS_UP_LEFT = [2.0, 0, 0, 0, 0, -1.0]


def photo(seed=0, height=60, width=80):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# the command line

def test_image_flag_on_a_jpeg_and_a_png(trained, tmp_path):
    Image.fromarray(photo(1)).save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(photo(2, 70, 50)).convert("RGBA").save(tmp_path / "drawing.png")
    out = tmp_path / "out"
    image_zooms_testing.main(["--image", str(tmp_path / "photo.jpg"), "--image", str(tmp_path / "drawing.png"),
                              "--path_model", str(trained), "--path_vgg", "random", "--path_testing_folder",
                              str(out), "--number_of_steps", "4"])
    summary = json.loads((out / "detections.json").read_text())
    assert summary["detections_protocol"] == "triggered" and summary["skipped_images"] == 0
    assert not (out / "results.json").exists()
    assert [Path(entry["image"]).name for entry in summary["images"]] == ["photo.jpg", "drawing.png"]
    for entry, (width, height) in zip(summary["images"], [(80, 60), (50, 70)]):
        assert (entry["width"], entry["height"]) == (width, height)
        assert 1 <= len(entry["trajectory"]) <= 4
        triggered = sorted((step for step in entry["trajectory"] if step["triggered"]), key=lambda s: -s["score"])
        assert entry["boxes"] == [step["region"] for step in triggered]
        assert entry["scores"] == [step["score"] for step in triggered]
        for step in entry["trajectory"]:
            assert step["score"] == step["q_values"][TRIGGER]
            x0, y0, x1, y1 = step["region"]
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert Path(entry["figure"]).stat().st_size > 0
    assert sorted(path.name for path in (out / "images").iterdir()) == ["drawing.png", "photo.png"]


def test_image_flag_visited_protocol_and_an_unreadable_image(trained, tmp_path, monkeypatch, features, capsys):
    monkeypatch.setattr(image_zooms_testing, "make_features", lambda settings: features)
    Image.fromarray(photo(3)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as caught:
        image_zooms_testing.main(["--image", str(tmp_path / "good.png"), "--image", str(tmp_path / "broken.jpg"),
                                  "--image", str(tmp_path / "absent.jpg"), "--path_model", str(trained),
                                  "--path_vgg", "random",       # checked before the stand-in features are used
                                  "--path_testing_folder", str(out), "--number_of_steps", "5",
                                  "--detections", "visited", "--bool_draw", "1"])
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2 and "broken.jpg" in messages[0] and "absent.jpg" in messages[1]
    summary = json.loads((out / "detections.json").read_text())
    assert summary["detections_protocol"] == "visited" and summary["skipped_images"] == 2
    assert "skipped 2 images" in capsys.readouterr().out
    (entry,) = summary["images"]
    assert len(entry["boxes"]) == len(entry["trajectory"]) == 5                  # every analysed region
    assert entry["scores"] == sorted(entry["scores"], reverse=True)
    with Image.open(out / "images" / "good.gif") as gif:                      # bool_draw: the search animated
        assert gif.n_frames == 5 and (out / "images" / "good.png").is_file()


def test_image_flag_errors(trained, tmp_path, capsys):
    Image.fromarray(photo()).save(tmp_path / "good.png")
    cases = [
        (["--image", str(tmp_path / "absent.jpg"), "--path_model", str(trained), "--path_vgg", "random"],
         "absent.jpg: no such file"),
        (["--image", str(tmp_path / "good.png"), "--path_model", str(trained)], "path_vgg='./vgg16_weights.h5': no such"),
        (["--image", str(tmp_path / "good.png"), "--path_model", str(trained), "--agent", "random"],
         "--agent random needs annotations"),
        (["--image", str(tmp_path / "good.png"), "--path_model", str(tmp_path / "no_models")], "Train first"),
        (["--image", str(tmp_path / "good.png"), "--path_model", str(trained), "--epoch", "5"], "epochs saved"),
    ]
    for args, message in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main_guard(lambda: image_zooms_testing.main([*args, "--path_testing_folder", str(tmp_path / "out")]))
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in error and "Traceback" not in error, error


# ---------------------------------------------------------------------------------------------------------------
# detect()

def test_detect_path_or_array_weights_file_or_model(trained, tmp_path, features):
    Image.fromarray(photo(4)).save(tmp_path / "photo.png")
    weights = trained / "model0.weights.h5"
    from_files = detect(tmp_path / "photo.png", weights, features=features, number_of_steps=6)
    model = build_q_network(STATE_SIZE)
    model.load_weights(weights)
    from_objects = detect(photo(4), model, features=features, number_of_steps=6)
    assert np.array_equal(from_files[0], from_objects[0]) and np.array_equal(from_files[1], from_objects[1])
    assert from_files[2] == from_objects[2] and 1 <= len(from_files[2]) <= 6
    boxes, scores, trajectory = from_files
    assert boxes.shape == (len(scores), 4) and len(scores) == sum(step["triggered"] for step in trajectory)
    # several images at once give the same as one at a time (lockstep searches, batched descriptors; a batch of
    # two goes through other matrix kernels than a batch of one, hence the tolerance on the Q-values)
    both = detect_many([photo(4), photo(5)], model, features=features, number_of_steps=6)
    assert_same_search(both[0][2], from_files[2])
    assert_same_search(both[1][2], detect(photo(5), model, features=features, number_of_steps=6)[2])


def assert_same_search(trajectory, expected):
    assert len(trajectory) == len(expected)
    for step, other in zip(trajectory, expected):
        assert {k: v for k, v in step.items() if k not in ("score", "q_values")} == \
            {k: v for k, v in other.items() if k not in ("score", "q_values")}
        np.testing.assert_allclose(step["q_values"], other["q_values"], rtol=1e-5, atol=1e-6)


def test_detect_always_trigger_paints_and_searches_again(features):
    model = constant_q_network(ALWAYS_TRIGGER)
    boxes, scores, trajectory = detect(photo(), model, features=features, number_of_steps=3)
    assert [step["search"] for step in trajectory] == [0, 1, 2] and all(step["triggered"] for step in trajectory)
    np.testing.assert_array_equal(boxes, [[0, 0, 80, 60]] * 3)
    np.testing.assert_allclose(scores, [1.5] * 3, rtol=1e-6)
    boxes, scores, trajectory = detect(photo(), model, features=features, number_of_steps=3, only_first_object=True)
    assert len(trajectory) == 1 and len(boxes) == 1


def test_detect_follows_the_hierarchy_down_to_below_a_pixel(features):
    model = constant_q_network(ALWAYS_UP_LEFT)
    for height, width in ((60, 80), (2, 2), (1, 1)):
        image = photo(6, height, width)
        boxes, scores, trajectory = detect(image, model, features=features, scale_subregion=0.5, number_of_steps=10)
        assert boxes.shape == (0, 4) and scores.shape == (0,)               # never triggered: no detection
        for step, region in enumerate(step["region"] for step in trajectory):
            np.testing.assert_allclose(region, [0, 0, width * 0.5 ** step, height * 0.5 ** step])
            assert min(crop(image, region).shape[:2]) >= 1                   # crops never below one pixel
        _, _, visited = detect(image, model, features=features, scale_subregion=0.5, number_of_steps=10,
                               detections="visited")
        assert visited == trajectory


def test_detect_image_kinds(features):
    model = constant_q_network(ALWAYS_UP_LEFT)
    rgb = photo(7).astype(np.float32)
    gray = rgb[:, :, 0]
    for image, expected in ((gray, np.repeat(gray[:, :, None], 3, 2)),
                            (np.dstack([rgb, np.full(rgb.shape[:2], 9.0)]), rgb),          # RGBA: alpha dropped
                            (rgb.astype(np.uint8), rgb)):
        assert detect(image, model, features=features, number_of_steps=3)[2] == \
            detect(expected, model, features=features, number_of_steps=3)[2]


def test_a_shared_descriptor_cache_never_mixes_up_two_arrays(trained, features):
    from detection import content_key, load_q_network
    from features import ImageZoomsFeatures
    model = load_q_network(trained / "model0.weights.h5", STATE_SIZE)
    rgb = photo(7).astype(np.float32)
    assert content_key(rgb) == content_key(rgb.copy()) != content_key(255 - rgb)
    assert content_key(np.zeros((2, 6, 3))) != content_key(np.zeros((6, 2, 3)))
    cached = ImageZoomsFeatures(backbone=features.backbone, cache_mb=16)
    first = detect(rgb, model, features=cached, number_of_steps=1)[2]
    second = detect(255 - rgb, model, features=cached, number_of_steps=1)[2]
    assert second == detect(255 - rgb, model, features=features, number_of_steps=1)[2] and first != second


def test_detect_errors(tmp_path, features):
    model = constant_q_network(ALWAYS_TRIGGER)
    (tmp_path / "not_weights.h5").write_text("text")
    with pytest.raises(UserError, match="not_weights.h5: not a Q-network weights file"):
        detect(photo(), tmp_path / "not_weights.h5", features=features)
    with pytest.raises(UserError, match="Q-network weights file not found"):
        detect(photo(), tmp_path / "absent.h5", features=features)
    with pytest.raises(UserError, match="absent.jpg"):
        detect(tmp_path / "absent.jpg", model, features=features)
    for bad, message in ((np.zeros((4, 4, 2)), "shape"), (np.zeros((0, 4, 3)), "shape"),
                         (np.full((4, 4, 3), 300.0), "0..255"), (np.full((4, 4, 3), np.nan), "0..255"),
                         (np.array([["a"]]), "dtype")):
        with pytest.raises(UserError, match=message):
            detect(bad, model, features=features)
    with pytest.warns(UserWarning, match="0..1"):
        detect(np.full((4, 4, 3), 0.5), model, features=features, number_of_steps=1)
    with pytest.raises(UserError, match="scale_subregion"):
        detect(photo(), model, features=features, scale_subregion=1.5)
    with pytest.raises(UserError, match="detections"):
        detect(photo(), model, features=features, detections="all")
    with pytest.raises(UserError, match="max_pixels must be a whole number"):
        detect(photo(), model, features=features, max_pixels=-1)
    with pytest.raises(UserError, match="refiner must be None, a refinement.BoxRefiner or the path of a saved one"):
        detect(photo(), model, features=features, refiner=5)


def test_detect_on_a_training_runs_file_checks_the_weights_it_was_trained_on(trained):
    # the tiny run trained on path_vgg random (its features_model0.json): another keyword stops before any VGG-16 is
    # built, naming both, for the latest weights and an epoch's
    for name in ("model0.weights.h5", "model0_epoch_0.weights.h5"):
        with pytest.raises(UserError, match=r"was trained on path_vgg 'random' \(features_model0.json\), detect\(\) "
                                            r"uses path_vgg 'hed'.*Pass path_vgg='random'"):
            detect(photo(), trained / name, path_vgg="hed")


def test_select_detections_demotes_repeats_only_when_asked():
    step = lambda region, score, triggered=True: {"region": region, "score": score, "triggered": triggered}
    trajectory = [step([20, 20, 30, 30], 0.5), step([0, 0, 10, 9], 0.9), step([40, 40, 60, 60], 0.7),
                  step([0, 0, 50, 50], 2.0, triggered=False)]
    boxes, scores = select_detections(trajectory)
    assert scores.tolist() == [0.9, 0.7, 0.5]              # triggered regions, best first
    boxes, scores = select_detections(trajectory, duplicates="demote")
    assert scores.tolist() == [0.9, 0.7, 0.5] and boxes[2].tolist() == [20, 20, 30, 30]   # no repeat: unchanged
    boxes, scores = select_detections(trajectory, "visited", duplicates="demote")
    assert scores.tolist() == [2.0, 0.9, 0.7, 0.5]
    trajectory[2]["region"] = [0, 1, 10, 10]               # now a repeat of the 0.9 box: after the 0.5 one
    assert select_detections(trajectory, duplicates="demote")[1].tolist() == [0.9, 0.5, 0.7]
    with pytest.raises(UserError, match="duplicates"):
        detect(np.zeros((32, 32, 3), np.uint8), "unused.weights.h5", duplicates="drop")
