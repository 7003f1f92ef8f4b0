"""Resuming a training run killed mid-way, and distributed training with 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow


def _epochs_done(folder) -> int:
    try:
        return json.loads((folder / "model.json").read_text()).get("epochs_done", 0)
    except (FileNotFoundError, ValueError):
        return 0


def test_resume_after_a_kill_reaches_the_same_model(tmp_path, mnist_dir):
    # cnn with EMA covers every piece of resume state: weights, EMA, AdamW, OneCycle.
    args = [
        "train",
        "--model",
        "cnn",
        "--epochs",
        "4",
        "--limit",
        "4000",
        "--val",
        "1000",
        "--ema",
        "0.99",
        "--threads",
        "1",
        "--data-dir",
        str(mnist_dir),
    ]
    straight = tmp_path / "straight"
    done = run_cli(*args, "--out", str(straight))
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "inkdigits", *args, "--out", str(killed)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while _epochs_done(killed) < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = _epochs_done(killed)
    assert 1 <= interrupted_at < 4, f"the kill should land mid-run, it landed after epoch {interrupted_at}"
    assert not (killed / "model.onnx").exists()

    resumed = run_cli("train", "--resume", str(killed), "--data-dir", str(mnist_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.loads((folder / "model.json").read_text()) for folder in (straight, killed))
    assert b["metrics"]["test"]["accuracy"] == a["metrics"]["test"]["accuracy"]
    assert [row["val_accuracy"] for row in b["history"]] == [row["val_accuracy"] for row in a["history"]]
    weights_a, weights_b = load_file(str(straight / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_torchrun_with_two_cpu_processes(tmp_path, mnist_dir):
    out = tmp_path / "ddp"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"),
        *("-m", "inkdigits.train", "--model", "cnn", "--epochs", "2", "--limit", "6000", "--val", "1000"),
        *("--out", str(out), "--data-dir", str(mnist_dir)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["processes"] == 2
    assert meta["epochs_done"] == 2 and len(meta["history"]) == 2
    assert meta["metrics"]["test"]["accuracy"] > 0.9
    assert meta["onnx_max_abs_diff"] < 1e-4
    assert (out / "model.onnx").is_file() and (out / "curves.png").is_file()
    # the same contract as one process: the recognizer loads the run folder
    predicted = run_cli("predict", "--model", str(out), "examples/7-white-on-black.png", "--json")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["digit"] in range(10)
