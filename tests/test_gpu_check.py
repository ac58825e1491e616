"""The GPU check (experiments/gpu_check.py) runs on a machine without a GPU too: it says so, measures the CPU and
writes every figure it promises to one JSON file."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_check_runs_without_a_gpu_and_writes_its_figures(tmp_path):
    report = tmp_path / "gpu_check.json"
    completed = subprocess.run([sys.executable, "experiments/gpu_check.py", "--quick", "--output", str(report)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    figures = json.loads(report.read_text())
    assert figures["gpu"] is False and figures["device"] == "CPU" and "no GPU: the CPU is measured" in completed.stdout
    assert figures["auto_precision"]["picks"] in ("float32", "bfloat16") and figures["auto_precision"]["why"]
    for batch in ("batch_1", "batch_32"):
        assert set(figures["vgg16_seconds_per_image"][batch]) == {"float32", "bfloat16"}
    assert figures["update"]["update_s"] > 0 and figures["update"]["update_over_floor"] > 0
    training = figures["demo_training"]
    assert training["steps_per_s"] and training["steps_per_s"][0] > 0, training
