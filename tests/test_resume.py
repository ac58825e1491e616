"""Interruption, exact resume and the numerical guards of training (issue 6, items 2–4).

The region descriptor here is Image-Zooms with a tiny fixed backbone instead of VGG-16 (32×32 average pooling and a
1×1 convolution to 7×7×512): the loop, the Q-learning, the checkpoints and the signals are the real ones, and a
run takes seconds instead of a minute. ``image_zooms_training.make_features`` is replaced to get it; in the
subprocess runs a small launcher script does the same.
"""
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from runs import runtime
from runs import run_folder
from runs import training_run
import image_zooms_training
from runs.errors import UserError
from conftest import SMALL_HIDDEN_UNITS, tiny_backbone

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4", "--max_images", "4"]


def tiny_features(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=settings.cache_mb)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)


def train(dataset, models, *extra):
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TINY, *extra])


def weights(path):
    arrays = []
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda _, item: arrays.append(np.asarray(item)) if isinstance(item, h5py.Dataset)
                          else None)
    assert arrays
    return arrays


def same_weights(path_a, path_b):
    a, b = weights(path_a), weights(path_b)
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


LEARNING_COLUMNS = ("epoch", "epsilon", "images", "searches", "steps", "mean_reward", "triggers", "correct_triggers",
                    "updates", "mean_loss")


def existing_epochs(models):
    return run_folder.existing_epochs(models, 0)


def learning_log(models):
    return [{key: row[key] for key in LEARNING_COLUMNS} for row in run_folder.read_log(models /
                                                                                       "training_log_model0.csv")]


# ---------------------------------------------------------------------------------------------------------------
# exact resume and determinism

@pytest.fixture(scope="module")
def straight_and_resumed(dataset, tmp_path_factory):
    """Two epochs straight; one epoch, then ``-n 1`` for the second. No descriptor cache (the test after it turns it on).
    Also returns a copy of the folder after the first epoch."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_zooms_training, "make_features", tiny_features)
        straight, resumed = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("resumed")
        first_epoch = tmp_path_factory.mktemp("first_epoch")
        train(dataset, straight, "--epochs", "2", "--cache_mb", "0")
        train(dataset, resumed, "--epochs", "1", "--cache_mb", "0")
        for path in resumed.iterdir():
            (first_epoch / path.name).write_bytes(path.read_bytes())
        train(dataset, resumed, "--epochs", "2", "--cache_mb", "0", "-n", "1")
    return straight, resumed, first_epoch


def test_resume_gives_bitwise_the_same_weights(straight_and_resumed):
    straight, resumed, _ = straight_and_resumed
    log = learning_log(straight)
    assert [row["epoch"] for row in log] == [0, 1]
    assert all(row["updates"] > 0 for row in log), "the replay memory must fill in epoch 0 for this test to mean much"
    # same seed, same run (with Q-learning updates in both epochs) ...
    assert same_weights(straight / "model0_epoch_0.weights.h5", resumed / "model0_epoch_0.weights.h5")
    # ... and a resumed run is the uninterrupted one: weights, optimiser and everything that was learnt
    assert same_weights(straight / "model0_epoch_1.weights.h5", resumed / "model0_epoch_1.weights.h5")
    assert same_weights(straight / "model0.weights.h5", resumed / "model0.weights.h5")
    assert learning_log(straight) == learning_log(resumed)
    with h5py.File(straight / "resume_model0_epoch_1.h5", "r") as a, h5py.File(resumed / "resume_model0_epoch_1.h5",
                                                                                 "r") as b:
        for group in ("optimizer", "seed_generators", "replay_memory"):
            for key in a[group]:
                assert np.array_equal(np.asarray(a[group][key]), np.asarray(b[group][key])), (group, key)
        assert a.attrs["numpy_rng"] == b.attrs["numpy_rng"] and a.attrs["epsilon"] == pytest.approx(0.9)


def test_checkpoint_files_after_each_epoch(straight_and_resumed):
    straight, _, first_epoch = straight_and_resumed
    assert sorted(path.name for path in first_epoch.iterdir()) == [
        "features_model0.json", "model0.weights.h5", "model0_epoch_0.weights.h5", "resume_model0_epoch_0.h5",
        "training_log_model0.csv"]
    # the resume state of the latest epoch only (it holds the replay memory: large)
    assert sorted(path.name for path in straight.iterdir()) == [
        "features_model0.json", "model0.weights.h5", "model0_epoch_0.weights.h5", "model0_epoch_1.weights.h5", "resume_model0_epoch_1.h5",
        "training_log_model0.csv"]


def test_checkpoint_every_keeps_every_kth_epoch_and_resumes_exactly(straight_and_resumed, dataset, tmp_path, tiny):
    """``checkpoint_every 2`` over 3 epochs keeps epochs 1 (the 2nd) and 2 (the last); a run stopped after epoch 0
    still resumes from it, and the weights are the uninterrupted run's."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(dataset, straight, "--epochs", "3", "--cache_mb", "0", "--checkpoint_every", "2")
    assert existing_epochs(straight) == [1, 2]
    train(dataset, resumed, "--epochs", "1", "--cache_mb", "0", "--checkpoint_every", "2")
    assert existing_epochs(resumed) == [0]                      # the latest epoch always has its file
    train(dataset, resumed, "--epochs", "3", "--cache_mb", "0", "--checkpoint_every", "2", "-n", "1")
    assert existing_epochs(resumed) == [1, 2]
    assert same_weights(straight / "model0_epoch_2.weights.h5", resumed / "model0_epoch_2.weights.h5")
    # the two-epoch run of the fixture kept every epoch (checkpoint_every 1, the default)
    assert existing_epochs(straight_and_resumed[0]) == [0, 1]
    with pytest.raises(UserError, match="checkpoint_every"):
        train(dataset, tmp_path / "bad", "--checkpoint_every", "0")


def test_descriptor_cache_does_not_change_the_run(straight_and_resumed, dataset, tmp_path, tiny):
    straight, _, _ = straight_and_resumed
    train(dataset, tmp_path, "--epochs", "2", "--cache_mb", "64")
    assert same_weights(straight / "model0.weights.h5", tmp_path / "model0.weights.h5")


def test_draw_every_draws_every_kth_epoch_and_the_last_and_changes_nothing_learnt(straight_and_resumed, dataset,
                                                                                   tmp_path, tiny):
    straight, _, _ = straight_and_resumed
    drawings = tmp_path / "drawings"
    train(dataset, tmp_path / "models", "--epochs", "2", "--cache_mb", "0", "--bool_draw", "1", "--draw_every", "2",
          "--path_testing_folder", str(drawings))
    names = sorted(path.name for path in (drawings / "training").glob("*.png"))
    assert names and all(name.startswith("epoch1_") for name in names)       # epoch 0 not drawn
    assert len(names) == 4                                                    # one per image of the drawn epoch
    assert same_weights(straight / "model0.weights.h5", tmp_path / "models" / "model0.weights.h5")
    settings = SimpleNamespace(bool_draw=1, draw_every=4, epochs=10)
    assert [epoch for epoch in range(10) if training_run.draws_epoch(settings, epoch)] == [3, 7, 9]
    settings.bool_draw = 0
    assert not any(training_run.draws_epoch(settings, epoch) for epoch in range(10))
    with pytest.raises(UserError, match="draw_every"):
        train(dataset, tmp_path / "bad", "--draw_every", "0")


def test_resuming_a_checkpoint_older_than_a_setting_warns_only_when_the_setting_is_given(straight_and_resumed,
                                                                                         dataset, tmp_path, tiny):
    """A resume state written before ``vgg_precision`` existed: resuming with the default says nothing about it,
    giving it explicitly is a change the user is told about."""
    import json
    import warnings
    _, _, first_epoch = straight_and_resumed
    for name in ("plain", "given"):
        folder = tmp_path / name
        folder.mkdir()
        for path in first_epoch.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        with h5py.File(folder / "resume_model0_epoch_0.h5", "r+") as handle:
            saved = json.loads(handle.attrs["settings"])
            del saved["vgg_precision"]
            handle.attrs["settings"] = json.dumps(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train(dataset, tmp_path / "plain", "--epochs", "2", "-n", "1", "--cache_mb", "0")
    with pytest.warns(UserWarning, match="vgg_precision None -> 'float32'"):
        train(dataset, tmp_path / "given", "--epochs", "2", "-n", "1", "--cache_mb", "0", "--vgg_precision", "float32")


# ---------------------------------------------------------------------------------------------------------------
# numerical guards

def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(straight_and_resumed, dataset, tmp_path, tiny):
    _, _, first_epoch = straight_and_resumed
    for path in first_epoch.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="learning_rate"):
        with pytest.raises(UserError, match=r"epoch 1: the loss became (nan|inf).*epoch 0, is kept.*-n 1"):
            train(dataset, tmp_path, "--epochs", "3", "-n", "1", "--learning_rate", "1e30")
    assert run_folder.existing_epochs(tmp_path, 0) == [0]
    assert same_weights(tmp_path / "model0.weights.h5", first_epoch / "model0_epoch_0.weights.h5")
    assert [row["epoch"] for row in run_folder.read_log(tmp_path / "training_log_model0.csv")] == [0]


def test_nan_weights_are_never_saved(dataset, tmp_path, tiny, monkeypatch):
    from reinforcement import QLearner
    learners, original_init, original_row = [], QLearner.__init__, training_run.epoch_row

    def init_and_remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        learners.append(self)

    def break_weights_then_row(*args, **kwargs):       # after the epoch's last update, just before saving
        kernel = learners[0].model.layers[-1].kernel
        kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
        return original_row(*args, **kwargs)
    monkeypatch.setattr(QLearner, "__init__", init_and_remember)
    monkeypatch.setattr(training_run, "epoch_row", break_weights_then_row)
    with pytest.raises(UserError, match="epoch 0: the weights became NaN or infinite.*no checkpoint was saved"):
        train(dataset, tmp_path, "--epochs", "1")
    assert not list(tmp_path.glob("*.h5")) and not (tmp_path / "training_log_model0.csv").exists()


# ---------------------------------------------------------------------------------------------------------------
# interruption

def test_a_signal_while_saving_waits_until_the_epoch_is_saved(dataset, tmp_path, tiny, monkeypatch, capsys):
    original = training_run.write_log

    def write_log_and_get_signal(*args):
        os.kill(os.getpid(), signal.SIGTERM)          # arrives in the middle of saving epoch 0
        original(*args)
    monkeypatch.setattr(training_run, "write_log", write_log_and_get_signal)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as interrupt:
        train(dataset, tmp_path, "--epochs", "3")
    assert interrupt.value.signal_number == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before                 # handlers restored
    assert run_folder.existing_epochs(tmp_path, 0) == [0] and (tmp_path / "resume_model0_epoch_0.h5").is_file()
    assert "SIGTERM after epoch 0 was saved" in capsys.readouterr().err


def test_exit_codes_of_interruptions(capsys):
    for number, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        def interrupted():
            raise runtime.Interrupted(number)
        with pytest.raises(SystemExit) as exit_info:
            runtime.main_guard(interrupted)
        assert exit_info.value.code == code
    with pytest.raises(SystemExit) as exit_info:
        runtime.main_guard(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert exit_info.value.code == 130 and capsys.readouterr().err.count("interrupted") == 3


LAUNCHER = """
import sys
sys.path.insert(0, {root!r})
import image_zooms_training
import reinforcement
from runs.runtime import main_guard
{helpers}
reinforcement.HIDDEN_UNITS = {hidden}
image_zooms_training.make_features = tiny_features
main_guard(image_zooms_training.main)
"""


def start_training(tmp_path, dataset, models, *extra):
    launcher = tmp_path / "launch_training.py"
    launcher.write_text(LAUNCHER.format(root=str(ROOT), hidden=SMALL_HIDDEN_UNITS, helpers=textwrap.dedent(
        inspect.getsource(tiny_backbone) + "\n\n" + inspect.getsource(tiny_features))))
    stderr = open(tmp_path / "stderr.txt", "w")
    process = subprocess.Popen([sys.executable, str(launcher), "--path_voc", str(dataset), "--path_model", str(models),
                                *TINY, *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return process


def wait_for(condition, process, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "training ended before the signal"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sigterm_stops_cleanly_and_the_run_resumes(dataset, tmp_path, tiny):
    models = tmp_path / "models"
    process = start_training(tmp_path, dataset, models, "--epochs", "50")
    try:
        for line in process.stdout:
            if line.startswith("epoch   0"):
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        process.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr and "SIGTERM" in stderr
    saved = run_folder.existing_epochs(models, 0)
    last = saved[-1]
    assert saved == list(range(last + 1)) and f"Continue with -n {last + 1}" in stderr
    assert not list(models.glob(".tmp_*"))
    assert (models / f"resume_model0_epoch_{last}.h5").is_file()
    train(dataset, models, "--epochs", str(last + 2), "-n", str(last + 1))
    assert [row["epoch"] for row in run_folder.read_log(models / "training_log_model0.csv")] == list(range(last + 2))


def test_sigkill_while_saving_leaves_the_last_epoch_resumable(dataset, tmp_path, tiny, capsys):
    models = tmp_path / "models"
    half_written = models / ".tmp_resume_model0_epoch_1.h5"
    process = start_training(tmp_path, dataset, models, "--epochs", "50")
    try:
        wait_for(half_written.exists, process)          # the resume state of epoch 1 is being written
        process.kill()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert run_folder.existing_epochs(models, 0) == [0]
    assert (models / "resume_model0_epoch_0.h5").is_file() and half_written.exists()
    weights(models / "model0_epoch_0.weights.h5")                   # intact
    capsys.readouterr()
    train(dataset, models, "--epochs", "2", "-n", "1")
    assert "not an exact continuation" not in capsys.readouterr().out
    assert not half_written.exists() and run_folder.existing_epochs(models, 0) == [0, 1]
