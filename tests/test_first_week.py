"""The first week's faults (issue 45, item 10), each on a folder or file the test makes: runs writing one folder at
once, links and special files where folders go, resumes that switch a learning option on, a kill between the renames
of an epoch's save, an animated image, progress within an image of many objects.

The agent is Image-Zooms with a tiny fixed backbone and a narrow Q-network (conftest.py): the run folder, the loop
and the checks are the real ones.
"""
import contextlib
import io
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import image_zooms_testing
import image_zooms_training
import synthetic_dataset
from experiments.compact_annotations import write_compact_annotations
from image_helper import image_path, load_image
from parse_xml_annotations import read_class_image_set, unpack_compact_annotations
from reinforcement import EXPERT_ACTION, TRIGGER_VALUE, UPPER_BOUND_VALUES, ReplayMemory
from runs import classes_run, run_folder, runtime, testing_run, training_run
from runs.run_folder import write_together
from test_hostile_inputs import run_guarded
from test_resume import same_weights
from test_robustness import tiny, tiny_features  # noqa: F401 (a fixture)

TRAINING = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "5",
            "--learning_rate", "1e-4", "--refine", "1", "--max_images", "4"]


def copy(folder, to):
    return Path(shutil.copytree(folder, to))


class Started(Exception):
    """Raised where a run's work would start: its checks have all passed."""


def checks_pass(main, argv, monkeypatch):
    """Whether a script's checks pass on ``argv`` (the run is stopped where its work starts)."""
    def started(*_):
        raise Started
    monkeypatch.setattr(testing_run, "seed_everything", started)
    monkeypatch.setattr(training_run, "seed_everything", started)
    with pytest.raises(Started):
        main(argv)
    return True


# ---------------------------------------------------------------------------------------------------------------
# a training, and the folder a kill would leave after each rename of its saves

@pytest.fixture(scope="module")
def killed(dataset, small_q_network, tmp_path_factory):
    """Two epochs of a tiny training (refine 1, a head from epoch 1 on: every kind of file the folder holds), the
    progress lines of every search (``SEARCHES_PER_LINE`` 1), and the folder as a kill would leave it after each
    rename of each epoch's save: ``[(epoch, folder)]``, hard links to the files there then (a rename changes no
    file)."""
    root = tmp_path_factory.mktemp("killed")
    models, kills, replace, saving = root / "models", [], os.replace, [None]

    def replace_then_copy(source, destination):
        replace(source, destination)
        destination = Path(destination)
        if destination.name.startswith("resume_"):         # the first file of an epoch's save
            saving[0] = int(re.search(r"epoch_(\d+)", destination.name)[1])
        if destination.parent == models and not destination.name.startswith(("saving_", "lock_")):
            folder = root / f"kill_{len(kills)}"
            folder.mkdir()
            for path in models.iterdir():       # the lock is left out: a killed run's is stale
                if not path.name.startswith((".tmp_", "lock_")):
                    os.link(path, folder / path.name)
            kills.append((saving[0], folder))
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(output), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patch.setattr(image_zooms_training, "make_features", tiny_features)
        patch.setattr(training_run, "SEARCHES_PER_LINE", 1, raising=False)
        patch.setattr(os, "replace", replace_then_copy)
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TRAINING,
                                   "--epochs", "2"])
    return models, kills, output.getvalue()


def test_a_kill_between_the_renames_of_a_save_is_named_and_that_epoch_is_trained_again(killed, dataset, tmp_path,
                                                                                      tiny, capsys, monkeypatch):
    """Whatever rename a kill (or a power cut) stops the save of epoch E after, testing the latest weights and
    resuming after E say in one line that E's files disagree and how to go on; earlier epochs test and resume as
    before, and ``-n E`` trains E again exactly as the uninterrupted run did."""
    models, kills, _ = killed
    assert [epoch for epoch, _ in kills] == [0] * 5 + [1] * 7
    assert (models / "refiner_model0_epoch_1.npz").is_file() and not (models / "model0_best.weights.h5").exists()
    testing = ["--path_voc_test", str(dataset), "--path_vgg", "random"]
    training = ["--path_voc", str(dataset), *TRAINING, "--epochs", "3"]
    for epoch, folder in kills:
        stopped = f"the save of epoch {epoch} was stopped between the renames of its files"
        for extra in (["--refine", "1"], ["--epoch", str(epoch)]):
            code, error, _ = run_guarded(image_zooms_testing.main, [*testing, "--path_model", str(folder), *extra,
                                                                    "--path_testing_folder", str(tmp_path)], capsys)
            assert code == 2 and len(error) == 1 and stopped in error[0], (folder, extra, error)
            assert error[0].endswith(f"rain epoch {epoch} again with -n {epoch}")
        code, error, _ = run_guarded(image_zooms_training.main, [*training, "--path_model", str(folder), "-n",
                                                                 str(epoch + 1)], capsys)
        assert code == 2 and len(error) == 1 and stopped in error[0], (folder, error)
        assert checks_pass(image_zooms_training.main, [*training, "--path_model", str(folder), "-n", str(epoch)],
                           monkeypatch)
        assert classes_run.resume_epoch(SimpleNamespace(path_model=folder), 0) == epoch     # several classes: -n 1
        if epoch:
            assert checks_pass(image_zooms_testing.main, [*testing, "--path_model", str(folder), "--epoch", "0"],
                               monkeypatch)
    monkeypatch.undo()
    assert checks_pass(image_zooms_testing.main, [*testing, "--path_model", str(models)], monkeypatch)
    assert not list(models.glob("saving_*"))                 # a finished save leaves no marker
    monkeypatch.undo()
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    resumed = copy(kills[-1][1], tmp_path / "resumed")      # every file of epoch 1 renamed, the marker left
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(resumed), *TRAINING, "--epochs", "2",
                               "-n", "1"])
    assert "not an exact continuation" not in capsys.readouterr().out
    assert same_weights(models / "model0_epoch_1.weights.h5", resumed / "model0_epoch_1.weights.h5")
    assert [row["epoch"] for row in run_folder.read_log(resumed / "training_log_model0.csv")] == [0, 1]
    assert not list(resumed.glob("saving_*"))


def test_a_save_is_on_the_disk_before_its_renames_and_its_renames_before_its_marker_goes(tmp_path, monkeypatch):
    events, replace = [], os.replace
    monkeypatch.setattr(run_folder, "fsync", lambda path: events.append(("flushed", Path(path).name)))
    monkeypatch.setattr(os, "replace", lambda source, target: (events.append(("renamed", Path(target).name)),
                                                               replace(source, target)))
    write_together([(tmp_path / name, lambda path: Path(path).write_text("x")) for name in ("a", "b")],
                   marker=(tmp_path / "saving", "3\n"))
    renamed = [name for kind, name in events if kind == "renamed"]
    assert renamed == ["saving", "a", "b"]
    flushed = [name for kind, name in events if kind == "flushed"]
    assert len(flushed) == 4 and all(name.startswith(".tmp_") for name in flushed[:2])
    assert flushed[2:] == [tmp_path.name] * 2                 # the folder: after the renames, after the marker goes
    assert events.index(("renamed", "b")) < events.index(("flushed", tmp_path.name))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]


# ---------------------------------------------------------------------------------------------------------------
# runs writing one folder at once

def test_two_runs_writing_one_file_at_once_leave_one_of_them_whole(tmp_path):
    target, together = tmp_path / "results.json", tmp_path / "detections.json"

    def first(temporary):
        Path(temporary).write_text('{"run": 1}')
        runtime.write_json(target, {"run": 2})                # the other run writes the same file meanwhile
    runtime.write_atomically(target, first)

    def first_of_set(temporary):
        Path(temporary).write_text("1")
        write_together([(together, lambda path: Path(path).write_text("2"))])
    write_together([(together, first_of_set)])
    assert json.loads(target.read_text()) == {"run": 1} and together.read_text() == "1"
    assert sorted(tmp_path.iterdir()) == [together, target]


def test_every_file_a_test_writes_is_renamed_into_place_from_a_name_of_its_own(dataset, tmp_path, monkeypatch):
    """results.json, the figures and the drawn searches: a second test into the same folder never meets half of one
    (two tests at once left tracebacks and invalid JSON)."""
    written, temporary_path = set(), runtime.temporary_path
    monkeypatch.setattr(runtime, "temporary_path", lambda path: (written.add(Path(path)), temporary_path(path))[1])
    out = tmp_path / "out"
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--agent", "random", "--bool_draw", "1",
                              "--number_of_steps", "2", "--max_images", "1", "--path_testing_folder", str(out)])
    files = {path for path in out.rglob("*") if path.is_file()}
    assert {"results.json", "precision_recall.png", ".gif"} <= {path.name if path.suffix != ".gif" else ".gif"
                                                                for path in files}
    assert files <= written


def test_runs_unpacking_the_test_annotations_at_once_keep_the_folder_the_first_put_there(dataset, tmp_path):
    """The first tests on the VOC 2007 annotations unpack them: one run removed the folder another was reading."""
    compact = tmp_path / "annotations.tsv.gz"
    write_compact_annotations(dataset, "test", compact)
    listed = unpack_compact_annotations(compact, tmp_path / "VOC", "test") / "ImageSets" / "Main" / "test.txt"
    first = listed.stat().st_ino                            # the folder of the run that finished first ...
    unpack_compact_annotations(compact, tmp_path / "VOC", "test")        # ... and a run that started with it
    assert listed.stat().st_ino == first and sorted(path.name for path in tmp_path.iterdir()) == [
        "VOC", "annotations.tsv.gz"]


def test_runs_generating_the_demo_dataset_at_once_keep_the_folder_the_first_put_there(tmp_path, monkeypatch):
    """Two ``--demo`` runs started together: one rewrote the images the other was reading, or their lists' rename
    failed."""
    root, generate, inodes = tmp_path / "synthetic_voc", synthetic_dataset.generate_synthetic_voc, []

    def generate_while_another_run_finishes(folder, **kwargs):
        monkeypatch.setattr(synthetic_dataset, "generate_synthetic_voc", generate)
        synthetic_dataset.ensure_synthetic_voc(root, **kwargs)
        inodes.append((root / "ImageSets" / "Main" / "trainval.txt").stat().st_ino)
        return generate(folder, **kwargs)
    monkeypatch.setattr(synthetic_dataset, "generate_synthetic_voc", generate_while_another_run_finishes)
    synthetic_dataset.ensure_synthetic_voc(root, num_trainval=2, num_test=1, min_size=32, max_size=32)
    assert inodes == [(root / "ImageSets" / "Main" / "trainval.txt").stat().st_ino]
    assert [path.name for path in tmp_path.iterdir()] == ["synthetic_voc"]


def test_an_image_listed_twice_is_searched_once_with_a_warning(dataset, tmp_path):
    """Testing counted the detections of its second search as more detections: a higher AP, silently."""
    voc = copy(dataset, tmp_path / "voc")
    listed = voc / "ImageSets" / "Main" / "aeroplane_test.txt"
    again = next(line for line in listed.read_text().splitlines() if line.endswith(" 1"))
    listed.write_text(listed.read_text() + again + "\n")
    with pytest.warns(UserWarning, match=rf"{listed} lists 1 image id\(s\) again \(first: {again.split()[0]}\); "
                                         rf"each image is used once"):
        assert read_class_image_set(voc, "aeroplane", "test") == read_class_image_set(dataset, "aeroplane", "test")


# ---------------------------------------------------------------------------------------------------------------
# links and special files where folders go

def test_a_link_to_nothing_or_a_pipe_where_a_folder_goes_is_one_line_before_the_work(killed, dataset, tmp_path,
                                                                                     tiny, capsys):
    dangling, pipe = tmp_path / "dangling", tmp_path / "pipe"
    dangling.symlink_to(tmp_path / "nowhere")
    os.mkfifo(pipe)
    drawings = tmp_path / "drawn"
    drawings.mkdir()
    (drawings / "searches").symlink_to(tmp_path / "nowhere")
    image = str(image_path(dataset, "000001"))
    testing = ["--path_voc_test", str(dataset), "--path_model", str(killed[0]), "--path_vgg", "random"]
    training = ["--path_voc", str(dataset), *TRAINING, "--epochs", "1"]
    link = f"{dangling} is a link to {tmp_path / 'nowhere'}, which does not exist"
    for main, argv, line in [
            (image_zooms_testing.main, [*testing, "--path_testing_folder", str(dangling)],
             f"path_testing_folder {dangling}: cannot create the folder ({link})"),
            (image_zooms_testing.main, [*testing, "--path_testing_folder", str(dangling), "--image", image],
             f"path_testing_folder {dangling}: cannot create the folder ({link})"),
            (image_zooms_testing.main, [*testing, "--path_testing_folder", str(drawings), "--agent", "random",
                                        "--bool_draw", "1"],
             f"path_testing_folder {drawings / 'searches'}: cannot create the folder ({drawings / 'searches'} is a "
             f"link to {tmp_path / 'nowhere'}, which does not exist)"),
            (image_zooms_testing.main, [*testing, "--path_testing_folder", str(pipe)],
             f"path_testing_folder {pipe}: cannot create the folder ({pipe} is a device, a pipe or a socket, not a "
             f"folder)"),
            (image_zooms_training.main, [*training, "--path_model", str(dangling)],
             f"path_model {dangling}: cannot create the folder ({link})"),
            (image_zooms_training.main, [*training, "--path_model", str(tmp_path / "models"), "--bool_draw", "1",
                                         "--path_testing_folder", str(dangling / "deeper")],
             f"path_testing_folder {dangling / 'deeper' / 'training'}: cannot create the folder ({link})")]:
        code, error, output = run_guarded(main, argv, capsys)
        assert code == 2 and error == [f"error: {line}"], argv
        assert "testing:" not in output and "training:" not in output
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------------------------------------------
# resumes that switch on a learning option whose field the saved replay memory lacks

def test_resuming_with_an_option_the_saved_replay_memory_has_no_field_for_starts_it_empty(killed, dataset, tmp_path,
                                                                                          tiny, capsys):
    models = copy(killed[0], tmp_path / "models")
    with pytest.warns(UserWarning, match="the run continues with the new values"):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TRAINING, "--epochs",
                                   "3", "-n", "2", "--expert_margin", "0.8", "--trigger_targets", "1"])
    output = capsys.readouterr().out
    assert ("the saved replay memory has no trigger_values, expert_actions (saved with other learning options): it "
            "starts empty") in output and "not an exact continuation" in output
    assert [row["epoch"] for row in run_folder.read_log(models / "training_log_model0.csv")] == [0, 1, 2]


def test_a_run_started_again_in_a_folder_removes_the_later_epochs_of_the_earlier_run(killed, dataset, tmp_path, tiny):
    """Testing read them as the new run's: the latest weights labelled with the old run's last epoch, ``--epoch 1`` the
    old run's weights beside the new run's log."""
    models = copy(killed[0], tmp_path / "models")
    with pytest.warns(UserWarning, match=rf"{models}/ holds the weights of epoch 1 of class aeroplane from an "
                                         rf"earlier run; -n 0 replaces them \(removed when it saves epoch 0\)"):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TRAINING, "--epochs",
                                   "1"])
    assert run_folder.existing_epochs(models, 0) == [0] and not (models / "refiner_model0_epoch_1.npz").exists()


def test_a_saved_replay_memory_lacks_a_field_it_does_not_hold_or_holds_empty():
    fields = (TRIGGER_VALUE, EXPERT_ACTION, UPPER_BOUND_VALUES)
    saved = ReplayMemory(4, 3, fields=fields)
    saved.add(np.ones(3), 1, 1.0, np.ones(3), False, {"trigger_values": 3.0, "expert_actions": 2,
                                                      "upper_bound_values": np.arange(6)})
    arrays = saved.state_dict()
    assert ReplayMemory(4, 3, fields=fields).lacking(arrays) == []
    assert ReplayMemory(4, 3).lacking(ReplayMemory(4, 3).state_dict()) == []
    plain = {name: array for name, array in arrays.items() if name in (*ReplayMemory.CORE, "pos", "full")}
    assert ReplayMemory(4, 3, fields=fields).lacking(plain) == ["trigger_values", "expert_actions",
                                                                "upper_bound_values"]
    former = {**plain, "targets": arrays["upper_bound_values"]}     # the oracle's array under its former name
    assert ReplayMemory(4, 3, fields=(UPPER_BOUND_VALUES,)).lacking(former) == []
    saved.add(np.ones(3), 1, 1.0, np.ones(3), False, {"trigger_values": 0.0, "expert_actions": -1,
                                                      "upper_bound_values": np.zeros(6)})     # stored empty
    assert ReplayMemory(4, 3, fields=fields).lacking(saved.state_dict()) == ["trigger_values", "expert_actions",
                                                                             "upper_bound_values"]


# ---------------------------------------------------------------------------------------------------------------
# images as users have them

def test_an_image_of_several_frames_is_searched_on_its_first_with_one_warning_naming_it(tmp_path):
    path = tmp_path / "animated.gif"
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match=rf"image file {path} holds 2 frames .*only the first is searched"):
        first = load_image(path)
    assert first[0, 0].tolist() == [255.0, 0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(path)                                    # training reads it every epoch: said once


def test_training_says_how_far_the_searches_of_an_image_of_many_objects_are(killed):
    """A line every ``SEARCHES_PER_LINE`` searches of an image (1 in this training; 100 by default) where stderr is
    not a terminal, the progress bar's text where it is."""
    lines = re.findall(r"^  epoch (\d), image \d{6}: (\d+) of (\d+) objects searched$", killed[2], re.MULTILINE)
    assert {epoch for epoch, _, _ in lines} == {"0", "1"}
    assert any(count == objects != "1" for _, count, objects in lines)
