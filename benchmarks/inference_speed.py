"""Batch throughput of ONNX models through onnxruntime, as the recognizer runs them.

Input is MNIST-form 28x28 images (what preprocessing produces), fed in batches; the figure
is images per second over repeated passes of the 10,000 test images, median of 5 timings.
The bundled model must stay at or above 2,000 images/s on the development machine.

    python benchmarks/inference_speed.py [MODEL ...] [--batch 256] [--data-dir DIR]

MODEL is an .onnx file or a run folder; with none, the bundled model is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from inkdigits.data import load_mnist
from inkdigits.recognize import OnnxModel, bundled_model_path

FLOOR = 2000


def throughput(model: OnnxModel, images: np.ndarray, batch: int, repeats: int = 5) -> float:
    inputs = images.astype(np.float32) / 255.0
    model.probabilities(inputs[:batch])  # warm-up: onnxruntime plans on the first run
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(inputs), batch):
            model.probabilities(inputs[start : start + batch])
        rates.append(len(inputs) / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--data-dir")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    images = load_mnist(args.data_dir, progress=False).test_images
    results = []
    for path in args.models or [str(bundled_model_path())]:
        model = OnnxModel.load(path)
        rate = throughput(model, images, args.batch)
        name = model.card.get("architecture", "?")
        verdict = "meets" if rate >= FLOOR else "BELOW"
        print(f"{path}: {name}, batch {args.batch}: {rate:,.0f} images/s ({verdict} the {FLOOR:,}/s floor)")
        results.append({"model": path, "architecture": name, "batch": args.batch, "images_per_second": rate})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
