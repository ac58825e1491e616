"""The lock on ``path_model`` (issue 40, item 1): one training per class and folder, a lock left by a dead run taken
over with a warning, released however the block ends; testing can ask who is writing."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runs import run_folder
from runs.errors import UserError
from runs.run_folder import lock_path, training_holder, training_lock

ROOT = Path(__file__).resolve().parent.parent


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_holder_stops_with_one_line_naming_the_folder_and_the_run(tmp_path):
    with training_lock(tmp_path, 3) as path:
        assert path == lock_path(tmp_path, 3) and path.is_file()
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(UserError) as caught:
            with training_lock(tmp_path, 3):
                pass
        message = str(caught.value)
        assert "\n" not in message and str(tmp_path) in message
        assert f"process {os.getpid()}" in message and record["started"] in message
        assert training_holder(tmp_path, 3) == f"process {os.getpid()} on {socket.gethostname()}, " \
                                               f"started {record['started']}"
        with training_lock(tmp_path, 4):        # another class of the same folder is another lock
            assert training_holder(tmp_path, 4) is not None
        assert path.is_file()                   # the refused holder did not remove the live run's lock
    assert not lock_path(tmp_path, 3).exists() and training_holder(tmp_path, 3) is None
    assert sorted(os.listdir(tmp_path)) == []   # nothing left behind, no temporary file either


def test_another_process_holding_the_lock_is_named_then_its_lock_is_taken_over_once_it_is_killed(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom runs.run_folder import training_lock\n"
         f"with training_lock({str(tmp_path)!r}, 0):\n    print('held', flush=True)\n    time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"in use by another training of class aeroplane: process {holder.pid} "):
            with training_lock(tmp_path, 0):
                pass
        assert training_holder(tmp_path, 0).startswith(f"process {holder.pid} ")
    finally:
        holder.send_signal(signal.SIGKILL)      # dies without releasing: the lock stays, stale
    for _ in range(200):                        # ended, not yet reaped by its parent (this test): a zombie
        if run_folder._process_stat(holder.pid)[0] == "Z":
            break
        time.sleep(0.05)
    assert training_holder(tmp_path, 0) is None     # a zombie is a run that has ended
    holder.wait()
    assert lock_path(tmp_path, 0).is_file() and training_holder(tmp_path, 0) is None
    with pytest.warns(UserWarning, match=rf"lock_model0 of process {holder.pid} .* is stale .*taken over"):
        with training_lock(tmp_path, 0) as path:
            assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not lock_path(tmp_path, 0).exists()


@pytest.mark.parametrize("stale", ["dead pid", "pid given to another process", "unreadable", "empty"])
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, stale):
    path = lock_path(tmp_path, 1)
    record = {"pid": dead_pid(), "host": socket.gethostname(), "started": "2016-01-01T00:00:00+00:00", "ticks": None}
    if stale == "pid given to another process":     # our own pid, but not our process' start time
        record.update(pid=os.getpid(), ticks=-1)
    path.write_text({"unreadable": "{not json", "empty": ""}.get(stale, json.dumps(record)))
    if stale == "pid given to another process" and not Path("/proc/self/stat").exists():
        pytest.skip("no /proc: a reused pid cannot be told from the run")
    assert training_holder(tmp_path, 1) is None
    with pytest.warns(UserWarning, match="lock_model1 of .* is stale") as caught:
        with training_lock(tmp_path, 1):
            assert json.loads(path.read_text())["pid"] == os.getpid()
    assert len(caught) == 1 and str(tmp_path) in str(caught[0].message)
    assert not path.exists()


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
    path = lock_path(tmp_path, 2)
    path.write_text(json.dumps({"pid": 1, "host": "another-host.invalid", "started": "2016-01-01T00:00:00+00:00"}))
    with pytest.raises(UserError, match=rf"process 1 on another-host.invalid, started 2016-01-01.*delete {path}"):
        with training_lock(tmp_path, 2):
            pass
    assert json.loads(path.read_text())["host"] == "another-host.invalid"


@pytest.mark.parametrize("ending", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_released_when_the_block_raises(tmp_path, ending):
    with pytest.raises(ending):
        with training_lock(tmp_path, 0):
            raise ending("stopped")
    assert not lock_path(tmp_path, 0).exists()
    with training_lock(tmp_path, 0):        # and can be taken again, without a warning
        pass


def test_a_lock_taken_over_from_us_is_left_to_its_new_holder(tmp_path):
    with training_lock(tmp_path, 0) as path:
        path.write_text(json.dumps({"pid": 1, "host": "another-host.invalid", "started": "now"}))
    assert json.loads(path.read_text())["host"] == "another-host.invalid"


def test_a_path_model_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"path_model .*file/models: cannot create the folder \(.*file is a file\)"):
        with training_lock(tmp_path / "file" / "models", 0):
            pass


def test_of_runs_started_together_on_a_stale_lock_one_holds_it(tmp_path):
    lock_path(tmp_path, 0).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(),
                                                  "started": "2016-01-01T00:00:00+00:00"}))
    script = ("import sys, time, warnings\nfrom runs.errors import UserError\nfrom runs.run_folder import training_lock\n"
              "warnings.simplefilter('ignore')\nprint('ready', flush=True)\nsys.stdin.readline()\n"
              f"try:\n    with training_lock({str(tmp_path)!r}, 0):\n        print('held', flush=True)\n"
              "        time.sleep(3)\nexcept UserError:\n    print('refused', flush=True)\n")
    runs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True) for _ in range(6)]
    assert [run.stdout.readline().strip() for run in runs] == ["ready"] * 6     # all imported and waiting
    for run in runs:                # go
        run.stdin.write("\n")
        run.stdin.flush()
    answers = sorted(run.communicate(timeout=60)[0].strip() for run in runs)
    assert answers == ["held"] + ["refused"] * 5
    assert not lock_path(tmp_path, 0).exists()


@pytest.mark.slow
def test_two_trainings_into_one_folder_the_second_stops_at_once_the_first_keeps_its_own_files(dataset, tmp_path):
    import time
    from runs import run_folder
    from test_resume import LEARNING_COLUMNS, TINY, same_weights
    command = [sys.executable, "image_zooms_training.py", "--path_voc", str(dataset), *TINY, "--epochs", "3"]
    subprocess.run([*command, "--path_model", str(tmp_path / "alone")], cwd=ROOT, check=True, capture_output=True)
    shared = tmp_path / "shared"
    first = subprocess.Popen([*command, "--path_model", str(shared)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    waited = time.monotonic()
    while not lock_path(shared, 0).exists():
        assert first.poll() is None and time.monotonic() - waited < 120, first.communicate()
        time.sleep(0.05)
    started = time.monotonic()
    second = subprocess.run([*command, "--path_model", str(shared), "--seed", "1"], cwd=ROOT, capture_output=True,
                            text=True)
    elapsed = time.monotonic() - started
    assert first.poll() is None                         # the second met a live run
    assert second.returncode == 2 and elapsed < 5, (second.returncode, elapsed)   # the 2 s on a quiet machine
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and str(shared) in lines[0] and f"process {first.pid}" in lines[0], lines
    assert first.wait(timeout=300) == 0, first.communicate()
    names = sorted(path.name for path in shared.iterdir())
    assert names == sorted(path.name for path in (tmp_path / "alone").iterdir())       # the lock is gone too
    for name in names:
        if name.endswith(".weights.h5"):
            assert same_weights(shared / name, tmp_path / "alone" / name), name
        elif name.endswith(".csv"):
            rows = [[{key: row[key] for key in LEARNING_COLUMNS} for row in run_folder.read_log(folder / name)]
                    for folder in (shared, tmp_path / "alone")]
            assert rows[0] == rows[1], name


@pytest.mark.usefixtures("small_q_network")
@pytest.mark.parametrize("run", ["test", "--image"])
def test_a_test_while_a_training_writes_reads_the_latest_complete_epoch_and_says_so(dataset, tmp_path, monkeypatch,
                                                                                    capsys, run):
    import image_zooms_testing
    import image_zooms_training
    from test_resume import TINY, tiny_features
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)
    models = tmp_path / "models"
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TINY, "--epochs", "2"])
    image = next((Path(dataset) / "JPEGImages").iterdir())
    source, written = (["--path_voc_test", str(dataset)], "results.json") if run == "test" else \
        (["--image", str(image)], "detections.json")

    def test(folder):
        image_zooms_testing.main([*source, "--path_model", str(models), "--path_vgg", "random",
                                  "--path_testing_folder", str(tmp_path / folder), "--number_of_steps", "3"])
        return json.loads((tmp_path / folder / written).read_text()), capsys.readouterr().out
    alone, output = test("alone")
    assert "note: a training is writing" not in output and alone["weights"].endswith("model0.weights.h5")
    with training_lock(models, 0):          # a training of this class holds the folder
        during, output = test("during")
    assert f"note: a training is writing {models}/ (process {os.getpid()}" in output
    assert during["weights"].endswith("model0_epoch_1.weights.h5")
    if run == "test":
        assert during["epoch"] == 1
        assert during["ap"] == alone["ap"] and during["detections"] == alone["detections"]     # the same epoch
    else:
        assert during["images"][0]["boxes"] == alone["images"][0]["boxes"]     # the same epoch's agent
