"""Train the line reader: whole rows of digits and separators, CTC loss (the ``train`` extra).

    inkdigits train-reader --data-dir ../shared/data/mnist --out runs/reader

Rows are written from MNIST *training* digits (the last 5,000 held out for the validation
rows) and handwriting fonts the benchmarks do not use, with separators and every spacing
from overlapping to wide; half are photographed, and their row is found and cropped by
the page reader itself (``segment.find_rows``), artefacts and all. The run folder gets
``reader.safetensors`` + ``reader.json`` (each epoch, atomically), and ``reader.onnx`` with
its card at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoint import read_meta, save_checkpoint
from .cli import add_reader_arguments
from .data import load_mnist
from .errors import InkdigitsError, ModelError
from .export import export_line_reader, export_line_readers
from .fsutil import write_json_atomic
from .lines import (
    ALPHABET,
    CHARACTERS,
    FRAME,
    MAX_WIDTH,
    WORD,
    agreed_reading,
    encode,
    greedy_decode,
    line_input,
    pad_batch,
)
from .models import READER_SIZES, LineReader
from .progress import Progress
from .synth import (
    CROSSED_SEVENS,
    FLAGGED_ONES,
    FONT_ROOT,
    READER_FONT_PACKAGES,
    TRAINING_FONT_PACKAGES,
    missing_reader_fonts,
    number_line,
    reader_fonts,
    training_fonts,
)
from .train import git_commit, physical_cores, versions

VALIDATION_DIGITS = 5000
STRETCHED, STRETCH = 0.5, math.log(1.25)  # share of training rows stretched, and how far (log)
PHOTOGRAPHED = 0.5  # every row a user gives is photographed or scanned and found by find_rows
STEM = "reader"


def _digit_pools(images: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    return [images[labels == d] for d in range(10)]


def _make_rows(job: tuple[np.ndarray, np.ndarray, int, int, float]) -> list[tuple[np.ndarray, str]]:
    images, labels, count, seed, words = job
    rng = np.random.default_rng(seed)
    pools, fonts = _digit_pools(images, labels), reader_fonts()
    word_fonts = training_fonts() + fonts  # printed and handwritten; none a benchmark's
    rows: list[tuple[np.ndarray, str]] = []
    while len(rows) < count:
        made = number_line(pools, fonts, rng, rng.random() < PHOTOGRAPHED, words, word_fonts)
        if made is not None:
            image = line_input(made[0]).image
            rows.append(((image * 255).round().astype(np.uint8), made[1]))
    return rows


def make_rows(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int, workers: int, label: str, words: float = 0.0
) -> list[tuple[np.ndarray, str]]:
    """``count`` rows in chunks over ``workers`` processes; the same seed gives the same rows.
    ``words``: the share of rows with words beside the number (for the word finder)."""
    chunk = 500
    jobs = [
        (images, labels, min(chunk, count - start), seed * 100_003 + start, words) for start in range(0, count, chunk)
    ]
    rows: list[tuple[np.ndarray, str]] = []
    with Progress(count, label, unit="row") as bar, multiprocessing.get_context("spawn").Pool(workers) as pool:
        for made in pool.imap(_make_rows, jobs):
            rows += made
            bar.update(len(made))
    return rows


def batches(rows: list[tuple[np.ndarray, str]], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Batches of rows of similar width (little padding), in random order."""
    order = sorted(range(len(rows)), key=lambda i: rows[i][0].shape[1] + rng.uniform(0, 8))
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


def stretched(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A row made wider or narrower by up to a quarter, half of the time: people space and
    shape digits more or less widely than any set of rows, and the readers are sensitive to
    it (reading each row also stretched at test time moved the benchmark by about a point,
    up on one seed and down on another)."""
    if rng.random() < 1 - STRETCHED:
        return image
    width = round(image.shape[1] * math.exp(rng.uniform(-STRETCH, STRETCH)))
    return cv2.resize(image, (min(MAX_WIDTH, max(FRAME, width)), image.shape[0]), interpolation=cv2.INTER_AREA)


def to_tensors(
    rows: list[tuple[np.ndarray, str]], picks: list[int], rng: np.random.Generator | None = None
) -> tuple[torch.Tensor, ...]:
    """A batch: padded images, steps per row, targets; ``rng`` stretches rows (training)."""
    chosen = [rows[i][0] if rng is None else stretched(rows[i][0], rng) for i in picks]
    images = pad_batch([image.astype(np.float32) / 255 for image in chosen])
    steps = torch.tensor([math.ceil(image.shape[1] / FRAME) for image in chosen], dtype=torch.long)
    targets = [encode(rows[i][1]) for i in picks]
    return (
        torch.from_numpy(images),
        steps,
        torch.tensor([c for t in targets for c in t], dtype=torch.long),
        torch.tensor([len(t) for t in targets], dtype=torch.long),
    )


def exact_rate(models: nn.Module | list[nn.Module], rows: list[tuple[np.ndarray, str]], batch: int = 64) -> float:
    """Share of rows read exactly (digits and separators): CTC's best path, and with several
    readers the reading they agree on (``lines.agreed_reading``), as at runtime."""
    members = models if isinstance(models, list) else [models]
    modes = [m.training for m in members]
    for member in members:
        member.eval()
    right = 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            picks = list(range(start, min(len(rows), start + batch)))
            images, steps, _, _ = to_tensors(rows, picks)
            outputs = [m(images).softmax(-1).numpy() for m in members]
            for k, i in enumerate(picks):
                readings = [output[k, : int(steps[k])] for output in outputs]
                chosen = readings[agreed_reading(readings)]
                right += "".join(e.char for e in greedy_decode(chosen)) == rows[i][1]
    for member, mode in zip(members, modes, strict=True):
        member.train(mode)
    return right / max(1, len(rows))


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    names = ("size", "rows", "val_rows", "epochs", "batch_size", "lr", "seed", "words")
    settings = {k: getattr(args, k) for k in names}
    if args.init:
        settings |= {"init": str(args.init), "member": args.member, "norms": "frozen"}
    return settings | {
        "photographed_share": PHOTOGRAPHED,
        "stretched_share": STRETCHED,
        "stretch_range": [round(math.exp(-STRETCH), 3), round(math.exp(STRETCH), 3)],
        "flagged_ones_share": FLAGGED_ONES,
        "crossed_sevens_share": CROSSED_SEVENS,
        "digit_fonts": sorted(str(p.relative_to(FONT_ROOT)) for p in reader_fonts()),
        "validation_digits": VALIDATION_DIGITS,
    }


def _warn_missing_fonts() -> None:
    missing = missing_reader_fonts()
    if missing:
        print(
            f"warning: {len(missing)} font files or families the rows are written in are not installed "
            f"({', '.join(missing)}), so the rows, and the reader, differ from the bundled readers'; "
            f"apt-get install {TRAINING_FONT_PACKAGES} {READER_FONT_PACKAGES}",
            file=sys.stderr,
        )


def _step(
    model: nn.Module, optimizer: torch.optim.Optimizer, ctc: nn.CTCLoss, batch: tuple[torch.Tensor, ...]
) -> float:
    images, steps, targets, lengths = batch
    log_probs = model(images).log_softmax(-1).transpose(0, 1)  # T, N, C as CTCLoss wants
    loss = ctc(log_probs, targets, steps, lengths)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inkdigits.train_lines", description=__doc__.splitlines()[0])
    add_reader_arguments(parser)
    try:
        return train_reader(parser.parse_args(argv))
    except InkdigitsError as exc:
        print(f"inkdigits: {exc}", file=sys.stderr)
        return exc.exit_code


def train_reader(args: argparse.Namespace) -> int:
    """Make the rows, train, export; returns the exit code."""
    commit = git_commit()  # the code that makes the rows, not whatever is checked out at the end
    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    data = load_mnist(args.data_dir)
    split = len(data.train_images) - VALIDATION_DIGITS
    words = args.words
    alphabet = CHARACTERS if words else ALPHABET
    model = initial_reader(args, len(alphabet) + 1)  # and CTC's blank; a bad --init fails before the rows
    _warn_missing_fonts()
    train_rows = make_rows(
        data.train_images[:split], data.train_labels[:split], args.rows, args.seed, threads, "training rows", words
    )
    val_rows = make_rows(
        data.train_images[split:],
        data.train_labels[split:],
        args.val_rows,
        args.seed + 1,
        threads,
        "validation rows",
        words,
    )
    before = exact_rate(model, val_rows) if args.init else None
    if before is not None:
        print(f"before fine-tuning: validation rows read exactly {before:.2%}")
    model.train()
    model.bf16_features = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train_rows) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        epoch_start, total = time.perf_counter(), 0.0
        if args.init:
            _freeze_norms(model)
        with Progress(len(train_rows), f"epoch {epoch}/{args.epochs}", unit="row") as bar:
            for picks in batches(train_rows, args.batch_size, rng):
                loss = _step(model, optimizer, ctc, to_tensors(train_rows, picks, rng))
                schedule.step()
                total += loss * len(picks)
                bar.update(len(picks), loss=loss)
        val_exact = exact_rate(model, val_rows)
        history.append({"epoch": epoch, "loss": total / len(train_rows), "val_exact": val_exact,
                        "seconds": time.perf_counter() - epoch_start})  # fmt: skip
        print(f"epoch {epoch}: loss {history[-1]['loss']:.4f}, validation rows read exactly {val_exact:.2%}")
        meta = {
            "architecture": "line-reader",
            "alphabet": alphabet,
            "history": history,
            "recipe": _recipe(args),
            "git_commit": commit,
        }
        save_checkpoint(out, model, meta, stem=STEM)
    card = {
        "architecture": "line-reader",
        "task": "read a row of handwritten digits and separators (CTC)"
        + (f", and the letters of words beside them as {WORD!r}" if words else ""),
        "alphabet": alphabet,
        "recipe": _recipe(args),
        "data": {"sha256": data.digests},
        "metrics": {"validation_rows_exact": history[-1]["val_exact"], "validation_rows": len(val_rows)}
        | ({"validation_rows_exact_before": before} if before is not None else {}),
        "training_seconds": round(time.perf_counter() - started, 1),
        "reproduce": "inkdigits train-reader --data-dir DATA --out runs/reader"
        + (f" --words {words}" if words else ""),
        "versions": versions() | {"inkdigits": __version__},
    }
    export_line_reader(model.eval(), out / f"{STEM}.onnx", card)
    print(f"validation rows read exactly: {history[-1]['val_exact']:.2%}; wrote {out / (STEM + '.onnx')}")
    return 0


def load_reader(run: str | Path) -> tuple[LineReader, dict[str, Any]]:
    """A line reader's checkpoint (``reader.safetensors`` + ``reader.json``) as a model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_meta(run, stem=STEM)
    path = Path(run) / f"{STEM}.safetensors"
    try:
        state = {k.removeprefix("model."): v for k, v in load_file(str(path)).items() if k.startswith("model.")}
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise ModelError(f"{path} is missing or damaged ({exc}).") from exc
    head = state.get("head.weight")
    if head is None:
        raise ModelError(f"{path} holds no line reader's weights.")
    # Runs from before there were sizes name none: the head's width tells which they are.
    size = meta.get("recipe", {}).get("size") or next(
        (name for name, (_, hidden, _) in READER_SIZES.items() if head.shape[1] == 2 * hidden), "large"
    )
    model = LineReader(len(meta.get("alphabet", ALPHABET)) + 1, size)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit a {size} line reader.") from exc
    return model.eval(), meta


def reader_from_onnx(path: str | Path, member: int = 0) -> LineReader:
    """A reader exported to ONNX (one file may hold several: ``member`` picks one) as a torch
    model to fine-tune. The export folded each batch norm into its convolution, so the norms
    come back as plain per-channel shifts (mean 0, variance 1); keep them in eval mode."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises several kinds for a file that is not a model
        raise ModelError(f"{path} is not an ONNX model ({exc}).") from exc
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    lstms = [n for n in graph.node if n.op_type == "LSTM"]
    heads = [n for n in graph.node if n.op_type == "MatMul"]
    count = len(heads)
    if not count or len(convs) % count or len(lstms) % count or not 0 <= member < count:
        raise ModelError(f"{path} holds {count} line readers; there is no member {member}.")
    per, layers = len(convs) // count, len(lstms) // count
    convs = convs[member * per : (member + 1) * per]
    lstms = lstms[member * layers : (member + 1) * layers]
    head = weights[heads[member].input[1]]
    hidden = head.shape[0] // 2
    size = next((name for name, (_, h, n) in READER_SIZES.items() if (h, n) == (hidden, layers)), None)
    if size is None or len(READER_SIZES[size][0]) != per:
        raise ModelError(f"{path} holds readers of no size this version knows.")
    model = LineReader(head.shape[1], size)
    conv_layers = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for node, conv, norm in zip(convs, conv_layers, norms, strict=True):
            conv.weight.copy_(weights[node.input[1]])
            norm.weight.fill_(1.0)
            norm.bias.copy_(weights[node.input[2]])
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)  # so that it divides by exactly 1
        for layer, node in enumerate(lstms):
            _load_lstm(model.rnn, layer, node, weights)
        model.head.weight.copy_(head.T)
        bias = next(n for n in graph.node if n.op_type == "Add" and heads[member].output[0] in n.input)
        model.head.bias.copy_(weights[next(i for i in bias.input if i in weights)])
    return model.eval()


def _load_lstm(rnn: nn.LSTM, layer: int, node: Any, weights: dict[str, torch.Tensor]) -> None:
    """ONNX keeps an LSTM's gates in the order input, output, forget, cell; torch in the order
    input, forget, cell, output; and one bias row per direction for both products."""
    w, r, b = (weights[name] for name in node.input[1:4])
    hidden = r.shape[-1]
    order = torch.cat([torch.arange(k * hidden, (k + 1) * hidden) for k in (0, 2, 3, 1)])
    for direction, suffix in enumerate(("", "_reverse")):
        getattr(rnn, f"weight_ih_l{layer}{suffix}").copy_(w[direction][order])
        getattr(rnn, f"weight_hh_l{layer}{suffix}").copy_(r[direction][order])
        getattr(rnn, f"bias_ih_l{layer}{suffix}").copy_(b[direction][: 4 * hidden][order])
        getattr(rnn, f"bias_hh_l{layer}{suffix}").copy_(b[direction][4 * hidden :][order])


def initial_reader(args: argparse.Namespace, classes: int) -> LineReader:
    """A fresh reader, or with ``--init`` the weights to fine-tune."""
    if not args.init:
        return LineReader(classes, args.size)
    model, _ = _reader_at(str(args.init), args.member)
    if model.head.out_features != classes:
        raise ModelError(f"{args.init} reads {model.head.out_features - 1} characters; this run needs {classes - 1}.")
    return model


def _freeze_norms(model: nn.Module) -> None:
    """Fine-tuning keeps the batch norms' statistics (a folded reader has none to update)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def _ensemble_member(source: str) -> tuple[LineReader, dict[str, Any]]:
    """A run folder's reader, or ``FILE.onnx:K``: member K of an exported reader file, with
    what its card says of it (the run it came from, its recipe and commit)."""
    path, _, member = source.rpartition(":")
    if not (member.isdigit() and path.endswith(".onnx")):
        path, member = source, "0"
    return _reader_at(path, int(member))


def _reader_at(path: str, index: int) -> tuple[LineReader, dict[str, Any]]:
    """A run folder's reader, or member ``index`` of an exported reader file with what its
    card says of it."""
    if not path.endswith(".onnx"):
        return load_reader(path)
    model = reader_from_onnx(path, index)
    card_path = Path(path).with_suffix(".card.json")
    try:
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path} is not a readable model card ({exc}).") from exc
    described = card.get("members") or [card]
    meta = described[index] if index < len(described) else {}
    return model, {k: meta[k] for k in ("run", "recipe", "git_commit") if k in meta}


def ensemble_readers(args: argparse.Namespace) -> int:
    """``inkdigits ensemble-readers``: several reader runs as one ONNX file with its card."""
    members = [_ensemble_member(run) for run in args.runs]
    data = load_mnist(args.data_dir)
    recipes = [meta.get("recipe", {}) for _, meta in members]
    seed, count = recipes[0].get("seed", 0), recipes[0].get("val_rows", 1000)
    split = len(data.train_images) - VALIDATION_DIGITS
    val_rows = make_rows(
        data.train_images[split:], data.train_labels[split:], count, seed + 1, physical_cores(), "validation rows"
    )
    each = [exact_rate(model, val_rows) for model, _ in members]
    together = exact_rate([model for model, _ in members], val_rows)
    card = {
        "architecture": "line-reader ensemble",
        "task": "read a row of handwritten digits and separators (CTC); the members' readings are "
        "weighed by their CTC likelihood under every member",
        "alphabet": ALPHABET,
        "members": [
            {"run": meta.get("run", str(run)), "recipe": recipe, "validation_rows_exact": rate}
            | {"git_commit": meta.get("git_commit")}
            | ({"taken_from": str(run)} if "run" in meta else {})
            for run, recipe, rate, (_, meta) in zip(args.runs, recipes, each, members, strict=True)
        ],
        "data": {"sha256": data.digests},
        "metrics": {"validation_rows_exact": together, "validation_rows": len(val_rows)},
        "versions": versions() | {"inkdigits": __version__},
    }
    if args.reproduce:
        card["reproduce"] = args.reproduce
    out = Path(args.out)
    export_line_readers([model for model, _ in members], out, card)
    write_json_atomic(out.with_suffix(".card.json"), card)
    for run, rate in zip(args.runs, each, strict=True):
        print(f"member {run}: validation rows read exactly {rate:.2%}")
    print(f"together: {together:.2%} of {len(val_rows)} validation rows; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
