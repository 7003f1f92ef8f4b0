"""European hands: the 1 with a long upstroke (a flag) and the 7 with a bar across its stem.

Much of Europe writes its 1s and 7s so; MNIST's American writers hardly ever did. This takes
MNIST *test* 1s and 7s, draws the flag or the bar onto each with its own code (not the
training generator's, ``inkdigits.synth``), and reads them beside the same digits as written,
side by side in one run: single digits through ``Recognizer.predict`` (read right, and
accepted at the threshold) and three-digit rows (a test digit other than 1 or 7 on each side)
through ``Recognizer.read`` (read exactly).

    python benchmarks/european_digits.py --data-dir ../shared/data/mnist [--count 300] [--rows 150]
        [--model PATH] [--reader PATH ...]

Several ``--reader`` files are compared side by side (rows only; the digits alone are the
digit model's).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cv2
import numpy as np

from inkdigits import Recognizer
from inkdigits.data import load_mnist

SIDE = 112  # digits are drawn at four times MNIST's size, so a bar or flag has a pen's width
INK = 100


def _enlarged(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)


def _pen(big: np.ndarray) -> int:
    widths = (big > INK).sum(axis=1)
    return max(4, int(np.median(widths[widths > 0]) * 0.7))


def crossed_seven(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bar across the stem, 45-60% of the way down, reaching 20-35% of the digit's width
    to each side of the stem's middle."""
    big = _enlarged(image)
    ys, xs = np.nonzero(big > INK)
    y = int(ys.min() + (ys.max() - ys.min()) * rng.uniform(0.45, 0.6))
    stem = np.nonzero(big[y] > INK)[0]
    centre = stem.mean() if len(stem) else xs.mean()
    half = (xs.max() - xs.min()) * rng.uniform(0.2, 0.35)
    start = (int(centre - half), y + int(rng.integers(-3, 4)))
    end = (int(centre + half), y + int(rng.integers(-3, 4)))
    cv2.line(big, start, end, 255, _pen(big), cv2.LINE_AA)
    return big


def flagged_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An upstroke from the stem's top down to the left: 25-55% of the digit's height long,
    30-60 degrees below the level. MNIST 1s stand near the middle, so there is room for it."""
    big = _enlarged(image)
    ys, xs = np.nonzero(big > INK)
    top = ys.min()
    x_top = xs[ys <= top + 3].mean()
    length = (ys.max() - top) * rng.uniform(0.25, 0.55)
    angle = np.radians(rng.uniform(30, 60))
    end = (int(x_top - length * np.cos(angle)), int(top + length * np.sin(angle)))
    cv2.line(big, (int(x_top), int(top)), end, 255, _pen(big), cv2.LINE_AA)
    return big


def on_paper(ink: np.ndarray) -> np.ndarray:
    """White-on-black ink -> dark ink on white paper with a margin, as a scan."""
    return 255 - np.pad(ink, 40)


def singles(recognizer: Recognizer, digits: list[np.ndarray], label: int) -> tuple[float, float]:
    predictions = [recognizer.predict(on_paper(d)) for d in digits]
    right = np.mean([p.digit == label for p in predictions])
    accepted = np.mean([p.digit == label and not p.rejected for p in predictions])
    return float(right), float(accepted)


def rows(
    recognizer: Recognizer,
    middles: list[np.ndarray],
    label: int,
    others: np.ndarray,
    other_labels: np.ndarray,
) -> float:
    hits = 0
    for i, middle in enumerate(middles):
        left, right = _enlarged(others[2 * i]), _enlarged(others[2 * i + 1])
        row = np.hstack([left[:, 10:-10], middle[:, 10:-10], right[:, 10:-10]])
        truth = f"{other_labels[2 * i]}{label}{other_labels[2 * i + 1]}"
        hits += recognizer.read(on_paper(row)).text == truth
    return hits / len(middles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--count", type=int, default=300, help="test 1s and 7s each, read alone")
    parser.add_argument("--rows", type=int, default=150, help="three-digit rows per digit and style")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="digit model (default: bundled)")
    parser.add_argument("--reader", nargs="+", default=[None], help="line readers to compare (default: bundled)")
    args = parser.parse_args()
    data = load_mnist(args.data_dir)
    recognizers = [Recognizer.load(args.model, reader=reader) for reader in args.reader]
    recognizer = recognizers[0]
    rng = np.random.default_rng(args.seed)
    marks: dict[int, tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
        1: ("flagged", flagged_one),
        7: ("crossed", crossed_seven),
    }
    names = [reader or "bundled readers" for reader in args.reader]
    header = f"{'digit':<12} {'n':>4} {'alone: read':>12} {'accepted':>9} {'rows':>5}"
    print(f"{header}  in a row, read by: {', '.join(names)}")
    for label, (name, mark) in marks.items():
        test = data.test_images[data.test_labels == label][: max(args.count, args.rows)]
        neighbours = ~np.isin(data.test_labels, list(marks))
        others, other_labels = data.test_images[neighbours], data.test_labels[neighbours]
        for style, draw in (("as written", lambda d, _rng: _enlarged(d)), (name, mark)):
            digits = [draw(d, rng) for d in test]
            right, accepted = singles(recognizer, digits[: args.count], label)
            read = [rows(r, digits[: args.rows], label, others, other_labels) for r in recognizers]
            figures = "  ".join(f"{x:.2%}" for x in read)
            print(f"{label} {style:<10} {args.count:>4} {right:>12.2%} {accepted:>9.2%} {args.rows:>5}  {figures}")


if __name__ == "__main__":
    main()
