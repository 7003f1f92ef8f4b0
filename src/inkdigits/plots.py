"""PNG pictures for people: training curves, confusion matrix, mistakes, a prediction's stages.

matplotlib runs on its Agg backend, which needs no display; ``show`` opens a window only
where one exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InkdigitsError
from .fsutil import atomic_write


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise InkdigitsError("Plots need matplotlib: pip install 'inkdigits[plot]'.") from exc
    if not has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _save(figure: Any, path: Path) -> Path:
    plt = _pyplot()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(figure)
    return path


def show(path: Path) -> bool:
    """Open a saved PNG in a window; False where there is no display to open it on."""
    if not has_display():
        return False
    plt = _pyplot()
    image = plt.imread(str(path))
    figure = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100))
    figure.figimage(image)
    plt.show()
    return True


def plot_training_curves(history: list[dict[str, float]], path: str | os.PathLike[str]) -> Path:
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["loss"] for row in history], "o-", label="train")
    acc_axis.plot(epochs, [row["accuracy"] * 100 for row in history], "o-", label="train")
    if history and "val_loss" in history[0]:
        loss_axis.plot(epochs, [row["val_loss"] for row in history], "s-", label="validation")
        acc_axis.plot(epochs, [row["val_accuracy"] * 100 for row in history], "s-", label="validation")
    loss_axis.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    acc_axis.set(title="accuracy", xlabel="epoch", ylabel="%")
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
        axis.legend()
        axis.set_xticks(epochs)
    return _save(figure, Path(path))


def plot_confusion(matrix: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """A heat map on a log scale, so single mistakes are visible next to ~1,000 correct."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 6))
    shown = np.log10(matrix + 1)
    image = axis.imshow(shown, cmap="Blues")
    for true_digit in range(matrix.shape[0]):
        for predicted in range(matrix.shape[1]):
            value = matrix[true_digit, predicted]
            if value:
                dark = shown[true_digit, predicted] > shown.max() * 0.6
                axis.text(
                    predicted,
                    true_digit,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
    axis.set(
        xlabel="predicted digit", ylabel="true digit", title="confusion matrix", xticks=range(10), yticks=range(10)
    )
    figure.colorbar(image, ax=axis, label="log10(count + 1)")
    return _save(figure, Path(path))


def plot_error_gallery(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """The most confidently wrong digits, each titled 'true -> predicted (confidence)'."""
    plt = _pyplot()
    count = max(1, len(images))
    columns = min(9, count)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.5), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, label, probs in zip(axes.flat, images, labels, probabilities, strict=False):
        predicted = int(np.argmax(probs))
        axis.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        axis.set_title(f"{int(label)}→{predicted} ({probs[predicted]:.2f})", fontsize=8, color="crimson")
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "no errors", ha="center", va="center")
    figure.suptitle("most confident mistakes: true→predicted (confidence)", fontsize=9)
    return _save(figure, Path(path))


def plot_prediction(prediction: Any, path: str | os.PathLike[str], top: int = 3) -> Path:
    """Every preprocessing stage, the 28x28 the model saw, and the ten probabilities."""
    plt = _pyplot()
    stages = dict(prediction.stages) or {"28x28 model input": prediction.model_input}
    panels = len(stages) + 1
    figure, axes = plt.subplots(1, panels, figsize=(2.6 * panels, 2.9))
    for axis, (name, picture) in zip(axes, stages.items(), strict=False):
        axis.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=1)
        axis.set_title(name, fontsize=9)
        axis.axis("off")
    if prediction.box and "input" in stages:
        x, y, w, h = prediction.box
        axes[0].add_patch(plt.Rectangle((x, y), w, h, fill=False, edgecolor="red", linewidth=1.5))
    bars = axes[-1]
    rejected = getattr(prediction, "rejected", False)
    colors = ["tab:blue"] * 10
    colors[prediction.digit] = "tab:gray" if rejected else "tab:green"
    values, labels = list(prediction.probabilities), [str(d) for d in range(10)]
    if getattr(prediction, "not_digit", 0.0) > 0:  # an 11-class model's "not a digit"
        values, labels, colors = [*values, prediction.not_digit], [*labels, "no"], [*colors, "tab:red"]
    bars.bar(range(len(values)), values, color=colors)
    bars.set(xticks=range(len(values)), xticklabels=labels, ylim=(0, 1), title="probabilities")
    best = ", ".join(f"{d}: {p:.2f}" for d, p in prediction.top(top))
    verdict = f"not a digit: {prediction.reason}" if rejected else f"{prediction.digit} ({prediction.confidence:.1%})"
    figure.suptitle(f"{prediction.source}: {verdict}   [{best}]", fontsize=10, y=1.04)
    return _save(figure, Path(path))


def plot_reading(reading: Any, pixels: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """The image with every line's box (blue) and every digit's box and reading (red)."""
    plt = _pyplot()
    height, width = pixels.shape[:2]
    scale = min(12 / width, 9 / height, 0.02)
    figure, axis = plt.subplots(figsize=(max(4.0, width * scale), max(3.0, height * scale)))
    axis.imshow(pixels, cmap=None if pixels.ndim == 3 else "gray", vmin=0, vmax=1)
    axis.axis("off")
    for line in reading.lines:
        x, y, w, h = line.box
        axis.add_patch(plt.Rectangle((x, y), w, h, fill=False, edgecolor="tab:blue", linewidth=1.5))
        axis.text(x, y - 4, f"{line.text_full}  ({line.confidence:.0%})", color="tab:blue", fontsize=10, va="bottom")
        for digit in line.digits:
            dx, dy, dw, dh = digit.box
            axis.add_patch(plt.Rectangle((dx, dy), dw, dh, fill=False, edgecolor="red", linewidth=1))
            axis.text(dx + dw / 2, dy + dh + 2, str(digit.digit), color="red", fontsize=9, ha="center", va="top")
    text = reading.text or "no number found"
    axis.set_title(f"{reading.source}: {text}", fontsize=10)
    return _save(figure, Path(path))
