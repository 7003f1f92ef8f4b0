"""``inkdigits ensemble``: one ONNX model averaging its members, evaluated like any model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from inkdigits.recognize import OnnxModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mnist_dir):
    folder = tmp_path_factory.mktemp("members")
    runs = []
    for seed in (0, 1):
        out = folder / f"mlp-{seed}"
        result = run_cli(
            "train",
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--limit",
            "6000",
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--data-dir",
            str(mnist_dir),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append(out)
    return runs


@pytest.mark.parametrize("tta", [False, True])
def test_ensemble_averages_its_members(two_runs, mnist, mnist_dir, tmp_path, tta):
    out = tmp_path / "ensemble"
    result = run_cli(
        "ensemble", *map(str, two_runs), "--out", str(out), "--data-dir", str(mnist_dir), *(["--tta"] if tta else [])
    )
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((out / "model.card.json").read_text())
    assert [m["run"] for m in card["members"]] == [str(r) for r in two_runs] and card["tta"] is tta
    assert card["onnx_max_abs_diff"] < 1e-4
    images = mnist.test_images[:1000]
    ensemble = OnnxModel.load(out).probabilities_uint8(images)
    assert np.allclose(ensemble.sum(1), 1, atol=1e-5)
    if not tta:
        members = [OnnxModel.load(run).probabilities_uint8(images) for run in two_runs]
        assert np.abs(ensemble - np.mean(members, axis=0)).max() < 1e-5
    evaluated = run_cli("evaluate", str(out), "--data-dir", str(mnist_dir), "--json", "--no-plots")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)
