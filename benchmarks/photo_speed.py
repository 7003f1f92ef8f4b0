"""How long does reading one digit from a 1-megapixel photo take, and how much memory?

Photos are made by the realistic benchmark's generator (ballpoint on paper, lighting,
shadow, JPEG) at 1,152 x 864 pixels (about 1 MP) and saved as JPEG, as a phone would hand
them over. Timed: decoding the JPEG bytes, every preprocessing stage, and the model; the
median over ``--count`` photos after a warm-up. Memory: the peak of Python-side allocations
(numpy and OpenCV arrays, via tracemalloc) while reading one photo, against the size of the
decoded image. Also timed end to end: ``--phone`` of the photos enlarged to a phone camera's
full 12 MP (4032 x 3024 JPEG), which are decoded only as large as the preprocessing needs.

    python benchmarks/photo_speed.py [--count 60] [--phone 10] [--model PATH]
"""

from __future__ import annotations

import argparse
import io
import time
import tracemalloc

import cv2
import numpy as np
from PIL import Image
from realistic import INKS, PAPERS, compose, degrade, lighting, mnist_ink, paper, shadow

from inkdigits import Recognizer
from inkdigits.data import load_mnist
from inkdigits.images import load_image
from inkdigits.preprocess import to_mnist

SIZE = (864, 1152)  # height, width: 995,328 pixels
PHONE = (4032, 3024)  # width, height: a 12 MP phone camera


def photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    ink = mnist_ink(digit, int(rng.integers(150, 500)), rng)
    page = shadow(lighting(paper(SIZE, PAPERS[int(rng.integers(0, 3))], rng), rng, 0.25), rng)
    centre = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
    rgb = degrade(compose(ink, SIZE, centre, page, INKS["blue"]), rng, 0.6, 0.02, None)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def enlarged(data: bytes) -> bytes:
    """A photo at a phone camera's full size, as JPEG."""
    rgb = cv2.resize(np.asarray(Image.open(io.BytesIO(data))), PHONE, interpolation=cv2.INTER_CUBIC)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def median_ms(recognizer: Recognizer, photos: list[bytes]) -> float:
    times = []
    for data in photos:
        started = time.perf_counter()
        recognizer.predict(data)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--phone", type=int, default=10, help="12 MP photos timed (default 10)")
    parser.add_argument("--model")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    mnist = load_mnist(args.data_dir, progress=False)
    rng = np.random.default_rng(0)
    photos = [photo(mnist.test_images[i], rng) for i in range(args.count)]
    labels = mnist.test_labels[: args.count]
    recognizer = Recognizer.load(args.model, threads=1)
    for data in photos[:5]:  # warm-up: first calls allocate and load code paths
        recognizer.predict(data)

    stages = {"decode": [], "preprocess": [], "model": [], "total": []}
    right = 0
    for data, label in zip(photos, labels, strict=True):
        t0 = time.perf_counter()
        pixels = load_image(data)
        t1 = time.perf_counter()
        prepared = to_mnist(pixels)
        t2 = time.perf_counter()
        probabilities = recognizer.model.probabilities(prepared.digit[None])
        t3 = time.perf_counter()
        stages["decode"].append(t1 - t0)
        stages["preprocess"].append(t2 - t1)
        stages["model"].append(t3 - t2)
        stages["total"].append(t3 - t0)
        right += int(np.argmax(probabilities[0, :10]) == label)
    whole = median_ms(recognizer, photos)
    phone = [enlarged(data) for data in photos[: args.phone]]
    phone_right = sum(recognizer.predict(data).digit == label for data, label in zip(phone, labels, strict=False))
    phone_ms = median_ms(recognizer, phone) if phone else float("nan")

    tracemalloc.start()
    recognizer.predict(photos[0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    decoded = load_image(photos[0]).nbytes

    print(f"{args.count} photos of {SIZE[1]}x{SIZE[0]} ({SIZE[0] * SIZE[1] / 1e6:.2f} MP), JPEG; read right: {right}")
    for name, values in stages.items():
        print(
            f"  {name:<11} median {1000 * np.median(values):6.1f} ms   p90 {1000 * np.percentile(values, 90):6.1f} ms"
        )
    print(f"Recognizer.predict end to end: median {whole:.1f} ms (target <= 30 ms)")
    print(f"the same at 12 MP ({PHONE[0]}x{PHONE[1]} JPEG, {len(phone)} photos, read right: {phone_right}): "
          f"median {phone_ms:.1f} ms end to end")  # fmt: skip
    print(
        f"peak Python-side memory while reading one photo: {peak / 1e6:.1f} MB; "
        f"the decoded image alone is {decoded / 1e6:.1f} MB (ratio {peak / decoded:.2f})"
    )


if __name__ == "__main__":
    main()
