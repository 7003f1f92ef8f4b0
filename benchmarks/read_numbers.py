"""Whole-number benchmark: amounts, dates, codes and phone numbers written by hand.

Each image holds one or two rows of 1-12 digits made from MNIST *test* digits (never
training digits) or a handwriting font, as an amount (``1250.00``), a date (``24/11/2026``),
a code or a phone number (``0612 345 678``), with one spacing kind per image: tight,
touching (strokes joined), overlapping (boxes overlap, no glyph more than half under
others' ink) or wide. Some are written in form boxes, over an underline or on ruled paper;
all are put on the realistic benchmark's paper, inks, lighting, shadows, blur, noise and
JPEG. Everything derives from ``--seed``.

Reported: exact-string accuracy of the digits (``text``) overall, per spacing kind and per
format, exact ``text_full`` (separators kept), character error rate (edit distance over
the digits), and the time per image.

``--words P`` gives a share P of the rows a word beside the number, as on forms, cheques and
notes: a printed label before it ("Total", "Date") or a handwritten one, or a unit after it
("EUR", "kg"). The word is no number: the expected text is the digits alone. ``--tilt D``
turns each page's writing by up to D degrees. Both default to 0 (the pages of the figures
in README), and draw on random generators of their own, so the rest of each page is as
without them.

    python benchmarks/read_numbers.py [--count 1000] [--seed 0] [--words P] [--tilt D]
        [--model PATH] [--reader PATH] [--out DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from realistic import INKS, PAPERS, available_fonts, degrade, font_ink, lighting, lines, paper, shadow

from inkdigits import Recognizer
from inkdigits.data import load_mnist

SPACINGS = ("tight", "touching", "overlapping", "wide")
MOST_HIDDEN = 0.5  # the largest share of a glyph's ink that other glyphs' ink may cover
FORMATS = ("amount", "date", "code", "phone")
LABELS = ("Date", "Total", "Amount", "Tel.", "Phone", "No.", "Code", "Ref", "Sum", "Invoice", "Name", "Room",
          "PIN", "Account", "Due", "Price", "Pay", "Order", "Qty", "Page")  # fmt: skip
UNITS = ("EUR", "USD", "kg", "km", "cm", "pcs", "Fr.", "min")
# Printed labels in the STIX faces matplotlib ships (every install has them); the word
# finder learnt printed words from DejaVu, Liberation and FemkeKlaver only.
PRINTED_FONTS = ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")


def number_text(kind: str, rng: np.random.Generator) -> str:
    """The string as written, separators included."""
    digits = lambda n: "".join(str(d) for d in rng.integers(0, 10, n))  # noqa: E731
    if kind == "amount":
        whole = str(int(rng.integers(1, 100000)))
        return whole + rng.choice([".", ","]) + digits(2) if rng.random() < 0.7 else whole
    if kind == "date":
        day, month, year = int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(1990, 2030))
        sep = str(rng.choice(["/", ".", "-"]))
        year_text = str(year) if rng.random() < 0.7 else f"{year % 100:02d}"
        return f"{day:02d}{sep}{month:02d}{sep}{year_text}"
    if kind == "code":
        return digits(int(rng.integers(1, 11)))
    groups = [digits(4), digits(3), digits(3)] if rng.random() < 0.5 else [digits(2) for _ in range(5)]
    return str(rng.choice([" ", "-"])).join(groups)


class Glyphs:
    """Ink masks for characters: MNIST test digits or one handwriting font per string."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, fonts: list[Path], rng: np.random.Generator):
        self.by_digit = [np.nonzero(labels == d)[0] for d in range(10)]
        self.images, self.fonts, self.rng = images, fonts, rng

    def digit(self, d: int, height: int, font: Path | None) -> np.ndarray:
        if font is not None:
            return font_ink(d, font, height, self.rng)
        image = self.images[int(self.rng.choice(self.by_digit[d]))]
        ys, xs = np.nonzero(image > 30)
        crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
        size = (max(2, round(crop.shape[1] * height / crop.shape[0])), height)
        return np.clip((cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC) - 0.35) * 2.5, 0, 1)


def separator(char: str, height: int, stroke: int) -> tuple[np.ndarray, int]:
    """A separator's mask and its top offset from the row's top."""
    if char in ".,":
        side = max(3, stroke + 2)
        mask = np.zeros((side * (3 if char == "," else 1), side), np.float32)
        cv2.circle(mask, (side // 2, side // 2), max(1, side // 2), 1.0, -1)
        if char == ",":
            cv2.line(mask, (side // 2, side // 2), (0, mask.shape[0] - 1), 1.0, max(1, stroke // 2))
        return mask, height - side
    if char == "-":
        mask = np.zeros((stroke + 2, int(height * 0.4)), np.float32)
        mask[1:-1] = 1.0
        return mask, int(height * 0.5)
    mask = np.zeros((height, int(height * np.random.default_rng(height).uniform(0.6, 0.9))), np.float32)  # "/"
    cv2.line(mask, (mask.shape[1] - 2, 1), (1, height - 2), 1.0, max(1, stroke))
    return mask, 0


def clear_of_others(ink: np.ndarray, top: int, x: int, placed: list, layers: np.ndarray) -> int:
    """``x``, moved right as far as needed for no glyph, the new one or one already placed, to
    have more than ``MOST_HIDDEN`` of its ink under other glyphs' ink. Overlapping digits are
    digits whose boxes overlap; a narrow 1 or a dot drawn wholly over its neighbour is no longer
    there to read, for a person either."""
    h, w = ink.shape
    while x + w <= layers.shape[1]:
        hidden = [layers[top : top + h, x : x + w][ink].astype(bool).mean()]
        for other, other_top, other_x in placed:
            oh, ow = other.shape
            y0, y1 = max(top, other_top), min(top + h, other_top + oh)
            x0, x1 = max(x, other_x), min(x + w, other_x + ow)
            if y0 >= y1 or x0 >= x1:
                continue
            under = layers[other_top : other_top + oh, other_x : other_x + ow] > 1  # it counts itself once
            new_ink = ink[y0 - top : y1 - top, x0 - x : x1 - x]
            under[y0 - other_top : y1 - other_top, x0 - other_x : x1 - other_x] |= new_ink
            hidden.append(under[other].mean())
        if max(hidden) <= MOST_HIDDEN:
            break
        x += 1
    return x


def write_row(text: str, glyphs: Glyphs, height: int, spacing: str, font: Path | None, rng) -> np.ndarray:
    """One row of writing as an ink mask, height ``height`` plus room for commas."""
    stroke = max(2, height // 9)
    pieces: list[tuple[np.ndarray, int, float]] = []  # mask, top offset, gap before (in heights)
    gap = {"tight": (0.05, 0.2), "touching": (-0.06, -0.02), "overlapping": (-0.25, -0.12), "wide": (0.35, 0.8)}
    for char in text:
        if char == " ":
            pieces.append((np.zeros((1, int(height * 0.9)), np.float32), 0, 0.1))
        elif char.isdigit():
            mask = glyphs.digit(int(char), int(height * rng.uniform(0.9, 1.05)), font)
            pieces.append((mask, int(rng.integers(0, max(1, height // 12))), rng.uniform(*gap[spacing])))
        else:
            mask, top = separator(char, height, stroke)
            pieces.append((mask, top, rng.uniform(0.12, 0.3)))
    width = sum(m.shape[1] + max(0, int(b * height)) for m, _, b in pieces) + int(height * 2)
    row = np.zeros((int(height * 1.4), width), np.float32)
    layers = np.zeros(row.shape, np.int16)  # how many glyphs' ink covers each pixel
    placed: list[tuple[np.ndarray, int, int]] = []  # each glyph's ink, its top and left
    x = int(height * 0.5)
    for index, (mask, top, before) in enumerate(pieces):
        if index:
            x = max(0, x + int(before * height))
        h, w = mask.shape
        h = min(h, row.shape[0] - top)
        ink = mask[:h] > 0.5
        if ink.any():
            x = clear_of_others(ink, top, x, placed, layers)
            layers[top : top + h, x : x + w] += ink
            placed.append((ink, top, x))
        row[top : top + h, x : x + w] = np.maximum(row[top : top + h, x : x + w], mask[:h])
        x += w
    ys, xs = np.nonzero(row > 0.2)
    return row[: ys.max() + 2, max(0, xs.min() - 2) : xs.max() + 3]


def printed_fonts() -> list[Path]:
    """Fonts for printed labels (``PRINTED_FONTS``), from matplotlib's own font folder."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [folder / name for name in PRINTED_FONTS if (folder / name).is_file()]


def word_ink(word: str, font: Path, height: int) -> tuple[np.ndarray, int]:
    """``word`` in ``font``, its capitals ``height`` pixels tall, and its baseline's row."""
    face = ImageFont.truetype(str(font), 120)
    canvas = Image.new("L", (120 * (len(word) + 2), 400), 0)
    ImageDraw.Draw(canvas).text((60, 250), word, fill=255, font=face, anchor="ls")
    ink = np.asarray(canvas, np.float32) / 255
    ys, xs = np.nonzero(ink > 0.2)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    _, capital_top, _, _ = face.getbbox("H", anchor="ls")
    scale = height / max(1, -capital_top)
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
    resized = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return resized, round((250 - ys.min()) * scale)


def with_word(row: np.ndarray, height: int, fonts: list[Path], handwritten: list[Path], rng) -> np.ndarray:
    """The row with a word beside it: a label before it, printed or handwritten, or a unit after."""
    after = rng.random() < 0.25
    text = str(rng.choice(UNITS if after else LABELS))
    written = bool(handwritten) and (not fonts or rng.random() < 0.4)
    faces = handwritten if written else fonts
    size = height * (rng.uniform(0.75, 1.0) if written else rng.uniform(0.4, 0.75))
    word, baseline = word_ink(text, faces[int(rng.integers(0, len(faces)))], int(size))
    gap = int(height * rng.uniform(0.6, 2.0))
    # Word and digits on one baseline (the digits' bottom); the word's descenders below it.
    shift = max(0, baseline - height)
    top = height + shift - baseline
    out = np.zeros((max(row.shape[0] + shift, top + word.shape[0]), row.shape[1] + gap + word.shape[1]), np.float32)
    word_x, row_x = (row.shape[1] + gap, 0) if after else (0, word.shape[1] + gap)
    out[shift : shift + row.shape[0], row_x : row_x + row.shape[1]] = row
    out[top : top + word.shape[0], word_x : word_x + word.shape[1]] = np.maximum(
        out[top : top + word.shape[0], word_x : word_x + word.shape[1]], word
    )
    return out


def form_boxes(row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A comb of printed boxes around the writing, or one box around all of it."""
    h, w = row.shape
    pad = int(h * 0.35)
    out = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    out[pad : pad + h, pad : pad + w] = row
    thickness = max(1, h // 30)
    cv2.rectangle(out, (pad // 3, pad // 3), (out.shape[1] - pad // 3, out.shape[0] - pad // 3), 0.8, thickness)
    if rng.random() < 0.5:  # the comb's cell walls fall between characters only by luck
        cell = int(h * rng.uniform(0.9, 1.2))
        for x in range(pad // 3 + cell, out.shape[1] - pad // 3, cell):
            cv2.line(out, (x, pad // 3), (x, pad // 3 + max(4, h // 5)), 0.8, thickness)
    return out


def underline(row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = row.shape
    out = np.zeros((h + max(6, h // 5), w), np.float32)
    out[:h] = row
    y = h + max(2, h // 12)
    cv2.line(out, (0, y), (w - 1, y + int(rng.integers(-2, 3))), 0.9, max(1, h // 25))
    return out


def turned(ink: np.ndarray, degrees: float) -> np.ndarray:
    """The ink turned by ``degrees`` (counter-clockwise) on a canvas grown to hold all of it."""
    height, width = ink.shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    size = (int(height * sin + width * cos), int(height * cos + width * sin))
    turn[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    return cv2.warpAffine(ink, turn, size, flags=cv2.INTER_LINEAR, borderValue=0)


def compose_page(masks: list[np.ndarray], rng: np.random.Generator, ruled: bool, tilt: float = 0.0) -> np.ndarray:
    """Rows of ink on a photographed page, turned by ``tilt`` degrees."""
    width = max(m.shape[1] for m in masks) + int(rng.integers(40, 200))
    gaps = [int(m.shape[0] * rng.uniform(0.4, 1.0)) for m in masks]
    height = sum(m.shape[0] for m in masks) + sum(gaps) + int(rng.integers(40, 160))
    ink = np.zeros((height, width), np.float32)
    y = int(rng.integers(15, 60))
    for mask, gap in zip(masks, gaps, strict=True):
        x = int(rng.integers(10, max(11, width - mask.shape[1] - 10)))
        mask = mask[: height - y]  # a short last row can reach a pixel past the page
        ink[y : y + mask.shape[0], x : x + mask.shape[1]] = np.maximum(
            ink[y : y + mask.shape[0], x : x + mask.shape[1]], mask
        )
        y += mask.shape[0] + gap
    if tilt:
        ink = turned(ink, tilt)
        height, width = ink.shape
    if tilt:  # the sheet is turned with the writing: its ruled lines run along the rows
        side = int(np.hypot(height, width)) + 2
        sheet = paper((side, side), PAPERS[int(rng.integers(0, len(PAPERS)))], rng)
        if ruled:
            sheet = lines(sheet, rng, grid=False)
        turn = cv2.getRotationMatrix2D((side / 2, side / 2), tilt, 1.0)
        top, left = (side - height) // 2, (side - width) // 2
        page = cv2.warpAffine(sheet, turn, (side, side), flags=cv2.INTER_LINEAR)[
            top : top + height, left : left + width
        ]
    else:
        page = paper((height, width), PAPERS[int(rng.integers(0, len(PAPERS)))], rng)
        if ruled:
            page = lines(page, rng, grid=False)
    page = lighting(page, rng, rng.uniform(0.0, 0.3))
    if rng.random() < 0.25:
        page = shadow(page, rng)
    colour = np.array([INKS["black"], INKS["blue"], INKS["pencil"]][int(rng.integers(0, 3))], np.float32)
    rgb = page * (1 - ink[..., None]) + colour * ink[..., None]
    return degrade(rgb, rng, rng.uniform(0, 0.8), rng.uniform(0.005, 0.03), int(rng.integers(60, 92)))


def generate(count: int, seed: int, images: np.ndarray, labels: np.ndarray, tilt: float = 0.0, words: float = 0.0):
    """Yield (rgb, rows as written, spacing, format) deterministically; ``tilt``: the most
    the writing is turned (degrees, either way); ``words``: the share of rows with a word."""
    rng = np.random.default_rng(seed)
    tilts = np.random.default_rng([seed, 1])  # its own, so that no tilt leaves the pages as they were
    wording = np.random.default_rng([seed, 2])  # likewise for words
    printed = printed_fonts()
    fonts = available_fonts()
    glyphs = Glyphs(images, labels, fonts, rng)
    for index in range(count):
        spacing = SPACINGS[index % len(SPACINGS)]
        kind = FORMATS[(index // len(SPACINGS)) % len(FORMATS)]
        rows_written = [number_text(kind, rng) for _ in range(2 if rng.random() < 0.2 else 1)]
        font = fonts[int(rng.integers(0, len(fonts)))] if fonts and rng.random() < 0.3 else None
        height = int(np.exp(rng.uniform(np.log(28), np.log(110))))
        masks = []
        for text in rows_written:
            mask = write_row(text, glyphs, height, spacing, font, rng)
            if words and wording.random() < words:
                mask = with_word(mask, height, printed, fonts, wording)
            extra = rng.random()
            if extra < 0.15:
                mask = form_boxes(mask, rng)
            elif extra < 0.3:
                mask = underline(mask, rng)
            masks.append(mask)
        turn = tilts.uniform(-tilt, tilt) if tilt else 0.0
        yield compose_page(masks, rng, ruled=rng.random() < 0.15, tilt=turn), rows_written, spacing, kind


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def as_photo(image: np.ndarray, size: tuple[int, int] = (1600, 1200)) -> np.ndarray:
    """A generated page enlarged into a ``size`` photo (paper around it), as a phone takes one."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    page = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
    )
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    photo = np.empty((height, width, 3), np.uint8)
    photo[:] = np.median(border, axis=0).astype(np.uint8)
    top, left = (height - page.shape[0]) // 2, (width - page.shape[1]) // 2
    photo[top : top + page.shape[0], left : left + page.shape[1]] = page
    return photo


def time_photos(recognizer: Recognizer, count: int, seed: int, mnist) -> float:
    """Median seconds to read a 1600x1200 photo (JPEG-decoded pixels in memory), in ms."""
    times = []
    for image, *_ in generate(count, seed + 1, mnist.test_images, mnist.test_labels):
        photo = as_photo(image)
        started = time.perf_counter()
        recognizer.read(photo)
        times.append(time.perf_counter() - started)
    return float(1000 * np.median(times)) if times else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tilt", type=float, default=0.0, help="turn the writing by up to this many degrees")
    parser.add_argument("--words", type=float, default=0.0, help="share of rows with a word beside the number")
    parser.add_argument("--model", help="digit model (default: bundled)")
    parser.add_argument("--reader", help="line reader ONNX (default: bundled)")
    parser.add_argument("--word-finder", help="word finder ONNX (default: bundled; 'none': no word finder)")
    parser.add_argument(
        "--segment-only", action="store_true", help="no line reader: recognition-driven segmentation alone"
    )
    parser.add_argument("--photos", type=int, default=30, help="1600x1200 photos timed (default 30)")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", metavar="DIR", help="also write the images and labels.csv here")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    available_fonts(warn=True)
    mnist = load_mnist(args.data_dir, progress=False)
    finder = None if args.word_finder == "none" else args.word_finder
    recognizer = Recognizer.load(args.model, threads=1, reader=args.reader, word_finder=finder)
    if args.segment_only:
        recognizer.reader = None
    if args.word_finder == "none":
        recognizer.word_finder = None
    print(f"rows read by: {recognizer.reader.path if recognizer.reader else 'segmentation + digit model'}")
    print(f"words left out by: {recognizer.word_finder.path if recognizer.word_finder else 'nothing'}")
    if args.tilt:
        print(f"the writing on every page turned by up to {args.tilt:g} degrees either way")
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        rows_csv = ["file,text,text_full,spacing,format"]
    exact: dict[str, list[int]] = {k: [] for k in (*SPACINGS, *FORMATS, "all", "text_full")}
    errors = chars = 0
    times = []
    for index, (image, written, spacing, kind) in enumerate(
        generate(args.count, args.seed, mnist.test_images, mnist.test_labels, args.tilt, args.words)
    ):
        expected = " ".join("".join(c for c in row if c.isdigit()) for row in written)
        started = time.perf_counter()
        reading = recognizer.read(image)
        times.append(time.perf_counter() - started)
        hit = int(reading.text == expected)
        for key in (spacing, kind, "all"):
            exact[key].append(hit)
        full = " | ".join(line.text_full for line in reading.lines)
        exact["text_full"].append(int(full == " | ".join(written)))
        errors += edit_distance(reading.text.replace(" ", ""), expected.replace(" ", ""))
        chars += len(expected.replace(" ", ""))
        if out:
            name = f"{index:05d}.png"
            Image.fromarray(image).save(out / name)
            rows_csv.append(f"{name},{expected},{'|'.join(written)},{spacing},{kind}")
            if not hit:
                print(f"{name}: expected {expected!r}, read {reading.text!r} ({full})")
    if out:
        (out / "labels.csv").write_text("\n".join(rows_csv) + "\n")
    print(f"{'subset':<14} {'n':>5}  exact")
    for key, hits in exact.items():
        if hits:
            print(f"{key:<14} {len(hits):5d}  {100 * np.mean(hits):6.2f}%")
    cer = errors / max(1, chars)
    print(f"character error rate {100 * cer:.2f}%   median {1000 * np.median(times):.1f} ms per image")
    photo_ms = time_photos(recognizer, args.photos, args.seed, mnist)
    print(f"1600x1200 photo: median {photo_ms:.1f} ms per read ({args.photos} photos; target <= 100 ms)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "count": args.count,
                    "exact": {k: float(np.mean(v)) for k, v in exact.items() if v},
                    "cer": cer,
                    "median_ms": float(1000 * np.median(times)),
                    "photo_1600x1200_median_ms": photo_ms,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
