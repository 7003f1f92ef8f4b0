"""The ``inkdigits`` command. Each subcommand parses its flags and calls the Python API.

Exit codes: 0 ok; 1 no digit found, or a check failed; 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InkdigitsError, NoDigitError
from .images import DEFAULT_MAX_PIXELS

EXIT_OK, EXIT_NOT_FOUND, EXIT_BAD_INPUT = 0, 1, 2

DESCRIPTION = """\
Read handwritten digits from images, and train, evaluate and export the models that do it.

common tasks:
  inkdigits predict examples/*.png          read one digit per image with the bundled model
  inkdigits predict photo.jpg --save-plot p.png   ...and draw what the model saw
  inkdigits data                            where MNIST is and whether it verifies
  inkdigits train --model mlp --out runs/mlp      the classic 3-epoch baseline
  inkdigits evaluate runs/mlp               accuracy, per-class scores, confusion matrix
"""


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the MNIST IDX files (.gz or raw); default: $INKDIGITS_DATA, then "
        "~/.cache/inkdigits/mnist, else download",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inkdigits", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"inkdigits {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="read one handwritten digit from each image",
        description="Read one handwritten digit from each image (PNG, JPEG, BMP, TIFF, WebP). "
        "Dark ink on paper and light ink on a dark board both work; the digit is found, "
        "cropped and framed like MNIST before the model sees it. Exit code 0 when every image "
        "was read, 1 when some held no digit (blank, or declined as not a digit), 2 when some "
        "could not be read.",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files to read")
    predict.add_argument("--model", metavar="PATH", help="ONNX model or training run folder (default: bundled)")
    predict.add_argument("--top", type=int, default=1, metavar="K", help="also show the K most likely digits")
    predict.add_argument("--json", action="store_true", help="print JSON Lines, one object per image, in order")
    _add_plot_flags(predict, "the input, every preprocessing stage, the 28x28 the model saw and the probabilities")
    predict.add_argument(
        "--threshold",
        type=_probability,
        metavar="P",
        help="least calibrated confidence to report a digit, 0..1 (default: the one in the model's "
        "card, chosen on validation data; else 0.5); below it the answer is declined, with a reason",
    )
    _add_max_pixels(predict)
    predict.set_defaults(handler=cmd_predict)

    read = commands.add_parser(
        "read",
        help="read whole numbers (several digits, one or more rows) from images",
        description="Find every handwritten number in each image: rows top to bottom, digits left "
        "to right, separators (. , - /) and spaces kept in text_full. Paper texture, ruled lines, "
        "form boxes and frames are ignored; each row is read whole by the line reader, so touching "
        "and overlapping digits need not be apart. Exit code 0 when every image held a number, 1 "
        "when some held none, 2 when some could not be read.",
    )
    read.add_argument("images", nargs="+", metavar="IMAGE", help="image files to read")
    read.add_argument("--model", metavar="PATH", help="ONNX digit model or training run folder (default: bundled)")
    read.add_argument(
        "--reader",
        metavar="PATH",
        help="line reader ONNX from 'inkdigits train-reader' (default: bundled; rows are then read whole)",
    )
    read.add_argument(
        "--word-finder",
        metavar="PATH",
        help="word finder ONNX from 'inkdigits train-reader --words' (default: bundled): words beside a number "
        "(a label, a unit) are left out of its reading",
    )
    read.add_argument(
        "--json",
        action="store_true",
        help='print JSON Lines: {"file", "text", "lines": [{"text", "text_full", "box", "confidence", '
        '"digits": [{"digit", "confidence", "box"}]}]}, one per image, in order',
    )
    _add_plot_flags(read, "the image with each line's and each digit's box and reading")
    _add_max_pixels(read)
    read.set_defaults(handler=cmd_read)

    data = commands.add_parser(
        "data",
        help="show where the MNIST files are and whether they verify",
        description="Show where each MNIST file is found and whether its decompressed sha256 matches "
        "the canonical digest. --download fetches missing files into the cache. Exit code 1 when "
        "a file is missing or fails its check.",
    )
    _add_data_dir(data)
    data.add_argument("--download", action="store_true", help="download missing files into the cache")
    data.add_argument("--json", action="store_true", help="print the status as JSON")
    data.set_defaults(handler=cmd_data)

    train = commands.add_parser(
        "train",
        help="train a model on MNIST (needs the 'train' extra)",
        description="Train a registered architecture on MNIST. The run folder gets a checkpoint "
        "(model.safetensors + model.json, written every epoch), model.onnx, history.json and "
        "curves.png. The last --val training images are held out for validation; the test "
        "set is scored once, at the end.",
    )
    train.add_argument("--model", default="mlp", help="architecture: mlp (the classic baseline), cnn or resnet")
    train.add_argument("--epochs", type=int, help="epochs (default: the model's recipe; mlp: 3)")
    train.add_argument("--batch-size", type=int, help="batch size (mlp: 32)")
    train.add_argument("--lr", type=float, help="learning rate (mlp: 0.001, Adam)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--val", type=int, default=5000, help="validation images held out (default 5000; 0: none)")
    train.add_argument(
        "--normalization",
        choices=["scale01", "keras"],
        default="scale01",
        help="scale01: pixels / 255; keras: keras.utils.normalize(x, axis=1), L2 along image columns",
    )
    augment = train.add_mutually_exclusive_group()
    augment.add_argument(
        "--augment", dest="augment", action="store_true", default=None, help="random affine augmentation"
    )
    augment.add_argument("--no-augment", dest="augment", action="store_false", help="no augmentation")
    train.add_argument("--ema", type=float, metavar="DECAY", help="average the weights with this decay (0: off)")
    train.add_argument(
        "--handwriting",
        action="store_true",
        help="train for people's photos and drawings: mix in photographed-and-preprocessed training "
        "digits and non-digits (letters, scribbles, shapes, blank pages; an 11th class, 'not a "
        "digit'), and degrade part of each batch like a camera (blur, noise, faded ink, broken strokes)",
    )
    train.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 autocast for conv models where the CPU has bf16 units, else fp32",
    )
    train.add_argument("--limit", type=int, help="train on the first N training images only (quick checks)")
    train.add_argument(
        "--resume",
        metavar="RUN",
        help="continue RUN from its last checkpoint with its own settings (other model flags are ignored)",
    )
    train.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    train.add_argument("--out", metavar="DIR", help="run folder (default runs/MODEL)")
    train.add_argument("--json", action="store_true", help="print the run's metadata as JSON at the end")
    _add_data_dir(train)
    train.set_defaults(handler=cmd_train)

    reader = commands.add_parser(
        "train-reader",
        help="train the line reader that reads whole rows of digits (needs the 'train' extra)",
        description="Train the line reader used by 'inkdigits read': a CNN + BiLSTM read with CTC, "
        "trained on rows written from MNIST training digits (the last 5,000 held out for "
        "validation rows) and handwriting fonts the benchmarks do not use, with separators and "
        "spacings from overlapping to wide; a third photographed and found by the page reader. The run folder gets "
        "reader.safetensors + reader.json each epoch and reader.onnx at the end; use it with "
        "'inkdigits read --reader RUN/reader.onnx'.",
    )
    add_reader_arguments(reader)
    reader.set_defaults(handler=cmd_train_reader)

    readers = commands.add_parser(
        "ensemble-readers",
        help="combine line reader runs into one reader file (needs the 'train' extra)",
        description="Write OUT (ONNX) holding every run's line reader, and OUT's .card.json. At "
        "runtime each member reads the row, and the reading the members find likeliest together "
        "(summed CTC log likelihood) is kept: one reader sure of a wrong reading is outvoted. The "
        "members and the ensemble are scored on the runs' validation rows (made again from the "
        "held-out MNIST training digits).",
    )
    readers.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="train-reader run folders, or FILE.onnx:K for member K of an exported reader file (its card "
        "beside it gives the member's recipe)",
    )
    readers.add_argument("--out", required=True, metavar="PATH", help="the .onnx file to write")
    readers.add_argument("--reproduce", metavar="COMMAND", help="the commands that reproduce it, for the card")
    _add_data_dir(readers)
    readers.set_defaults(handler=cmd_ensemble_readers)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a model on the MNIST test set",
        description="Score an ONNX model or run folder (default: the bundled model) on the 10,000 "
        "MNIST test images: accuracy, loss, per-class precision / recall / F1 and the confusion "
        "matrix; writes report.json, confusion.png and errors.png (the most confident mistakes).",
    )
    evaluate.add_argument("model", nargs="?", metavar="MODEL", help="ONNX file or run folder (default: bundled)")
    evaluate.add_argument(
        "--out", metavar="DIR", help="where to write the report and PNGs (default MODEL/eval or ./eval)"
    )
    evaluate.add_argument(
        "--dataset",
        metavar="PATH",
        help="evaluate on another labelled set instead of MNIST test: a folder with labels.csv "
        "(file,label), a folder with 0/ ... 9/ sub-folders, a folder with IDX files, or an .npz with "
        "'images' and 'labels' (white-on-black or dark-on-light, detected); photos are preprocessed",
    )
    evaluate.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_data_dir(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    export = commands.add_parser(
        "export",
        help="export a training run to a standalone ONNX model and model card",
        description="Rebuild the network from RUN's checkpoint and write OUT (ONNX, probabilities out) "
        "and OUT with .card.json (the model card: recipe, data digests, metrics, versions).",
    )
    export.add_argument("run", metavar="RUN", help="training run folder")
    export.add_argument("--out", required=True, metavar="PATH", help="ONNX file to write")
    export.add_argument("--reproduce", metavar="COMMAND", help="the command that reproduces the model, for the card")
    export.set_defaults(handler=cmd_export)

    ensemble = commands.add_parser(
        "ensemble",
        help="combine training runs into one ONNX model that averages their probabilities",
        description="Write OUT/model.onnx, whose output is the mean of the runs' probabilities "
        "(with --tta, each member also averages over 1-pixel shifts of the image), and "
        "OUT/model.card.json naming the members. The ensemble is scored once on the MNIST test "
        "set; evaluate and predict take OUT like any model.",
    )
    ensemble.add_argument("runs", nargs="+", metavar="RUN", help="training run folders")
    ensemble.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write (or a path ending in .onnx: PATH + PATH.card.json)"
    )
    ensemble.add_argument("--reproduce", metavar="COMMAND", help="the commands that reproduce it, for the card")
    ensemble.add_argument("--tta", action="store_true", help="test-time augmentation: 1-pixel shifts")
    ensemble.add_argument(
        "--calibrate",
        action="store_true",
        help="fit a temperature and a reject threshold on held-out validation images (the MNIST "
        "validation split, photographed and non-digit renders of it); every member must have "
        "been trained with the same --val, so none of them saw those images",
    )
    _add_data_dir(ensemble)
    ensemble.set_defaults(handler=cmd_ensemble)

    quantize = commands.add_parser(
        "quantize",
        help="make an 8-bit (int8) copy of an ONNX digit model: faster on a CPU, re-scored and re-calibrated",
        description="Write OUT, MODEL with its convolution and dense layers in 8-bit integers "
        "(onnxruntime static quantization, ranges measured on held-out images), and OUT's "
        ".card.json. The copy is scored again on the MNIST test set and, where MODEL is calibrated, "
        "its temperature and reject threshold are fitted again on the same held-out validation "
        "images; the card records its agreement with MODEL.",
    )
    quantize.add_argument("model", metavar="MODEL", help="an fp32 ONNX model written by export or ensemble")
    quantize.add_argument("--out", required=True, metavar="PATH", help="ONNX file to write")
    quantize.add_argument("--reproduce", metavar="COMMAND", help="the commands that reproduce it, for the card")
    _add_data_dir(quantize)
    quantize.set_defaults(handler=cmd_quantize)

    serve = commands.add_parser(
        "serve",
        help="serve the drawing page and the REST API (needs the 'serve' extra)",
        description="Serve a page to draw or photograph digits, and a REST API: POST /api/predict "
        "(an image as multipart form data or a raw body; the same JSON as predict --json), "
        "GET /api/health, GET /api/model, OpenAPI docs at /docs. The model is loaded and warmed "
        "up before the port opens; SIGTERM or Ctrl+C shut down gracefully.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--model", metavar="PATH", help="ONNX model or run folder (default: bundled)")
    serve.add_argument("--max-upload-mb", type=float, default=10, help="largest request body, MB (default 10)")
    serve.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest decoded image, pixels (default {DEFAULT_MAX_PIXELS:,})",
    )
    serve.add_argument("--timeout", type=float, default=10, help="seconds allowed per request (default 10)")
    serve.add_argument(
        "--workers", type=int, help="worker processes, each with its own model (default: the CPU count, at most 8)"
    )
    serve.add_argument(
        "--threshold",
        type=_probability,
        metavar="P",
        help="least calibrated confidence to report a digit, 0..1 (default: the model card's)",
    )
    serve.set_defaults(handler=cmd_serve)
    return parser


def _fail(message: str) -> None:
    print(f"inkdigits: {message}", file=sys.stderr)


def _plot_path(base: str, image: str, several: bool) -> Path:
    path = Path(base)
    if not several:
        return path
    return path.with_name(f"{path.stem}-{Path(image).stem}{path.suffix or '.png'}")


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _add_plot_flags(parser: argparse.ArgumentParser, picture: str) -> None:
    parser.add_argument(
        "--save-plot", metavar="PATH", help=f"save a PNG of {picture} (with several images: PATH-STEM.png for each)"
    )
    parser.add_argument("--show", action="store_true", help="open that picture in a window, where there is a display")


def _add_max_pixels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse images larger than N pixels before decoding them (default {DEFAULT_MAX_PIXELS:,})",
    )


def _report_error(name: str, error: InkdigitsError, as_json: bool) -> int:
    """One image that could not be read: a JSON line or one sentence on stderr; its exit code."""
    if as_json:
        print(json.dumps({"file": name, "error": str(error)}))
    else:
        _fail(f"{name}: {error}")
    return error.exit_code


def cmd_predict(args: argparse.Namespace) -> int:
    from .recognize import Recognizer

    recognizer = Recognizer.load(args.model, max_pixels=args.max_pixels, threshold=args.threshold)
    want_plot = bool(args.save_plot or args.show)
    results = recognizer.predict_batch(args.images, return_errors=True, keep_stages=want_plot)
    code = EXIT_OK
    for name, result in zip(args.images, results, strict=True):
        if isinstance(result, InkdigitsError):
            code = max(code, _report_error(name, result, args.json))
            continue
        if result.rejected:
            code = max(code, EXIT_NOT_FOUND)
        if args.json:
            print(json.dumps({"file": name, **result.to_dict()}))
        elif result.rejected:
            print(f"{name}: not a digit: {result.reason}")
        else:
            line = f"{name}: {result.digit} ({result.confidence:.1%})"
            if args.top > 1:
                line += "  [" + ", ".join(f"{d}: {p:.3f}" for d, p in result.top(args.top)) + "]"
            print(line)
        if want_plot:
            _save_and_show(result, args, name)
    return code


def cmd_read(args: argparse.Namespace) -> int:
    from .recognize import Recognizer

    recognizer = Recognizer.load(
        args.model, max_pixels=args.max_pixels, reader=args.reader, word_finder=args.word_finder
    )
    code = EXIT_OK
    for name in args.images:
        try:
            reading = recognizer.read(name)
        except InkdigitsError as exc:
            code = max(code, _report_error(name, exc, args.json))
            continue
        if not reading.lines:
            code = max(code, EXIT_NOT_FOUND)
        if args.save_plot or args.show:
            _plot_reading(reading, args, name)
        if args.json:
            print(json.dumps({"file": name, **reading.to_dict()}))
        elif reading.lines:
            print(f"{name}: " + "  ".join(line.text_full for line in reading.lines))
        else:
            print(f"{name}: no number found")
    return code


def _save_and_show(result: Any, args: argparse.Namespace, name: str) -> None:
    import tempfile

    from .plots import plot_prediction, show

    if args.save_plot:
        target = _plot_path(args.save_plot, name, len(args.images) > 1)
    else:
        target = Path(tempfile.gettempdir()) / f"inkdigits-{Path(name).stem}.png"
    plot_prediction(result, target, top=max(3, args.top))
    if args.show and not show(target):
        _fail(f"no display to show the plot on; it is saved at {target}")


def _plot_reading(reading: Any, args: argparse.Namespace, name: str) -> None:
    import tempfile

    from .images import load_image
    from .plots import plot_reading, show

    if args.save_plot:
        target = _plot_path(args.save_plot, name, len(args.images) > 1)
    else:
        target = Path(tempfile.gettempdir()) / f"inkdigits-read-{Path(name).stem}.png"
    plot_reading(reading, load_image(name, args.max_pixels), target)
    if args.show and not show(target):
        _fail(f"no display to show the plot on; it is saved at {target}")


def cmd_data(args: argparse.Namespace) -> int:
    from . import data

    if args.download:
        for key in data.MNIST_FILES:
            if data.locate(key, args.data_dir) is None:
                data.download(key)
    rows = data.status(args.data_dir)
    if args.json:
        print(
            json.dumps(
                [
                    {"file": r.name, "path": str(r.path) if r.path else None, "ok": r.ok, "problem": r.problem}
                    for r in rows
                ],
                indent=2,
            )
        )
    else:
        print("looked in: " + ", ".join(str(d) for d in data.search_dirs(args.data_dir)))
        for row in rows:
            state = "ok (sha256 verified)" if row.ok else f"PROBLEM: {row.problem}"
            print(f"{row.name:<24} {row.path or '-'}\n{'':<24} {state}")
        if not all(r.ok for r in rows):
            print(f"\nMissing files are downloaded on first use, or now with --download; offline: {data.OFFLINE_HINT}.")
    return EXIT_OK if all(r.ok for r in rows) else EXIT_NOT_FOUND


def add_reader_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        choices=["small", "large"],
        default="small",
        help="reader size: small (CNN 16-64 channels, one LSTM layer of 96; default) or large (24-96, two "
        "layers of 128: three times the work, and it read no more validation rows)",
    )
    parser.add_argument("--rows", type=int, default=150_000, help="training rows (default 150000)")
    parser.add_argument("--val-rows", type=int, default=1_000, help="validation rows (default 1000)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs (default 6)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batch (default 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, OneCycle (default 0.002)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--words",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="train the word finder instead: this share of rows gets words beside the number (a label, a unit), "
        "their letters a class of their own, so that read can leave them out (default 0: the digit reader)",
    )
    parser.add_argument(
        "--init",
        metavar="READER",
        help="fine-tune instead of starting afresh: a reader run folder, or an exported reader .onnx (the "
        "bundled one too: its batch norms come folded into the convolutions and stay frozen)",
    )
    parser.add_argument(
        "--member", type=int, default=0, help="with --init FILE.onnx holding several readers: which one (from 0)"
    )
    parser.add_argument("--threads", type=int, help="torch threads and row makers (default: physical cores)")
    parser.add_argument("--out", default="runs/reader", help="run folder (default runs/reader)")
    _add_data_dir(parser)


def _need_torch() -> None:
    try:
        import safetensors  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise InkdigitsError(
            "Training needs the 'train' extra: pip install 'inkdigits[train]' (it brings torch)."
        ) from exc


def cmd_train(args: argparse.Namespace) -> int:
    _need_torch()
    from .data import load_mnist
    from .models import MODELS
    from .train import TrainConfig, resume, train

    if args.model not in MODELS:
        raise InkdigitsError(f"Unknown model {args.model!r}; choose from {', '.join(MODELS)}.")
    mnist = load_mnist(args.data_dir, progress=not args.json)
    if args.resume:
        result = resume(args.resume, mnist, progress=not args.json)
    else:
        config = TrainConfig(
            model=args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            val=args.val,
            normalization=args.normalization,
            augment=args.augment,
            ema=args.ema,
            handwriting=args.handwriting,
            precision=args.precision,
            limit=args.limit,
            threads=args.threads,
        )
        result = train(config, mnist, args.out or f"runs/{args.model}", progress=not args.json)
    if "metrics" not in result.meta:
        return EXIT_OK  # a distributed worker other than rank 0: rank 0 reports
    test = result.meta["metrics"]["test"]
    if args.json:
        print(json.dumps(result.meta, indent=2))
    else:
        print(
            f"test accuracy {test['accuracy'] * 100:.2f}%  loss {test['loss']:.4f}  "
            f"({result.meta['training_seconds']:.1f} s of training)\nrun folder: {result.folder}"
        )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    out = args.out
    if out is None:
        out = Path(args.model) / "eval" if args.model and Path(args.model).is_dir() else Path("eval")
    if args.dataset:
        from .evaluate import evaluate_dataset

        report = evaluate_dataset(args.dataset, args.model, out, plots=not args.no_plots, progress=not args.json)
    else:
        report = evaluate(args.model, args.data_dir, out, plots=not args.no_plots, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.text())
        print("\nwrote: " + ", ".join(report.files.values()))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    _need_torch()
    from .export import write_bundle

    onnx_path, card_path = write_bundle(args.run, args.out, args.reproduce)
    print(f"wrote {onnx_path} and {card_path}")
    return EXIT_OK


def cmd_ensemble(args: argparse.Namespace) -> int:
    _need_torch()
    from .data import load_mnist
    from .export import export_ensemble

    mnist = load_mnist(args.data_dir)
    calibration = None
    if args.calibrate:
        from .checkpoint import read_meta
        from .export import CalibrationData

        held_out = {read_meta(run).get("recipe", {}).get("val") or 0 for run in args.runs}
        if len(held_out) != 1 or not min(held_out):
            raise InkdigitsError(
                "--calibrate needs members that all held out the same validation images (--val N, N > 0)."
            )
        val = held_out.pop()
        print(f"calibrating on the last {val:,} training images (held out by every member) ...")
        calibration = CalibrationData.from_validation(mnist.train_images[-val:], mnist.train_labels[-val:])
    path, card = export_ensemble(
        args.runs,
        args.out,
        mnist.test_images,
        mnist.test_labels,
        tta=args.tta,
        reproduce=args.reproduce,
        calibration_data=calibration,
    )
    for member in card["members"]:
        print(f"member {member['run']}: test accuracy {member['metrics']['test']['accuracy'] * 100:.2f}%")
    print(f"ensemble of {len(card['members'])}: test accuracy {card['metrics']['test']['accuracy'] * 100:.2f}%")
    _print_calibration(card)
    print(f"wrote {path}")
    return EXIT_OK


def _print_calibration(card: dict[str, Any]) -> None:
    if "calibration" not in card:
        return
    cal = card["calibration"]
    print(f"temperature {cal['temperature']}, reject threshold {cal['threshold']}")
    for name, row in cal["validation"].items():
        print(
            f"  validation {name:<10} n={row['n']:<5} ECE {row['ece_before']:.4f} -> {row['ece_after']:.4f}"
            f"  accepted {row['accepted_at_threshold']:.1%}"
        )


def cmd_quantize(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
        from onnxruntime import quantization  # noqa: F401
    except ImportError as exc:
        raise InkdigitsError("Quantizing needs the 'train' extra: pip install 'inkdigits[train]'.") from exc
    from .calibrate import CalibrationData
    from .data import load_mnist
    from .quantize import quantize_model, validation_size
    from .recognize import OnnxModel

    val = validation_size(OnnxModel.load(args.model))
    mnist = load_mnist(args.data_dir)
    print(f"measuring 8-bit ranges and calibrating on the last {val:,} training images (held out) ...")
    data = CalibrationData.from_validation(mnist.train_images[-val:], mnist.train_labels[-val:])
    path, card = quantize_model(args.model, args.out, mnist.test_images, mnist.test_labels, data, args.reproduce)
    change = card["quantization"]
    print(
        f"int8 test accuracy {card['metrics']['test']['accuracy'] * 100:.2f}% "
        f"(fp32 {change['fp32_test_accuracy'] * 100:.2f}%), same answer as fp32 on "
        f"{change['same_answer_as_fp32']:.2%} of test images, "
        f"largest probability change {change['max_abs_diff_from_fp32']:.3f}"
    )
    _print_calibration(card)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_ensemble_readers(args: argparse.Namespace) -> int:
    _need_torch()
    from .train_lines import ensemble_readers

    return ensemble_readers(args)


def cmd_train_reader(args: argparse.Namespace) -> int:
    _need_torch()
    from .train_lines import train_reader

    return train_reader(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .web import Limits, serve

    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        timeout_seconds=args.timeout,
        **({"workers": args.workers} if args.workers else {}),
    )
    serve(args.host, args.port, args.model, limits, threshold=args.threshold)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.handler(args)
    except NoDigitError as exc:
        _fail(str(exc))
        return EXIT_NOT_FOUND
    except InkdigitsError as exc:
        _fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted.")
        return 130
    except BrokenPipeError:
        # The reader (head, less) closed the pipe: stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
