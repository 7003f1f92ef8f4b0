"""Honest confidence: temperature scaling, expected calibration error, a reject threshold.

A network trained with cross-entropy is over- or under-confident by a fairly constant
factor in its logits. Temperature scaling divides the log-probabilities by one number T,
fitted to minimize the negative log-likelihood on held-out data; it never changes which
class wins, only how sure the answer claims to be. ECE measures the gap between claimed
confidence and accuracy, averaged over confidence bins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T), row-wise; T = 1 returns ``probabilities`` unchanged."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] with the least NLL: golden-section search on log T (NLL is unimodal there)."""
    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, float(np.exp(log_t))), labels)

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(np.exp((low + high) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


@dataclass
class CalibrationData:
    """Held-out images for calibration: MNIST validation digits, photographed validation
    digits, and non-digits (uint8 N x 28 x 28 each, already in MNIST form)."""

    mnist_x: np.ndarray
    mnist_y: np.ndarray
    realistic_x: np.ndarray
    realistic_y: np.ndarray
    negatives_x: np.ndarray

    @classmethod
    def from_validation(
        cls, images: np.ndarray, labels: np.ndarray, realistic: int = 3000, negatives: int = 2000, seed: int = 1
    ) -> CalibrationData:
        """Build it from the validation split: photographed digits and non-digits made from it."""
        from .synth import non_digits, realistic_digits

        real_x, real_y = realistic_digits(images, labels, realistic, seed)
        return cls(images, labels.astype(np.int64), real_x, real_y, non_digits(images, negatives, seed))


# The default threshold accepts at least this share of photographed validation digits.
ACCEPT_REALISTIC = 0.99


def calibrate(model_probabilities: Callable[[np.ndarray], np.ndarray], data: CalibrationData) -> dict[str, Any]:
    """Fit a temperature on all held-out images and pick the reject threshold.

    The temperature minimizes the negative log-likelihood over MNIST validation digits,
    photographed validation digits and (for 11-class models) non-digits labelled "not a
    digit". The threshold is the highest one, on a 0.01 grid, that still accepts
    ``ACCEPT_REALISTIC`` of the photographed validation digits. ``model_probabilities`` maps
    uint8 (N, 28, 28) images to the model's probabilities (torch or ONNX, as exported).
    """
    parts = {
        "mnist": (data.mnist_x, data.mnist_y),
        "realistic": (data.realistic_x, data.realistic_y),
    }
    raw = {name: model_probabilities(x) for name, (x, _) in parts.items()}
    classes = raw["mnist"].shape[1]
    if classes > 10:
        parts["non-digits"] = (data.negatives_x, np.full(len(data.negatives_x), 10, np.int64))
        raw["non-digits"] = model_probabilities(data.negatives_x)
    everything = np.concatenate(list(raw.values()))
    labels = np.concatenate([y for _, y in parts.values()])
    temperature = fit_temperature(everything, labels)
    scaled = {name: apply_temperature(p, temperature) for name, p in raw.items()}

    def accepted(probabilities: np.ndarray, threshold: float) -> np.ndarray:
        digits = probabilities[:, :10]
        confident = digits.max(axis=1) >= threshold
        if probabilities.shape[1] > 10:
            confident &= probabilities[:, 10] <= digits.max(axis=1)
        return confident

    grid = np.round(np.arange(0.05, 1.0, 0.01), 2)
    threshold = max(
        (t for t in grid if accepted(scaled["realistic"], t).mean() >= ACCEPT_REALISTIC), default=float(grid[0])
    )
    report: dict[str, Any] = {
        "method": "temperature scaling, fitted on held-out validation images",
        "temperature": round(temperature, 4),
        "threshold": float(threshold),
        "threshold_rule": f"highest threshold accepting >= {ACCEPT_REALISTIC:.0%} of photographed validation digits",
        "validation": {},
    }
    for name, (_, y) in parts.items():
        entry = {
            "n": len(y),
            "ece_before": round(expected_calibration_error(raw[name], y), 5),
            "ece_after": round(expected_calibration_error(scaled[name], y), 5),
        }
        entry["accepted_at_threshold"] = round(float(accepted(scaled[name], threshold).mean()), 4)
        report["validation"][name] = entry
    return report
