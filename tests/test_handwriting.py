"""Reading people's images: shadows, blank pages, stray marks, non-digits, honest confidence."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from inkdigits import NoDigitError, Recognizer
from inkdigits.calibrate import apply_temperature, expected_calibration_error, fit_temperature
from inkdigits.preprocess import to_mnist


def paper_photo(ink: np.ndarray, rng: np.random.Generator, shadow: bool) -> np.ndarray:
    """Dark ink on off-white paper, lit from one side, optionally half in a phone's shadow."""
    height, width = ink.shape
    page = np.full((height, width), 0.93, np.float32) + cv2.GaussianBlur(
        rng.normal(0, 0.02, (height, width)).astype(np.float32), (0, 0), 1.5
    )
    page *= np.linspace(1.0, 0.8, width, dtype=np.float32)[None, :]
    if shadow:
        shade = np.zeros((height, width), np.float32)
        shade[:, int(width * 0.62) :] = 1.0
        page *= 1 - 0.5 * cv2.GaussianBlur(shade, (0, 0), 3)
    photo = page * (1 - 0.9 * ink) + rng.normal(0, 0.01, (height, width))
    return (np.clip(photo, 0, 1) * 255).astype(np.uint8)


def enlarged(digit: np.ndarray, canvas: tuple[int, int], at: tuple[int, int], size: int = 90) -> np.ndarray:
    ink = np.zeros(canvas, np.float32)
    big = cv2.resize(digit.astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_CUBIC)
    top, left = at
    ink[top : top + size, left : left + size] = np.clip(big, 0, 1)
    return ink


def test_a_shadow_across_the_page_does_not_become_ink(mnist):
    """A shadow's edge beside the digit once turned shadowed paper into 'ink' (32% right)."""
    recognizer = Recognizer.load()
    rng = np.random.default_rng(0)
    right = 0
    for digit, label in zip(mnist.test_images[:30], mnist.test_labels[:30], strict=True):
        photo = paper_photo(enlarged(digit, (160, 220), (35, 30)), rng, shadow=True)
        right += recognizer.predict(photo).digit == label
    assert right >= 28


@pytest.mark.parametrize(
    "kind", ["white", "black", "gray noise", "paper texture", "paper in shadow", "gradient", "diagonal gradient"]
)
def test_blank_images_give_no_digit_and_exit_1(kind, tmp_path):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float32)
    if kind == "white":
        image = np.full((300, 400), 255, np.uint8)
    elif kind == "black":
        image = np.zeros((300, 400), np.uint8)
    elif kind == "gray noise":
        image = np.clip(rng.normal(128, 40, (300, 400)), 0, 255).astype(np.uint8)
    elif kind.endswith("gradient"):
        # An unevenly lit empty surface: its bright edge once came out as a confident "1".
        ramp = xx / 400 if kind == "gradient" else (xx / 400 + yy / 300) / 2
        image = np.clip(135 + 105 * ramp + rng.normal(0, 2, ramp.shape), 0, 255).astype(np.uint8)
    else:
        image = paper_photo(np.zeros((300, 400), np.float32), rng, shadow=kind == "paper in shadow")
    path = tmp_path / f"{kind.replace(' ', '-')}.jpg"
    Image.fromarray(image).save(path, quality=70)
    result = run_cli("predict", "--json", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    line = json.loads(result.stdout)
    assert line.get("rejected") is True or "No digit found" in line.get("error", ""), line


def test_stray_marks_and_page_edges_are_not_part_of_the_digit(mnist):
    rng = np.random.default_rng(2)
    ink = enlarged(mnist.test_images[0], (240, 320), (70, 40))
    clean = to_mnist(paper_photo(ink, rng, shadow=False).astype(np.float32) / 255)
    marked = ink.copy()
    cv2.circle(marked, (280, 40), 6, 1.0, -1)  # a dot far from the digit
    marked[2:6, 20:300] = 1.0  # the edge of a page along the top
    messy = to_mnist(paper_photo(marked, rng, shadow=False).astype(np.float32) / 255)
    assert np.allclose(messy.box, clean.box, atol=3), (messy.box, clean.box)


def test_a_detached_stroke_stays_with_its_digit():
    """A 5 whose top bar does not touch its body is still one digit, not a bar and a hook."""
    canvas = np.full((200, 200), 255, np.uint8)
    cv2.line(canvas, (80, 40), (140, 40), 0, 9)  # the bar, a gap below it
    cv2.ellipse(canvas, (100, 120), (40, 40), 0, -100, 160, 0, 9)  # the body
    cv2.line(canvas, (70, 55), (68, 95), 0, 9)
    prepared = to_mnist(canvas.astype(np.float32) / 255)
    _, y, _, h = prepared.box
    assert y <= 40 and y + h >= 150, prepared.box


def test_threshold_flag_declines_with_a_reason_and_exit_1(tmp_path):
    result = run_cli("predict", "--json", "--threshold", "1", "examples/7-white-on-black.png")
    assert result.returncode == 1, result.stderr
    answer = json.loads(result.stdout)
    assert answer["rejected"] is True and "threshold" in answer["reason"]
    assert answer["digit"] == 7  # the reading is still reported, only not vouched for
    accepted = run_cli("predict", "--json", "--threshold", "0", "examples/7-white-on-black.png")
    assert accepted.returncode == 0 and json.loads(accepted.stdout)["rejected"] is False
    bad = run_cli("predict", "--threshold", "1.5", "examples/7-white-on-black.png")
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr


def test_temperature_scaling_recovers_a_known_overconfidence():
    """Labels drawn from softmax(z); the model claims softmax(3z): the fit must find T near 3."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.0, (20000, 10))
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in true_p])
    claimed = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    temperature = fit_temperature(claimed, labels)
    assert 2.7 < temperature < 3.3
    before = expected_calibration_error(claimed, labels)
    after = expected_calibration_error(apply_temperature(claimed, temperature), labels)
    assert after < before / 3 and after < 0.02
    assert (apply_temperature(claimed, temperature).argmax(1) == claimed.argmax(1)).all()


def test_handwriting_training_adds_a_not_a_digit_class_and_calibration(mnist, mnist_dir, tmp_path):
    """The plumbing end to end on a tiny run: 11 outputs, a card that says so, a fitted
    temperature and threshold, and predictions that carry not_digit / rejected / reason."""
    pytest.importorskip("torch")
    from inkdigits.export import CalibrationData, export_ensemble

    run = tmp_path / "run"
    result = run_cli(
        "train", "--model", "cnn", "--handwriting", "--epochs", "1", "--limit", "2000", "--val", "500",
        "--data-dir", str(mnist_dir), "--out", str(run), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = json.loads((run / "model.json").read_text())
    assert meta["classes"] == 11 and meta["labels"][-1] == "not a digit"
    assert meta["recipe"]["negatives"] > 0 and meta["recipe"]["realistic"] > 0 and meta["recipe"]["photo"]
    assert meta["recipe"]["european"] > 0  # flagged 1s and crossed 7s
    # The banks depend on the fonts installed: the run records which, and says when some are missing.
    from inkdigits.synth import BANK_VERSION, missing_training_fonts, training_fonts

    banks = meta["data"]["banks"]
    assert banks["version"] == BANK_VERSION and len(banks["fonts"]) == len({str(f) for f in training_fonts()})
    assert ("training font" in result.stderr) == bool(missing_training_fonts())
    val_x, val_y = mnist.train_images[-500:], mnist.train_labels[-500:]
    data = CalibrationData.from_validation(val_x, val_y, realistic=200, negatives=200)
    path, card = export_ensemble([run], tmp_path / "calibrated.onnx", mnist.test_images[:500],
                                 mnist.test_labels[:500], calibration_data=data)  # fmt: skip
    assert card["members"][0]["banks"] == banks
    calibration = card["calibration"]
    assert 0.05 <= calibration["temperature"] <= 20 and 0.05 <= calibration["threshold"] <= 0.95
    assert set(calibration["validation"]) == {"mnist", "realistic", "non-digits"}
    recognizer = Recognizer.load(path)
    assert recognizer.model.classes == 11 and recognizer.temperature == calibration["temperature"]
    buffer = io.BytesIO()
    Image.open("examples/5-pencil-scan.bmp").save(buffer, format="PNG")
    answer = recognizer.predict(buffer.getvalue()).to_dict()
    assert {"digit", "confidence", "rejected", "reason", "not_digit", "probabilities"} <= set(answer)
    assert abs(sum(answer["probabilities"]) + answer["not_digit"] - 1) < 1e-4

    # The same model in 8 bits: judged again, and recalibrated on the same held-out images.
    from inkdigits.quantize import quantize_model

    int8_path, int8_card = quantize_model(path, tmp_path / "int8.onnx", mnist.test_images[:500],
                                          mnist.test_labels[:500], data)  # fmt: skip
    change = int8_card["quantization"]
    assert change["same_answer_as_fp32"] >= 0.98 and change["max_abs_diff_from_fp32"] < 0.5
    assert abs(int8_card["metrics"]["test"]["accuracy"] - card["metrics"]["test"]["accuracy"]) <= 0.01
    assert int8_card["calibration"]["validation"].keys() == calibration["validation"].keys()
    assert int8_path.stat().st_size < 0.5 * path.stat().st_size
    assert json.loads(int8_path.with_suffix(".card.json").read_text()) == int8_card
    int8 = Recognizer.load(int8_path)
    assert int8.temperature == int8_card["calibration"]["temperature"]
    assert int8.predict(buffer.getvalue()).digit == recognizer.predict(buffer.getvalue()).digit
    again = run_cli("quantize", str(int8_path), "--out", str(tmp_path / "twice.onnx"))
    assert again.returncode == 2 and "already quantized" in again.stderr and not (tmp_path / "twice.onnx").exists()


def test_no_digit_error_is_raised_for_a_blank_canvas():
    with pytest.raises(NoDigitError):
        Recognizer.load().predict(np.full((280, 280), 255, np.uint8))


def star(canvas: np.ndarray) -> None:
    points = np.array([[120, 25], [175, 200], [30, 90], [210, 90], [65, 200]])
    cv2.polylines(canvas, [points], True, 20, 7)


def hash_mark(canvas: np.ndarray) -> None:
    for p, q in [((90, 30), (80, 210)), ((150, 30), (140, 210)), ((40, 90), (200, 90)), ((40, 150), (200, 150))]:
        cv2.line(canvas, p, q, 20, 7)


def smiley(canvas: np.ndarray) -> None:
    cv2.circle(canvas, (120, 120), 90, 20, 7)
    cv2.circle(canvas, (85, 95), 10, 20, -1)
    cv2.circle(canvas, (155, 95), 10, 20, -1)
    cv2.ellipse(canvas, (120, 140), (45, 30), 0, 10, 170, 20, 7)


def letter_a(canvas: np.ndarray) -> None:
    cv2.putText(canvas, "A", (45, 200), cv2.FONT_HERSHEY_SIMPLEX, 6, 20, 14)


@pytest.mark.parametrize("draw", [star, hash_mark, smiley, letter_a])
def test_the_bundled_model_declines_what_is_not_a_digit(draw):
    canvas = np.full((240, 240), 245, np.uint8)
    draw(canvas)
    prediction = Recognizer.load().predict(canvas)
    assert prediction.rejected, (draw.__name__, prediction.digit, prediction.confidence, prediction.not_digit)
    assert prediction.reason


def flag(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The long upstroke from a 1's top down to the left, in the 1's own pen."""
    ys, xs = np.nonzero(ink > 0.4)
    top = ys.min()
    x_top = xs[ys <= top + 3].mean()
    length, angle = (ys.max() - top) * rng.uniform(0.25, 0.5), np.radians(rng.uniform(35, 55))
    end = (int(x_top - length * np.cos(angle)), int(top + length * np.sin(angle)))
    cv2.line(ink, (int(x_top), int(top)), end, 1.0, pen_width(ink), cv2.LINE_AA)
    return ink


def bar(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A short bar across a 7's stem, about halfway down."""
    ys, xs = np.nonzero(ink > 0.4)
    y = int(ys.min() + (ys.max() - ys.min()) * rng.uniform(0.45, 0.6))
    stem = np.nonzero(ink[y] > 0.4)[0]
    half = (xs.max() - xs.min()) * rng.uniform(0.2, 0.35)
    cv2.line(ink, (int(stem.mean() - half), y), (int(stem.mean() + half), y), 1.0, pen_width(ink), cv2.LINE_AA)
    return ink


def pen_width(ink: np.ndarray) -> int:
    widths = (ink > 0.4).sum(axis=1)
    return max(3, int(np.median(widths[widths > 0]) * 0.7))


@pytest.mark.parametrize(("digit", "mark"), [(1, flag), (7, bar)])
def test_a_flagged_one_and_a_crossed_seven_read_as_much_of_europe_writes_them(mnist, digit, mark):
    """Much of Europe starts its 1s with a long upstroke and crosses its 7s, which MNIST's
    writers hardly did (the model bundled until 2026-12-02 read more than half of these 1s as 7s). MNIST
    test digits given them here, by this test's own strokes, on paper, read as written."""
    rng = np.random.default_rng(0)
    recognizer = Recognizer.load()
    digits = mnist.test_images[mnist.test_labels == digit][:40]
    photos = [paper_photo(mark(enlarged(image, (160, 160), (35, 35)), rng), rng, shadow=False) for image in digits]
    read = [recognizer.predict(photo) for photo in photos]
    assert np.mean([p.digit == digit and not p.rejected for p in read]) >= 0.9, [p.digit for p in read]
