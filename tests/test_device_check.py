"""benchmarks/device_check.py, the prepared check for a GPU, run end to end on the CPU path with
tiny sizes (a few of its steps: the whole quick check takes minutes), so that a GPU run only
changes the device. Its figures are checked for shape and sign, never for speed."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(900)
def test_the_device_check_runs_on_the_cpu_and_writes_its_figures(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "device_check.py"), "--device", "cpu",
                           "--quick", "--steps", "equivalence", "explain", "--out", str(out)],
                          capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["facts"]["device"] == "cpu" and report["quick"] is True
    eq = report["steps"]["equivalence"]
    assert eq["passed"] > 0 and eq["failed"] == 0 and eq["skipped"] == 0  # the CPU's own cases ran
    explain = report["steps"]["explain"]
    assert explain["explain_cached_s"] > 0 and explain["modal_grid_s"] > 0 and explain["peak_rss_mb"] > 0
    assert explain["peak_gpu_mb"] is None  # no GPU figure made up on the CPU


@pytest.mark.timeout(600)
def test_cuda_cases_are_reported_skipped_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check runs its cases instead")
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "device_check.py"), "--device", "cuda",
                           "--quick", "--steps", "equivalence", "--out", str(out)],
                          capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    eq = json.loads(out.read_text())["steps"]["equivalence"]
    assert eq["passed"] == 0 and eq["skipped"] > 0 and eq["skip_reasons"] == ["no CUDA device on this machine"]
