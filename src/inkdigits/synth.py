"""Synthetic training material for reading people's images (numpy, OpenCV, Pillow; no torch).

MNIST holds clean, centred, scanned digits. People send photos: coloured ink, paper grain,
uneven light, blur, noise, JPEG, boards; and sometimes no digit at all. Two banks of 28x28
images teach a model about that world, both made by drawing something on a simulated page
and passing the page through inkdigits' own preprocessing, so the model learns from exactly
the kind of input it will be given, the preprocessing's own artefacts included:

- ``realistic_digits``: MNIST *training* digits, photographed.
- ``non_digits``: things that are not one digit: letters from fonts, scribbles,
  shapes, two or three digits side by side, and blank pages whose grain or shadows get
  through the preprocessing. They are the examples of the "not a digit" class.

The letter fonts (DejaVu, Liberation, Femke Klaver, and handwriting font files that the
benchmarks do not use) never draw a benchmark's letters or digits: the files differ,
although some handwriting families (dkg, Because We, Comic Neue) appear on both sides.
Everything derives from one seed.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data import cache_dir
from .errors import NoDigitError
from .fsutil import atomic_write
from .images import array_to_float
from .preprocess import center_by_mass, fit_box, to_mnist
from .progress import Progress
from .segment import find_rows

BANK_VERSION = 5
# Share of the line reader's MNIST 1s given a flag (``with_flag``): MNIST's American writers
# hardly ever drew one; much of Europe does.
FLAGGED_ONES = 0.3
# Share of its MNIST 7s given a bar across the stem (``with_crossbar``), as much of Europe
# writes them; MNIST has few (the digit model bundled until 2026-12-02 read 3% of crossed MNIST
# test 7s otherwise, and the readers 5% of rows with one, ``benchmarks/european_digits.py``).
CROSSED_SEVENS = 0.3
MOST_HIDDEN = 0.5  # the largest share of a row's glyph that other glyphs' ink may cover
FONT_ROOT = Path("/usr/share/fonts")
TRAINING_FONT_FAMILIES = ("truetype/dejavu", "truetype/liberation", "truetype/femkeklaver")
# Handwriting fonts for letters: only files the benchmarks never use (they draw with dkg,
# dkgBd, Breip, Rufscript, Humor Sans, Delphine, SteveHand, BecauseWeLearn, BecauseWeCreate
# and ComicNeue-Regular). Printed letters alone left a third of handwritten ones confident.
TRAINING_HANDWRITING_FONTS = (
    "truetype/fifthhorseman/dkgIt.ttf",
    "truetype/fifthhorseman/dkgBI.ttf",
    "opentype/bwht/BecauseWeBuild-Regular.otf",
    "opentype/bwht/BecauseWeConnect-Regular.otf",
    "opentype/bwht/BecauseWeMentor-Regular.otf",
    "opentype/bwht/BecauseWeOrganize-Regular.otf",
    "opentype/comic-neue/ComicNeue-Bold.otf",
    "opentype/comic-neue/ComicNeue-Italic.otf",
    "opentype/comic-neue/ComicNeue-Light.otf",
    "opentype/comic-neue/ComicNeue-BoldItalic.otf",
)
# Debian's packages that install those fonts. Which of them are installed decides the letters
# in the non-digit bank, and so the model: ``train`` warns when any is missing.
TRAINING_FONT_PACKAGES = (
    "fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-femkeklaver "
    "fonts-dkg-handwriting fonts-bwht fonts-comic-neue"
)
# The line reader learns digits from more handwriting: these also write a 1 with the long
# upstroke much of Europe gives it, which MNIST's 1s hardly ever have (a reader that never saw
# one read its flag as a 1 or a slash of its own). None is a benchmark's font.
READER_HANDWRITING_FONTS = (
    "opentype/havana/Havana-Regular.otf",
    "truetype/ecolier-court/Ecolier-court.ttf",
    "opentype/dancingscript/DancingScript-Regular.otf",
    "opentype/dancingscript/DancingScript-Bold.otf",
)
READER_FONT_PACKAGES = "fonts-havana fonts-ecolier-court fonts-dancingscript"
# Letters that are drawn exactly like a digit (O and 0, l and 1) are neither digits nor
# non-digits: no reader can tell them apart out of context.
LETTERS = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in "OoIl")
# The share of the non-digit bank each kind gets.
NON_DIGIT_SHARES = {
    "letter": 0.35,
    "scribble": 0.1,
    "stroke": 0.1,
    "shape": 0.2,
    "several digits": 0.1,
    "blank page": 0.15,
}


def handwriting_fonts() -> list[Path]:
    """The training handwriting fonts installed here (none of them a benchmark's file)."""
    return [FONT_ROOT / name for name in TRAINING_HANDWRITING_FONTS if (FONT_ROOT / name).is_file()]


def reader_fonts() -> list[Path]:
    """The handwriting fonts the line reader's rows are written in (installed ones)."""
    extra = [FONT_ROOT / name for name in READER_HANDWRITING_FONTS if (FONT_ROOT / name).is_file()]
    return handwriting_fonts() + extra


def missing_training_fonts() -> list[str]:
    """The training font families and handwriting files not installed here."""
    families = [family for family in TRAINING_FONT_FAMILIES if not (FONT_ROOT / family).is_dir()]
    return families + [name for name in TRAINING_HANDWRITING_FONTS if not (FONT_ROOT / name).is_file()]


def missing_reader_fonts() -> list[str]:
    """The line reader's fonts not installed here: the digit model's, and the reader's own hands."""
    return missing_training_fonts() + [name for name in READER_HANDWRITING_FONTS if not (FONT_ROOT / name).is_file()]


def bank_recipe() -> dict[str, object]:
    """What the banks are made from besides MNIST and the seed: the generator's version and
    the font files its letters come from (for a run's record)."""
    return {"version": BANK_VERSION, "fonts": sorted({str(p.relative_to(FONT_ROOT)) for p in training_fonts()})}


def training_fonts() -> list[Path]:
    fonts: list[Path] = []
    for family in TRAINING_FONT_FAMILIES:
        folder = FONT_ROOT / family
        if folder.is_dir():
            fonts += sorted(p for p in folder.iterdir() if p.suffix in (".ttf", ".otf") and "Math" not in p.name)
    handwriting = handwriting_fonts()
    # Handwriting letters are what people write: give them as much weight as all printed ones.
    return fonts + handwriting * max(1, len(fonts) // max(1, len(handwriting)))


# ---- ink masks (float32, 1 = ink) ---------------------------------------------------------


def mnist_mask(image: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit enlarged to ``height`` pixels, with a crisp pen edge and a varied stroke."""
    ys, xs = np.nonzero(image > 30)
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
    scale = height / crop.shape[0]
    size = (max(2, round(crop.shape[1] * scale)), max(2, height))
    mask = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
    mask = np.clip((mask - rng.uniform(0.2, 0.5)) * rng.uniform(2, 4), 0, 1)
    grow = int(rng.integers(-1, 3)) * max(1, height // 40)
    if grow > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow + 1, grow + 1)))
    elif grow < 0 and height > 50:
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    return mask


def _pen_width(ink: np.ndarray) -> int:
    """A digit's pen in pixels: the median width of its ink across a row (a stem's width)."""
    widths = ink.sum(axis=1)
    return max(1, int(np.median(widths[widths > 0])))


def with_flag(
    mask: np.ndarray,
    rng: np.random.Generator,
    lengths: tuple[float, float] = (0.25, 0.8),
    angles: tuple[float, float] = (20, 60),
) -> np.ndarray:
    """A 1's mask with the long upstroke many people start it with: from the stem's top down
    to the left, in the stem's own pen, widened on the left to hold it. ``lengths``: in the
    digit's heights; ``angles``: in degrees below the level."""
    ink = mask > 0.5
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return mask
    height = mask.shape[0]
    top = int(ys.min())
    x_top = float(xs[ys <= top + max(1, height // 20)].mean())
    pen = _pen_width(ink)
    # from a short tick to an upstroke from two thirds of the way down
    length, angle = height * rng.uniform(*lengths), np.radians(rng.uniform(*angles))
    reach = length * np.cos(angle)
    grow = max(0, int(np.ceil(reach + pen - x_top)))
    flagged = np.pad(mask, ((0, 0), (grow, 0)))
    start = (round(x_top + grow), top + pen // 2)
    end = (round(x_top + grow - reach), round(top + pen // 2 + length * np.sin(angle)))
    cv2.line(flagged, start, end, 1.0, pen, cv2.LINE_AA)
    return flagged


def with_crossbar(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 7's mask with the short bar many people draw across its stem, about halfway down,
    in the stem's own pen, widened on either side to hold it."""
    ink = mask > 0.5
    ys = np.nonzero(ink.any(axis=1))[0]
    if len(ys) == 0:
        return mask
    top, bottom = int(ys.min()), int(ys.max())
    y = round(top + (bottom - top) * rng.uniform(0.4, 0.6))
    stem = np.nonzero(ink[y])[0]
    if len(stem) == 0:
        return mask
    pen = _pen_width(ink)
    height = bottom - top
    # past the stem on both sides, a little further on one
    half = (stem.max() - stem.min()) / 2 + height * rng.uniform(0.1, 0.25)
    tilt = height * rng.uniform(-0.06, 0.06)
    centre = (stem.min() + stem.max()) / 2 + height * rng.uniform(-0.05, 0.05)
    grow = max(0, int(np.ceil(half + pen - centre))), max(0, int(np.ceil(centre + half + pen - mask.shape[1])))
    crossed = np.pad(mask, ((0, 0), grow))
    start = (round(centre + grow[0] - half), round(y - tilt / 2))
    end = (round(centre + grow[0] + half), round(y + tilt / 2))
    cv2.line(crossed, start, end, 1.0, pen, cv2.LINE_AA)
    return crossed


def european_digits(images: np.ndarray, labels: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """A copy of MNIST images (uint8, N x 28 x 28) in which ``share`` of the 1s carry a flag
    (``with_flag``) and of the 7s a bar across the stem (``with_crossbar``), as much of Europe
    writes them, framed again as MNIST frames a digit. The same seed marks the same images."""
    rng = np.random.default_rng(seed)
    marked = images.copy()
    # Seen alone, a long flag at a shallow angle is a 7 (the line reader has the row's other
    # digits to go by): the digit model's flags are shorter and steeper.
    flag = functools.partial(with_flag, lengths=(0.2, 0.5), angles=(35, 65))
    for digit, mark in ((1, flag), (7, with_crossbar)):
        for index in np.nonzero(labels == digit)[0]:
            if rng.random() < share:
                marked[index] = _marked_mnist(images[index], mark, rng)
    return marked


def _marked_mnist(
    image: np.ndarray, mark: Callable[[np.ndarray, np.random.Generator], np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    # drawn at four times the size, where the new stroke can take the digit's own pen
    big = np.clip(cv2.resize(image.astype(np.float32) / 255, (112, 112), interpolation=cv2.INTER_CUBIC), 0, 1)
    drawn = mark(big, rng)
    ys, xs = np.nonzero(drawn > 0.1)
    framed = center_by_mass(fit_box(drawn[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]))
    return np.round(framed * 255).astype(np.uint8)


def letter_mask(letter: str, font: Path, height: int, rng: np.random.Generator) -> np.ndarray:
    """A letter from a printed font, wobbled by a smooth random warp so it looks written."""
    face = ImageFont.truetype(str(font), 96)
    canvas = Image.new("L", (220, 220), 0)
    ImageDraw.Draw(canvas).text(
        (40, 20), letter, fill=255, font=face, stroke_width=int(rng.integers(0, 4)), stroke_fill=255
    )
    mask = np.asarray(canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BICUBIC), np.float32) / 255
    return _fit_height(_wobble(mask, rng, 6.0), height)


# OpenCV's Hershey fonts are single-line vector fonts: drawn with a round pen, their letters
# are strokes, as handwriting is, where outline fonts give filled shapes.
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_COMPLEX_SMALL | cv2.FONT_ITALIC,
)


def stroke_letter_mask(letter: str, height: int, rng: np.random.Generator) -> np.ndarray:
    """A letter drawn as pen strokes (a Hershey font), slanted and wobbled like handwriting."""
    font = HERSHEY_FONTS[int(rng.integers(0, len(HERSHEY_FONTS)))]
    canvas = np.zeros((200, 200), np.uint8)
    scale = 3.0 if font != cv2.FONT_HERSHEY_COMPLEX_SMALL | cv2.FONT_ITALIC else 4.0
    cv2.putText(canvas, letter, (50, 140), font, scale, 255, int(rng.integers(2, 8)), cv2.LINE_AA)
    mask = canvas.astype(np.float32) / 255
    shear = np.float32([[1, rng.uniform(-0.3, 0.3), 0], [0, 1, 0]])
    mask = cv2.warpAffine(mask, shear, (200, 200), flags=cv2.INTER_LINEAR)
    return _fit_height(_wobble(mask, rng, 5.0), height)


def _wobble(mask: np.ndarray, rng: np.random.Generator, pixels: float) -> np.ndarray:
    """A smooth random displacement of up to ``pixels``: a hand's unsteadiness."""
    h, w = mask.shape
    coarse = rng.uniform(-pixels, pixels, (2, 5, 5)).astype(np.float32)
    dx = cv2.resize(coarse[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (w, h), interpolation=cv2.INTER_CUBIC)
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xx + dx, yy + dy, cv2.INTER_LINEAR, borderValue=0)


def arc_mask(height: int, rng: np.random.Generator) -> np.ndarray:
    """One or two smooth pen strokes (cubic Bezier curves): hooks, swooshes, ticks."""
    size = 100
    t = np.linspace(0, 1, 50)[:, None]
    while True:
        canvas = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            p = rng.uniform(8, 92, (4, 2))
            curve = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
            cv2.polylines(canvas, [curve.astype(np.int32)], False, 255, _pen(rng, size), cv2.LINE_AA)
        _, _, w, h = cv2.boundingRect(canvas)
        # A nearly upright straight stroke is how people write a 1: never teach it as a non-digit.
        if w >= 0.45 * h:
            return _fit_height(canvas.astype(np.float32) / 255, height)


def _pen(rng: np.random.Generator, size: int) -> int:
    return max(1, int(size * rng.uniform(0.04, 0.12)))


def scribble_mask(height: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random stroke or two: the doodles and crossings-out people leave."""
    size = 100
    canvas = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        points = rng.uniform(10, 90, (int(rng.integers(4, 10)), 2))
        t = np.linspace(0, 1, 60)
        # Catmull-Rom-like smoothing by resampling a polyline through its points.
        curve = np.stack([np.interp(t * (len(points) - 1), np.arange(len(points)), points[:, k]) for k in (0, 1)], 1)
        curve = cv2.GaussianBlur(curve.reshape(-1, 1, 2).astype(np.float32), (1, 9), 0).reshape(-1, 2)
        cv2.polylines(canvas, [curve.astype(np.int32)], False, 255, _pen(rng, size), cv2.LINE_AA)
    return _fit_height(canvas.astype(np.float32) / 255, height)


def shape_mask(height: int, rng: np.random.Generator) -> np.ndarray:
    """An outline or mark that is not a digit: boxes, triangles, stars, crosses, arrows, ..."""
    size = 100
    canvas = np.zeros((size, size), np.uint8)
    pen = _pen(rng, size)
    kind = int(rng.integers(0, 15))
    jitter = rng.uniform(-6, 6, (12, 2))
    if kind == 0:  # box
        pts = np.array([[15, 20], [85, 20], [85, 80], [15, 80]]) + jitter[:4]
        cv2.polylines(canvas, [pts.astype(np.int32)], True, 255, pen, cv2.LINE_AA)
    elif kind == 1:  # triangle
        pts = np.array([[50, 12], [88, 85], [12, 85]]) + jitter[:3]
        cv2.polylines(canvas, [pts.astype(np.int32)], True, 255, pen, cv2.LINE_AA)
    elif kind == 2:  # star
        angles = np.linspace(-np.pi / 2, 3.5 * np.pi, 6)[:5]
        outer = np.stack([50 + 40 * np.cos(angles), 50 + 40 * np.sin(angles)], 1)
        cv2.polylines(canvas, [outer[[0, 2, 4, 1, 3]].astype(np.int32)], True, 255, pen, cv2.LINE_AA)
    elif kind == 3:  # plus
        cv2.line(canvas, (50, 12), (50, 88), 255, pen, cv2.LINE_AA)
        cv2.line(canvas, (12, 50), (88, 50), 255, pen, cv2.LINE_AA)
    elif kind == 4:  # x
        cv2.line(canvas, (15, 15), (85, 85), 255, pen, cv2.LINE_AA)
        cv2.line(canvas, (85, 15), (15, 85), 255, pen, cv2.LINE_AA)
    elif kind == 5:  # arrow
        cv2.arrowedLine(canvas, (12, 70), (88, 30), 255, pen, cv2.LINE_AA, tipLength=0.35)
    elif kind == 6:  # hash
        for a in (35, 65):
            cv2.line(canvas, (a, 10), (a - 8, 90), 255, pen, cv2.LINE_AA)
            cv2.line(canvas, (10, a), (90, a), 255, pen, cv2.LINE_AA)
    elif kind == 7:  # spiral
        t = np.linspace(0, 5 * np.pi, 120)
        r = 4 + 40 * t / t.max()
        pts = np.stack([50 + r * np.cos(t), 50 + r * np.sin(t)], 1)
        cv2.polylines(canvas, [pts.astype(np.int32)], False, 255, max(1, pen // 2), cv2.LINE_AA)
    elif kind == 8:  # zigzag or wave
        x = np.linspace(10, 90, 40)
        y = 50 + 25 * (np.sin(x / rng.uniform(4, 9)) if rng.random() < 0.5 else np.sign(np.sin(x / 6)) * 0.8)
        cv2.polylines(canvas, [np.stack([x, y], 1).astype(np.int32)], False, 255, pen, cv2.LINE_AA)
    elif kind == 9:  # smiley: a face, not a zero
        cv2.circle(canvas, (50, 50), 38, 255, pen, cv2.LINE_AA)
        cv2.circle(canvas, (36, 40), max(2, pen), 255, -1)
        cv2.circle(canvas, (64, 40), max(2, pen), 255, -1)
        cv2.ellipse(canvas, (50, 58), (20, 14), 0, 10, 170, 255, pen, cv2.LINE_AA)
    elif kind == 10:  # a polygon: straight sides and corners, unlike a zero's oval
        sides = int(rng.integers(4, 9))
        angles = np.linspace(0, 2 * np.pi, sides, endpoint=False) + rng.uniform(0, np.pi)
        pts = np.stack([50 + 40 * np.cos(angles), 50 + 40 * np.sin(angles)], 1) + jitter[:sides] * 0.5
        cv2.polylines(canvas, [pts.astype(np.int32)], True, 255, pen, cv2.LINE_AA)
    elif kind == 11:  # heart
        t = np.linspace(0, 2 * np.pi, 80)
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        pts = np.stack([50 + 2.4 * x, 48 - 2.4 * y], 1)
        cv2.polylines(canvas, [pts.astype(np.int32)], True, 255, pen, cv2.LINE_AA)
    elif kind == 12:  # dots
        for x, y in rng.uniform(12, 88, (int(rng.integers(4, 16)), 2)):
            cv2.circle(canvas, (int(x), int(y)), max(2, pen), 255, -1, cv2.LINE_AA)
    elif kind == 13:  # check mark
        pts = np.array([[15, 55], [40, 85], [88, 15]]) + jitter[:3]
        cv2.polylines(canvas, [pts.astype(np.int32)], False, 255, pen, cv2.LINE_AA)
    else:  # an ink blot
        blob = cv2.GaussianBlur(rng.random((100, 100)).astype(np.float32), (0, 0), 8)
        canvas[blob > np.percentile(blob, rng.uniform(70, 90))] = 255
    return _fit_height(canvas.astype(np.float32) / 255, height)


def several_digits_mask(images: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """Two or three MNIST training digits side by side, touching or a little apart."""
    picks = rng.integers(0, len(images), int(rng.integers(2, 4)))
    parts = [mnist_mask(images[i], height, rng) for i in picks]
    gap = int(height * rng.uniform(-0.1, 0.25))
    width = sum(p.shape[1] for p in parts) + gap * (len(parts) - 1) + 2 * abs(gap)
    canvas = np.zeros((height, max(width, height)), np.float32)
    x = abs(gap)
    for part in parts:
        w = min(part.shape[1], canvas.shape[1] - x)
        canvas[:, x : x + w] = np.maximum(canvas[:, x : x + w], part[:, :w])
        x += part.shape[1] + gap
    return canvas


def _fit_height(mask: np.ndarray, height: int) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.2)
    if len(ys) == 0:
        return np.zeros((height, height), np.float32)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = height / max(crop.shape)
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


# ---- the simulated photograph ---------------------------------------------------------------


def photograph(mask: np.ndarray | None, rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Ink ``mask`` on a page, as a camera or scanner would give it (RGB uint8).

    ``mask=None`` photographs an empty page of ``shape``.
    """
    if mask is None:
        assert shape is not None
        height, width = shape
        mask = np.zeros(shape, np.float32)
    else:
        margin = rng.uniform(1.15, 2.2)
        height = max(mask.shape[0] + 2, int(mask.shape[0] * margin))
        width = max(mask.shape[1] + 2, int(max(mask.shape[1], mask.shape[0]) * margin * rng.uniform(0.8, 1.3)))
        page = np.zeros((height, width), np.float32)
        top = int(rng.integers(0, height - mask.shape[0] + 1))
        left = int(rng.integers(0, width - mask.shape[1] + 1))
        page[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
        mask = page
    board = rng.random() < 0.15
    if board:
        paper = rng.uniform(0.05, 0.3, 3)
        ink = rng.uniform(0.75, 1.0, 3)
    else:
        paper = rng.uniform(0.8, 1.0, 3)
        ink = rng.uniform(0.0, 0.45, 3) if rng.random() < 0.7 else rng.uniform(0.0, 0.7, 3) * rng.random(3)
    strength = mask * rng.uniform(0.55, 1.0)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.5)
    rgb = paper + grain[..., None] * rng.uniform(0.0, 0.03)
    rgb = rgb * (1 - strength[..., None]) + ink * strength[..., None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    ramp = (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    rgb = rgb * (1 - rng.uniform(0, 0.35) * ramp)[..., None]
    if rng.random() < 0.5:
        rgb = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), rng.uniform(0.3, 1.5))
    rgb = rgb + rng.normal(0, rng.uniform(0, 0.04), rgb.shape)
    out = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=int(rng.integers(40, 95)))
        out = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def _as_mnist(rgb: np.ndarray) -> np.ndarray | None:
    """The page through inkdigits' own preprocessing, as uint8; None if it finds no digit."""
    try:
        digit = to_mnist(rgb.astype(np.float32) / 255).digit
    except NoDigitError:
        return None
    return (digit * 255).round().astype(np.uint8)


# ---- banks ----------------------------------------------------------------------------------


def realistic_digits(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int, bar: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` photographed MNIST training digits, preprocessed: (N, 28, 28) uint8, labels."""
    rng = np.random.default_rng([seed, 1])
    out, out_labels = [], []
    while len(out) < count:
        pick = int(rng.integers(0, len(images)))
        height = int(np.exp(rng.uniform(np.log(18), np.log(160))))
        digit = _as_mnist(photograph(mnist_mask(images[pick], height, rng), rng))
        if digit is not None:
            out.append(digit)
            out_labels.append(int(labels[pick]))
            if bar is not None:
                bar.update(1)
    return np.stack(out), np.array(out_labels, np.int64)


def _non_digit_makers(images: np.ndarray) -> dict[str, Callable[[int, np.random.Generator], np.ndarray | None]]:
    fonts = training_fonts()

    def letter(height: int, rng: np.random.Generator) -> np.ndarray | None:
        char = LETTERS[int(rng.integers(0, len(LETTERS)))]
        if not fonts or rng.random() < 0.4:
            return photograph(stroke_letter_mask(char, height, rng), rng)
        font = fonts[int(rng.integers(0, len(fonts)))]
        return photograph(letter_mask(char, font, height, rng), rng)

    def blank(height: int, rng: np.random.Generator) -> np.ndarray:
        page = photograph(None, rng, (height * 2, int(height * rng.uniform(1.5, 3))))
        if rng.random() < 0.5:  # a hand's or phone's shadow over part of the page
            h, w = page.shape[:2]
            shade = np.zeros((h, w), np.float32)
            x0 = int(rng.uniform(0.3, 0.9) * w)
            cv2.fillPoly(shade, [np.array([[x0, 0], [w, 0], [w, h], [int(x0 - 0.3 * w), h]], np.int32)], 1.0)
            shade = cv2.GaussianBlur(shade, (0, 0), max(1.0, w / rng.uniform(10, 60)))
            page = (page * (1 - rng.uniform(0.2, 0.6) * shade)[..., None]).astype(np.uint8)
        return page

    return {
        "letter": letter,
        "scribble": lambda height, rng: photograph(scribble_mask(height, rng), rng),
        "stroke": lambda height, rng: photograph(arc_mask(height, rng), rng),
        "shape": lambda height, rng: photograph(shape_mask(height, rng), rng),
        "several digits": lambda height, rng: photograph(several_digits_mask(images, height, rng), rng),
        "blank page": blank,
    }


def non_digits(images: np.ndarray, count: int, seed: int, bar: Progress | None = None) -> np.ndarray:
    """``count`` preprocessed non-digits, (N, 28, 28) uint8; ``images`` are MNIST training digits."""
    rng = np.random.default_rng([seed, 2])
    makers = _non_digit_makers(images)
    kinds = list(NON_DIGIT_SHARES)
    shares = list(NON_DIGIT_SHARES.values())
    out: list[np.ndarray] = []
    while len(out) < count:
        kind = kinds[int(rng.choice(len(kinds), p=shares))]
        height = int(np.exp(rng.uniform(np.log(20), np.log(140))))
        page = makers[kind](height, rng)
        digit = None if page is None else _as_mnist(page)
        if digit is not None:
            out.append(digit)
            if bar is not None:
                bar.update(1)
    return np.stack(out)


def cached_banks(
    images: np.ndarray,
    labels: np.ndarray,
    realistic_count: int,
    negative_count: int,
    seed: int,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Both banks, from the cache when they were made before with the same inputs (making
    them takes minutes: ``progress`` shows a bar)."""
    key = hashlib.sha256(
        f"{BANK_VERSION}:{seed}:{realistic_count}:{negative_count}:{len(training_fonts())}".encode()
        + hashlib.sha256(images.tobytes()).digest()
    ).hexdigest()[:16]
    path = cache_dir().parent / "synth" / f"banks-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    total = realistic_count + negative_count
    with Progress(total, "photographing training images", unit="img", enabled=None if progress else False) as bar:
        real_x, real_y = realistic_digits(images, labels, realistic_count, seed, bar)
        banks = {"real_x": real_x, "real_y": real_y, "neg_x": non_digits(images, negative_count, seed, bar)}

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.savez(handle, **banks)

    atomic_write(path, write)
    return banks


# ---- rows of digits, for the line reader -----------------------------------------------------


def number_text(rng: np.random.Generator) -> str:
    """A number as people write them: a plain run of digits, an amount, a date, a phone
    number, or digits with separators in random places. Spaces are gaps, not characters."""
    digits = lambda n: "".join(str(d) for d in rng.integers(0, 10, n))  # noqa: E731
    kind = int(rng.integers(0, 5))
    if kind == 0:
        return digits(int(rng.integers(1, 13)))
    if kind == 1:
        return digits(int(rng.integers(1, 7))) + str(rng.choice([".", ","])) + digits(2)
    if kind == 2:
        sep = str(rng.choice(["/", ".", "-"]))
        return sep.join([digits(2), digits(2), digits(int(rng.choice([2, 4])))])
    if kind == 3:
        sep = str(rng.choice([" ", "-", " "]))
        return sep.join(digits(int(rng.integers(2, 5))) for _ in range(int(rng.integers(2, 5))))
    text = digits(1)
    for _ in range(int(rng.integers(1, 10))):
        if rng.random() < 0.25 and text[-1].isdigit():
            text += str(rng.choice(list(".,-/ ")))
        text += digits(1)
    return text


def _separator_mask(char: str, height: int, stroke: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A handwritten ".", ",", "-" or "/" and its top offset from the row's top."""
    if char in ".,":
        side = max(2, int(stroke * rng.uniform(0.9, 1.8)))
        tail = char == ","
        mask = np.zeros((side * (3 if tail else 1) + 1, side + 2), np.float32)
        cv2.circle(mask, (side // 2 + 1, side // 2), max(1, side // 2), 1.0, -1, cv2.LINE_AA)
        if tail:
            end = (int(rng.integers(0, 2)), mask.shape[0] - 1)
            cv2.line(mask, (side // 2 + 1, side // 2), end, 1.0, max(1, int(stroke * 0.7)), cv2.LINE_AA)
        return mask, int(height * rng.uniform(0.82, 0.95)) - side // 2
    if char == "-":
        length = int(height * rng.uniform(0.2, 0.5))
        mask = np.zeros((stroke + 3, length + 2), np.float32)
        cv2.line(mask, (1, 1 + stroke // 2), (length, 1 + stroke // 2 + int(rng.integers(-1, 2))), 1.0, stroke)
        return mask, int(height * rng.uniform(0.4, 0.6))
    width = int(height * rng.uniform(0.3, 0.8))
    mask = np.zeros((height, width + stroke * 2), np.float32)
    cv2.line(mask, (width + stroke - 1, 1), (stroke, height - 2), 1.0, stroke, cv2.LINE_AA)
    return mask, 0


def number_row_mask(
    text: str, images_by_digit: list[np.ndarray], fonts: list[Path], rng: np.random.Generator
) -> np.ndarray:
    """``text`` written in one row (white ink on black), digits from MNIST *training* images or
    a handwriting font, with one spacing habit for the row: overlapping to wide."""
    height = int(rng.integers(26, 64))
    font = fonts[int(rng.integers(0, len(fonts)))] if fonts and rng.random() < 0.25 else None
    spacing = float(rng.choice([rng.uniform(-0.3, -0.1), rng.uniform(-0.1, 0.05), rng.uniform(0.05, 0.9)]))
    stroke = max(2, int(height * rng.uniform(0.07, 0.14)))
    pieces: list[tuple[np.ndarray, int, int]] = []  # mask, top, gap before it
    for char in text:
        if char == " ":
            pieces.append((np.zeros((1, 1), np.float32), 0, int(height * rng.uniform(0.5, 1.1))))
            continue
        gap = int(height * (spacing + rng.uniform(-0.06, 0.06)))
        if char.isdigit():
            size = int(height * rng.uniform(0.85, 1.08))
            if font is not None:
                mask = letter_mask(char, font, size, rng)
            else:
                pool = images_by_digit[int(char)]
                mask = mnist_mask(pool[int(rng.integers(0, len(pool)))], size, rng)
                if char == "1" and rng.random() < FLAGGED_ONES:
                    mask = with_flag(mask, rng)
                elif char == "7" and rng.random() < CROSSED_SEVENS:
                    mask = with_crossbar(mask, rng)
            top = int(rng.integers(0, max(1, height // 8)))
        else:
            mask, top = _separator_mask(char, height, stroke, rng)
            gap = int(height * rng.uniform(0.05, 0.3))
        pieces.append((mask, top, gap))
    width = sum(m.shape[1] + abs(g) for m, _, g in pieces) + 2 * height
    row = np.zeros((int(height * 1.5) + 4, width), np.float32)
    layers = np.zeros(row.shape, np.uint8)  # how many glyphs have ink at each pixel
    placed: list[tuple[np.ndarray, int, int]] = []  # ink, top, x of the glyphs so far
    x = height // 2
    for index, (mask, top, gap) in enumerate(pieces):
        x = max(0, x + gap) if index else x
        h = min(mask.shape[0], row.shape[0] - top)
        ink = mask[:h] > 0.5
        if ink.any():
            x = _visible_position(ink, top, x, placed[-3:], layers)
            placed.append((ink, top, x))
            layers[top : top + h, x : x + ink.shape[1]] += ink
        w = mask.shape[1]
        row[top : top + h, x : x + w] = np.maximum(row[top : top + h, x : x + w], mask[:h])
        x += w
    return row


def _visible_position(
    ink: np.ndarray, top: int, x: int, neighbours: list[tuple[np.ndarray, int, int]], layers: np.ndarray
) -> int:
    """``x``, or as little right of it as it takes for neither the new glyph nor its neighbours
    to have more than ``MOST_HIDDEN`` of their ink under other glyphs' ink. A narrow 1 or a
    dot drawn wholly inside its neighbour is no longer there to read, and a row that says it
    is teaches the reader to guess 1s where there are none and to drop them where there are."""
    h, w = ink.shape
    while x + w < layers.shape[1]:
        window = layers[top : top + h, x : x + w]
        worst = float((window[ink] > 0).mean())
        for other, other_top, other_x in neighbours:
            covered = layers[other_top : other_top + other.shape[0], other_x : other_x + other.shape[1]] > 1
            y0, y1 = max(top, other_top), min(top + h, other_top + other.shape[0])
            x0, x1 = max(x, other_x), min(x + w, other_x + other.shape[1])
            if y0 < y1 and x0 < x1:
                covered[y0 - other_top : y1 - other_top, x0 - other_x : x1 - other_x] |= ink[
                    y0 - top : y1 - top, x0 - x : x1 - x
                ]
            worst = max(worst, float(covered[other].mean()))
        if worst <= MOST_HIDDEN:
            break
        x += 1
    return x


def word_text(rng: np.random.Generator) -> str:
    """A made-up word: capitalised, in capitals or in small letters, maybe with a stop or colon.
    Two letters at least: one alone may be drawn exactly like a digit (o, l)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    word = "".join(letters[i] for i in rng.integers(0, 26, int(rng.integers(2, 9))))
    style = rng.random()
    if style < 0.4:
        word = word.capitalize()
    elif style < 0.6:
        word = word.upper()
    if rng.random() < 0.2:
        word += str(rng.choice([".", ":"]))
    return word


def word_row_mask(word: str, font: Path, height: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``word`` in ``font`` with capitals about ``height`` tall, a little warped: its ink and
    the row its baseline is on."""
    face = ImageFont.truetype(str(font), 96)
    canvas = Image.new("L", (96 * (len(word) + 2), 320), 0)
    ImageDraw.Draw(canvas).text(
        (48, 220), word, fill=255, font=face, anchor="ls", stroke_width=int(rng.integers(0, 3)), stroke_fill=255
    )
    ink = _wobble(np.asarray(canvas, np.float32) / 255, rng, 4.0)
    ys, xs = np.nonzero(ink > 0.2)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    capital = max(1, -face.getbbox("H", anchor="ls")[1])
    scale = height / capital
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
    resized = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return resized, round((220 - ys.min()) * scale)


def with_words(row: np.ndarray, text: str, fonts: list[Path], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The row with a label written before the number or a unit after it (one or two words,
    printed or handwritten, smaller than the digits or as large), and its text with each of
    the words' characters as ``lines.WORD``. One in ten is words alone (a name on a form)."""
    from .lines import WORD

    ys = np.nonzero(row.max(axis=1) > 0.2)[0]
    digits = row[ys.min() : ys.max() + 1]
    height = digits.shape[0]
    font = fonts[int(rng.integers(0, len(fonts)))]
    size = max(8, int(height * rng.uniform(0.4, 1.0)))
    words = [word_text(rng) for _ in range(1 if rng.random() < 0.75 else 2)]
    masks = [word_row_mask(word, font, size, rng) for word in words]
    # Words and digits on one baseline, the digits' bottom; descenders below it.
    above = max(height, *(baseline for _, baseline in masks))
    below = max(mask.shape[0] - baseline for mask, baseline in masks)
    gaps = [int(size * rng.uniform(0.35, 0.7)) for _ in masks[1:]] + [0]
    words_width = sum(mask.shape[1] + gap for (mask, _), gap in zip(masks, gaps, strict=True))
    alone = rng.random() < 0.1
    after = not alone and rng.random() < 0.3
    space = int(height * rng.uniform(0.5, 2.0))
    out = np.zeros((above + below + 2, words_width + (0 if alone else space + digits.shape[1]) + 4), np.float32)

    def put(mask: np.ndarray, y: int, x: int) -> None:
        window = out[y : y + mask.shape[0], x : x + mask.shape[1]]
        np.maximum(window, mask[: window.shape[0], : window.shape[1]], out=window)

    x = 2 + (digits.shape[1] + space if after else 0)
    for (mask, baseline), gap in zip(masks, gaps, strict=True):
        put(mask, above - baseline, x)
        x += mask.shape[1] + gap
    letters = WORD * sum(len(word) for word in words)
    if alone:
        return out, letters
    put(digits, above - height, 2 if after else 2 + words_width + space)
    return out, text + letters if after else letters + text


def _row_augment(row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slight slant, tilt and wobble of the whole row, and broken strokes."""
    h, w = row.shape
    shear, angle = rng.uniform(-0.25, 0.25), rng.uniform(-3, 3)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    matrix[0, 1] += shear
    matrix[0, 2] -= shear * h / 2
    row = cv2.warpAffine(row, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    if rng.random() < 0.3:
        row = _wobble(row, rng, 2.0)
    if rng.random() < 0.2:  # a few gaps in the strokes: a dry pen, a scan's dropout
        for _ in range(int(rng.integers(1, 4))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            cv2.circle(row, (x, y), int(rng.integers(1, max(2, h // 12))), 0.0, -1)
    return row


def number_line(
    images_by_digit: list[np.ndarray],
    fonts: list[Path],
    rng: np.random.Generator,
    photographed: bool,
    words: float = 0.0,
    word_fonts: list[Path] | None = None,
) -> tuple[np.ndarray, str] | None:
    """One training row for the line reader: (its ink cropped as ``Recognizer.read`` crops a
    row, the characters it shows). ``photographed`` rows go through a simulated camera, then
    are found and cropped by the page reader itself (``segment.find_rows``), artefacts and all.
    None when the ink did not survive or did not come out as one row.

    ``words``: the share of rows with words beside the number (``with_words``), for the word
    finder, each of their letters shown as ``lines.WORD``; drawn from ``word_fonts``."""
    text = number_text(rng)
    row = number_row_mask(text, images_by_digit, fonts, rng)
    if words and word_fonts and rng.random() < words:
        row, text = with_words(row, text, word_fonts, rng)
    row = _row_augment(row, rng)
    if photographed:
        try:
            # as Recognizer.read gives it to find_rows: float pixels in [0, 1], not uint8
            page = find_rows(array_to_float(photograph(row, rng)))
        except NoDigitError:
            return None
        if len(page.rows) != 1:
            return None
        row, _ = page.row_ink(page.rows[0])
    ys, xs = np.nonzero(row > 0.2)
    if len(ys) == 0:
        return None
    return row[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], text.replace(" ", "")
