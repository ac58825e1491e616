"""A damaged run folder (issue 23): every file that resume and testing read from ``path_model`` is checked, and a
damaged one ends the run in one line naming it and the way on, with nothing changed; a torn last line of the log is
dropped with a warning; a save that fails part-way leaves the previous epoch as it was, resumable exactly.

Tiny runs (two images, the stand-in backbone of test_resume.py) make the folders; each test damages a copy.
"""
import ast
import errno
import hashlib
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from runs import classes_run
import image_zooms_testing
import image_zooms_training
from runs import run_folder
from runs import testing_run
from runs import training_run
from runs.errors import UserError
from parse_xml_annotations import class_name
from runs.runtime import main_guard
from test_resume import same_weights, tiny_features

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4", "--max_images", "2", "--cache_mb", "0"]


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", lambda settings: tiny_features(
        SimpleNamespace(cache_mb=0)))


def train(dataset, models, *extra):
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TINY, *extra])


def run_test(dataset, models, out, *extra):
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(models), "--path_vgg", "random",
                              "--max_images", "2", "--number_of_steps", "3", "--path_testing_folder", str(out),
                              *extra])


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """``first``: a run folder after epoch 0 of 2; ``straight``: both epochs without a stop."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_zooms_training, "make_features", tiny_features)
        first, straight = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("straight")
        train(dataset, first, "--epochs", "1")
        train(dataset, straight, "--epochs", "2")
    return first, straight


def copy_of(folder, tmp_path):
    return Path(shutil.copytree(folder, tmp_path / "models"))


def contents(folder):
    """``{name: SHA-256}`` of the folder's files (whole files are hundreds of MB)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(Path(folder).iterdir())}


def truncate(path, size=100_000):
    path.write_bytes(path.read_bytes()[:size])


def one_line_error(function, capsys):
    """Run ``function`` as a script runs it; its stderr: an error of at most two lines, no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main_guard(function)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) <= 2 and lines[-1].startswith("error: ")
    return lines[-1]


# ---------------------------------------------------------------------------------------------------------------
# resume from a damaged folder: one line, nothing changed

def damage_resume_state_groups(path):
    with h5py.File(path, "r+") as handle:
        del handle["optimizer"]


def damage_resume_state_arrays(path):
    with h5py.File(path, "r+") as handle:
        del handle["optimizer"]["3"]


def poison_weights(path):
    with h5py.File(path, "r+") as handle:
        kernel = handle["layers"]["dense"]["vars"]["0"]
        kernel[0, 0] = np.nan


RESUME_DAMAGE = {
    "truncated weights": ("model0_epoch_0.weights.h5", truncate, r"model0_epoch_0.weights.h5: truncated \(100,000 "
                          r"of its .* bytes\); epoch 0 cannot be resumed: no earlier epoch .* -n 0"),
    "empty weights": ("model0_epoch_0.weights.h5", lambda path: path.write_bytes(b""), r"empty \(0 bytes\)"),
    "weights with NaN": ("model0_epoch_0.weights.h5", poison_weights,
                         r"model0_epoch_0.weights.h5: damaged \(a weight that is not finite: NaN or infinity\)"),
    "truncated resume state": ("resume_model0_epoch_0.h5", truncate, r"resume_model0_epoch_0.h5: truncated .*cannot "
                               r"be resumed exactly.*delete resume_model0_epoch_0.h5 and run -n 1 again"),
    "resume state not HDF5": ("resume_model0_epoch_0.h5", lambda path: path.write_text("synced badly"),
                              r"not an HDF5 file.*delete resume_model0_epoch_0.h5"),
    "resume state without optimiser": ("resume_model0_epoch_0.h5", damage_resume_state_groups,
                                       r"incomplete \(no optimizer\)"),
    "resume state missing an array": ("resume_model0_epoch_0.h5", damage_resume_state_arrays,
                                      r"incomplete \(its optimizer arrays are 0, 1, 2, 4,"),
    "empty log": ("training_log_model0.csv", lambda path: path.write_bytes(b""),
                  r"training_log_model0.csv: empty .*delete it to resume with a log that starts at epoch 1"),
    "log line damaged": ("training_log_model0.csv",
                         lambda path: path.write_bytes(path.read_bytes().replace(b"\r\n0,", b"\r\n0,oops,", 1)),
                         r"training_log_model0.csv: line 2 has \d+ fields, the header \d+"),
}


@pytest.mark.parametrize("kind", list(RESUME_DAMAGE))
def test_a_damaged_file_stops_resume_in_one_line_and_changes_nothing(kind, runs, dataset, tmp_path, tiny, capsys):
    name, damage, message = RESUME_DAMAGE[kind]
    models = copy_of(runs[0], tmp_path)
    damage(models / name)
    before = contents(models)
    error = one_line_error(lambda: train(dataset, models, "--epochs", "2", "-n", "1"), capsys)
    assert str(models / name) in error
    assert re.search(message, error), error
    assert contents(models) == before


def test_a_torn_last_line_of_the_log_is_dropped_with_a_warning(runs, dataset, tmp_path, tiny, capsys):
    models = copy_of(runs[0], tmp_path)
    log = models / "training_log_model0.csv"
    log.write_bytes(log.read_bytes()[:-20])             # the row of epoch 0, cut short
    with pytest.warns(UserWarning, match="training_log_model0.csv: its last line is torn"):
        train(dataset, models, "--epochs", "2", "-n", "1")
    assert [row["epoch"] for row in run_folder.read_log(log)] == [1]
    assert "not an exact continuation" not in capsys.readouterr().out      # the checkpoint is whole


def test_without_its_resume_state_an_epoch_resumes_from_its_weights_and_says_so(runs, dataset, tmp_path, tiny,
                                                                                 capsys):
    models = copy_of(runs[0], tmp_path)
    (models / "resume_model0_epoch_0.h5").unlink()      # the way on for a damaged resume state
    train(dataset, models, "--epochs", "2", "-n", "1")
    assert "not an exact continuation" in capsys.readouterr().out


def test_the_way_on_names_an_earlier_epoch_that_can_be_resumed(runs, tmp_path):
    models = copy_of(runs[1], tmp_path)
    assert "epoch 0 can be resumed from its weights alone with -n 1" in run_folder.resume_options(models, 0, 1)
    shutil.copy(models / "resume_model0_epoch_1.h5", models / "resume_model0_epoch_0.h5")
    assert "epoch 0 can be resumed exactly" in run_folder.resume_options(models, 0, 1)


# ---------------------------------------------------------------------------------------------------------------
# the log, read on its own

def test_read_log_drops_a_torn_last_line_and_names_any_other_damage(tmp_path):
    log = tmp_path / "training_log_model0.csv"
    header = ",".join(run_folder.LOG_FIELDS)
    row = ",".join(["3"] + ["0.5"] * (len(run_folder.LOG_FIELDS) - 1))
    log.write_text(f"{header}\n{row}\n{row[:7]}", newline="")
    with pytest.warns(UserWarning, match="last line is torn"):
        assert [r["epoch"] for r in run_folder.read_log(log)] == [3]
    for text, problem in ((f"{header}\n{row[:7]}\n{row}\n", "line 2 has"), (f"{header}\nx{row}\n", "line 2 is"),
                          ("", "empty"), ("\n\n", "empty"), (f"{row}\n", "line 1 is not the header")):
        log.write_text(text, newline="")
        with pytest.raises(run_folder.DamagedFile, match=f"{log}: {problem}"):
            run_folder.read_log(log)
    log.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(run_folder.DamagedFile, match="unreadable"):
        run_folder.read_log(log)


# ---------------------------------------------------------------------------------------------------------------
# testing from a damaged folder

def test_a_damaged_checkpoint_stops_testing_in_one_line_with_the_way_on(runs, dataset, tmp_path, tiny, capsys):
    models = copy_of(runs[1], tmp_path)
    truncate(models / "model0.weights.h5")
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out"), capsys)
    assert "model0.weights.h5: truncated" in error and "model0_epoch_1.weights.h5" in error and "--epoch 1" in error
    truncate(models / "model0_epoch_0.weights.h5")
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out", "--epoch", "0"), capsys)
    assert "model0_epoch_0.weights.h5: truncated" in error and "saved: [1]" in error
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out", "--epoch", "all"), capsys)
    assert "model0_epoch_0.weights.h5: truncated" in error
    assert not (tmp_path / "out").exists()


def old_validation_folder(runs, tmp_path):
    """A run folder as a training with validation_images left it before the option was removed: a log with the
    validation columns and the best epoch's weights, here damaged (the file is no longer read)."""
    models = copy_of(runs[1], tmp_path)
    rows = run_folder.read_log(models / "training_log_model0.csv")
    for row, ap in zip(rows, (0.5, 0.25)):
        row["validation_ap"], row["validation_max_recall"] = ap, ap
    run_folder.write_log(models / "training_log_model0.csv", rows)
    truncate(shutil.copy(models / "model0.weights.h5", models / "model0_best.weights.h5"))
    return models


def test_an_old_folders_best_weights_are_ignored_and_its_validation_log_is_read(runs, tmp_path):
    from visualization import plot_training_log
    models = old_validation_folder(runs, tmp_path)
    settings = SimpleNamespace(path_model=str(models), epoch=-1, model_name=None, weights_order="auto")
    assert testing_run.trained_weights(settings, 0, "Image-Zooms") == models / "model0.weights.h5"
    rows = run_folder.read_log(models / "training_log_model0.csv")
    assert [row["validation_ap"] for row in rows] == [0.5, 0.25] and all(row["updates"] >= 0 for row in rows)
    assert Path(plot_training_log(rows, tmp_path / "log.png")).stat().st_size > 0


def test_epoch_best_stops_saying_validation_images_was_removed(runs, dataset, tmp_path, tiny, capsys):
    from settings import parse_epochs, removed_message
    with pytest.raises(UserError, match="^--epoch best: validation_images was removed"):
        parse_epochs("best")
    models = old_validation_folder(runs, tmp_path)
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out", "--epoch", "best"), capsys)
    assert error == f"error: --epoch best: {removed_message('validation_images')}"
    assert "92bc4d5" in error and "docs/learning.md#removed-options" in error and not (tmp_path / "out").exists()
    run_test(dataset, models, tmp_path / "out")        # the latest weights, as in any folder
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["epoch"] == 1 and results["weights"].endswith("model0.weights.h5")


def test_testing_on_other_features_than_training_stops_in_one_line(runs, dataset, tmp_path, tiny, capsys):
    """The describing settings written with every epoch: another path_vgg is an error before any search, another
    scale_subregion a warning; a folder without the file (an earlier version) is tested unchecked."""
    models = copy_of(runs[1], tmp_path)
    written = models / "features_model0.json"
    describing = json.loads(written.read_text())
    assert isinstance(describing.pop("backbone"), str)         # the backbone model's name
    assert describing == {"path_vgg": "random", "vgg_precision": "float32", "scale_subregion": 0.75,
                          "model": "image_zooms", "descriptor_size": 25088}
    # another feature model than the training's: one line naming the script to test it with
    written.write_text(json.dumps(dict(describing, model="pool45_crops")))
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out"), capsys)
    assert f"{models}/ was trained on pool45_crops features (features_model0.json), this test describes regions " \
           f"with image_zooms's: test it with pool45_crops_testing.py" in error
    written.write_text(json.dumps({"path_vgg": "hed", "vgg_precision": "float32", "scale_subregion": 0.75}))
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out"), capsys)
    assert f"{models}/ was trained on path_vgg 'hed' (features_model0.json), this test uses path_vgg 'random'" in error
    assert "--path_vgg hed" in error
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out", "--epoch", "all"), capsys)
    assert "trained on path_vgg 'hed'" in error
    assert not (tmp_path / "out").exists()
    written.write_text(json.dumps({"path_vgg": "random", "vgg_precision": "float32", "scale_subregion": 0.5}))
    with pytest.warns(UserWarning, match=r"trained with scale_subregion 0.5 \(features_model0.json\), this test "
                                         r"searches with 0.75"):
        run_test(dataset, models, tmp_path / "scale")
    assert (tmp_path / "scale" / "results.json").is_file()
    written.unlink()
    run_test(dataset, models, tmp_path / "unchecked")
    assert (tmp_path / "unchecked" / "results.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# a save that fails part-way

def fail_after_writing_part(path_argument):
    """A writer that writes the start of its file (argument ``path_argument``), then finds the disk full."""
    def write(*args):
        Path(args[path_argument]).write_bytes(b"\x89HDF half of it")
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


@pytest.mark.parametrize("failing", ["resume state", "weights", "log"])
def test_a_failed_save_leaves_the_previous_epoch_as_it_was(failing, runs, dataset, tmp_path, tiny, monkeypatch,
                                                           capsys):
    import keras
    first, straight = runs
    models = copy_of(first, tmp_path)
    before = contents(models)
    with monkeypatch.context() as patch:
        if failing == "resume state":
            patch.setattr(training_run, "write_resume_state", fail_after_writing_part(0))
        elif failing == "weights":
            patch.setattr(keras.Model, "save_weights", fail_after_writing_part(1))
        else:
            patch.setattr(training_run, "write_log", fail_after_writing_part(0))
        error = one_line_error(lambda: train(dataset, models, "--epochs", "2", "-n", "1"), capsys)
    assert f"could not save epoch 1 in {models}/ ([Errno 28] No space left on device)" in error
    assert "epoch 0 is kept as it was (-n 1 resumes it)" in error
    assert contents(models) == before                   # no partial file left, nothing older touched
    if failing == "weights":
        train(dataset, models, "--epochs", "2", "-n", "1")
        assert "not an exact continuation" not in capsys.readouterr().out
        assert same_weights(models / "model0_epoch_1.weights.h5", straight / "model0_epoch_1.weights.h5")


# ---------------------------------------------------------------------------------------------------------------
# several classes

def test_a_damaged_class_stops_with_the_classes_that_are_complete(dataset, tmp_path, tiny, capsys):
    present = [identifier for identifier in range(1, 21) if classes_run.class_present(dataset, identifier, "trainval")
               and classes_run.class_present(dataset, identifier, "test")][:2]
    classes = ",".join(str(identifier) for identifier in present)
    models = tmp_path / "models"
    train(dataset, models, "--epochs", "1", "--class_object", classes)
    second = present[1] - 1
    truncate(models / f"resume_model{second}_epoch_0.h5")
    damaged = contents(models)[f"resume_model{second}_epoch_0.h5"]
    error = one_line_error(lambda: train(dataset, models, "--epochs", "2", "-n", "1", "--class_object", classes),
                           capsys)
    names = [class_name(identifier) for identifier in present]
    assert f"class 2/2 ({names[1]}) stopped" in error and f"resume_model{second}_epoch_0.h5: truncated" in error
    assert f"Classes complete: {names[0]};" in error
    assert run_folder.existing_epochs(models, present[0] - 1) == [0, 1]
    assert contents(models)[f"resume_model{second}_epoch_0.h5"] == damaged
    truncate(models / f"model{second}.weights.h5")
    error = one_line_error(lambda: run_test(dataset, models, tmp_path / "out", "--class_object", classes), capsys)
    assert f"class 2/2 ({names[1]}) stopped" in error and f"Classes tested: {names[0]} " in error


# ---------------------------------------------------------------------------------------------------------------
# one home for the run folder's files

def imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[-1])
            names |= {alias.name for alias in node.names}
    return names


def test_no_import_circle_and_testing_does_not_import_training():
    modules = {path.stem: path for path in [*ROOT.glob("*.py"), *ROOT.glob("runs/*.py")]}
    imports = {name: imported_modules(path) & set(modules) - {name} for name, path in modules.items()}
    assert "training_run" not in imports["testing_run"]
    for start in modules:       # every module reachable from start, through the imports (top-level and lazy)
        seen, waiting = set(), list(imports[start])
        while waiting:
            name = waiting.pop()
            assert name != start, f"{start} imports itself through {sorted(seen)}"
            if name not in seen:
                seen.add(name)
                waiting += imports[name]
