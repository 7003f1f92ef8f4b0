"""The classic tutorial MLP, 3 epochs, over several seeds, with both input normalizations.

Each run is the real ``inkdigits train --model mlp --epochs 3 --seed S`` command; the table
gives every run's test accuracy and training time, and the mean per normalization.

    python benchmarks/baseline.py --data-dir ../shared/data/mnist [--seeds 0 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(seed: int, normalization: str, data_dir: str, out: Path) -> dict:
    folder = out / f"mlp-{normalization}-{seed}"
    command = [
        sys.executable,
        "-m",
        "inkdigits",
        "train",
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--seed",
        str(seed),
        "--normalization",
        normalization,
        "--out",
        str(folder),
        "--json",
    ]
    if data_dir:
        command += ["--data-dir", data_dir]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"training failed:\n{result.stderr}")
    meta = json.loads(result.stdout)
    return {
        "seed": seed,
        "normalization": normalization,
        "test_accuracy": meta["metrics"]["test"]["accuracy"],
        "val_accuracy": meta["metrics"]["val"]["accuracy"],
        "training_seconds": meta["training_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for normalization in ("scale01", "keras"):
            for seed in args.seeds:
                rows.append(run(seed, normalization, args.data_dir, Path(tmp)))
                r = rows[-1]
                print(
                    f"{normalization:<8} seed {seed}: test {r['test_accuracy'] * 100:.2f}%  "
                    f"val {r['val_accuracy'] * 100:.2f}%  {r['training_seconds']:.1f} s",
                    flush=True,
                )
    summary = {}
    print("\nnormalization  mean test acc  min     max     mean train s")
    for normalization in ("scale01", "keras"):
        subset = [r for r in rows if r["normalization"] == normalization]
        accuracies = [r["test_accuracy"] for r in subset]
        summary[normalization] = {
            "mean_test_accuracy": statistics.mean(accuracies),
            "mean_training_seconds": statistics.mean(r["training_seconds"] for r in subset),
        }
        print(
            f"{normalization:<13}  {statistics.mean(accuracies) * 100:12.2f}%  {min(accuracies) * 100:.2f}%  "
            f"{max(accuracies) * 100:.2f}%  {summary[normalization]['mean_training_seconds']:.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
