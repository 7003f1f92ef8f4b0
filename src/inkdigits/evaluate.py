"""Honest evaluation: the metrics, the confusion matrix and the worst mistakes of a model.

Everything here is numpy on probabilities, so the same function scores a torch model during
training and the exported ONNX model afterwards, and the CLI and the Python API print the
same numbers because both call ``evaluate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import write_json_atomic

GALLERY_SIZE = 36


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """Rows: true digit; columns: predicted digit."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, unread: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, cross-entropy loss, per-class precision / recall / F1 and the confusion matrix.

    ``unread`` marks inputs that gave no prediction (bad file, no digit found, or an 11-class
    model's "not a digit"): they count as errors and in each class's support, but in no cell
    of the confusion matrix and not in the loss.
    """
    labels = labels.astype(np.int64)
    unread = np.zeros(len(labels), bool) if unread is None else unread
    # An 11-class model may answer "not a digit": that input was declined, not misread.
    unread = unread | (probabilities.argmax(axis=1) >= 10)
    predicted = np.where(unread, -1, probabilities.argmax(axis=1))
    read = ~unread
    matrix = confusion_matrix(labels[read], predicted[read])
    true_positive = np.diag(matrix).astype(np.float64)
    predicted_count = matrix.sum(axis=0)
    support = np.bincount(labels, minlength=10)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(10), where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros(10), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(10), where=denominator > 0)
    picked = probabilities[np.arange(len(labels)), labels][read]
    loss = float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()) if read.any() else 0.0
    return {
        "n": len(labels),
        "unread": int(unread.sum()),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "loss": loss,
        "errors": int((predicted != labels).sum()),
        "macro_f1": float(f1.mean()),
        "per_class": [
            {
                "digit": d,
                "precision": float(precision[d]),
                "recall": float(recall[d]),
                "f1": float(f1[d]),
                "support": int(support[d]),
            }
            for d in range(10)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def most_confident_errors(probabilities: np.ndarray, labels: np.ndarray, count: int = GALLERY_SIZE) -> np.ndarray:
    """Indices of wrong predictions, the most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def format_report(metrics: dict[str, Any], title: str = "") -> str:
    """The metrics as text: a summary line, a per-class table and the confusion matrix."""
    lines = []
    if title:
        lines.append(title)
    lines.append(
        f"accuracy {metrics['accuracy'] * 100:.2f}%  ({metrics['errors']} errors in {metrics['n']})  "
        f"loss {metrics['loss']:.4f}  macro F1 {metrics['macro_f1']:.4f}"
    )
    if metrics.get("unread"):
        lines.append(
            f"{metrics['unread']} images gave no prediction (unreadable, no digit found, or answered "
            "'not a digit'); counted as errors"
        )
    lines.append("")
    lines.append("digit  precision  recall     f1  support")
    for row in metrics["per_class"]:
        lines.append(
            f"{row['digit']:>5}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7d}"
        )
    lines.append("")
    lines.append("confusion matrix (rows: true digit, columns: predicted)")
    lines.append("      " + "".join(f"{d:>6}" for d in range(10)))
    for digit, row in enumerate(metrics["confusion_matrix"]):
        lines.append(f"{digit:>5} " + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


@dataclass
class EvaluationReport:
    metrics: dict[str, Any]
    model: str
    dataset: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, **self.metrics, "files": self.files}

    def text(self) -> str:
        return format_report(self.metrics, f"{self.model} on {self.dataset}")


def evaluate(
    model: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    plots: bool = True,
    progress: bool = True,
) -> EvaluationReport:
    """Score an ONNX model (file, run folder, or None for the bundled one) on the MNIST test set.

    With ``out``, writes ``report.json``, ``confusion.png`` and ``errors.png`` there.
    """
    from .data import load_mnist
    from .recognize import Recognizer

    recognizer = Recognizer.load(model)
    mnist = load_mnist(data_dir, progress=progress)
    probabilities = recognizer.classify_mnist(mnist.test_images)
    metrics = classification_metrics(probabilities, mnist.test_labels)
    report = EvaluationReport(metrics, str(recognizer.model.path), "MNIST test (10,000 images)")
    if out is not None:
        report.files = write_outputs(report, probabilities, mnist.test_images, mnist.test_labels, Path(out), plots)
    return report


def evaluate_dataset(
    path: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    plots: bool = True,
    progress: bool = True,
) -> EvaluationReport:
    """Score a model on any labelled set (see ``inkdigits.datasets``); photos are preprocessed."""
    from .datasets import load_labelled
    from .progress import Progress
    from .recognize import Recognizer

    dataset = load_labelled(path)
    recognizer = Recognizer.load(model)
    unread = np.zeros(len(dataset), bool)
    if dataset.mnist_form is not None:
        images = dataset.mnist_form
        probabilities = recognizer.classify_mnist(images)
    else:
        probabilities = np.zeros((len(dataset), 10), np.float32)
        images = np.zeros((len(dataset), 28, 28), np.uint8)
        chunk = 64
        with Progress(len(dataset), "evaluate", unit="img", enabled=None if progress else False) as bar:
            for start in range(0, len(dataset), chunk):
                answers = recognizer.predict_batch(dataset.sources[start : start + chunk], return_errors=True)
                for offset, answer in enumerate(answers):
                    if isinstance(answer, Exception):
                        unread[start + offset] = True
                        continue
                    probabilities[start + offset] = answer.probabilities
                    images[start + offset] = np.round(answer.model_input * 255).astype(np.uint8)
                bar.update(len(answers))
    metrics = classification_metrics(probabilities, dataset.labels, unread)
    name = f"{path} ({dataset.layout}, {len(dataset):,} images)"
    report = EvaluationReport(metrics, str(recognizer.model.path), name)
    if out is not None:
        shown = np.flatnonzero(~unread)
        report.files = write_outputs(
            report, probabilities[shown], images[shown], dataset.labels[shown], Path(out), plots
        )
    return report


def write_outputs(
    report: EvaluationReport,
    probabilities: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    out: Path,
    plots: bool = True,
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"report": str(out / "report.json")}
    if plots:
        from .plots import plot_confusion, plot_error_gallery

        files["confusion"] = str(plot_confusion(np.array(report.metrics["confusion_matrix"]), out / "confusion.png"))
        worst = most_confident_errors(probabilities, labels)
        files["errors"] = str(
            plot_error_gallery(images[worst], labels[worst], probabilities[worst], out / "errors.png")
        )
    report.files = files
    write_json_atomic(out / "report.json", report.to_dict())
    return files
