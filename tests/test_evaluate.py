"""``inkdigits evaluate``: metrics, report files and the same numbers from CLI and API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from inkdigits import Recognizer, evaluate
from inkdigits.evaluate import classification_metrics, confusion_matrix, most_confident_errors


def test_metrics_on_a_hand_checked_case():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.eye(10)[[0, 1, 1, 1, 0]] * 0.9 + 0.01
    metrics = classification_metrics(probabilities, labels)
    assert metrics["accuracy"] == pytest.approx(0.6)
    per_class = metrics["per_class"]
    assert per_class[0]["precision"] == pytest.approx(0.5) and per_class[0]["recall"] == pytest.approx(0.5)
    assert per_class[1]["precision"] == pytest.approx(2 / 3) and per_class[1]["recall"] == 1.0
    assert per_class[2]["recall"] == 0.0 and per_class[2]["f1"] == 0.0
    assert confusion_matrix(labels, probabilities.argmax(1))[2, 0] == 1
    assert metrics["loss"] == pytest.approx(-np.log(0.91) * 0.6 - np.log(0.01) * 0.4)


def test_most_confident_errors_come_first():
    labels = np.array([0, 1, 2, 3])
    probabilities = np.full((4, 10), 0.01)
    probabilities[0, 5], probabilities[1, 1], probabilities[2, 7], probabilities[3, 4] = 0.6, 0.9, 0.95, 0.7
    assert most_confident_errors(probabilities, labels).tolist() == [2, 3, 0]


def test_cli_and_api_print_the_same_numbers_and_write_the_report(mnist_dir, tmp_path):
    out = tmp_path / "eval"
    result = run_cli("evaluate", "--data-dir", str(mnist_dir), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    from_cli = json.loads(result.stdout)
    from_api = evaluate(None, mnist_dir, tmp_path / "api", progress=False)
    assert from_cli["accuracy"] == from_api.accuracy
    assert from_cli["confusion_matrix"] == from_api.metrics["confusion_matrix"]
    assert from_cli["per_class"] == from_api.metrics["per_class"]
    assert json.loads((out / "report.json").read_text())["accuracy"] == from_cli["accuracy"]
    for name in ("confusion.png", "errors.png"):
        with Image.open(out / name) as picture:
            assert picture.format == "PNG" and picture.width > 400
    matrix = np.array(from_cli["confusion_matrix"])
    # Images the model declined as "not a digit" are counted as errors but sit in no cell.
    assert matrix.sum() + from_cli["unread"] == 10000
    assert np.trace(matrix) == round(from_cli["accuracy"] * 10000)


def test_text_report_has_the_table_and_matrix(mnist_dir, tmp_path):
    result = run_cli("evaluate", "--data-dir", str(mnist_dir), "--out", str(tmp_path), "--no-plots")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "precision" in result.stdout and "confusion matrix" in result.stdout
    assert len([line for line in result.stdout.splitlines() if line.strip().startswith("9 ")]) == 2


def test_bundled_model_scores_what_its_card_claims(mnist_dir):
    card = Recognizer.load().card
    report = evaluate(None, mnist_dir, progress=False)
    assert report.accuracy == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)
    assert "inkdigits train" in card["reproduce"]
    assert card["data"]["mnist_sha256"]
    assert report.accuracy >= 0.996  # issue 4: the bundled model keeps MNIST at 99.6% or more


def test_bundled_model_declines_non_digits_with_a_calibrated_threshold():
    recognizer = Recognizer.load()
    card = recognizer.card
    assert card["classes"] == 11 and card["labels"][-1] == "not a digit"
    calibration = card["calibration"]
    assert recognizer.temperature == calibration["temperature"] != 1.0
    assert recognizer.threshold == calibration["threshold"]
    for part in ("mnist", "realistic", "non-digits"):  # calibration must have helped on every part
        assert calibration["validation"][part]["ece_after"] < calibration["validation"][part]["ece_before"]
    assert calibration["validation"]["realistic"]["accepted_at_threshold"] >= 0.99
