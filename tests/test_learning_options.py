"""The learning options that measurements removed: the DQN stabilisers (target network, double DQN, Huber loss) and
the validation split that picked the epoch (``--epoch best``). Each stops in one line naming where its measurement
is kept, given as a flag, recorded in a resume state or a results file; a run without them is the paper's update,
and an old run folder that did not use them resumes exactly."""
import json
import warnings

import numpy as np
import pytest

import image_zooms_training
from runs import run_folder
from runs.errors import UserError
from settings import REMOVED_AT, check_removed_in, removed_message
from test_resume import TINY, same_weights, tiny_features

from reinforcement import QLearner, build_q_network
from conftest import STATE_SIZE

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

# the options removed after commit 92bc4d5, each with a value that switched it on
STABILISERS_AND_VALIDATION = {"target_update": 3, "double_dqn": 1, "loss": "huber", "validation_images": 1}


def test_the_learner_takes_none_of_the_removed_options():
    """The update values s′ with the Q-network it trains, by the squared error: no target network, no double DQN,
    no Huber loss to ask for."""
    model = build_q_network(STATE_SIZE, seed=0)
    for option in (dict(target_update=100), dict(double_dqn=True), dict(loss="huber")):
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            QLearner(model, 0.9, 1e-3, **option)
    learner = QLearner(model, 0.9, 1e-3)
    assert not hasattr(learner, "target_model") and learner.options == {}


def test_a_resume_state_with_a_target_network_stops_and_one_without_resumes_exactly(dataset, tmp_path, monkeypatch):
    """A state written by a run with target_update (its settings say so, a ``target_network`` group holds the copy)
    stops in one line; the state of a run that recorded the removed options off resumes exactly, without a warning."""
    import h5py
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)

    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY, *extra])
    train("straight", "--epochs", "2")
    train("resumed", "--epochs", "1")
    state_path = tmp_path / "resumed" / "resume_model0_epoch_0.h5"
    with h5py.File(state_path, "r+") as handle:         # as a run of commit 92bc4d5 with target_update 3
        saved = json.loads(handle.attrs["settings"])
        handle.attrs["settings"] = json.dumps({**saved, "target_update": 3, "double_dqn": 1, "loss": "mse",
                                               "validation_images": 0})
        handle.create_group("target_network")["0"] = np.zeros((3, 6), np.float32)
    with pytest.raises(UserError, match=rf"{state_path.name} was made with target_update 3: target_update was "
                                        rf"removed.*docs/learning.md#removed-options.*92bc4d5"):
        train("resumed", "--epochs", "2", "-n", "1")
    with h5py.File(state_path, "r+") as handle:         # a run of that commit with the options off
        del handle["target_network"]
        handle.attrs["settings"] = json.dumps({**saved, **{name: off for name, off in (
            ("target_update", 0), ("double_dqn", 0), ("loss", "mse"), ("validation_images", 0))}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)     # no "settings that differ" for the removed options
        train("resumed", "--epochs", "2", "-n", "1")
    assert same_weights(tmp_path / "straight" / "model0.weights.h5", tmp_path / "resumed" / "model0.weights.h5")
    log = run_folder.read_log(tmp_path / "straight" / "training_log_model0.csv")
    resumed = run_folder.read_log(tmp_path / "resumed" / "training_log_model0.csv")
    assert resumed[-1]["mean_loss"] == log[-1]["mean_loss"]


def test_a_results_file_recording_a_removed_option_on_stops_in_one_line():
    for name, value in STABILISERS_AND_VALIDATION.items():
        with pytest.raises(UserError) as error:
            check_removed_in({"ap": 0.1, name: value}, "results.json")
        assert str(error.value) == f"results.json was made with {name} {value!r}: {removed_message(name)}"
        assert REMOVED_AT[name] == "92bc4d5" and "92bc4d5" in str(error.value)
    check_removed_in({"target_update": 0, "double_dqn": 0, "loss": "mse", "validation_images": 0}, "results.json")


def test_the_removed_options_stop_training_in_one_line(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    for name, value in STABILISERS_AND_VALIDATION.items():
        with pytest.raises(UserError) as error:
            image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "m"), *TINY,
                                       "--epochs", "1", f"--{name}", str(value)])
        assert str(error.value) == removed_message(name)
        assert "docs/learning.md#removed-options" in str(error.value) and "92bc4d5" in str(error.value)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("script", ["image_zooms_testing", "pool45_crops_testing"])
def test_epoch_best_stops_in_one_line_saying_validation_images_was_removed(script):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, f"{script}.py", "--epoch", "best"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [f"error: --epoch best: {removed_message('validation_images')}"]


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
    from settings import REMOVED_OPTIONS
    name = "trigger_bias" if script.endswith("testing") else "flip"
    assert name in REMOVED_OPTIONS
    done = subprocess.run([sys.executable, f"{script}.py", f"--{name}", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "docs/learning.md#removed-options" in done.stderr
    assert REMOVED_AT[name] in done.stderr and "Traceback" not in done.stderr


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


def test_update_precision_stops_in_one_line_naming_its_measurement():
    """The bfloat16 update (last in d406629) learnt less than float32's on every seed of the demo's data."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "image_zooms_training.py", "--update_precision", "bfloat16"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [f"error: {removed_message('update_precision')}"]
    assert "d406629" in done.stderr
