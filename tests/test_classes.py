"""Several classes in one run: class list parsing, the upper bound of all 20 classes on the VOC 2007 test
annotations, multi-class training and testing on the synthetic dataset, resume after an interruption in the second
class, and merging the results of separate jobs."""
import argparse
import json
import os
import signal

import pytest

from runs import class_results
from runs import classes_run
import compare_results
import reinforcement
import image_zooms_testing
import image_zooms_training
from runs import run_folder
from runs import training_run
from runs.errors import UserError
from parse_xml_annotations import VOC_CLASSES, class_ids, several_classes
from runs.runtime import Interrupted
from test_resume import LEARNING_COLUMNS, TINY, same_weights, tiny_features

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)


def test_class_ids_of_an_id_a_name_all_and_a_list():
    assert class_ids(7) == [7] and class_ids("cat") == [8] and class_ids("1") == [1]
    assert class_ids("all") == list(range(1, 21))
    assert class_ids("1, bird,car,1") == [1, 3, 7]
    assert several_classes("all") and several_classes("1,2") and not several_classes("7")


@pytest.mark.parametrize("text, named", [("1,dgo", "'dgo'"), ("1,,3", "empty item"), ("1,21", "'21'")])
def test_a_bad_item_in_the_list_is_named(text, named):
    with pytest.raises(UserError, match=named):
        class_ids(text)


def test_upper_bound_of_all_classes_matches_the_single_class_run(voc2007_test, tmp_path, capsys):
    common = ["--agent", "upper_bound", "--path_voc_test", str(voc2007_test), "--only_first_object", "1"]
    image_zooms_testing.main([*common, "--class_object", "all", "--path_testing_folder", str(tmp_path / "all")])
    table = capsys.readouterr().out.split("class            AP")[-1].splitlines()
    assert len([line for line in table if line[:12].strip() in VOC_CLASSES]) == 20
    assert any(line.startswith("mean") for line in table)
    combined = json.loads((tmp_path / "all" / "results.json").read_text())
    assert len(combined["classes"]) == 20 and combined["absent_classes"] == []
    assert combined["map"] == pytest.approx(sum(row["ap"] for row in combined["classes"]) / 20)
    image_zooms_testing.main([*common, "--class_object", "1", "--path_testing_folder", str(tmp_path / "one")])
    single = json.loads((tmp_path / "one" / "results.json").read_text())
    aeroplane = combined["classes"][0]
    assert aeroplane == class_results.class_row(single)
    # the whole per-class file is the single-class run's, but for its timing
    same_class = json.loads((tmp_path / "all" / "aeroplane" / "results.json").read_text())
    assert {**same_class, "seconds": None} == {**single, "seconds": None}


def test_a_missing_class_list_stops_several_classes_before_any_runs(dataset, tmp_path, capsys):
    (dataset / "ImageSets" / "Main" / "cow_test.txt").rename(tmp_path / "cow_test.txt")
    try:
        with pytest.raises(UserError, match=r"1 of the 20 classes .*cow_test.txt.*nothing was run"):
            image_zooms_testing.main(["--agent", "random", "--path_voc_test", str(dataset), "--class_object", "all",
                                      "--path_testing_folder", str(tmp_path / "all")])
        assert "class 1/20" not in capsys.readouterr().out and not (tmp_path / "all").exists()
        with pytest.raises(UserError, match="cow_trainval.txt"):    # training reads the trainval lists
            (dataset / "ImageSets" / "Main" / "cow_trainval.txt").rename(tmp_path / "cow_trainval.txt")
            image_zooms_training.main(["--path_voc", str(dataset), "--class_object", "aeroplane,cow",
                                       "--path_model", str(tmp_path / "models"), "--path_vgg", "random"])
        assert not (tmp_path / "models").exists()
    finally:    # the dataset is shared by the module's tests
        for name in ("cow_test.txt", "cow_trainval.txt"):
            if (tmp_path / name).exists():
                (tmp_path / name).rename(dataset / "ImageSets" / "Main" / name)


def test_merge_of_separate_jobs(voc2007_test, tmp_path):
    for name in ("bird", "aeroplane"):
        image_zooms_testing.main(["--agent", "upper_bound", "--path_voc_test", str(voc2007_test), "--class_object",
                                  name, "--only_first_object", "1", "--path_testing_folder", str(tmp_path / name)])
    assert compare_results.main(["--merge", str(tmp_path / "merged.json"), str(tmp_path / "bird" / "results.json"),
                                 str(tmp_path / "aeroplane" / "results.json")]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert [row["class_object"] for row in merged["classes"]] == ["aeroplane", "bird"]
    assert merged["map"] == pytest.approx((merged["classes"][0]["ap"] + merged["classes"][1]["ap"]) / 2)
    with pytest.raises(UserError, match="also in"):
        class_results.merge([tmp_path / "bird" / "results.json"] * 2, tmp_path / "twice.json")
    assert compare_results.main([str(tmp_path / "merged.json"), "--output", str(tmp_path / "bars.png")]) == 0
    assert (tmp_path / "bars.png").is_file()


# ---------------------------------------------------------------------------------------------------------------
# training and testing several classes on the synthetic dataset (tiny stand-in backbone)

def train_all(dataset, models, *extra):
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), "--class_object", "all",
                               "--epochs", "2", *TINY, *extra])


def present_classes(dataset, set_name):
    return [identifier for identifier in range(1, 21) if classes_run.class_present(dataset, identifier, set_name)]


def same_files(straight, resumed):
    names = sorted(path.name for path in straight.iterdir())
    assert names == sorted(path.name for path in resumed.iterdir())
    for name in names:
        if name.endswith(".weights.h5"):
            assert same_weights(straight / name, resumed / name), name
        elif name.endswith(".csv"):
            rows = [[{key: row[key] for key in LEARNING_COLUMNS} for row in run_folder.read_log(folder / name)]
                    for folder in (straight, resumed)]
            assert rows[0] == rows[1], name


@pytest.mark.slow
def test_all_classes_train_test_and_resume_after_an_interruption_in_class_two(dataset, tmp_path, monkeypatch,
                                                                              capsys):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", lambda settings: tiny_features(
        argparse.Namespace(cache_mb=0)))
    trained = present_classes(dataset, "trainval")
    assert len(trained) >= 2
    straight = tmp_path / "straight"
    train_all(dataset, straight)
    output = capsys.readouterr().out
    assert "class 2/20: bicycle" in output and "absent from the training set" in output
    for identifier in trained:
        assert run_folder.existing_epochs(straight, identifier - 1) == [0, 1]

    # Ctrl-C once the second class has saved its first epoch
    resumed = tmp_path / "resumed"
    save_epoch = training_run.save_epoch

    def interrupting_save(settings, learner, memory, rng, class_idx, epoch, *rest):
        save_epoch(settings, learner, memory, rng, class_idx, epoch, *rest)
        if class_idx == trained[1] - 1 and epoch == 0:
            raise Interrupted(signal.SIGINT)
    monkeypatch.setattr(training_run, "save_epoch", interrupting_save)
    with pytest.raises(Interrupted):
        train_all(dataset, resumed)
    assert "-n 1" in capsys.readouterr().err
    monkeypatch.setattr(training_run, "save_epoch", save_epoch)
    train_all(dataset, resumed, "-n", "1")
    assert "already saved, skipped" in capsys.readouterr().out
    same_files(straight, resumed)

    # testing: one table, a mean over the classes with test images
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(straight), "--path_vgg", "random",
                              "--class_object", "all", "--path_testing_folder", str(tmp_path / "testing"),
                              "--number_of_steps", "3"])
    assert "mean" in capsys.readouterr().out
    combined = json.loads((tmp_path / "testing" / "results.json").read_text())
    tested = [identifier for identifier in present_classes(dataset, "test") if identifier in trained]
    assert len(combined["classes"]) == len(tested)


# ---------------------------------------------------------------------------------------------------------------
# each class of a several-class training in a fresh process (memory flat over classes)

def answer(value):
    return os.getpid(), value


def fail_with(kind):
    if kind == "user":
        raise UserError("path_model x/: a user's mistake")
    if kind == "interrupt":
        raise Interrupted(signal.SIGTERM)
    return [][1]                                    # a bug


def test_a_fresh_process_returns_the_value_and_every_ending_as_it_would_here():
    pid, value = classes_run.in_fresh_process(answer, {"ap": 0.5})
    assert value == {"ap": 0.5} and pid != os.getpid()
    with pytest.raises(UserError, match="a user's mistake"):
        classes_run.in_fresh_process(fail_with, "user")
    with pytest.raises(Interrupted) as interrupted:
        classes_run.in_fresh_process(fail_with, "interrupt")
    assert interrupted.value.signal_number == signal.SIGTERM
    with pytest.raises(RuntimeError, match="IndexError"):
        classes_run.in_fresh_process(fail_with, "bug")


@pytest.mark.slow
def test_classes_trained_apart_have_the_files_of_one_process(dataset, tmp_path, monkeypatch):
    # the children build the paper's network with the script's own features (random VGG-16): so does this process
    monkeypatch.setattr(reinforcement, "HIDDEN_UNITS", 1024)
    monkeypatch.setattr(classes_run, "CLASSES_APART", True)
    classes = ",".join(str(identifier) for identifier in present_classes(dataset, "trainval")[:2])
    train = ["--path_voc", str(dataset), "--class_object", classes, "--epochs", "1", *TINY]
    image_zooms_training.main([*train, "--path_model", str(tmp_path / "apart")])
    monkeypatch.setattr(classes_run, "CLASSES_APART", False)
    image_zooms_training.main([*train, "--path_model", str(tmp_path / "together")])
    names = sorted(path.name for path in (tmp_path / "together").iterdir() if path.name.endswith(".weights.h5"))
    assert len(names) >= 4 and names == sorted(path.name for path in (tmp_path / "apart").iterdir()
                                              if path.name.endswith(".weights.h5"))
    for name in names:
        assert same_weights(tmp_path / "apart" / name, tmp_path / "together" / name), name
