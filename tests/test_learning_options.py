"""The learning options (off by default): target network, double DQN, Huber loss and a validation split that picks
the epoch. Each is checked to do what it says, to resume exactly, and to leave the paper's update untouched when off;
the options that measurements removed stop in one line."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
from runs import run_folder
from runs.errors import UserError
from test_resume import TINY, same_weights, tiny_features

from reinforcement import NUM_ACTIONS, Minibatch, QLearner, build_q_network, regression_values
from conftest import STATE_SIZE, learner_regression_values

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)


def batch(seed=0, size=8, reward_scale=1.0):
    rng = np.random.default_rng(seed)
    return Minibatch(rng.random((size, STATE_SIZE), dtype=np.float32), rng.integers(NUM_ACTIONS, size=size),
                     (reward_scale * rng.standard_normal(size)).astype(np.float32),
                     rng.random((size, STATE_SIZE), dtype=np.float32), (rng.random(size) < 0.3).astype(np.float32))


def test_double_dqn_targets_take_the_online_argmax_valued_by_the_target_network():
    q_states = np.zeros((2, NUM_ACTIONS), dtype=np.float32)
    target_next = np.array([[1, 9, 0, 0, 0, 0], [5, 0, 0, 0, 0, 7]], dtype=np.float32)
    online_next = np.array([[3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32)
    actions, rewards, terminals = np.array([0, 2]), np.array([1.0, 0.0], np.float32), np.zeros(2, np.float32)
    plain = np.asarray(regression_values(q_states, target_next, actions, rewards, terminals, 0.5))
    double = np.asarray(regression_values(q_states, target_next, actions, rewards, terminals, 0.5, online_next))
    assert plain[0, 0] == pytest.approx(1 + 0.5 * 9) and plain[1, 2] == pytest.approx(0.5 * 7)
    assert double[0, 0] == pytest.approx(1 + 0.5 * 1) and double[1, 2] == pytest.approx(0.5 * 7)
    assert np.count_nonzero(double) == 2          # the other actions keep Q(s) = 0


def test_target_network_is_a_copy_taken_every_n_updates():
    model = build_q_network(STATE_SIZE, seed=0)
    initial = [w.copy() for w in model.get_weights()]
    learner = QLearner(model, 0.9, 1e-3, target_update=2)
    target_weights = lambda: learner.target_model.get_weights()     # noqa: E731
    learner.update(batch())                   # update 0: copied first (still the initial weights), then a step
    assert all(np.array_equal(a, b) for a, b in zip(target_weights(), initial))
    after_one = [w.copy() for w in model.get_weights()]
    learner.update(batch(1))                  # update 1: no copy
    assert all(np.array_equal(a, b) for a, b in zip(target_weights(), initial))
    learner.update(batch(2))                  # update 2: copy of the weights after two steps
    assert not all(np.array_equal(a, b) for a, b in zip(target_weights(), after_one))
    assert not all(np.array_equal(a, b) for a, b in zip(target_weights(), model.get_weights()))  # one step since
    # the targets of s′ come from the target network, not the online one
    sample = batch(3)
    expected = regression_values(learner.q_values(sample.states),
                                 np.asarray(learner.target_model(sample.next_states, training=False)),
                                 sample.actions, sample.rewards, sample.terminals, 0.9)
    assert np.allclose(learner_regression_values(learner, sample), expected, atol=1e-6)


def test_huber_loss_grows_linearly_with_large_errors():
    losses = {}
    for loss in ("mse", "huber"):
        learner = QLearner(build_q_network(STATE_SIZE, seed=0), 0.9, 1e-6, loss=loss)
        losses[loss] = learner.update(batch(reward_scale=100.0))
    assert np.isfinite(losses["huber"]) and losses["huber"] < 0.1 * losses["mse"]
    assert losses["huber"] > 1.0           # |error| ≈ 100 on one action in six: about (100 − 0.5) / 6 on average


def test_bad_option_values_are_refused(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    for flags, message in ((["--double_dqn", "1"], "double_dqn 1 needs a target network"),
                           (["--loss", "l1"], "loss must be mse or huber"),
                           (["--target_update", "-1"], "target_update must be a whole number ≥ 0"),
                           (["--validation_images", "4"], "validation_images 4: only 4 training images")):
        with pytest.raises(UserError, match=message):
            image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "m"), *TINY,
                                       "--epochs", "1", *flags])


def train_straight_and_resumed(dataset, tmp_path, options):
    """3 epochs straight, and 2 then ``-n 2`` to 3, with ``options``: the same last weights and loss (an exact
    resume). Returns the straight run's folder and log."""
    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY,
                                   *options, *extra])

    train("straight", "--epochs", "3")
    train("resumed", "--epochs", "2")
    train("resumed", "--epochs", "3", "-n", "2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert same_weights(straight / "model0.weights.h5", resumed / "model0.weights.h5")
    log = run_folder.read_log(straight / "training_log_model0.csv")
    assert run_folder.read_log(resumed / "training_log_model0.csv")[-1]["mean_loss"] == log[-1]["mean_loss"]
    return straight, log


def test_options_on_resume_exactly_and_validation_picks_the_testing_epoch(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", lambda _: tiny_features(SimpleNamespace(cache_mb=16)))
    options = ["--target_update", "3", "--double_dqn", "1", "--loss", "huber", "--validation_images", "1"]
    straight, log = train_straight_and_resumed(dataset, tmp_path, options)
    assert all(row["images"] == 3 and 0 <= row["validation_ap"] <= 1 for row in log)    # 4 images, 1 held out
    assert sum(row["updates"] for row in log) > 3       # the target network was copied more than once

    best = run_folder.best_epoch(log)
    assert same_weights(straight / "model0_best.weights.h5", straight / f"model0_epoch_{best}.weights.h5")
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(straight),
                                        "--path_testing_folder", str(tmp_path / "test"), "--path_vgg", "random",
                                        "--epoch", "best", "--max_images", "2"])
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    assert results["epoch"] == best and results["weights"].endswith("model0_best.weights.h5")
    (tmp_path / "no_validation").mkdir()
    with pytest.raises(UserError, match="--epoch best: no"):
        image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(tmp_path / "no_validation"),
                                  "--path_vgg", "random", "--epoch", "best"])


def test_options_off_leave_the_log_as_it_was(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path), *TINY, "--epochs", "1"])
    header = (tmp_path / "training_log_model0.csv").read_text().splitlines()[0]
    assert header == ",".join(run_folder.LOG_FIELDS)
    assert not (tmp_path / "model0_best.weights.h5").exists()


@pytest.mark.parametrize("script", ["image_zooms_training", "pool45_crops_training", "image_zooms_testing",
                                    "pool45_crops_testing"])
def test_a_removed_option_on_the_command_line_stops_in_one_line_naming_its_measurement(script):
    import subprocess
    import sys
    from settings import REMOVED_AT, REMOVED_OPTIONS
    name = "trigger_bias" if script.endswith("testing") else "flip"
    assert name in REMOVED_OPTIONS
    done = subprocess.run([sys.executable, f"{script}.py", f"--{name}", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "docs/learning.md#removed-options" in done.stderr
    assert REMOVED_AT in done.stderr and "Traceback" not in done.stderr


def test_a_resume_state_made_with_a_removed_option_stops_in_one_line(dataset, tmp_path, monkeypatch):
    import h5py
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path), *TINY, "--epochs", "1"])
    state_path = tmp_path / "resume_model0_epoch_0.h5"
    with h5py.File(state_path, "r+") as handle:         # as a run of the commit that still had the option
        saved = json.loads(handle.attrs["settings"])
        handle.attrs["settings"] = json.dumps({**saved, "update_every": 1, "standardize": 1})
    with pytest.raises(UserError, match="standardize 1: standardize was removed.*docs/learning.md#removed-options"):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path), *TINY, "--epochs", "2",
                                   "-n", "1"])
    with h5py.File(state_path, "r+") as handle:         # switched off there, it resumes as any state
        handle.attrs["settings"] = json.dumps({**saved, "update_every": 1, "standardize": 0, "flip": 0})
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path), *TINY, "--epochs", "2",
                               "-n", "1"])
    assert (tmp_path / "model0_epoch_1.weights.h5").is_file()
