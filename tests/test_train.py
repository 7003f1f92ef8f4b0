"""Training the classic baseline for real on MNIST, its checkpoint, and its ONNX export."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import struct
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_cli
from inkdigits.checkpoint import load_checkpoint
from inkdigits.data import MNIST_FILES
from inkdigits.errors import ModelError
from inkdigits.export import torch_probabilities
from inkdigits.fsutil import write_json_atomic
from inkdigits.models import InputNorm
from inkdigits.recognize import OnnxModel, Recognizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs") / "mlp"
    result = run_cli("train", "--model", "mlp", "--seed", "0", "--out", str(out), "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_classic_recipe_trains_to_the_tutorial_accuracy(mlp_run):
    out, result = mlp_run
    meta = json.loads((out / "model.json").read_text())
    assert meta["architecture"] == "mlp" and meta["normalization"] == "scale01"
    recipe = meta["recipe"]
    assert (recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["optimizer"]) == (3, 32, 0.001, "adam")
    assert meta["data"]["mnist_sha256"] == {s.name: s.sha256 for s in MNIST_FILES.values()}
    assert meta["data"]["train_images"] == 55000 and meta["data"]["val_images"] == 5000
    assert {"torch", "numpy", "python", "inkdigits"} <= set(meta["versions"])
    assert meta["metrics"]["test"]["accuracy"] >= 0.965
    assert [row["epoch"] for row in meta["history"]] == [1, 2, 3]
    assert all("val_accuracy" in row for row in meta["history"])
    assert "test accuracy" in result.stdout


def test_a_run_records_its_commit_and_whether_the_code_differed_from_it(mlp_run):
    out, _ = mlp_run
    recorded = json.loads((out / "model.json").read_text())["git_commit"]
    git = shutil.which("git")
    if git is None or subprocess.run([git, "rev-parse", "HEAD"], capture_output=True, cwd=ROOT).returncode != 0:
        pytest.skip("not a git checkout")
    head = subprocess.run([git, "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    status = [git, "status", "--porcelain", "--untracked-files=no"]
    changed = subprocess.run(status, capture_output=True, text=True, cwd=ROOT)
    assert recorded == head + ("-dirty" if changed.stdout.strip() else "")


def test_run_folder_holds_history_curves_checkpoint_and_onnx(mlp_run):
    out, _ = mlp_run
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3 and history[-1]["loss"] < history[0]["loss"]
    with Image.open(out / "curves.png") as curves:
        assert curves.format == "PNG"
    # safetensors: an 8-byte little-endian header length, then a JSON header; no pickle.
    raw = (out / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8 : 8 + length])
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_onnx_probabilities_match_torch_over_the_test_set(mlp_run, mnist):
    out, _ = mlp_run
    model, meta, _ = load_checkpoint(out)
    expected = torch_probabilities(model, mnist.test_images)
    got = OnnxModel.load(out / "model.onnx").probabilities_uint8(mnist.test_images)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == mnist.test_labels).mean() == pytest.approx(meta["metrics"]["test"]["accuracy"])


def test_keras_normalization_matches_keras_utils_normalize():
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.float32)
    images[0, :, 3] = 0  # an all-zero column, which keras leaves at zero
    # keras.utils.normalize(x, axis=1, order=2), written out
    norms = np.atleast_1d(np.linalg.norm(images, 2, axis=1))
    norms[norms == 0] = 1
    keras = images / np.expand_dims(norms, 1)
    ours = InputNorm("keras")(torch.from_numpy(images / 255.0).unsqueeze(1)).squeeze(1).numpy()
    assert np.allclose(ours, keras, atol=1e-6)


def test_keras_normalization_is_recorded_and_exported(tmp_path, mnist_dir, mnist):
    out = tmp_path / "keras"
    result = run_cli(
        "train",
        "--model",
        "mlp",
        "--normalization",
        "keras",
        "--epochs",
        "1",
        "--limit",
        "8000",
        "--val",
        "0",
        "--out",
        str(out),
        "--data-dir",
        str(mnist_dir),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model, meta, _ = load_checkpoint(out)
    assert meta["normalization"] == "keras" and "val" not in meta["metrics"]
    onnx_model = OnnxModel.load(out)
    assert onnx_model.card["normalization"] == "keras"
    got = onnx_model.probabilities_uint8(mnist.test_images[:2000])
    assert np.abs(got - torch_probabilities(model, mnist.test_images[:2000])).max() < 1e-4
    assert (got.argmax(1) == mnist.test_labels[:2000]).mean() > 0.85


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from inkdigits.fsutil import atomic_write

    target = write_json_atomic(tmp_path / "meta.json", {"version": 1})

    def broken(tmp):
        tmp.write_text('{"version": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_train_reader_writes_a_checkpoint_and_a_line_reader_the_runtime_loads(tmp_path, mnist_dir, mnist):
    """Tiny runs of the line reader's training (both sizes): rows made, CTC steps taken, ONNX
    exported; then the two as one ensemble file that the runtime reads with both."""
    runs = {size: tmp_path / f"reader-{size}" for size in ("small", "large")}
    for size, run in runs.items():
        result = run_cli(
            "train-reader", "--size", size, "--rows", "96", "--val-rows", "16", "--epochs", "1",
            "--batch-size", "16", "--threads", "1", "--out", str(run), "--data-dir", str(mnist_dir),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        meta = json.loads((run / "reader.json").read_text())
        assert meta["architecture"] == "line-reader" and len(meta["history"]) == 1
        assert meta["recipe"]["size"] == size and math.isfinite(meta["history"][0]["loss"])
    from inkdigits.train_lines import load_reader, reader_from_onnx

    row = torch.rand(2, 1, 32, 90, generator=torch.Generator().manual_seed(0))
    for run in runs.values():  # both sizes come back from their ONNX export as they were trained
        with torch.no_grad():
            torch.testing.assert_close(
                reader_from_onnx(run / "reader.onnx")(row), load_reader(run)[0](row), atol=1e-4, rtol=1e-4
            )
    assert (runs["small"] / "reader.safetensors").stat().st_size > 10_000
    assert (runs["large"] / "reader.safetensors").stat().st_size > 2 * (
        runs["small"] / "reader.safetensors"
    ).stat().st_size
    recognizer = Recognizer.load(reader=runs["small"] / "reader.onnx")
    assert recognizer.reader is not None and recognizer.reader.path == runs["small"] / "reader.onnx"
    [rows] = recognizer.reader.probabilities(np.zeros((2, 1, 32, 100), np.float32))
    assert rows.shape == (2, 50, 15)  # a step per two columns, blank + 10 digits + . , - /
    np.testing.assert_allclose(rows.sum(-1), 1.0, atol=1e-4)
    recognizer.read(np.full((120, 300), 255, np.uint8))  # a blank page: an empty reading, no error

    both = tmp_path / "readers.onnx"
    result = run_cli(
        "ensemble-readers", str(runs["small"]), str(runs["large"]), "--out", str(both), "--data-dir", str(mnist_dir)
    )
    assert result.returncode == 0, result.stderr
    card = json.loads(both.with_suffix(".card.json").read_text())
    assert [m["recipe"]["size"] for m in card["members"]] == ["small", "large"]
    assert 0 <= card["metrics"]["validation_rows_exact"] <= 1
    recognizer = Recognizer.load(reader=both)
    members = recognizer.reader.probabilities(np.zeros((2, 1, 32, 100), np.float32))
    assert len(members) == 2 and all(m.shape == (2, 50, 15) for m in members)
    recognizer.read(np.full((120, 300), 255, np.uint8))


def test_ctc_likelihood_matches_torch(tmp_path):
    """The runtime's numpy CTC forward pass (weighing ensemble readings) against torch's CTC loss."""
    from inkdigits.lines import ctc_log_likelihood, encode

    generator = torch.Generator().manual_seed(0)
    log_probabilities = torch.randn(40, 1, 15, generator=generator).log_softmax(-1)
    for text in ["", "7", "11", "3.50", "24/11/2026", "0000"]:
        labels = torch.tensor([encode(text)], dtype=torch.long).reshape(1, -1)
        expected = -torch.nn.functional.ctc_loss(
            log_probabilities, labels, torch.tensor([40]), torch.tensor([len(text)]), reduction="sum"
        )
        assert ctc_log_likelihood(log_probabilities[:, 0].numpy(), text) == pytest.approx(float(expected), abs=1e-3)


def test_train_reader_words_trains_a_word_finder_the_runtime_loads(tmp_path, mnist_dir):
    """A tiny word-finder run: rows with words beside their numbers, one class more (a word's
    letter), loaded by the runtime as the word finder and refused as a line reader."""
    run = tmp_path / "words"
    result = run_cli(
        "train-reader", "--words", "0.5", "--rows", "64", "--val-rows", "16", "--epochs", "1",
        "--batch-size", "16", "--threads", "1", "--out", str(run), "--data-dir", str(mnist_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = json.loads((run / "reader.json").read_text())
    assert meta["alphabet"] == "0123456789.,-/?" and meta["recipe"]["words"] == 0.5
    recognizer = Recognizer.load(word_finder=run / "reader.onnx")
    [rows] = recognizer.word_finder.probabilities(np.zeros((2, 1, 32, 100), np.float32))
    assert rows.shape == (2, 50, 16)  # the digit reader's 15 classes and a word's letter
    recognizer.read(np.full((120, 300), 255, np.uint8))  # a blank page: an empty reading, no error
    with pytest.raises(ModelError, match="is not an inkdigits line reader"):
        Recognizer.load(reader=run / "reader.onnx")


def test_a_bundled_reader_comes_back_from_onnx_and_fine_tunes(tmp_path, mnist_dir, mnist):
    """Each member of the bundled reader file, rebuilt in torch from its ONNX weights (batch
    norms folded, LSTM gates reordered), reads a row of real digits as onnxruntime does; a
    tiny fine-tuning run starts from one, keeps its norms' statistics and says where it began."""
    from inkdigits.train_lines import reader_from_onnx

    bundled = ROOT / "src" / "inkdigits" / "bundled" / "reader.onnx"
    digits = [np.pad(mnist.test_images[i], ((2, 2), (0, 0))) for i in range(8)]
    row = (np.hstack(digits).astype(np.float32) / 255)[None, None]
    recognizer = Recognizer.load()
    expected = recognizer.reader.probabilities(row)
    for member, probabilities in enumerate(expected):
        with torch.no_grad():
            rebuilt = reader_from_onnx(bundled, member)(torch.from_numpy(row)).softmax(-1).numpy()
        np.testing.assert_allclose(rebuilt, probabilities, atol=1e-4)
    with pytest.raises(ModelError, match="there is no member 4"):
        reader_from_onnx(bundled, len(expected))

    run = tmp_path / "fine-tuned"
    result = run_cli(
        "train-reader", "--init", str(bundled), "--member", "1", "--rows", "64", "--val-rows", "16",
        "--epochs", "1", "--batch-size", "16", "--lr", "1e-4", "--threads", "1", "--out", str(run),
        "--data-dir", str(mnist_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "before fine-tuning: validation rows read exactly" in result.stdout
    meta = json.loads((run / "reader.json").read_text())
    assert meta["recipe"]["init"] == str(bundled) and meta["recipe"]["member"] == 1
    from safetensors.torch import load_file

    state = load_file(str(run / "reader.safetensors"))
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    assert variances and all(torch.allclose(v, torch.full_like(v, 1 - 1e-5)) for v in variances)
    both = tmp_path / "readers.onnx"  # the fine-tuned member beside one taken as it was from the bundle
    result = run_cli("ensemble-readers", str(run), f"{bundled}:2", "--out", str(both), "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    card = json.loads(both.with_suffix(".card.json").read_text())
    bundled_card = json.loads(bundled.with_suffix(".card.json").read_text())
    assert card["members"][1]["run"] == bundled_card["members"][2]["run"]
    assert card["members"][1]["recipe"] == bundled_card["members"][2]["recipe"]
    assert card["members"][1]["taken_from"] == f"{bundled}:2" and "taken_from" not in card["members"][0]
    assert len(Recognizer.load(reader=both).reader.probabilities(row)) == 2
    result = run_cli("train-reader", "--init", str(bundled), "--member", "9", "--out", str(tmp_path / "x"),
                     "--rows", "16", "--val-rows", "16", "--data-dir", str(mnist_dir))  # fmt: skip
    assert result.returncode == 2 and "there is no member 9" in result.stderr and "Traceback" not in result.stderr


def test_no_glyph_in_a_training_row_is_drawn_mostly_inside_its_neighbour(mnist):
    """A 1 set down inside a 0 (as an overlapping row's gap may put it) moves right until
    neither has more than half its ink under the other's; one set clear stays where it is."""
    from inkdigits.synth import MOST_HIDDEN, _visible_position, mnist_mask

    rng = np.random.default_rng(0)
    zero = mnist_mask(mnist.test_images[mnist.test_labels == 0][0], 40, rng) > 0.5
    one = mnist_mask(mnist.test_images[mnist.test_labels == 1][0], 40, rng) > 0.5
    layers = np.zeros((40, 200), np.uint8)
    layers[:, 10 : 10 + zero.shape[1]] += zero

    def hidden(left: int) -> float:
        return float((layers[:, left : left + one.shape[1]][one] > 0).mean())

    inside = max(range(10, 10 + zero.shape[1] - one.shape[1]), key=hidden)  # the 1 along the 0's stroke
    assert hidden(inside) > MOST_HIDDEN
    x = _visible_position(one, 0, inside, [(zero, 0, 10)], layers)
    assert x > inside
    both = layers.copy()
    both[:, x : x + one.shape[1]] += one
    for ink, left in ((zero, 10), (one, x)):
        assert (both[:, left : left + ink.shape[1]][ink] > 1).mean() <= MOST_HIDDEN
    clear = 10 + zero.shape[1] + 5
    assert _visible_position(one, 0, clear, [(zero, 0, 10)], layers) == clear


def test_a_flagged_one_keeps_its_stem_and_gains_an_upstroke_to_the_left_of_its_top(mnist):
    """The reader's rows give some MNIST 1s the long upstroke much of Europe writes: new ink
    left of the stem, reaching down from its top, the stem itself untouched."""
    from inkdigits.synth import mnist_mask, with_flag

    rng = np.random.default_rng(0)
    for image in mnist.test_images[mnist.test_labels == 1][:20]:
        one = mnist_mask(image, 40, rng)
        flagged = with_flag(one, rng)
        grown = flagged.shape[1] - one.shape[1]
        assert flagged.shape[0] == one.shape[0] and grown >= 0
        assert (flagged[:, grown:] >= one).all()  # the stem is all there
        stem = np.pad(one > 0.5, ((0, 0), (grown, 0)))
        ys, xs = np.nonzero((flagged > 0.5) & ~stem)
        stem_top = np.nonzero(stem)[0].min()
        top_x = np.nonzero(stem[stem_top])[0].min()
        assert xs.min() < top_x - 0.1 * one.shape[0]  # well left of the stem's top
        assert ys.min() <= stem_top + 3 and ys.max() <= 0.8 * one.shape[0]  # from the top, not to the foot


def test_a_crossed_seven_keeps_its_strokes_and_gains_a_bar_across_its_stem_halfway_down(mnist):
    """Some of the reader's MNIST 7s get the bar across the stem much of Europe writes: new
    ink on both sides of the stem, about halfway down, the 7 itself untouched."""
    from inkdigits.synth import mnist_mask, with_crossbar

    rng = np.random.default_rng(0)
    for image in mnist.test_images[mnist.test_labels == 7][:20]:
        seven = mnist_mask(image, 40, rng)
        crossed = with_crossbar(seven, rng)
        added = crossed.shape[1] - seven.shape[1]
        assert crossed.shape[0] == seven.shape[0] and added >= 0
        left = next(grow for grow in range(added + 1) if (crossed[:, grow : grow + seven.shape[1]] >= seven).all())
        old = np.zeros(crossed.shape, bool)
        old[:, left : left + seven.shape[1]] = seven > 0.5
        ys, xs = np.nonzero((crossed > 0.5) & ~old)
        assert len(ys) > 0
        rows = np.nonzero(old.any(axis=1))[0]
        middle = (rows.min() + rows.max()) / 2
        assert abs(ys.mean() - middle) <= 0.2 * len(rows)  # about halfway down
        stem = np.nonzero(old[round(ys.mean())])[0]
        assert xs.min() < stem.min() and xs.max() > stem.max()  # across the stem, both sides


def test_european_digits_mark_only_a_share_of_the_ones_and_sevens_and_stay_framed_as_mnist(mnist):
    """The digit model's training set gets flagged 1s and crossed 7s: only those two digits
    change, about the share asked, each still a 28x28 digit in MNIST's 20-pixel box with its
    centre of mass in the middle; the same seed marks the same images."""
    from inkdigits.synth import european_digits

    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    marked = european_digits(images, labels, 0.3)
    changed = (marked != images).any(axis=(1, 2))
    assert set(labels[changed]) == {1, 7}
    for digit in (1, 7):
        assert 0.2 < changed[labels == digit].mean() < 0.4
    for image in marked[changed]:
        ys, xs = np.nonzero(image > 25)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 21
        mass = image.astype(np.float64) / image.sum()
        assert abs((mass.sum(axis=1) * np.arange(28)).sum() - 14) <= 1.5
        assert abs((mass.sum(axis=0) * np.arange(28)).sum() - 14) <= 1.5
    assert (european_digits(images, labels, 0.3) == marked).all()


def test_the_readers_rows_are_written_in_more_hands_than_the_digit_models_letters():
    """The reader's fonts add hands with flagged 1s to the digit model's handwriting fonts; no
    benchmark font is among them."""
    from inkdigits.synth import FONT_ROOT, READER_FONT_PACKAGES, handwriting_fonts, reader_fonts

    spec = importlib.util.spec_from_file_location("realistic", ROOT / "benchmarks" / "realistic.py")
    realistic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(realistic)
    benchmark_fonts = set(realistic.HANDWRITING_FONTS)
    fonts = reader_fonts()
    if len(fonts) == len(handwriting_fonts()):
        pytest.skip(f"the reader's own fonts are not installed: apt-get install {READER_FONT_PACKAGES}")
    assert fonts[: len(handwriting_fonts())] == handwriting_fonts()
    assert len(benchmark_fonts) == 10 and not {str(f.relative_to(FONT_ROOT)) for f in fonts} & benchmark_fonts
