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

from .fsutil import atomic_write

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
CARD_KEY = "inkdigits.card"


class WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def export_onnx(model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write ``model`` (logits) as an ONNX graph from images to probabilities, atomically."""
    import onnx

    wrapped = WithSoftmax(model).eval()
    example = torch.zeros(2, 1, 28, 28)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped,
                (example,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
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


def torch_probabilities(model: nn.Module, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Probabilities from the torch model for uint8 (N, 28, 28) images."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start : start + batch]).float().div_(255).unsqueeze(1)
            out.append(torch.softmax(model(x), dim=1).numpy())
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
