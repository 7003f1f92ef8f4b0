"""Train a registered model on MNIST and leave a complete run folder behind.

A run folder holds ``model.safetensors`` + ``model.json`` (the checkpoint, written atomically
after every epoch), ``model.onnx`` (what the recognizer runs), ``history.json`` and
``curves.png``. The test set is evaluated exactly once, at the end.

The whole dataset lives in memory as one uint8 tensor; a batch is an index into it, so the
loop runs no per-image Python.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .checkpoint import save_checkpoint
from .data import Mnist
from .evaluate import classification_metrics
from .export import export_onnx, onnx_max_abs_diff, torch_probabilities
from .fsutil import write_json_atomic
from .models import MODELS, Recipe, build_model
from .progress import Progress


@dataclass
class TrainConfig:
    model: str = "mlp"
    epochs: int | None = None  # None: the model's recipe
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    val: int = 5000
    normalization: str = "scale01"
    augment: bool | None = None
    limit: int | None = None  # train on the first N training images only (quick runs, tests)
    threads: int | None = None

    def recipe(self) -> Recipe:
        base = MODELS[self.model].recipe
        overrides = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "augment": self.augment,
        }
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def physical_cores() -> int:
    """Cores, not hyper-threads: two threads on one core slow a matrix multiply down."""
    logical = os.cpu_count() or 1
    try:
        blocks = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split("\n\n")
    except OSError:
        return logical
    cores = set()
    for block in blocks:
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id"), fields["core id"]))
    return max(1, min(len(cores) or logical, logical))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    import onnx

    return {
        "inkdigits": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
    }


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate, scale, shear and shift a batch in one resampling step.

    Real handwriting varies in slant, size and placement far more than MNIST's normalized
    digits; one affine grid per batch makes that variety cheap.
    """
    n = x.shape[0]
    rand = torch.rand(n, 5, generator=generator) * 2 - 1
    angle = rand[:, 0] * math.radians(12)
    scale = 1 + rand[:, 1] * 0.12
    shear = rand[:, 2] * 0.2
    shift = rand[:, 3:5] * (2.5 / 14)  # up to 2.5 pixels, in grid units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear * cos, shift[:, 0]], dim=1),
            torch.stack([sin, cos + shear * sin, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    # Keras's Adam defaults; its epsilon is 1e-7 where torch's is 1e-8.
    return torch.optim.Adam(model.parameters(), lr=recipe.lr, eps=1e-7, weight_decay=recipe.weight_decay)


def to_batch(images: torch.Tensor) -> torch.Tensor:
    return images.unsqueeze(1).float().div_(255.0)


def evaluate_torch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 2000) -> dict[str, float]:
    """Mean loss and accuracy, batched, without gradients."""
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            logits = model(to_batch(images[start : start + batch]))
            target = labels[start : start + batch]
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    return {"loss": total_loss / len(images), "accuracy": correct / len(images)}


@dataclass
class RunResult:
    folder: Path
    meta: dict[str, Any]
    model: nn.Module


def train(config: TrainConfig, data: Mnist, out: str | os.PathLike[str], progress: bool = True) -> RunResult:
    """Train, checkpoint each epoch, test once, export ONNX; return the run's metadata."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose from {', '.join(MODELS)}")
    recipe = config.recipe()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads or physical_cores())
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    train_x = torch.from_numpy(data.train_images)
    train_y = torch.from_numpy(data.train_labels.astype(np.int64))
    if config.val:
        val_x, val_y = train_x[-config.val :], train_y[-config.val :]
        train_x, train_y = train_x[: -config.val], train_y[: -config.val]
    if config.limit:
        train_x, train_y = train_x[: config.limit], train_y[: config.limit]

    model = build_model(config.model, config.normalization)
    optimizer = make_optimizer(model, recipe)
    steps_per_epoch = math.ceil(len(train_x) / recipe.batch_size)
    scheduler = None
    if recipe.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.25
        )

    history: list[dict[str, float]] = []
    meta: dict[str, Any] = {
        "architecture": config.model,
        "summary": MODELS[config.model].summary,
        "normalization": config.normalization,
        "input": {"shape": [None, 1, 28, 28], "dtype": "float32", "range": [0, 1], "ink": "white on black"},
        "recipe": {**asdict(recipe), "seed": config.seed, "val": config.val, "limit": config.limit},
        "data": {"mnist_sha256": data.digests, "train_images": len(train_x), "val_images": config.val},
        "versions": versions(),
        "git_commit": git_commit(),
        "threads": torch.get_num_threads(),
    }
    started = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        seen = 0
        with Progress(
            len(train_x), f"epoch {epoch}/{recipe.epochs}", unit="img", enabled=None if progress else False
        ) as bar:
            for step, start in enumerate(range(0, len(train_x), recipe.batch_size)):
                index = order[start : start + recipe.batch_size]
                x, y = to_batch(train_x[index]), train_y[index]
                if recipe.augment:
                    x = random_affine(x, generator)
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                # Accumulate on the tensor side; reading a float every step would sync.
                loss_sum += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                if step % 50 == 0:
                    bar.set_figures(loss=float(loss_sum) / seen, acc=int(correct) / seen)
                bar.update(len(y))
        row: dict[str, float] = {
            "epoch": epoch,
            "loss": float(loss_sum) / seen,
            "accuracy": int(correct) / seen,
            "seconds": time.perf_counter() - epoch_start,
        }
        if config.val:
            val = evaluate_torch(model, val_x, val_y)
            row["val_loss"], row["val_accuracy"] = val["loss"], val["accuracy"]
        history.append(row)
        meta["history"] = history
        meta["epochs_done"] = epoch
        save_checkpoint(folder, model, meta)
        if progress:
            figures = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
            print(f"epoch {epoch}: {figures} ({row['seconds']:.1f} s)", flush=True)

    meta["training_seconds"] = round(time.perf_counter() - started, 2)
    probabilities = torch_probabilities(model, data.test_images)
    test = classification_metrics(probabilities, data.test_labels)
    meta["metrics"] = {
        "test": {"accuracy": test["accuracy"], "loss": test["loss"], "n": test["n"]},
        **({"val": {"accuracy": history[-1]["val_accuracy"], "loss": history[-1]["val_loss"]}} if config.val else {}),
    }
    save_checkpoint(folder, model, meta)
    export_onnx(model, folder / "model.onnx", meta)
    meta["onnx_max_abs_diff"] = onnx_max_abs_diff(folder / "model.onnx", data.test_images, probabilities)
    save_checkpoint(folder, model, meta)
    write_json_atomic(folder / "history.json", history)
    _plot_curves(history, folder / "curves.png")
    return RunResult(folder, meta, model)


def _plot_curves(history: list[dict[str, float]], path: Path) -> None:
    from .plots import plot_training_curves

    plot_training_curves(history, path)
