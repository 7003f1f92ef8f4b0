"""8-bit models: an exported digit model (ONNX, fp32) -> the same model in int8 (the ``train`` extra).

Once preprocessing was cheap, the model was the largest part of a served request's CPU:
the bundled three-CNN ensemble takes 0.46 ms per image in fp32 and 0.32 ms in int8 on one
core of the development machine. onnxruntime's static quantizer stores every convolution
and dense layer's weights as 8-bit integers, one scale per output channel, and their inputs
as 8-bit with ranges measured on held-out images (QDQ format). Weights use 7 of the 8 bits
(``reduce_range``): x86 CPUs without VNNI add 8-bit products in pairs into 16-bit sums,
which full-range weights can overflow; with 7 bits they cannot, so those CPUs give the
same answers as this one.

The int8 model is then judged as a new model: scored on MNIST test, and its temperature and
reject threshold fitted again on the same held-out images as the fp32 model's. Its card keeps
everything else (members, recipe, data digests) and says what changed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .calibrate import CalibrationData, calibrate
from .errors import InkdigitsError
from .fsutil import atomic_write, write_json_atomic
from .recognize import CARD_KEY, OnnxModel

# Images whose activations set the 8-bit ranges, per kind of held-out image.
RANGE_IMAGES = 1000
RANGE_BATCH = 100


def validation_size(model: OnnxModel) -> int:
    """How many of the last MNIST training images the model's members all held out.

    Raises when the model is quantized already or its card names no such split.
    """
    card = model.card
    if "quantization" in card:
        raise InkdigitsError(f"{model.path} is already quantized.")
    recipes = [member.get("recipe", {}) for member in card.get("members", [])] or [card.get("recipe", {})]
    sizes = {int(recipe.get("val") or 0) for recipe in recipes}
    if len(sizes) != 1 or not min(sizes):
        raise InkdigitsError(
            f"{model.path}'s card names no validation split held out by every member (--val N when training)."
        )
    return sizes.pop()


def range_batches(data: CalibrationData, count: int = RANGE_IMAGES) -> list[np.ndarray]:
    """Held-out images of every kind the model meets, as float (N, 1, 28, 28) batches."""
    images = np.concatenate([data.mnist_x[:count], data.realistic_x[:count], data.negatives_x[:count]])
    scaled = images.astype(np.float32)[:, None] / 255.0
    return [scaled[start : start + RANGE_BATCH] for start in range(0, len(scaled), RANGE_BATCH)]


def quantize_model(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    data: CalibrationData,
    reproduce: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write ``out`` (int8 ONNX) and its ``.card.json`` from the fp32 model at ``source``."""
    from .evaluate import classification_metrics

    fp32 = OnnxModel.load(source)
    validation_size(fp32)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=out.parent) as folder:
        quantized = Path(folder) / "int8.onnx"
        range_images = _quantize(fp32, quantized, data)
        int8 = OnnxModel.load(quantized)
        before, after = fp32.probabilities_uint8(test_images), int8.probabilities_uint8(test_images)
        test = classification_metrics(after, test_labels)
        card = dict(fp32.card)
        card["quantization"] = {
            "method": "onnxruntime static int8 (QDQ): weights per output channel in 7 bits, activations "
            "per tensor in 8 bits, ranges from held-out images",
            "range_images": range_images,
            "fp32_test_accuracy": round(float(classification_metrics(before, test_labels)["accuracy"]), 5),
            "same_answer_as_fp32": round(float((before.argmax(1) == after.argmax(1)).mean()), 5),
            "max_abs_diff_from_fp32": round(float(np.abs(before - after).max()), 5),
        }
        card["metrics"] = {"test": {"accuracy": test["accuracy"], "loss": test["loss"], "n": test["n"]}}
        if "calibration" in card:
            card["calibration"] = calibrate(int8.probabilities_uint8, data)
        if reproduce:
            card["reproduce"] = reproduce
        path = _write_with_card(quantized, out, card)
    write_json_atomic(out.with_suffix(".card.json"), card)
    return path, card


def _quantize(model: OnnxModel, path: Path, data: CalibrationData) -> int:
    """Write ``model`` in int8 to ``path``; return how many images set the ranges."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = range_batches(data)

    class HeldOut(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {model.input_name: batch}

    prepared = path.with_name("prepared.onnx")
    quant_pre_process(str(model.path), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(path),
        HeldOut(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return sum(len(batch) for batch in batches)


def _write_with_card(quantized: Path, out: Path, card: dict[str, Any]) -> Path:
    import onnx

    proto = onnx.load(str(quantized))
    kept = [entry for entry in proto.metadata_props if entry.key == CARD_KEY]
    entry = kept[0] if kept else proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card)
    proto.producer_name = "inkdigits"
    onnx.checker.check_model(proto)
    return atomic_write(out, lambda temporary: onnx.save(proto, str(temporary)))
