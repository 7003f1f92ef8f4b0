"""The recognition runtime: image -> preprocess -> ONNX model -> result.

It runs on onnxruntime, numpy and OpenCV and never imports torch, so a user who only reads
digits installs none of the training stack. The CLI and the web server both call
``Recognizer``; no recognition logic lives anywhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InkdigitsError, ModelError
from .images import DEFAULT_MAX_PIXELS, ImageInput, describe, load_image
from .preprocess import Preprocessed, to_mnist

CARD_KEY = "inkdigits.card"  # same key the exporter writes; repeated to keep torch out


def bundled_model_path() -> Path:
    """The default model shipped inside the package."""
    return Path(str(resources.files("inkdigits") / "bundled" / "default.onnx"))


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        return bundled_model_path()
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "model.onnx"
        if not candidate.is_file():
            raise ModelError(f"{path} holds no model.onnx: is it a finished training run?")
        return candidate
    if not path.exists():
        raise ModelError(f"Model {path} does not exist.")
    return path


class OnnxModel:
    """An ONNX digit classifier: (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) probabilities."""

    def __init__(self, session: Any, path: Path) -> None:
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name
        meta = session.get_modelmeta().custom_metadata_map
        try:
            self.card: dict[str, Any] = json.loads(meta.get(CARD_KEY, "{}"))
        except ValueError:
            self.card = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, threads: int | None = None) -> OnnxModel:
        import onnxruntime as ort

        resolved = _resolve(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's warnings are for us, not for users
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(resolved), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{resolved} is not a readable ONNX model ({type(exc).__name__}).") from exc
        _check_signature(session, resolved)
        return cls(session, resolved)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """``batch``: (N, 28, 28) or (N, 1, 28, 28) float32 in [0, 1]."""
        x = np.ascontiguousarray(batch, dtype=np.float32).reshape(-1, 1, 28, 28)
        return self.session.run(None, {self.input_name: x})[0]

    def probabilities_uint8(self, images: np.ndarray, batch: int = 1000) -> np.ndarray:
        """Probabilities for MNIST-style uint8 images (N, 28, 28), in batches."""
        chunks = [
            self.probabilities(images[start : start + batch].astype(np.float32) / 255.0)
            for start in range(0, len(images), batch)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, 10), np.float32)


def _check_signature(session: Any, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape_in = list(inputs[0].shape) if inputs else []
    shape_out = list(outputs[0].shape) if outputs else []
    if len(inputs) != 1 or shape_in[1:] != [1, 28, 28] or len(shape_out) != 2 or shape_out[1] != 10:
        raise ModelError(
            f"{path} is an ONNX model but not a digit classifier "
            f"(it takes {shape_in} and gives {shape_out}; inkdigits needs [N, 1, 28, 28] -> [N, 10])."
        )


@dataclass
class Prediction:
    """One digit read from one image."""

    digit: int
    confidence: float
    probabilities: np.ndarray  # (10,) float32, sums to 1
    source: str = ""
    box: tuple[int, int, int, int] | None = None  # ink's [x, y, w, h] in input pixels
    model_input: np.ndarray | None = field(default=None, repr=False)  # the 28x28 the model saw
    stages: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(-self.probabilities)[:k]
        return [(int(d), float(self.probabilities[d])) for d in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digit": self.digit,
            "confidence": round(self.confidence, 6),
            "probabilities": [round(float(p), 6) for p in self.probabilities],
            "box": list(self.box) if self.box else None,
        }


class Recognizer:
    """Read handwritten digits from images.

    >>> recognizer = Recognizer.load()          # the bundled model
    >>> recognizer.predict("examples/seven.png").digit
    7
    """

    def __init__(self, model: OnnxModel, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.model = model
        self.max_pixels = max_pixels

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        threads: int | None = None,
    ) -> Recognizer:
        """Load an ONNX model file or a training run folder; ``None`` loads the bundled model."""
        return cls(OnnxModel.load(path, threads), max_pixels)

    @property
    def card(self) -> dict[str, Any]:
        """The model card: architecture, recipe, data digests, metrics, versions."""
        return self.model.card

    def preprocess(self, image: ImageInput, keep_stages: bool = False) -> Preprocessed:
        """Decode ``image`` and bring its digit into MNIST form (raises on bad or blank input)."""
        pixels = load_image(image, self.max_pixels)
        prepared = to_mnist(pixels, keep_stages=keep_stages)
        if keep_stages:
            prepared.stages = {"input": pixels, **prepared.stages}
        return prepared

    def predict(self, image: ImageInput, keep_stages: bool = False) -> Prediction:
        """The digit in ``image``, its confidence and all ten probabilities."""
        prepared = self.preprocess(image, keep_stages)
        probabilities = self.model.probabilities(prepared.digit[None])[0]
        return _prediction(probabilities, prepared, describe(image))

    def predict_batch(
        self, images: Iterable[ImageInput], return_errors: bool = False, keep_stages: bool = False
    ) -> list[Any]:
        """Predict many images with one model call.

        With ``return_errors`` an input that cannot be read yields its ``InkdigitsError`` in
        its place, so one bad file does not cost the answers for the others.
        """
        results: list[Any] = []
        ready: list[tuple[int, Preprocessed, str]] = []
        for image in images:
            try:
                ready.append((len(results), self.preprocess(image, keep_stages), describe(image)))
                results.append(None)
            except InkdigitsError as exc:
                if not return_errors:
                    raise
                results.append(exc)
        if ready:
            batch = np.stack([prepared.digit for _, prepared, _ in ready])
            for (slot, prepared, name), probabilities in zip(ready, self.model.probabilities(batch), strict=True):
                results[slot] = _prediction(probabilities, prepared, name)
        return results

    def classify_mnist(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for images already in MNIST form (uint8 N x 28 x 28), no preprocessing."""
        return self.model.probabilities_uint8(images)


def _prediction(probabilities: np.ndarray, prepared: Preprocessed, source: str) -> Prediction:
    digit = int(np.argmax(probabilities))
    return Prediction(
        digit=digit,
        confidence=float(probabilities[digit]),
        probabilities=probabilities.astype(np.float32),
        source=source,
        box=prepared.box,
        model_input=prepared.digit,
        stages=prepared.stages,
    )
