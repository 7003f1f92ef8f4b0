"""A realistic single-digit benchmark: digits as people photograph, scan and draw them.

Each image starts from an MNIST *test* digit (never a training digit) or a digit rendered
from a handwriting font, and is put on paper-like backgrounds in one of several styles:
ballpoint and felt-tip colours, pencil, markers, chalk on a board, stroke widths, sizes from
15 to 600 pixels, off-centre positions, lighting gradients and shadows, blur, sensor noise,
JPEG compression, ruled and grid paper, light-on-dark. Everything derives from ``--seed``.

    python benchmarks/realistic.py --count 2000 [--seed 0] [--model PATH] [--out DIR] [--json F]

Prints, per style and overall, how often the digit is read right, how often the answer is
accepted (not declined as "not a digit" or below the threshold), and both; then the expected
calibration error (ECE) on this set and on the MNIST test set, before and after the model
card's temperature scaling. ``--out`` also writes the images with a ``labels.csv``
(``file,label,style``), which ``inkdigits evaluate --dataset DIR`` reads.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from inkdigits import InkdigitsError, Recognizer
from inkdigits.calibrate import expected_calibration_error
from inkdigits.data import load_mnist

FONT_DIR = Path("/usr/share/fonts")
HANDWRITING_FONTS = [
    "truetype/fifthhorseman/dkg.ttf",
    "truetype/fifthhorseman/dkgBd.ttf",
    "truetype/breip/Breip.ttf",
    "truetype/rufscript/Rufscript010.ttf",
    "truetype/humor-sans/Humor-Sans.ttf",
    "truetype/sjfonts/Delphine.ttf",
    "truetype/sjfonts/SteveHand.ttf",
    "opentype/bwht/BecauseWeLearn-Regular.otf",
    "opentype/bwht/BecauseWeCreate-Regular.otf",
    "opentype/comic-neue/ComicNeue-Regular.otf",
]

INKS = {
    "black": (0.08, 0.08, 0.1),
    "blue": (0.1, 0.2, 0.65),
    "red": (0.75, 0.1, 0.12),
    "green": (0.1, 0.45, 0.2),
    "pencil": (0.35, 0.35, 0.38),
}
PAPERS = [(0.97, 0.96, 0.92), (1.0, 1.0, 1.0), (0.93, 0.9, 0.8), (1.0, 0.95, 0.6), (0.85, 0.88, 0.92)]


# Debian's packages that install HANDWRITING_FONTS.
FONT_PACKAGES = (
    "fonts-dkg-handwriting fonts-breip fonts-rufscript fonts-humor-sans fonts-sjfonts fonts-bwht fonts-comic-neue"
)


def available_fonts(warn: bool = False) -> list[Path]:
    """The benchmark fonts installed here. Without all of them the benchmarks draw other
    images than the README's figures came from: ``warn`` says so on stderr."""
    fonts = [FONT_DIR / f for f in HANDWRITING_FONTS if (FONT_DIR / f).is_file()]
    if warn and len(fonts) < len(HANDWRITING_FONTS):
        print(
            f"warning: {len(HANDWRITING_FONTS) - len(fonts)} of the {len(HANDWRITING_FONTS)} benchmark fonts are "
            f"not installed, so these images and figures are not the README's; apt-get install {FONT_PACKAGES}",
            file=sys.stderr,
        )
    return fonts


# ---- ink masks -------------------------------------------------------------------------------


def mnist_ink(image: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """A test digit enlarged to ``height`` pixels tall, with its strokes widened or narrowed."""
    ys, xs = np.nonzero(image > 30)
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
    scale = height / crop.shape[0]
    size = (max(2, round(crop.shape[1] * scale)), max(2, height))
    ink = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
    ink = np.clip((ink - 0.35) * 2.5, 0, 1)  # crisp pen edges instead of MNIST's blur
    change = int(rng.integers(-1, 3) * max(1, height // 40))
    if change > 0:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (change + 1, change + 1)))
    elif change < 0 and height > 60:
        ink = cv2.erode(ink, np.ones((2, 2), np.uint8))
    return np.clip(ink, 0, 1)


def font_ink(digit: int, font: Path, height: int, rng: np.random.Generator) -> np.ndarray:
    """A digit from a handwriting font, ``height`` pixels tall, slightly rotated."""
    face = ImageFont.truetype(str(font), 200)
    canvas = Image.new("L", (400, 400), 0)
    draw = ImageDraw.Draw(canvas)
    stroke = int(rng.integers(0, 6))
    draw.text((100, 50), str(digit), fill=255, font=face, stroke_width=stroke, stroke_fill=255)
    ink = np.asarray(canvas.rotate(float(rng.uniform(-10, 10)), resample=Image.BICUBIC), np.float32) / 255
    ys, xs = np.nonzero(ink > 0.2)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = height / crop.shape[0]
    size = (max(2, round(crop.shape[1] * scale)), max(2, height))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


# ---- pages -----------------------------------------------------------------------------------


def place(ink: np.ndarray, canvas_hw: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """Put the ink mask on a blank canvas with its centre at ``centre`` (fractions of the canvas)."""
    height, width = canvas_hw
    page = np.zeros(canvas_hw, np.float32)
    h, w = ink.shape
    top = int(np.clip(centre[0] * height - h / 2, 0, max(0, height - h)))
    left = int(np.clip(centre[1] * width - w / 2, 0, max(0, width - w)))
    page[top : top + h, left : left + w] = ink[: height - top, : width - left]
    return page


def paper(shape: tuple[int, int], color: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Paper with a faint fibre texture."""
    texture = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 2) * 0.015
    return np.clip(np.array(color, np.float32) + texture[..., None], 0, 1)


def lines(page: np.ndarray, rng: np.random.Generator, grid: bool) -> np.ndarray:
    spacing = int(rng.integers(max(8, page.shape[0] // 8), max(9, page.shape[0] // 4)))
    color = np.array((0.55, 0.7, 0.9) if rng.random() < 0.7 else (0.6, 0.6, 0.6), np.float32)
    out = page.copy()
    offset = int(rng.integers(0, spacing))
    for y in range(offset, page.shape[0], spacing):
        out[y : y + 1] = out[y : y + 1] * 0.35 + color * 0.65
    if grid:
        for x in range(offset, page.shape[1], spacing):
            out[:, x : x + 1] = out[:, x : x + 1] * 0.35 + color * 0.65
    return out


def lighting(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    ramp = (ramp - ramp.min()) / max(1e-6, np.ptp(ramp))
    return rgb * (1 - strength * ramp)[..., None]


def shadow(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft shadow of a hand or phone over one side of the page."""
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.float32)
    x0 = int(rng.uniform(0.55, 0.85) * w)
    cv2.fillPoly(mask, [np.array([[x0, 0], [w, 0], [w, h], [int(x0 - 0.2 * w), h]], np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 25))
    return rgb * (1 - 0.45 * mask)[..., None]


def degrade(rgb: np.ndarray, rng: np.random.Generator, blur: float, noise: float, jpeg: int | None) -> np.ndarray:
    if blur > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), blur)
    if noise > 0:
        rgb = rgb + rng.normal(0, noise, rgb.shape).astype(np.float32)
    out = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    if jpeg:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=jpeg)
        out = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def compose(ink: np.ndarray, canvas_hw, centre, page_rgb, ink_rgb, coverage: float = 1.0) -> np.ndarray:
    mask = place(ink, canvas_hw, centre)[..., None] * coverage
    return page_rgb * (1 - mask) + np.array(ink_rgb, np.float32) * mask


# ---- styles ----------------------------------------------------------------------------------

Style = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _canvas(height: int, rng: np.random.Generator, margin: tuple[float, float] = (1.3, 2.2)) -> tuple[int, int]:
    side = min(1600, int(height * rng.uniform(*margin)))
    return max(side, height + 2), min(2000, max(height + 2, int(side * rng.uniform(0.8, 1.5))))


def clean_scan(ink, rng):
    hw = _canvas(ink.shape[0], rng)
    page = paper(hw, PAPERS[1], rng)
    return degrade(compose(ink, hw, (0.5, 0.5), page, INKS["black"]), rng, 0.0, 0.01, None)


def ballpoint_photo(ink, rng):
    hw = _canvas(ink.shape[0], rng)
    page = lighting(paper(hw, PAPERS[int(rng.integers(0, 3))], rng), rng, rng.uniform(0.1, 0.35))
    color = INKS["blue"] if rng.random() < 0.6 else INKS["black"]
    return degrade(compose(ink, hw, (0.5, 0.5), page, color), rng, 0.7, 0.025, int(rng.integers(55, 90)))


def pencil(ink, rng):
    hw = _canvas(ink.shape[0], rng)
    grain = np.clip(rng.uniform(0.35, 0.85, ink.shape).astype(np.float32), 0, 1)
    page = paper(hw, PAPERS[int(rng.integers(0, 3))], rng)
    return degrade(compose(ink * grain, hw, (0.5, 0.5), page, INKS["pencil"]), rng, 0.5, 0.02, None)


def coloured_marker(ink, rng):
    thick = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    hw = _canvas(ink.shape[0], rng)
    page = paper(hw, PAPERS[int(rng.integers(0, len(PAPERS)))], rng)
    color = [INKS["red"], INKS["green"], INKS["blue"]][int(rng.integers(0, 3))]
    return degrade(compose(thick, hw, (0.5, 0.5), page, color), rng, 0.4, 0.015, 85)


def chalkboard(ink, rng):
    hw = _canvas(ink.shape[0], rng)
    board = paper(hw, (0.13, 0.22, 0.17) if rng.random() < 0.5 else (0.1, 0.1, 0.12), rng)
    chalk = ink * np.clip(rng.uniform(0.5, 1.0, ink.shape), 0, 1).astype(np.float32)
    return degrade(compose(chalk, hw, (0.5, 0.5), board, (0.92, 0.93, 0.9)), rng, 0.6, 0.03, 80)


def ruled_paper(ink, rng):
    hw = _canvas(ink.shape[0], rng, (1.5, 2.5))
    page = lines(paper(hw, PAPERS[0], rng), rng, grid=False)
    return degrade(compose(ink, hw, (0.5, 0.5), page, INKS["blue"]), rng, 0.5, 0.015, 85)


def grid_paper(ink, rng):
    hw = _canvas(ink.shape[0], rng, (1.5, 2.5))
    page = lines(paper(hw, PAPERS[1], rng), rng, grid=True)
    return degrade(compose(ink, hw, (0.5, 0.5), page, INKS["black"]), rng, 0.5, 0.015, 85)


def off_centre_shadow(ink, rng):
    hw = _canvas(ink.shape[0], rng, (2.5, 4.0))
    centre = (rng.uniform(0.25, 0.75), rng.uniform(0.2, 0.6))
    page = shadow(lighting(paper(hw, PAPERS[int(rng.integers(0, 3))], rng), rng, 0.25), rng)
    return degrade(compose(ink, hw, centre, page, INKS["black"]), rng, 0.8, 0.025, 75)


def white_on_dark(ink, rng):
    hw = _canvas(ink.shape[0], rng)
    page = paper(hw, (0.05, 0.05, 0.07), rng)
    return degrade(compose(ink, hw, (0.5, 0.5), page, (0.95, 0.95, 0.95)), rng, 0.3, 0.02, None)


def blurry_noisy(ink, rng):
    hw = _canvas(ink.shape[0], rng)
    page = lighting(paper(hw, PAPERS[int(rng.integers(0, 3))], rng), rng, 0.3)
    return degrade(
        compose(ink, hw, (0.5, 0.5), page, INKS["black"]),
        rng,
        rng.uniform(1.0, 2.0),
        rng.uniform(0.04, 0.07),
        int(rng.integers(40, 70)),
    )


STYLES: dict[str, Style] = {
    "clean scan": clean_scan,
    "ballpoint photo": ballpoint_photo,
    "pencil": pencil,
    "coloured marker": coloured_marker,
    "chalkboard": chalkboard,
    "ruled paper": ruled_paper,
    "grid paper": grid_paper,
    "off-centre + shadow": off_centre_shadow,
    "light on dark": white_on_dark,
    "blurry + noisy": blurry_noisy,
}


def generate(count: int, seed: int, test_images: np.ndarray, test_labels: np.ndarray):
    """Yield (rgb uint8 image, label, style, source) for ``count`` samples, deterministically."""
    rng = np.random.default_rng(seed)
    fonts = available_fonts()
    names = list(STYLES)
    for index in range(count):
        style = names[index % len(names)]
        # sizes from 15 to 600 pixels tall, log-uniform, most between 40 and 300
        height = int(np.exp(rng.uniform(np.log(15), np.log(600))))
        if fonts and rng.random() < 0.35:
            label = int(rng.integers(0, 10))
            ink = font_ink(label, fonts[int(rng.integers(0, len(fonts)))], height, rng)
            source = "font"
        else:
            pick = int(rng.integers(0, len(test_images)))
            label = int(test_labels[pick])
            ink = mnist_ink(test_images[pick], height, rng)
            source = "mnist-test"
        yield STYLES[style](ink, rng), label, style, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="ONNX model or run folder (default: bundled)")
    parser.add_argument("--threshold", type=float, help="reject threshold (default: the model card's)")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", metavar="DIR", help="also write the images and labels.csv here")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    available_fonts(warn=True)
    mnist = load_mnist(args.data_dir, progress=False)
    recognizer = Recognizer.load(args.model, threshold=args.threshold)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        rows = ["file,label,style"]
    results: dict[str, dict[str, list[int]]] = {name: {"correct": [], "accepted": [], "both": []} for name in STYLES}
    by_source: dict[str, list[int]] = {"mnist-test": [], "font": []}
    raw_probabilities, labels, times = [], [], []
    for index, (image, label, style, source) in enumerate(
        generate(args.count, args.seed, mnist.test_images, mnist.test_labels)
    ):
        started = time.perf_counter()
        try:
            prediction = recognizer.predict(image)
            correct, accepted = int(prediction.digit == label), int(not prediction.rejected)
        except InkdigitsError:  # "no digit" or unreadable: a miss
            prediction, correct, accepted = None, 0, 0
        times.append(time.perf_counter() - started)
        if prediction is not None:
            raw_probabilities.append(recognizer.model.probabilities(prediction.model_input[None])[0])
            labels.append(label)
        results[style]["correct"].append(correct)
        results[style]["accepted"].append(accepted)
        results[style]["both"].append(correct * accepted)
        by_source[source].append(correct)
        if out:
            name = f"{index:05d}.png"
            Image.fromarray(image).save(out / name)
            rows.append(f"{name},{label},{style}")
    if out:
        (out / "labels.csv").write_text("\n".join(rows) + "\n")
    print(f"threshold {recognizer.threshold:.2f}, temperature {recognizer.temperature:.3f}")
    print(f"{'style':<22} {'n':>5}  {'read right':>10}  {'accepted':>9}  {'accepted+right':>14}")
    for style, r in results.items():
        print(
            f"{style:<22} {len(r['correct']):5d}  {100 * np.mean(r['correct']):9.2f}%  "
            f"{100 * np.mean(r['accepted']):8.2f}%  {100 * np.mean(r['both']):13.2f}%"
        )
    for source, hits in by_source.items():
        if hits:
            print(f"{'from ' + source:<22} {len(hits):5d}  {100 * np.mean(hits):9.2f}%")
    total = {key: [h for r in results.values() for h in r[key]] for key in ("correct", "accepted", "both")}
    print(
        f"{'overall':<22} {len(total['correct']):5d}  {100 * np.mean(total['correct']):9.2f}%  "
        f"{100 * np.mean(total['accepted']):8.2f}%  {100 * np.mean(total['both']):13.2f}%"
        f"   (median {1000 * np.median(times):.1f} ms per image)"
    )
    raw = np.array(raw_probabilities)
    ece = {
        "realistic": _ece_pair(recognizer, raw, np.array(labels)),
        "mnist_test": _ece_pair(recognizer, recognizer.model.probabilities_uint8(mnist.test_images), mnist.test_labels),
    }
    for name, (before, after) in ece.items():
        print(f"ECE on {name:<10} before calibration {before:.4f}, after {after:.4f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "count": args.count,
                    "model": str(recognizer.model.path),
                    "threshold": recognizer.threshold,
                    "temperature": recognizer.temperature,
                    "per_style": {s: {k: float(np.mean(v)) for k, v in r.items()} for s, r in results.items()},
                    "per_source": {s: float(np.mean(h)) for s, h in by_source.items() if h},
                    "overall": {k: float(np.mean(v)) for k, v in total.items()},
                    "ece": {name: {"before": b, "after": a} for name, (b, a) in ece.items()},
                    "median_ms": float(1000 * np.median(times)),
                },
                indent=2,
            )
        )


def _ece_pair(recognizer: Recognizer, raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """ECE of the model's own probabilities, and after the card's temperature scaling."""
    return (
        expected_calibration_error(raw, labels),
        expected_calibration_error(recognizer.calibrated(raw), labels),
    )


if __name__ == "__main__":
    main()
