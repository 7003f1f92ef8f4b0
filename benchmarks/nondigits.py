"""Non-digit benchmark: how often does inkdigits claim a digit where there is none?

1,000 images (by default) of things that are not one digit, photographed like the realistic
benchmark's pages (same paper, inks, lighting, blur, noise and JPEG code): letters from the
handwriting fonts (families that training never saw; letters drawn exactly like a digit,
O o I l, are left out), scribbles, shapes and textures. Scribbles and shapes are drawn here
with Pillow, by code separate from the training generator in ``inkdigits.synth``.

Each image ends one of three ways: "no digit" (preprocessing finds no ink), "rejected"
(the model declines: not a digit, or below the threshold), or "confident digit". The target
is at most 5% confident digits at the default threshold.

    python benchmarks/nondigits.py [--count 1000] [--seed 0] [--model PATH] [--threshold P]
        [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from realistic import INKS, PAPERS, available_fonts, compose, degrade, lighting, paper, shadow

from inkdigits import NoDigitError, Recognizer

LETTERS = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in "OoIl"]
KINDS = {"letter": 0.4, "scribble": 0.2, "shape": 0.2, "texture": 0.2}


def letter(rng: np.random.Generator, fonts: list[Path], height: int) -> np.ndarray:
    face = ImageFont.truetype(str(fonts[int(rng.integers(0, len(fonts)))]), 200)
    canvas = Image.new("L", (420, 420), 0)
    char = LETTERS[int(rng.integers(0, len(LETTERS)))]
    ImageDraw.Draw(canvas).text((110, 60), char, fill=255, font=face, stroke_width=int(rng.integers(0, 5)))
    return _crop_to(np.asarray(canvas.rotate(float(rng.uniform(-10, 10))), np.float32) / 255, height)


def scribble(rng: np.random.Generator, height: int) -> np.ndarray:
    """Bezier doodles: a pen wandering over the page."""
    canvas = Image.new("L", (300, 300), 0)
    draw = ImageDraw.Draw(canvas)
    width = int(rng.integers(4, 16))
    for _ in range(int(rng.integers(1, 4))):
        p = rng.uniform(20, 280, (4, 2))
        t = np.linspace(0, 1, 80)[:, None]
        curve = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
        draw.line([tuple(q) for q in curve], fill=255, width=width, joint="curve")
    return _crop_to(np.asarray(canvas, np.float32) / 255, height)


def shape(rng: np.random.Generator, height: int) -> np.ndarray:
    canvas = Image.new("L", (300, 300), 0)
    draw = ImageDraw.Draw(canvas)
    width = int(rng.integers(4, 16))
    kind = int(rng.integers(0, 8))
    if kind == 0:
        draw.rectangle((40, 60, 260, 240), outline=255, width=width)
    elif kind == 1:
        sides = int(rng.integers(5, 8))
        angles = np.linspace(0, 2 * math.pi, sides, endpoint=False) + rng.uniform(0, 1)
        draw.polygon([(150 + 110 * math.cos(a), 150 + 110 * math.sin(a)) for a in angles], outline=255, width=width)
    elif kind == 2:  # heart
        draw.arc((40, 50, 150, 160), 140, 360, fill=255, width=width)
        draw.arc((150, 50, 260, 160), 180, 40, fill=255, width=width)
        draw.line([(52, 130), (150, 260), (248, 130)], fill=255, width=width, joint="curve")
    elif kind == 3:  # check mark
        draw.line([(50, 160), (120, 240), (260, 50)], fill=255, width=width, joint="curve")
    elif kind == 4:  # star
        angles = np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:10]
        radii = [120 if i % 2 == 0 else 50 for i in range(10)]
        draw.polygon(
            [(150 + r * math.cos(a), 150 + r * math.sin(a)) for r, a in zip(radii, angles, strict=True)],
            outline=255,
            width=width,
        )
    elif kind == 5:  # cross-hatched box
        draw.rectangle((50, 50, 250, 250), outline=255, width=width)
        draw.line([(50, 50), (250, 250)], fill=255, width=width)
        draw.line([(250, 50), (50, 250)], fill=255, width=width)
    elif kind == 6:  # arrow
        draw.line([(40, 150), (250, 150)], fill=255, width=width)
        draw.line([(190, 90), (250, 150), (190, 210)], fill=255, width=width, joint="curve")
    else:  # cloud of dots
        for x, y in rng.uniform(40, 260, (int(rng.integers(6, 20)), 2)):
            r = rng.uniform(5, 14)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return _crop_to(np.asarray(canvas, np.float32) / 255, height)


def texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A surface with no writing: wood grain, fabric, crumpled paper, halftone, or a gradient."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = int(rng.integers(0, 5))
    if kind == 0:
        warp = np.sin(yy / rng.uniform(20, 60)) * rng.uniform(5, 20)
        value = 0.5 + 0.5 * np.sin((xx + warp) / rng.uniform(3, 9))
        base = np.stack([0.55 + 0.2 * value, 0.38 + 0.15 * value, 0.2 + 0.1 * value], -1)
    elif kind == 1:
        value = 0.5 + 0.25 * (np.sin(xx / 1.7) + np.sin(yy / 1.7))
        base = np.repeat((0.6 + 0.3 * value)[..., None], 3, -1) * np.array(PAPERS[int(rng.integers(0, 5))])
    elif kind == 2:
        bumps = (
            np.asarray(
                Image.fromarray((rng.random((h // 16 + 2, w // 16 + 2)) * 255).astype(np.uint8)).resize(
                    (w, h), Image.BICUBIC
                ),
                np.float32,
            )
            / 255
        )
        base = np.repeat((0.8 + 0.15 * bumps)[..., None], 3, -1)
    elif kind == 3:
        period = rng.uniform(4, 9)
        dots = (np.sin(xx / period * math.pi) * np.sin(yy / period * math.pi)) > 0.6
        base = np.repeat(np.where(dots, 0.75, 0.95)[..., None], 3, -1)
    else:
        ramp = xx / w * rng.uniform(-1, 1) + yy / h * rng.uniform(-1, 1)
        base = np.repeat((0.7 + 0.25 * (ramp - ramp.min()) / max(1e-6, np.ptp(ramp)))[..., None], 3, -1)
    return np.clip(base, 0, 1).astype(np.float32)


def _crop_to(mask: np.ndarray, height: int) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.2)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = height / max(crop.shape)
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
    return np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS), np.float32) / 255


def page_with(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask written on paper and photographed, in one of the realistic benchmark's looks."""
    h, w = mask.shape
    side = int(max(h, w) * rng.uniform(1.3, 2.5))
    hw = (max(side, h + 2), max(int(side * rng.uniform(0.9, 1.4)), w + 2))
    look = int(rng.integers(0, 4))
    if look == 3:  # chalk on a board
        page = paper(hw, (0.12, 0.2, 0.15), rng)
        return degrade(compose(mask, hw, (0.5, 0.5), page, (0.92, 0.92, 0.9)), rng, 0.5, 0.03, 80)
    page = lighting(paper(hw, PAPERS[int(rng.integers(0, 5))], rng), rng, rng.uniform(0.0, 0.3))
    if look == 2:
        page = shadow(page, rng)
    ink = list(INKS.values())[int(rng.integers(0, len(INKS)))]
    jpeg = int(rng.integers(50, 90)) if look else None
    return degrade(compose(mask, hw, (0.5, 0.5), page, ink), rng, rng.uniform(0, 1.0), rng.uniform(0.005, 0.03), jpeg)


def generate(count: int, seed: int):
    """Yield (rgb uint8, kind) deterministically."""
    rng = np.random.default_rng(seed)
    fonts = available_fonts()
    kinds = list(KINDS)
    for _ in range(count):
        kind = str(rng.choice(kinds, p=list(KINDS.values())))
        height = int(np.exp(rng.uniform(np.log(24), np.log(400))))
        if kind == "letter" and fonts:
            image = page_with(letter(rng, fonts, height), rng)
        elif kind == "scribble" or kind == "letter":
            image = page_with(scribble(rng, height), rng)
        elif kind == "shape":
            image = page_with(shape(rng, height), rng)
        else:
            size = (int(rng.integers(60, 700)), int(rng.integers(60, 700)))
            surface = lighting(texture(rng, size), rng, rng.uniform(0, 0.3))
            image = degrade(surface, rng, rng.uniform(0, 1.0), rng.uniform(0.005, 0.03), int(rng.integers(50, 95)))
        yield image, kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="ONNX model or run folder (default: bundled)")
    parser.add_argument("--threshold", type=float, help="reject threshold (default: the model card's)")
    parser.add_argument("--out", metavar="DIR", help="also write the images here, named by outcome")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    available_fonts(warn=True)
    recognizer = Recognizer.load(args.model, threshold=args.threshold)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, dict[str, int]] = {kind: {"no digit": 0, "rejected": 0, "confident digit": 0} for kind in KINDS}
    for index, (image, kind) in enumerate(generate(args.count, args.seed)):
        try:
            prediction = recognizer.predict(image)
            outcome = "rejected" if prediction.rejected else "confident digit"
        except NoDigitError:
            outcome = "no digit"
        outcomes[kind][outcome] += 1
        if out:
            Image.fromarray(image).save(out / f"{index:05d}-{kind}-{outcome.replace(' ', '_')}.png")
    print(f"threshold {recognizer.threshold:.2f} (temperature {recognizer.temperature:.3f})")
    print(f"{'kind':<10} {'n':>5} {'no digit':>9} {'rejected':>9} {'confident digit':>16}")
    totals = {"no digit": 0, "rejected": 0, "confident digit": 0}
    for kind, counts in outcomes.items():
        n = sum(counts.values())
        for key in totals:
            totals[key] += counts[key]
        if n:
            print(
                f"{kind:<10} {n:5d} {counts['no digit'] / n:9.1%} {counts['rejected'] / n:9.1%}"
                f" {counts['confident digit'] / n:16.1%}"
            )
    n = sum(totals.values())
    print(
        f"{'all':<10} {n:5d} {totals['no digit'] / n:9.1%} {totals['rejected'] / n:9.1%}"
        f" {totals['confident digit'] / n:16.1%}   (target: at most 5.0% confident)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "count": args.count,
                    "threshold": recognizer.threshold,
                    "model": str(recognizer.model.path),
                    "per_kind": outcomes,
                    "confident_share": totals["confident digit"] / n,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
