"""Training speed and accuracy on this machine, every model side by side in one run.

For each model: seconds per epoch, training images per second, and test accuracy after every
epoch (scored outside the clock), plus the training time at which test accuracy first reached
99.0% and 99.5%. The data is loaded once, before any clock starts. The classic MLP runs in
the same process, so its figures sit next to the others.

    python benchmarks/train_speed.py --data-dir ../shared/data/mnist \
        [--plan mlp:3 cnn:2 cnn:8 resnet] [--seeds 0 1 2] [--json speed.json]

A plan entry is MODEL, MODEL:EPOCHS or MODEL:EPOCHS:EMA_DECAY (other recipe settings unchanged).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from inkdigits.data import load_mnist
from inkdigits.export import torch_probabilities
from inkdigits.train import TrainConfig, train

DEFAULT_PLAN = ["mlp:3", "cnn:2", "cnn:8", "resnet"]


def run_one(spec: str, seed: int, mnist, folder: Path) -> dict:
    name, _, rest = spec.partition(":")
    epochs, _, ema = rest.partition(":")
    config = TrainConfig(model=name, epochs=int(epochs) if epochs else None, ema=float(ema) if ema else None, seed=seed)
    rows: list[dict] = []
    clock = {"seconds": 0.0}

    def after_epoch(epoch, model, row):
        clock["seconds"] += row["seconds"]
        probabilities = torch_probabilities(model, mnist.test_images)
        rows.append(
            {
                "epoch": epoch,
                "train_seconds": round(clock["seconds"], 2),
                "epoch_seconds": row["seconds"],
                "val_accuracy": row.get("val_accuracy"),
                "test_accuracy": float((probabilities.argmax(1) == mnist.test_labels).mean()),
            }
        )

    started = time.perf_counter()
    result = train(
        config, mnist, folder / f"{name}-{epochs or 'default'}-{seed}", progress=False, on_epoch_end=after_epoch
    )
    for row in rows:
        row["images_per_second"] = round(result.meta["data"]["train_images"] / row.pop("epoch_seconds"))

    def time_to(target: float) -> float | None:
        return next((r["train_seconds"] for r in rows if r["test_accuracy"] >= target), None)

    return {
        "plan": spec,
        "model": name,
        "seed": seed,
        "recipe": result.meta["recipe"],
        "training": result.meta["training"],
        "epochs": rows,
        "seconds_per_epoch": round(result.meta["training_seconds"] / len(rows), 2),
        "train_seconds": result.meta["training_seconds"],
        "final_test_accuracy": result.meta["metrics"]["test"]["accuracy"],
        "time_to_99_0": time_to(0.99),
        "time_to_99_5": time_to(0.995),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def show(run: dict) -> None:
    print(
        f"\n{run['plan']} (seed {run['seed']}): {run['seconds_per_epoch']:.1f} s/epoch, "
        f"{run['epochs'][0]['images_per_second']} img/s, {run['training']['precision']}, "
        f"{run['training']['threads']} threads"
    )
    print("  epoch  train s   val acc   test acc")
    for row in run["epochs"]:
        val = f"{row['val_accuracy'] * 100:7.2f}%" if row["val_accuracy"] is not None else "      -"
        print(f"  {row['epoch']:5d}  {row['train_seconds']:7.1f}  {val}  {row['test_accuracy'] * 100:8.2f}%")
    fmt = lambda t: f"{t:.1f} s" if t is not None else "not reached"  # noqa: E731
    print(f"  time to 99.0%: {fmt(run['time_to_99_0'])}   time to 99.5%: {fmt(run['time_to_99_5'])}", flush=True)


def summary(runs: list[dict]) -> None:
    print("\nplan           seeds  s/epoch  img/s   train s  test acc (median / mean)   to 99.0%  to 99.5%")
    for plan in dict.fromkeys(r["plan"] for r in runs):
        group = [r for r in runs if r["plan"] == plan]
        accuracies = [r["final_test_accuracy"] * 100 for r in group]

        def median_time(key: str, group=group) -> str:
            times = [r[key] for r in group if r[key] is not None]
            return f"{statistics.median(times):7.1f}s" if len(times) == len(group) else "     n/r"

        print(
            f"{plan:<14} {len(group):5d}  {statistics.median(r['seconds_per_epoch'] for r in group):7.1f}  "
            f"{statistics.median(r['epochs'][0]['images_per_second'] for r in group):5.0f}  "
            f"{statistics.median(r['train_seconds'] for r in group):8.1f}  "
            f"{statistics.median(accuracies):7.2f}% / {statistics.mean(accuracies):6.2f}%         "
            f"{median_time('time_to_99_0')}  {median_time('time_to_99_5')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--plan", nargs="+", default=DEFAULT_PLAN)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure here")
    args = parser.parse_args()
    mnist = load_mnist(args.data_dir, progress=False)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        for spec in args.plan:
            for seed in args.seeds:
                runs.append(run_one(spec, seed, mnist, folder))
                show(runs[-1])
                if args.json:
                    Path(args.json).write_text(json.dumps(runs, indent=2))
    summary(runs)


if __name__ == "__main__":
    main()
