"""inkdigits: read handwritten digits from real images.

>>> from inkdigits import Recognizer
>>> Recognizer.load().predict("examples/seven.png").digit
7

Importing this package loads numpy, OpenCV, Pillow and onnxruntime only when they are first
needed, and never torch: training lives in ``inkdigits.train`` (the ``train`` extra).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    BadImageError,
    DataError,
    ImageTooLargeError,
    InkdigitsError,
    ModelError,
    NoDigitError,
    NotAnImageError,
)
from .evaluate import EvaluationReport, evaluate
from .recognize import DigitReading, LineReading, Prediction, Reading, Recognizer, bundled_model_path

__all__ = [
    "BadImageError",
    "DataError",
    "DigitReading",
    "EvaluationReport",
    "ImageTooLargeError",
    "InkdigitsError",
    "LineReading",
    "ModelError",
    "NoDigitError",
    "NotAnImageError",
    "Prediction",
    "Reading",
    "Recognizer",
    "__version__",
    "bundled_model_path",
    "evaluate",
]
