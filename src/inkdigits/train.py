"""Train a registered model on MNIST and leave a complete run folder behind.

A run folder holds ``model.safetensors`` + ``model.json`` (the checkpoint, written atomically
after every epoch, with everything needed to resume), ``model.onnx`` (what the recognizer
runs), ``history.json`` and ``curves.png``. The test set is evaluated exactly once, at the end.

Speed on a CPU: the whole dataset is one uint8 tensor in memory and a batch is an index into
it; augmentation runs on whole batches; convolutional models run channels_last under bf16
autocast where the CPU has bf16 units; progress figures are read every 50 steps only.

Randomness is derived from (seed, epoch, rank) at the start of every epoch, so a run resumed
after a kill replays exactly the epochs it had left, and distributed ranks never share a
stream. Distributed: ``torchrun --nproc-per-node N -m inkdigits.train --model cnn ...``
(gloo on CPU, nccl on GPU); rank 0 writes the run folder.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import __version__
from .augment import AugmentSettings, augment_batch, photo_degrade
from .checkpoint import load_checkpoint, read_meta, save_checkpoint
from .data import Mnist
from .evaluate import classification_metrics
from .export import export_onnx, onnx_max_abs_diff, torch_probabilities
from .fsutil import write_json_atomic
from .models import DIGITS, MODELS, NOT_A_DIGIT, Recipe, build_model
from .progress import Progress

EpochHook = Callable[[int, nn.Module, dict[str, float]], None]

# ``--handwriting``: a fifth of each batch photographed-and-preprocessed training digits, a
# fifth non-digits, and camera degradations on half of the batch, while most of each batch
# is still plain MNIST, whose accuracy must not fall. A first run with a tenth non-digits
# left too many held-out letters and scribbles confident. The banks come from the training
# split only.
# Three in ten training 1s get a flag and 7s a bar across the stem (``synth.european_digits``):
# a model that never saw them read more than half of MNIST's test 1s given a flag as 7s.
HANDWRITING = {"realistic": 0.2, "negatives": 0.2, "photo": True, "european": 0.3}
BANK_REALISTIC = 20_000
BANK_NEGATIVES = 24_000


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
    ema: float | None = None
    handwriting: bool = False  # realistic digits, non-digits (11th class), photo degradations
    precision: str = "auto"  # "auto" (bf16 where the recipe and CPU allow), "fp32", "bf16"
    limit: int | None = None  # train on the first N training images only (quick runs, tests)
    threads: int | None = None

    def recipe(self) -> Recipe:
        base = MODELS[self.model].recipe
        overrides = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "augment": self.augment,
            "ema": self.ema,
        }
        recipe = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        if self.handwriting:
            recipe = replace(recipe, **HANDWRITING)
        return recipe

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def physical_cores() -> int:
    """Cores, not hyper-threads: two threads on one core slow a matrix multiply down."""
    logical = os.cpu_count() or 1
    try:
        blocks = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split("\n\n")
    except OSError:
        return logical
    cores = set()
    for block in blocks:
        pairs = (line.split(":", 1) for line in block.splitlines() if ":" in line)
        info = {key.strip(): value.strip() for key, value in pairs}
        if "core id" in info:
            cores.add((info.get("physical id"), info["core id"]))
    return max(1, min(len(cores) or logical, logical))


def git_commit() -> str | None:
    """The checked-out commit, with "-dirty" where tracked files differ from it: a run's record
    must not name a commit whose code did not make it."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=here)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return commit + "-dirty" if git("status", "--porcelain", "--untracked-files=no") else commit


def versions() -> dict[str, str]:
    import onnx

    return {
        "inkdigits": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
    }


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the process group that torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(ddp: Distributed) -> torch.device:
    return torch.device("cuda", ddp.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def use_bf16(config: TrainConfig, recipe: Recipe, device: torch.device) -> bool:
    """bf16 autocast only where it pays: the recipe opts in and the hardware has bf16 units."""
    if config.precision == "fp32":
        return False
    if config.precision == "bf16":
        return True
    if device.type == "cuda":
        return recipe.fast_cpu and torch.cuda.is_bf16_supported()
    return recipe.fast_cpu and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    # Keras's Adam defaults; its epsilon is 1e-7 where torch's is 1e-8.
    return torch.optim.Adam(model.parameters(), lr=recipe.lr, eps=1e-7, weight_decay=recipe.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.25
        )
    return None


class Ema:
    """Exponential moving average of weights (and BatchNorm statistics), with a warm-up."""

    def __init__(self, model: nn.Module, decay: float, twin: nn.Module) -> None:
        self.decay = decay
        self.model = twin
        self.model.load_state_dict(model.state_dict())
        self.model.eval()
        self.updates = 0

    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            averaged = list(self.model.state_dict().values())
            current = list(model.state_dict().values())
            floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - decay)
            for a, c in zip(averaged, current, strict=True):
                if not a.is_floating_point():
                    a.copy_(c)


def to_batch(images: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    return images.unsqueeze(1).float().div_(255.0).contiguous(memory_format=memory_format)


def evaluate_torch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    memory_format: torch.memory_format = torch.contiguous_format,
    batch: int = 2000,
) -> dict[str, float]:
    """Mean loss and accuracy, batched, in fp32, without gradients."""
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            logits = model(to_batch(images[start : start + batch], memory_format)).float()
            target = labels[start : start + batch]
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    return {"loss": total_loss / len(images), "accuracy": correct / len(images)}


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return seed * 1_000_003 + epoch * 1009 + rank


# ---- resume state: tensors into safetensors, the rest into the JSON -------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors = {
        f"optim.{index}.{key}": value if torch.is_tensor(value) else torch.tensor(value)
        for index, entries in state["state"].items()
        for key, value in entries.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict[str, Any]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


@dataclass
class RunResult:
    folder: Path
    meta: dict[str, Any]
    model: nn.Module


class Trainer:
    """One training run: set up once, then ``fit`` (also after ``resume``)."""

    def __init__(self, config: TrainConfig, data: Mnist, out: str | os.PathLike[str], progress: bool = True) -> None:
        if config.model not in MODELS:
            raise ValueError(f"unknown model {config.model!r}; choose from {', '.join(MODELS)}")
        self.config, self.data, self.folder, self.progress = config, data, Path(out), progress
        self.recipe = config.recipe()
        self.ddp = init_distributed()
        self.device = pick_device(self.ddp)
        torch.set_num_threads(config.threads or max(1, physical_cores() // self.ddp.world))
        torch.manual_seed(config.seed)
        self.bf16 = use_bf16(config, self.recipe, self.device)
        self.memory_format = torch.channels_last if self.recipe.fast_cpu else torch.contiguous_format
        self.classes = DIGITS + 1 if self.recipe.negatives > 0 else DIGITS
        self._split()
        self._make_banks()

        self.model = self._new_model()
        self.ema = Ema(self.model, self.recipe.ema, self._new_model()) if self.recipe.ema > 0 else None
        self.net: nn.Module = self.model
        if self.ddp.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = make_optimizer(self.model, self.recipe)
        self.per_rank_batch = max(1, self.recipe.batch_size // self.ddp.world)
        self.steps_per_epoch = math.ceil(self.samples_per_rank / self.per_rank_batch)
        self.scheduler = make_scheduler(self.optimizer, self.recipe, self.steps_per_epoch)
        self.augment = AugmentSettings(elastic_pixels=self.recipe.elastic, thickness=self.recipe.thickness)
        self.history: list[dict[str, float]] = []
        self.start_epoch = 1
        self.train_seconds = 0.0
        self.meta = self._base_meta()

    def _new_model(self) -> nn.Module:
        model = build_model(self.config.model, self.config.normalization, self.classes)
        return model.to(self.device, memory_format=self.memory_format)

    def _split(self) -> None:
        train_x = torch.from_numpy(self.data.train_images)
        train_y = torch.from_numpy(self.data.train_labels.astype(np.int64))
        val = self.config.val
        if val:
            self.val_x, self.val_y = train_x[-val:].to(self.device), train_y[-val:].to(self.device)
            train_x, train_y = train_x[:-val], train_y[:-val]
        if self.config.limit:
            train_x, train_y = train_x[: self.config.limit], train_y[: self.config.limit]
        if self.recipe.european:
            from .synth import european_digits

            marked = european_digits(train_x.numpy(), train_y.numpy(), self.recipe.european)
            train_x = torch.from_numpy(marked)
        self.train_x, self.train_y = train_x.to(self.device), train_y.to(self.device)
        self.samples_per_rank = len(self.train_x) // self.ddp.world

    def _make_banks(self) -> None:
        """Photographed training digits and non-digits, made from the training split only."""
        self.real_x = self.real_y = self.neg_x = None
        self.bank_recipe: dict[str, Any] | None = None
        if not (self.recipe.realistic or self.recipe.negatives):
            return
        from .synth import TRAINING_FONT_PACKAGES, bank_recipe, cached_banks, missing_training_fonts

        missing = missing_training_fonts()
        if missing and self.ddp.main:
            print(
                f"warning: {len(missing)} training font files or families are not installed ({', '.join(missing)}), "
                f"so the non-digit letters, and the model, differ from the bundled model's; "
                f"apt-get install {TRAINING_FONT_PACKAGES}",
                file=sys.stderr,
            )
        self.bank_recipe = bank_recipe()
        images, labels = self.train_x.cpu().numpy(), self.train_y.cpu().numpy()
        share = min(1.0, len(images) / 55_000)
        banks = cached_banks(
            images,
            labels,
            max(100, int(BANK_REALISTIC * share)),
            max(100, int(BANK_NEGATIVES * share)),
            seed=0,
            progress=bool(self.progress and self.ddp.main),
        )
        self.real_x = torch.from_numpy(banks["real_x"]).to(self.device)
        self.real_y = torch.from_numpy(banks["real_y"]).to(self.device)
        self.neg_x = torch.from_numpy(banks["neg_x"]).to(self.device)

    def _mix_banks(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Overwrite the head of a batch with bank images, in place (the order is random anyway)."""
        n = len(y)
        real = round(self.recipe.realistic * n) if self.real_x is not None else 0
        negative = round(self.recipe.negatives * n) if self.neg_x is not None else 0
        if real:
            pick = torch.randint(0, len(self.real_x), (real,), generator=generator).to(self.device)
            x[:real] = to_batch(self.real_x[pick], self.memory_format)
            y[:real] = self.real_y[pick]
        if negative:
            pick = torch.randint(0, len(self.neg_x), (negative,), generator=generator).to(self.device)
            x[real : real + negative] = to_batch(self.neg_x[pick], self.memory_format)
            y[real : real + negative] = NOT_A_DIGIT

    def _base_meta(self) -> dict[str, Any]:
        return {
            "architecture": self.config.model,
            "summary": MODELS[self.config.model].summary,
            "classes": self.classes,
            "labels": [str(d) for d in range(DIGITS)] + (["not a digit"] if self.classes > DIGITS else []),
            "normalization": self.config.normalization,
            "input": {"shape": [None, 1, 28, 28], "dtype": "float32", "range": [0, 1], "ink": "white on black"},
            "recipe": {
                **asdict(self.recipe),
                "seed": self.config.seed,
                "val": self.config.val,
                "limit": self.config.limit,
            },
            "config": asdict(self.config),
            "data": {
                "mnist_sha256": self.data.digests,
                "train_images": len(self.train_x),
                "val_images": self.config.val,
                **({"banks": self.bank_recipe} if self.bank_recipe else {}),
            },
            "training": {
                "precision": "bf16 autocast" if self.bf16 else "fp32",
                "channels_last": self.memory_format == torch.channels_last,
                "threads": torch.get_num_threads(),
                "processes": self.ddp.world,
                "device": str(self.device),
                "cpu": platform.processor() or platform.machine(),
            },
            "versions": versions(),
            "git_commit": git_commit(),
        }

    @property
    def inference_model(self) -> nn.Module:
        return self.ema.model if self.ema else self.model

    # ---- resume ------------------------------------------------------------------------------

    def save_state(self, epoch: int) -> None:
        """Checkpoint everything a resumed run needs; inference weights go under ``model.``."""
        extra, groups = optimizer_tensors(self.optimizer)
        if self.ema:
            extra.update({f"live.{k}": v for k, v in self.model.state_dict().items()})
        self.meta["history"] = self.history
        self.meta["epochs_done"] = epoch
        self.meta["training_seconds"] = round(self.train_seconds, 2)
        self.meta["resume"] = {
            **groups,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "ema_updates": self.ema.updates if self.ema else 0,
        }
        save_checkpoint(self.folder, self.inference_model, self.meta, extra)

    def restore_state(self) -> None:
        saved_model, meta, extra = load_checkpoint(self.folder)
        resume = meta.get("resume") or {}
        live = {k.removeprefix("live."): v for k, v in extra.items() if k.startswith("live.")}
        self.model.load_state_dict(live or saved_model.state_dict())
        if self.ema:
            self.ema.model.load_state_dict(saved_model.state_dict())
            self.ema.updates = resume.get("ema_updates", 0)
        restore_optimizer(self.optimizer, extra, resume)
        if self.scheduler and resume.get("scheduler"):
            self.scheduler.load_state_dict(resume["scheduler"])
        self.history = meta.get("history", [])
        self.start_epoch = meta.get("epochs_done", 0) + 1
        self.train_seconds = meta.get("training_seconds", 0.0)

    # ---- the loop ----------------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.net.train()
        torch.manual_seed(epoch_seed(self.config.seed, epoch, self.ddp.rank))  # dropout
        shuffle = torch.Generator().manual_seed(epoch_seed(self.config.seed, epoch))  # same on every rank
        augment_rng = torch.Generator().manual_seed(epoch_seed(self.config.seed, epoch, 7919 + self.ddp.rank))
        order = torch.randperm(len(self.train_x), generator=shuffle)
        order = order[self.ddp.rank : self.samples_per_rank * self.ddp.world : self.ddp.world].to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        enabled = None if (self.progress and self.ddp.main) else False
        with Progress(len(order), f"epoch {epoch}/{self.recipe.epochs}", unit="img", enabled=enabled) as bar:
            for step, start in enumerate(range(0, len(order), self.per_rank_batch)):
                index = order[start : start + self.per_rank_batch]
                x, y = to_batch(self.train_x[index], self.memory_format), self.train_y[index]
                if self.real_x is not None:
                    self._mix_banks(x, y, augment_rng)
                if self.recipe.augment:
                    x = augment_batch(x, self.augment, augment_rng).contiguous(memory_format=self.memory_format)
                if self.recipe.photo:
                    x = photo_degrade(x, 0.5, augment_rng).contiguous(memory_format=self.memory_format)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    logits = self.net(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=self.recipe.label_smoothing)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                if self.ema:
                    self.ema.update(self.model)
                # Accumulate on the tensor side; reading a float every step would sync.
                loss_sum += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                if step % 50 == 0 and enabled is not False:
                    bar.set_figures(loss=float(loss_sum) / seen, acc=int(correct) / seen)
                bar.update(len(y))
        return {"epoch": epoch, "loss": float(loss_sum) / seen, "accuracy": int(correct) / seen}

    def fit(self, on_epoch_end: EpochHook | None = None) -> RunResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.start_epoch, self.recipe.epochs + 1):
            started = time.perf_counter()
            row = self.train_epoch(epoch)
            row["seconds"] = time.perf_counter() - started
            self.train_seconds += row["seconds"]
            if self.ddp.main:
                if self.config.val:
                    val = evaluate_torch(self.inference_model, self.val_x, self.val_y, self.memory_format)
                    row["val_loss"], row["val_accuracy"] = val["loss"], val["accuracy"]
                self.history.append(row)
                self.save_state(epoch)
                if on_epoch_end:
                    on_epoch_end(epoch, self.inference_model, row)
                if self.progress:
                    figures = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
                    print(f"epoch {epoch}: {figures} ({row['seconds']:.1f} s)", flush=True)
            if self.ddp.world > 1:
                dist.barrier()
        if self.ddp.main:
            self.finish()
        if self.ddp.world > 1:
            dist.barrier()
        return RunResult(self.folder, self.meta, self.inference_model)

    def finish(self) -> None:
        """Score the test set once, then write the final checkpoint, ONNX, history and curves."""
        model = self.inference_model.eval()
        self.meta["training_seconds"] = round(self.train_seconds, 2)
        probabilities = torch_probabilities(model, self.data.test_images)
        test = classification_metrics(probabilities, self.data.test_labels)
        metrics: dict[str, Any] = {"test": {"accuracy": test["accuracy"], "loss": test["loss"], "n": test["n"]}}
        if self.config.val and self.history:
            metrics["val"] = {"accuracy": self.history[-1]["val_accuracy"], "loss": self.history[-1]["val_loss"]}
        self.meta["metrics"] = metrics
        export_model = build_model(self.config.model, self.config.normalization, self.classes)
        export_model.load_state_dict(model.state_dict())
        export_onnx(export_model.eval(), self.folder / "model.onnx", self.meta)
        self.meta["onnx_max_abs_diff"] = onnx_max_abs_diff(
            self.folder / "model.onnx", self.data.test_images, probabilities
        )
        self.save_state(self.recipe.epochs)
        write_json_atomic(self.folder / "history.json", self.history)
        from .plots import plot_training_curves

        plot_training_curves(self.history, self.folder / "curves.png")


def train(
    config: TrainConfig,
    data: Mnist,
    out: str | os.PathLike[str],
    progress: bool = True,
    on_epoch_end: EpochHook | None = None,
) -> RunResult:
    """Train, checkpoint each epoch, test once, export ONNX; return the run's metadata."""
    return Trainer(config, data, out, progress).fit(on_epoch_end)


def resume(run: str | os.PathLike[str], data: Mnist, progress: bool = True) -> RunResult:
    """Continue an interrupted run from its last checkpoint, with its own configuration."""
    meta = read_meta(run)
    if "config" not in meta:
        raise ValueError(f"{run} holds no resumable state")
    trainer = Trainer(TrainConfig.from_dict(meta["config"]), data, run, progress)
    trainer.restore_state()
    return trainer.fit()


def main(argv: list[str] | None = None) -> int:
    """``python -m inkdigits.train`` (and torchrun) take the same flags as ``inkdigits train``."""
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
