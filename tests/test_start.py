"""A quiet, fast start: the user's mistakes answered in one line before TensorFlow loads, TensorFlow's C++ start-up
log kept off the terminal, one device line of our own, and ``-n`` checked against ``epochs``."""
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from conftest import STATE_SIZE
from runs import runtime
from runs.errors import UserError
from parse_xml_annotations import class_ids

ROOT = Path(__file__).resolve().parent.parent

# words of TensorFlow's C++ start-up lines (absl, oneDNN, cpu_feature_guard, CUDA probing)
TENSORFLOW_LOG_WORDS = ("cuda", "onednn", "cpu_feature_guard", "absl", "cuinit", "tensorflow/", "i0000", "e0000",
                        "w0000")


def run_script(*args, cwd=ROOT, environment=None):
    """A script run as the user runs it, with a fresh interpreter; ``-X importtime`` lists every module imported."""
    return subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=environment)


def imported_modules(stderr):
    """Top-level module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def own_lines(stderr):
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize("args, expected", [
    (["--path_voc", "/nonexistent"], "error: dataset folder not found: /nonexistent (path_voc)"),
    (["-n", "1", "--epochs", "1"], "error: -n 1 with --epochs 1: nothing to train. epochs counts all epochs"),
    (["-n", "-1"], "error: -n -1: the first epoch to train cannot be negative"),
    (["--class_object", "spaceship"], "error: class_object 'spaceship' is not a VOC class"),
    (["--class_object", "1,spaceship"], "error: class_object 'spaceship' is not a VOC class"),
])
def test_a_training_mistake_is_one_line_before_tensorflow(args, expected):
    completed = run_script("image_zooms_training.py", *args)
    lines = own_lines(completed.stderr)
    assert completed.returncode == 2
    assert lines == [lines[0]] and lines[0].startswith(expected), lines
    assert completed.stdout == ""
    assert "tensorflow" not in imported_modules(completed.stderr) and "keras" not in imported_modules(completed.stderr)
    assert not any(word in completed.stderr.lower() for word in ("cuda", "onednn", "absl"))


def test_n_at_or_beyond_epochs_says_what_to_pass(dataset, tmp_path):
    completed = run_script("image_zooms_training.py", "--path_voc", str(dataset), "--path_model", str(tmp_path),
                           "-n", "3", "--epochs", "2")
    line, = own_lines(completed.stderr)
    assert completed.returncode == 2
    assert "not epochs to add" in line and "2016" in line and "--epochs 13" in line


def test_resuming_without_the_previous_checkpoint_is_found_before_tensorflow(dataset, tmp_path):
    completed = run_script("image_zooms_training.py", "--path_voc", str(dataset), "--path_model",
                           str(tmp_path / "models"), "--path_vgg", "random", "-n", "2", "--epochs", "4")
    line, = own_lines(completed.stderr)
    assert completed.returncode == 2
    assert "-n 2: no checkpoint" in line and "model0_epoch_1.weights.h5" in line
    assert "tensorflow" not in imported_modules(completed.stderr)


@pytest.mark.parametrize("args, expected", [
    (["--path_voc_test", "{dataset}", "--path_vgg", "{tmp}/absent.h5", "--path_model", "{tmp}"], "path_vgg='"),
    (["--path_voc_test", "{dataset}", "--path_vgg", "random", "--path_model", "{tmp}/no_models"],
     "path_model '"),
    (["--path_voc_test", "{dataset}", "--path_vgg", "random", "--path_model", "{tmp}", "--epoch", "3"],
     "no checkpoint"),
    (["--path_voc_test", "{tmp}", "--agent", "upper_bound"], "image set folder not found"),
])
def test_a_testing_mistake_is_one_line_before_tensorflow(args, expected, dataset, tmp_path):
    with h5py.File(tmp_path / "model0.weights.h5", "w") as handle:     # found and readable, so that the check
        handle["weights"] = [0.0]                                       # after it (path_vgg) is reached
    args = [arg.format(dataset=dataset, tmp=tmp_path) for arg in args]
    completed = run_script("image_zooms_testing.py", *args)
    line, = own_lines(completed.stderr)
    assert completed.returncode == 2 and line.startswith("error: ") and expected in line, line
    assert "tensorflow" not in imported_modules(completed.stderr)


def test_missing_class_list_file_is_reported_before_tensorflow(tmp_path):
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    completed = run_script("image_zooms_testing.py", "--path_voc_test", str(tmp_path), "--agent", "upper_bound",
                           "--class_object", "bird")
    line, = own_lines(completed.stderr)
    assert completed.returncode == 2 and "image set file not found" in line and "bird_test.txt" in line


def test_class_lists_and_all_pass_the_check():
    assert class_ids("all") == list(range(1, 21))
    assert class_ids("1, bird,car") == [1, 3, 7]
    assert class_ids(5) == [5]
    with pytest.raises(UserError, match="'cars'"):
        class_ids("bird,cars")


def test_the_scripts_modules_import_no_tensorflow():
    code = ("import sys, image_zooms_training, image_zooms_testing, pool45_crops_training, pool45_crops_testing, "
            "runs.training_run, runs.testing_run, runs.run_folder, settings, runs.runtime, episodes, reinforcement, "
            "features, detection; "
            "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_normal_start_prints_no_tensorflow_log_and_names_the_device(dataset, tmp_path):
    environment = dict(os.environ)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)       # the quiet start must not depend on the user's environment
    completed = subprocess.run([sys.executable, "image_zooms_testing.py", "--path_voc_test", str(dataset),
                                "--agent", "upper_bound", "--max_images", "2", "--path_testing_folder",
                                str(tmp_path / "out")],
                               cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout + completed.stderr
    noisy = [line for line in output.splitlines() if any(word in line.lower() for word in TENSORFLOW_LOG_WORDS)]
    assert noisy == []
    device_lines = [line for line in completed.stdout.splitlines() if line.startswith("device: ")]
    assert len(device_lines) == 1
    assert device_lines[0] == "device: CPU" or device_lines[0].startswith("device: GPU 0")
    assert (tmp_path / "out" / "results.json").is_file()


def test_stderr_descriptor_is_restored_and_shown_when_the_block_fails(tmp_path):
    """Run in a child whose descriptor 2 is a file, so that what reaches it can be read back exactly."""
    code = """
import os, sys
from runs import runtime
with runtime.quiet_stderr_descriptor():
    os.write(2, b"hidden chatter\\n")
os.write(2, b"after the quiet block\\n")
try:
    with runtime.quiet_stderr_descriptor():
        os.write(2, b"why it failed\\n")
        raise ImportError("no tensorflow")
except ImportError:
    pass
os.write(2, b"descriptor 2 is back\\n")
tf = runtime.import_tensorflow()
tf_again = runtime.import_tensorflow()
assert tf is tf_again
"""
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines() == ["after the quiet block", "why it failed", "descriptor 2 is back"]
    assert [line for line in completed.stdout.splitlines() if line.startswith("device: ")] == \
        [completed.stdout.splitlines()[0]]


def test_describe_device_names_the_gpu():
    class FakeExperimental:
        @staticmethod
        def get_device_details(device):
            return {"device_name": "NVIDIA H100 80GB HBM3"}

    class FakeConfig:
        experimental = FakeExperimental

    class FakeTensorflow:
        config = FakeConfig

    assert runtime.describe_device(FakeTensorflow, []) == "CPU"
    assert runtime.describe_device(FakeTensorflow, ["gpu0"]) == "GPU 0 (NVIDIA H100 80GB HBM3)"
    assert runtime.describe_device(FakeTensorflow, ["gpu0", "gpu1"]) == \
        "GPU 0 (NVIDIA H100 80GB HBM3), and 1 more GPU"


def test_library_use_keeps_tensorflow_start_up_lines_off_the_terminal(tmp_path):
    """``detection.load_q_network`` (and so ``detect``) imports TensorFlow as the scripts do: no C++ start-up log."""
    from reinforcement import build_q_network
    weights = tmp_path / "q.weights.h5"
    build_q_network(STATE_SIZE, seed=0).save_weights(weights)
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    completed = subprocess.run([sys.executable, "-c", f"import detection; detection.load_q_network({str(weights)!r}, {STATE_SIZE})"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr
    assert not any(word in completed.stderr.lower() for word in TENSORFLOW_LOG_WORDS), completed.stderr


def test_demo_with_an_explicit_oracle_leaves_the_options_it_excludes_off(monkeypatch, capsys):
    import image_zooms_training
    import settings as settings_module
    from settings import apply_demo, configure, script_settings, training_flags
    generated = []
    monkeypatch.setattr("synthetic_dataset.ensure_synthetic_voc", generated.append)   # no dataset needed here

    def demo_settings(*argv):
        settings = configure(script_settings(vars(image_zooms_training)), ["--demo", *argv],
                             image_zooms_training.__doc__, training_flags)
        apply_demo(settings, image_zooms_training.DEMO)
        return settings

    assert settings_module.DEMO_OPTIONS_EXCLUDED_BY["oracle"] == ("trigger_targets", "expert_margin")
    demo = demo_settings()
    assert (demo.trigger_targets, demo.expert_margin, demo.learning_rate) == (1, 0.8, 1e-5)
    capsys.readouterr()
    oracle = demo_settings("--oracle", "1")
    assert (oracle.oracle, oracle.trigger_targets, oracle.expert_margin) == (1, 0, 0)
    assert oracle.learning_rate == 1e-5 and oracle.path_vgg == "hed"        # the rest of the demo still applies
    assert "the demo's trigger_targets 1, expert_margin 0.8 not applied" in capsys.readouterr().out
    # an option given explicitly beside the oracle stays given, and the run stops (oracle takes none of them)
    with pytest.raises(UserError, match="oracle 1 regresses Q to the upper bound's values"):
        demo_settings("--oracle", "1", "--trigger_targets", "1")
    assert demo_settings("--oracle", "0").trigger_targets == 1
    generated.clear()
    for argv in (["--gamma", "2"], ["--class_object", "0"]):   # settings are checked before the dataset is made
        with pytest.raises(UserError, match="gamma must be|class_object '0' is not a VOC class"):
            demo_settings(*argv)
    assert generated == []


@pytest.mark.parametrize("script, args, expected", [
    ("image_zooms_training.py", ["--path_voc", "{dataset}", "--path_vgg", "{tmp}/notes.txt"], "not an HDF5 file"),
    ("image_zooms_testing.py", ["--path_voc_test", "{dataset}", "--path_vgg", "{tmp}/notes.txt", "--path_model",
                                "{tmp}"], "not an HDF5 file"),
    ("image_zooms_testing.py", ["--image", "{tmp}/absent.jpg", "--path_vgg", "random", "--path_model", "{tmp}"],
     "--image {tmp}/absent.jpg: no such file"),
    ("image_zooms_testing.py", ["--image", "{tmp}/notes.txt", "--epoch", "0,1", "--path_vgg", "random",
                                "--path_model", "{tmp}"], "--image searches with one epoch's weights"),
    ("image_zooms_testing.py", ["--path_voc_test", "{dataset}", "--path_vgg", "random", "--path_model", "{tmp}",
                                "--refine", "1"], "refine 1: no refinement head refiner_model0.npz"),
    ("pool45_crops_testing.py", ["--image", "{tmp}", "--path_vgg", "random", "--path_model", "{tmp}"],
     "a folder; give the image files in it"),
])
def test_the_readmes_early_mistakes_are_one_line_before_tensorflow(script, args, expected, dataset, tmp_path):
    """Each mistake the README calls early, answered before TensorFlow loads (the time is reported, not asserted)."""
    (tmp_path / "notes.txt").write_text("not weights")
    with h5py.File(tmp_path / "model0.weights.h5", "w") as handle:
        handle["weights"] = [0.0]
    args = [arg.format(dataset=dataset, tmp=tmp_path) for arg in args]
    started = time.perf_counter()
    completed = run_script(script, *args)
    print(f"{script} {expected!r}: {time.perf_counter() - started:.2f} s")
    line, = own_lines(completed.stderr)
    assert completed.returncode == 2 and line.startswith("error: ") and expected.format(tmp=tmp_path) in line, line
    assert "tensorflow" not in imported_modules(completed.stderr) and "keras" not in imported_modules(completed.stderr)


def test_demo_resume_without_a_checkpoint_stops_before_the_dataset_is_generated(tmp_path):
    """``--demo -n 5`` on a fresh clone: one line about the checkpoint; no dataset generated, no TensorFlow."""
    completed = run_script(str(ROOT / "image_zooms_training.py"), "--demo", "-n", "5", "--path_model",
                           str(tmp_path / "models"), cwd=tmp_path)
    line, = own_lines(completed.stderr)
    assert completed.returncode == 2 and line.startswith("error: -n 5: no checkpoint"), line
    assert not (tmp_path / "data").exists() and completed.stdout == ""
    assert "tensorflow" not in imported_modules(completed.stderr)


def test_demo_with_another_dataset_generates_none(dataset, tmp_path):
    """``--demo --path_voc_test DIR`` reads DIR: the synthetic dataset is not generated in the working folder."""
    completed = run_script(str(ROOT / "image_zooms_testing.py"), "--demo", "--agent", "upper_bound",
                           "--path_voc_test", str(dataset), "--path_testing_folder", str(tmp_path / "out"),
                           "--max_images", "2", cwd=tmp_path)
    assert completed.returncode == 0, own_lines(completed.stderr)
    assert not (tmp_path / "data").exists() and (tmp_path / "out" / "results.json").is_file()
