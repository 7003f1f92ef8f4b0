"""Export a trained torch model to ONNX, the format the recognition runtime reads.

The exported graph ends in a softmax, so it outputs probabilities; its model card (the
checkpoint's metadata) rides along in the ONNX metadata, so a lone .onnx file still says what
it is, how it was trained and how well it scores.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .calibrate import CalibrationData, calibrate
from .fsutil import atomic_write

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
CARD_KEY = "inkdigits.card"


class WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=-1)  # over classes, for digits and for rows


def export_onnx(model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write ``model`` (logits) as an ONNX graph from images to probabilities, atomically."""
    return _export_probabilities(WithSoftmax(model).eval(), path, card)


def export_line_reader(model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """The line reader as ONNX: ``rows`` (batch, 1, 32, width) -> (batch, steps, classes)."""
    return export_line_readers([model], path, card)


class EachWithSoftmax(nn.Module):
    """Several readers side by side: one input, each member's probabilities as an output."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.softmax(member(x), dim=-1) for member in self.members)


def export_line_readers(members: list[nn.Module], path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Line readers as one ONNX graph: ``rows`` (batch, 1, 32, width) in, and per member a
    (batch, steps, classes) output. Their texts are not averaged step by step (two readers
    need not emit a character at the same step); the runtime weighs whole readings."""
    names = [OUTPUT_NAME] if len(members) == 1 else [f"{OUTPUT_NAME}_{i}" for i in range(len(members))]
    axes = {"rows": {0: "batch", 3: "width"}} | {name: {0: "batch", 1: "steps"} for name in names}
    wrapped = WithSoftmax(members[0]) if len(members) == 1 else EachWithSoftmax(members)
    return _export_probabilities(wrapped.eval(), path, card, torch.zeros(2, 1, 32, 96), "rows", axes, names)


def _export_probabilities(
    wrapped: nn.Module,
    path: str | os.PathLike[str],
    card: dict[str, Any],
    example: torch.Tensor | None = None,
    input_name: str = INPUT_NAME,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    output_names: list[str] | None = None,
) -> Path:
    """Export a module that already outputs probabilities, with ``card`` in its metadata.

    Defaults: digit images, ``(batch, 1, 28, 28)`` in, ``(batch, classes)`` out.
    """
    import onnx

    example = torch.zeros(2, 1, 28, 28) if example is None else example
    dynamic_axes = dynamic_axes or {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped,
                (example,),
                str(tmp),
                input_names=[input_name],
                output_names=output_names or [OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
                opset_version=18,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = CARD_KEY, json.dumps(card)
        proto.producer_name = "inkdigits"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))

    return atomic_write(path, write)


def torch_probabilities(
    model: nn.Module, images: np.ndarray, batch: int = 1000, outputs_probabilities: bool = False
) -> np.ndarray:
    """Probabilities (fp32, on the CPU) from a torch model for uint8 (N, 28, 28) images.

    The model gives logits unless ``outputs_probabilities`` (an ``Ensemble``, say).
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start : start + batch]).to(device).float().div_(255).unsqueeze(1)
            y = model(x).float()
            out.append((y if outputs_probabilities else torch.softmax(y, dim=1)).cpu().numpy())
    return np.concatenate(out)


def onnx_max_abs_diff(path: str | os.PathLike[str], images: np.ndarray, reference: np.ndarray) -> float:
    """Largest difference between the ONNX model's probabilities and ``reference``."""
    from .recognize import OnnxModel

    onnx_model = OnnxModel.load(path)
    return float(np.abs(onnx_model.probabilities_uint8(images) - reference).max())


def write_bundle(
    run: str | os.PathLike[str], out: str | os.PathLike[str], reproduce: str | None = None
) -> tuple[Path, Path]:
    """Export a run's checkpoint as ``OUT`` (ONNX) plus ``OUT``'s ``.card.json`` model card."""
    from .checkpoint import load_checkpoint
    from .fsutil import write_json_atomic

    model, meta, _ = load_checkpoint(run)
    card = {key: value for key, value in meta.items() if key != "format"}
    card["format"] = "inkdigits-model-card/1"
    if reproduce:
        card["reproduce"] = reproduce
    out = Path(out)
    onnx_path = export_onnx(model, out, card)
    card_path = write_json_atomic(out.with_suffix(".card.json"), card)
    return onnx_path, card_path


class ShiftTTA(nn.Module):
    """Average a model's probabilities over the image and its 1-pixel shifts.

    A shift by padding and cropping (not roll) keeps ink from wrapping around, and exports
    to plain ONNX Pad and Slice.
    """

    SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
        views = [padded[:, :, 1 + dy : 29 + dy, 1 + dx : 29 + dx] for dy, dx in self.SHIFTS]
        return torch.stack([torch.softmax(self.model(view), dim=1) for view in views]).mean(dim=0)


class Ensemble(nn.Module):
    """Mean of the members' probabilities (each optionally with shift TTA).

    Members may mix 10-output and 11-output ("not a digit") models: a 10-output member
    gives "not a digit" probability 0, so the mean still sums to 1.
    """

    def __init__(self, members: list[nn.Module], tta: bool = False, classes: list[int] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(ShiftTTA(m) if tta else WithSoftmax(m) for m in members)
        self.classes = classes or [10] * len(members)
        self.width = max(self.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [
            member(x) if size == self.width else torch.nn.functional.pad(member(x), (0, self.width - size))
            for member, size in zip(self.members, self.classes, strict=True)
        ]
        return torch.stack(outputs).mean(dim=0)


def export_ensemble(
    runs: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    tta: bool = False,
    reproduce: str | None = None,
    calibration_data: CalibrationData | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write ``OUT/model.onnx`` averaging the runs' models, and ``OUT/model.card.json``.

    With ``calibration_data`` (held-out validation images the members never trained on) the
    card also gets a fitted temperature and a reject threshold (see ``calibrate_on``).

    An ``OUT`` ending in ``.onnx`` is written as it is, with its card beside it as
    ``OUT``'s ``.card.json`` (the layout of the bundled model).

    The ensemble is scored once on the test set (through torch, then checked against the
    ONNX export), and the card names every member with its own metrics.
    """
    from .checkpoint import load_checkpoint
    from .evaluate import classification_metrics
    from .fsutil import write_json_atomic

    members, cards, metas = [], [], []
    for run in runs:
        model, meta, _ = load_checkpoint(run)
        members.append(model)
        metas.append(meta)
        cards.append(
            {
                "run": str(run),
                "architecture": meta["architecture"],
                "seed": meta["recipe"]["seed"],
                "recipe": meta["recipe"],
                "training": meta.get("training"),
                "metrics": meta.get("metrics"),
                "training_seconds": meta.get("training_seconds"),
                **({"banks": meta["data"]["banks"]} if "banks" in meta.get("data", {}) else {}),
            }
        )
    classes = [meta.get("classes", 10) for meta in metas]
    ensemble = Ensemble(members, tta, classes).eval()
    probabilities = torch_probabilities(ensemble, test_images, outputs_probabilities=True)
    test = classification_metrics(probabilities, test_labels)
    card: dict[str, Any] = {
        "format": "inkdigits-model-card/1",
        "architecture": "ensemble",
        "summary": f"mean probability of {len(members)} models" + (" with 1-pixel shift TTA" if tta else ""),
        "classes": max(classes),
        "labels": [str(d) for d in range(10)] + (["not a digit"] if max(classes) > 10 else []),
        "tta": tta,
        "members": cards,
        "training_seconds": sum(c["training_seconds"] or 0 for c in cards),
        "data": {"mnist_sha256": metas[0].get("data", {}).get("mnist_sha256", {})},
        "metrics": {"test": {"accuracy": test["accuracy"], "loss": test["loss"], "n": test["n"]}},
        "versions": metas[0].get("versions"),
    }
    if reproduce:
        card["reproduce"] = reproduce
    if calibration_data is not None:
        card["calibration"] = calibrate_on(ensemble, calibration_data)
    out = Path(out)
    onnx_path = out if out.suffix == ".onnx" else out / "model.onnx"
    card_path = out.with_suffix(".card.json") if out.suffix == ".onnx" else out / "model.card.json"
    path = _export_probabilities(ensemble, onnx_path, card)
    card["onnx_max_abs_diff"] = onnx_max_abs_diff(path, test_images, probabilities)
    write_json_atomic(card_path, card)
    return path, card


def calibrate_on(model: nn.Module, data: CalibrationData) -> dict[str, Any]:
    """``calibrate`` with a torch model's probabilities."""
    return calibrate(lambda images: torch_probabilities(model, images, outputs_probabilities=True), data)
