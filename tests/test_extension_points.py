"""Changing the method in one place, as a researcher would: another Q-network, another reward, another backbone and
another action set, each made by one edit, then a training whose replay memory fills, a resume with ``-n``, a test,
``--image`` and ``detect()``. Each test fails if the code around the edit bypasses it (docs/method.md, "Changing the
method")."""
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import features
import image_zooms_testing
import image_zooms_training
import reinforcement
from conftest import tiny_backbone
from detection import detect
from runs.run_folder import read_features_file, read_resume_state

ROOT = Path(__file__).resolve().parent.parent
# a replay memory of 8 fills within the first image: the log shows updates and a loss
SHORT = ["--path_vgg", "random", "--buffer_experience_replay", "8", "--batch_size", "4", "--number_of_steps", "4",
         "--learning_rate", "1e-4", "--max_images", "3", "--cache_mb", "0"]


def tiny_features(settings):
    return features.ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=0)


def deeper_q_network(state_size, seed=None):
    """Another Q-network, as a researcher writes it: three hidden layers, no dropout."""
    import keras
    return keras.Sequential([keras.Input(shape=(state_size,)), keras.layers.Dense(24, activation="relu"),
                             keras.layers.Dense(16, activation="relu"), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(reinforcement.NUM_ACTIONS)], name="deeper")


def train_resume_test(dataset, tmp_path, monkeypatch, capsys):
    """Two epochs, the second resumed with -n 1; a test; --image: returns the log's output, the test's results and
    the paths of the run."""
    models, out = tmp_path / "models", tmp_path / "out"
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), "--epochs", "1", *SHORT])
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), "--epochs", "2", "-n", "1",
                               *SHORT])
    log = capsys.readouterr().out
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(models), "--path_vgg", "random",
                              "--path_testing_folder", str(out), "--number_of_steps", "4", "--max_images", "3"])
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(photo)
    image_zooms_testing.main(["--image", str(photo), "--path_model", str(models), "--path_vgg", "random",
                              "--path_testing_folder", str(tmp_path / "own"), "--number_of_steps", "4"])
    assert (tmp_path / "own" / "detections.json").is_file()
    return log, json.loads((out / "results.json").read_text()), models, photo


def test_another_q_network_and_reward_train_resume_test_and_detect(dataset, tmp_path, monkeypatch, capsys):
    """The acceptance edit: only the bodies of the Q-network builder and of the trigger reward replaced."""
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)
    monkeypatch.setattr(reinforcement, "build_q_network", deeper_q_network)
    monkeypatch.setattr(reinforcement, "trigger_reward", lambda iou: 5.0 if iou >= 0.5 else -5.0)
    log, results, models, photo = train_resume_test(dataset, tmp_path, monkeypatch, capsys)
    epoch_lines = [line for line in log.splitlines() if line.startswith("epoch")]
    assert len(epoch_lines) == 2 and "resuming at epoch 1" in log
    assert float(epoch_lines[0].split("loss ")[1].split()[0]) > 0            # updates ran, with a loss
    state = read_resume_state(models / "resume_model0_epoch_1.h5", 1)
    replay = state["replay_memory"]
    terminal_rewards = set(replay["rewards"][replay["terminals"] == 1].tolist())
    assert terminal_rewards and terminal_rewards <= {5.0, -5.0}                 # the new reward was learnt from
    assert results["num_images"] == 3 and results["detections"]
    boxes, scores, trajectory = detect(photo, models / "model0.weights.h5", features=tiny_features(None),
                                       number_of_steps=3, detections="visited")
    assert len(boxes) == len(trajectory) == 3 and len(trajectory[0]["q_values"]) == reinforcement.NUM_ACTIONS
    # the weights file holds the deeper network: four Dense layers
    loaded = reinforcement.build_q_network(reinforcement.state_size(7 * 7 * 512))
    loaded.load_weights(models / "model0.weights.h5")
    assert [layer.units for layer in loaded.layers] == [24, 16, 8, reinforcement.NUM_ACTIONS]


def test_the_upper_bound_and_every_reward_read_the_reward_functions(monkeypatch):
    """The upper bound's returns and the environment both take their rewards from the two reward functions."""
    env = reinforcement.ZoomEnvironment(100, 100, [[0, 0, 40, 40]], 0.75)
    env.start_search()
    plain = reinforcement.upper_bound_q_values(env, 0.9, 3)
    monkeypatch.setattr(reinforcement, "movement_reward", lambda previous, new: 2.0 if new > previous else -2.0)
    monkeypatch.setattr(reinforcement, "trigger_reward", lambda iou: 7.0 if iou >= 0.5 else -7.0)
    changed = reinforcement.upper_bound_q_values(env, 0.9, 3)
    assert changed[reinforcement.TRIGGER] == -7.0 and plain[reinforcement.TRIGGER] == -3.0
    assert not np.allclose(changed, plain)
    assert env.step(0)[0] in (2.0, -2.0) and env.step(reinforcement.TRIGGER)[0] in (7.0, -7.0)


def mobilenet(path_vgg, input_shape, precision):
    """Another backbone: a Keras Applications model other than VGG-16, random weights."""
    import keras
    return keras.applications.MobileNet(input_shape=input_shape, alpha=0.25, include_top=False, weights=None)


def test_another_backbone_sets_the_descriptor_size_everywhere(dataset, tmp_path, monkeypatch, capsys, small_q_network):
    monkeypatch.setattr(features, "build_backbone", mobilenet)
    size = features.ImageZoomsFeatures("random").descriptor_size
    assert size == 7 * 7 * 256 != 7 * 7 * 512
    log, results, models, photo = train_resume_test(dataset, tmp_path, monkeypatch, capsys)
    recorded = read_features_file(models / "features_model0.json")
    assert recorded["descriptor_size"] == size and recorded["backbone"].startswith("mobilenet")
    assert recorded["model"] == "image_zooms"
    assert read_resume_state(models / "resume_model0_epoch_1.h5", 1)["replay_memory"]["states"].shape[1] == \
        reinforcement.state_size(size)
    assert results["detections"]
    boxes, _, trajectory = detect(photo, models / "model0.weights.h5", path_vgg="random", number_of_steps=2,
                                  detections="visited")
    assert len(trajectory) == 2


ACTION_SET_EDIT = '''
MOVES = {"up-left": (0.0, 0.0), "up-right": (1.0, 0.0), "down-left": (0.0, 1.0), "down-right": (1.0, 1.0)}
'''


def test_another_action_set_in_a_throw_away_clone(dataset, tmp_path):
    """The action set edited in a copy of the repository (four quarters, no centre): training with a resume, the
    test with its drawings, the upper bound and detect() all take five actions."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".git", "data", "results", "models_*", "tests", "docs",
                                                                 "__pycache__", "*.h5", "experiments"))
    source = (clone / "reinforcement.py").read_text()
    start = source.index("MOVES = {")
    end = source.index("}", start) + 1
    (clone / "reinforcement.py").write_text(source[:start] + ACTION_SET_EDIT.strip() + source[end:])
    script = textwrap.dedent(f"""
        import json, sys
        import image_zooms_training, image_zooms_testing, reinforcement
        reinforcement.HIDDEN_UNITS = 16
        dataset, models, out = {str(dataset)!r}, {str(tmp_path / "models")!r}, {str(tmp_path / "out")!r}
        short = {SHORT!r}
        image_zooms_training.main(["--path_voc", dataset, "--path_model", models, "--epochs", "1", *short])
        image_zooms_training.main(["--path_voc", dataset, "--path_model", models, "--epochs", "2", "-n", "1", *short])
        image_zooms_testing.main(["--path_voc_test", dataset, "--path_model", models, "--path_vgg", "random",
                                  "--path_testing_folder", out, "--number_of_steps", "4", "--max_images", "2",
                                  "--bool_draw", "1"])
        image_zooms_testing.main(["--path_voc_test", dataset, "--agent", "upper_bound", "--path_testing_folder",
                                  out + "/upper_bound"])
        from detection import detect
        _, _, trajectory = detect(sys.argv[1], models + "/model0.weights.h5", path_vgg="random", number_of_steps=2,
                                  detections="visited")
        print("ACTIONS", reinforcement.NUM_ACTIONS, reinforcement.ACTION_SHORT_NAMES, len(trajectory[0]["q_values"]))
    """)
    image = next((Path(dataset) / "JPEGImages").iterdir())
    completed = subprocess.run([sys.executable, "-c", script, str(image)], cwd=clone, capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "ACTIONS 5 ('UL', 'UR', 'DL', 'DR', 'T') 5" in completed.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {len(step["q_values"]) for steps in results["trajectories"].values() for step in steps} == {5}
    assert all(step["action"] in range(5) for steps in results["trajectories"].values() for step in steps)
    assert list((tmp_path / "out" / "searches").glob("*.png"))
    upper = json.loads((tmp_path / "out" / "upper_bound" / "results.json").read_text())
    assert upper["max_recall"] > 0
