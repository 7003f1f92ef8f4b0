"""Checkpoints: weights as safetensors, everything else as JSON, both written atomically.

safetensors holds only tensors, so loading a checkpoint can never run code (unlike pickle
and ``torch.load``). The JSON beside it says how to rebuild the network around them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ModelError
from .fsutil import atomic_write, write_json_atomic
from .models import build_model

WEIGHTS = "model.safetensors"
META = "model.json"
FORMAT = "inkdigits-checkpoint/1"


def save_checkpoint(
    folder: str | os.PathLike[str],
    model: nn.Module,
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
    stem: str = "model",
) -> Path:
    """Write ``STEM.safetensors`` then ``STEM.json``; the JSON last, so it never points at missing weights."""
    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for key, value in (extra or {}).items():
        tensors[key] = value.detach().contiguous().cpu()
    atomic_write(folder / f"{stem}.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    write_json_atomic(folder / f"{stem}.json", {"format": FORMAT, **meta})
    return folder / f"{stem}.json"


def read_meta(folder: str | os.PathLike[str], stem: str = "model") -> dict[str, Any]:
    path = Path(folder) / f"{stem}.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path} does not exist: is {folder} a training run folder?") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable checkpoint description ({exc}).") from exc
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not an inkdigits checkpoint.")
    return meta


def load_checkpoint(
    folder: str | os.PathLike[str], stem: str = "model"
) -> tuple[nn.Module, dict[str, Any], dict[str, torch.Tensor]]:
    """Rebuild the network from ``STEM.json`` and fill it from ``STEM.safetensors``.

    Returns the model (in eval mode), its metadata, and any extra tensors saved with it
    (optimizer state, for resuming).
    """
    meta = read_meta(folder, stem)
    path = Path(folder) / f"{stem}.safetensors"
    try:
        tensors = load_file(str(path))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise ModelError(f"{path} is missing or damaged ({exc}).") from exc
    model = build_model(meta["architecture"], meta.get("normalization", "scale01"), meta.get("classes", 10))
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit the {meta['architecture']} architecture.") from exc
    extra = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return model.eval(), meta, extra
