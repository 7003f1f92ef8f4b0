"""The recognition runtime: image -> preprocess -> ONNX model -> result.

It runs on onnxruntime, numpy and OpenCV and never imports torch, so a user who only reads
digits installs none of the training stack. The CLI and the web server both call
``Recognizer``; no recognition logic lives anywhere else.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .calibrate import apply_temperature
from .errors import InkdigitsError, ModelError, NoDigitError
from .images import DEFAULT_MAX_PIXELS, ImageInput, decode_image, describe
from .preprocess import WORKING_SIDE, Preprocessed, frame_digit, to_mnist

if TYPE_CHECKING:  # segment and lines are imported only when a page is read
    from .lines import Emitted, LineInput
    from .segment import Page, Row

CARD_KEY = "inkdigits.card"  # same key the exporter writes; repeated to keep torch out
# A gap wider than this (times the row's text height), and than twice the row's usual gap
# between digits, is a space.
SPACE_GAP = 0.8
# Without a threshold in the model card: report a digit only when it is more likely than
# all the alternatives together.
DEFAULT_THRESHOLD = 0.5
# A row whose digits average less than this (geometric mean) is dropped: on read_numbers.py
# the rows below it were shadow edges and texture, and every real row scored over 0.66.
MIN_ROW_CONFIDENCE = 0.5
# How sure the digit model must be that two 1s the reader saw in one stroke are one 1.
FLAGGED_ONE = 0.5
# How much of two digits' joint span both must cover to be the same digit.
SAME_SPAN = 0.7
# The fewest letters the word finder must see in a run for them to be a word that is left out.
MIN_WORD = 2
# How sure of a run's letters the word finder must be on average. On development pages (seeds
# 1 and 2), the runs it saw in rows of digits alone averaged 0.63 at most, and 196 of the 197
# runs in rows with words 0.7 or more.
WORD_CONFIDENCE = 0.7
# Letters further apart than this many times their run's usual spacing are in two words (on
# development pages, steps inside one word reached 3.3 times; a 0 before "EUR" stood 4.6 off).
WORD_SPACE = 3.5
# A lone letter ending a row is a word (a unit the finder read as one letter) when it is this
# sure of it and it stands this many times the row's usual step after the last digit. On
# development pages, no row of digits alone (1,900) ended in a letter surer than 0.8, and that
# one 1.2 steps off; of 200 pages with words, four units did, 0.87-1.0 sure, 2.8-4.1 off.
UNIT_CONFIDENCE = 0.85
UNIT_GAP = 2.5
# The share of a blob's columns that must lie in a word for the blob to go with it.
IN_WORD = 0.75


def bundled_model_path() -> Path:
    """The default model shipped inside the package."""
    return Path(str(resources.files("inkdigits") / "bundled" / "default.onnx"))


def bundled_word_finder_path() -> Path:
    """The word finder shipped inside the package (finds words beside numbers; ``Recognizer.read``)."""
    return Path(str(resources.files("inkdigits") / "bundled" / "words.onnx"))


def bundled_reader_path() -> Path:
    """The line reader shipped inside the package (reads whole rows; ``Recognizer.read``)."""
    return Path(str(resources.files("inkdigits") / "bundled" / "reader.onnx"))


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
    """An ONNX digit classifier: (N, 1, 28, 28) float32 in [0, 1] -> (N, 10 or 11) probabilities.

    An eleventh output, where present, is the probability of "not a digit".
    """

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
        resolved = _resolve(path)
        session = _session(resolved, threads)
        _check_signature(session, resolved)
        return cls(session, resolved)

    @property
    def classes(self) -> int:
        return int(self.session.get_outputs()[0].shape[1])

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
        return np.concatenate(chunks) if chunks else np.zeros((0, self.classes), np.float32)


class OnnxLineReader:
    """The ONNX line reader: (N, 1, 32, W) rows -> (N, W / 2, classes) CTC probabilities,
    one such output per member where the file holds several readers (``ensemble-readers``)."""

    def __init__(self, session: Any, path: Path) -> None:
        self.session, self.path = session, path
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, threads: int | None = None, words: bool = False
    ) -> OnnxLineReader | None:
        """The reader at ``path``; ``None``: the bundled one, or None where none is bundled.
        ``words``: the word finder (``train-reader --words``) instead of a digit reader."""
        from .lines import CLASSES, LINE_HEIGHT, WORD_CLASSES

        resolved = Path(path) if path is not None else (bundled_word_finder_path() if words else bundled_reader_path())
        if path is None and not resolved.is_file():
            return None
        session = _session(resolved, threads)
        shape_in = session.get_inputs()[0].shape
        shapes_out = [output.shape for output in session.get_outputs()]
        classes = WORD_CLASSES if words else CLASSES
        if len(shape_in) != 4 or shape_in[2] != LINE_HEIGHT or any(len(s) != 3 or s[2] != classes for s in shapes_out):
            kind = "word finder" if words else "line reader"
            raise ModelError(f"{resolved} is not an inkdigits {kind} (input {shape_in}, outputs {shapes_out}).")
        return cls(session, resolved)

    def probabilities(self, batch: np.ndarray) -> list[np.ndarray]:
        """Each member's (N, steps, classes) probabilities for a batch of rows."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"Model {path} does not exist.")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's warnings are for us, not for users
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}).") from exc


def _check_signature(session: Any, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape_in = list(inputs[0].shape) if inputs else []
    shape_out = list(outputs[0].shape) if outputs else []
    if len(inputs) != 1 or shape_in[1:] != [1, 28, 28] or len(shape_out) != 2 or shape_out[1] not in (10, 11):
        raise ModelError(
            f"{path} is an ONNX model but not a digit classifier "
            f"(it takes {shape_in} and gives {shape_out}; inkdigits needs [N, 1, 28, 28] -> [N, 10] or [N, 11])."
        )


@dataclass
class Prediction:
    """One digit read from one image, or a reasoned refusal to read one."""

    digit: int  # the most likely digit, also when rejected
    confidence: float  # its calibrated probability
    probabilities: np.ndarray  # (10,) float32: each digit's calibrated probability
    source: str = ""
    box: tuple[int, int, int, int] | None = None  # ink's [x, y, w, h] in input pixels
    not_digit: float = 0.0  # probability that the image shows no single digit (11-class models)
    rejected: bool = False
    reason: str | None = None  # why it was rejected
    model_input: np.ndarray | None = field(default=None, repr=False)  # the 28x28 the model saw
    stages: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(-self.probabilities)[:k]
        return [(int(d), float(self.probabilities[d])) for d in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digit": self.digit,
            "confidence": round(self.confidence, 6),
            "rejected": self.rejected,
            "reason": self.reason,
            "not_digit": round(self.not_digit, 6),
            "probabilities": [round(float(p), 6) for p in self.probabilities],
            "box": list(self.box) if self.box else None,
        }


class Recognizer:
    """Read handwritten digits from images.

    >>> recognizer = Recognizer.load()          # the bundled model
    >>> recognizer.predict("examples/seven.png").digit
    7
    """

    def __init__(
        self,
        model: OnnxModel,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        threshold: float | None = None,
        reader: OnnxLineReader | None = None,
        word_finder: OnnxLineReader | None = None,
    ) -> None:
        self.model = model
        self.reader = reader
        self.word_finder = word_finder
        self.max_pixels = max_pixels
        calibration = model.card.get("calibration") or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        self.threshold = float(threshold if threshold is not None else calibration.get("threshold", DEFAULT_THRESHOLD))
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"the threshold is a probability between 0 and 1, not {self.threshold}")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        threads: int | None = None,
        threshold: float | None = None,
        reader: str | os.PathLike[str] | None = None,
        word_finder: str | os.PathLike[str] | None = None,
    ) -> Recognizer:
        """Load an ONNX model file or a training run folder; ``None`` loads the bundled model.

        ``threshold``: the least calibrated confidence at which a digit is reported as read
        (default: the model card's, else 0.5); below it, the answer is rejected.
        ``reader``: the line reader ``read`` uses for whole rows (default: the bundled one).
        ``word_finder``: the model that finds words beside numbers, which ``read`` leaves out
        (default: the bundled one).
        """
        return cls(
            OnnxModel.load(path, threads),
            max_pixels,
            threshold,
            OnnxLineReader.load(reader, threads),
            OnnxLineReader.load(word_finder, threads, words=True),
        )

    @property
    def card(self) -> dict[str, Any]:
        """The model card: architecture, recipe, data digests, metrics, versions."""
        return self.model.card

    def preprocess(self, image: ImageInput, keep_stages: bool = False) -> Preprocessed:
        """Decode ``image`` and bring its digit into MNIST form (raises on bad or blank input)."""
        # The stage pictures show the input as given; otherwise nothing past WORKING_SIDE is used.
        pixels, scale = decode_image(image, self.max_pixels, None if keep_stages else WORKING_SIDE)
        prepared = to_mnist(pixels, keep_stages=keep_stages)
        if keep_stages:
            prepared.stages = {"input": pixels, **prepared.stages}
        if scale != 1.0:
            prepared.box = tuple(round(v / scale) for v in prepared.box)  # type: ignore[assignment]
        return prepared

    def predict(self, image: ImageInput, keep_stages: bool = False) -> Prediction:
        """The digit in ``image``, its confidence and all ten probabilities."""
        prepared = self.preprocess(image, keep_stages)
        probabilities = self.calibrated(self.model.probabilities(prepared.digit[None]))[0]
        return self._prediction(probabilities, prepared, describe(image))

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
            batch = self._digit_probabilities(np.stack([prepared.digit for _, prepared, _ in ready]))
            for (slot, prepared, name), probabilities in zip(ready, batch, strict=True):
                results[slot] = self._prediction(probabilities, prepared, name)
        return results

    def read(self, image: ImageInput) -> Reading:
        """Every handwritten number in ``image``: rows top to bottom, digits left to right.

        ``segment`` finds the rows (ignoring paper, ruled lines, form boxes and specks).
        Recognition-driven segmentation reads each row: digit hypotheses (blobs, and wide
        blobs cut where touching digits join) are all scored in one call of the digit
        model, and dynamic programming keeps, per row, the likeliest split. With a line
        reader (bundled), each row is read whole by it, touching digits included, and the
        segmentation only overrules it on a digit both place alike. An image with no number
        gives a reading with empty text.
        """
        from .segment import PAGE_SIDE, find_rows

        pixels, scale = decode_image(image, self.max_pixels, PAGE_SIDE)
        try:
            page = find_rows(pixels)
        except NoDigitError:
            return Reading([], describe(image))
        page.scale *= scale  # boxes in the input's own pixels, however it was decoded
        segmented = self._segment_rows(page)
        # Choosing per row the surer of the two readers was tried: the digit model is sure of
        # its wrong cuts through touching digits, and the mix read fewer numbers right. Digit
        # by digit, where both see the same digits in the same places, it helps.
        lines = segmented if self.reader is None else list(map(_second_opinion, self._read_rows(page), segmented))
        return Reading([line for line in lines if line is not None and _plausible(line)], describe(image))

    def _read_rows(self, page: Page) -> list[LineReading | None]:
        """Each row through the line reader in one batch; CTC's best path per row (with several
        readers, the best path of the reading they find likeliest together)."""
        from .lines import agreed_reading, as_written, greedy_decode, line_input, pad_batch

        assert self.reader is not None
        crops = [page.row_ink(row) for row in page.rows]
        inputs = [line_input(ink) for ink, _ in crops]
        if not inputs:
            return []
        if self.word_finder is not None:
            crops, inputs = self._without_words(crops, inputs)
        members = self.reader.probabilities(pad_batch([i.image for i in inputs]))
        lines: list[LineReading | None] = []
        for index, (row, (ink, origin), line) in enumerate(zip(page.rows, crops, inputs, strict=True)):
            if not ink.any():  # words only
                lines.append(None)
                continue
            readings = [member[index, : line.steps] for member in members]
            emitted = greedy_decode(readings[agreed_reading(readings)])
            emitted = as_written(readings, emitted, _on_slashes(row, origin, line, emitted))
            lines.append(_row_reading(page, row, ink, origin, line, emitted, self._digit_probabilities))
        return lines

    def _without_words(
        self, crops: list[tuple[np.ndarray, tuple[int, int]]], inputs: list[LineInput]
    ) -> tuple[list[tuple[np.ndarray, tuple[int, int]]], list[LineInput]]:
        """The rows with the words beside their numbers (a label, a unit, a name) taken out,
        as the word finder sees them: a word is read as digits otherwise ("EUR" as 502)."""
        from .lines import greedy_decode, line_input, pad_batch

        assert self.word_finder is not None
        (found,) = self.word_finder.probabilities(pad_batch([i.image for i in inputs]))
        kept_crops, kept_inputs = [], []
        for index, ((ink, origin), line) in enumerate(zip(crops, inputs, strict=True)):
            words = _word_spans(greedy_decode(found[index, : line.steps]), line)
            if words:
                ink, origin = _ink_outside(ink, origin, words)
                # a row of words alone keeps its old input, only to hold its place in the batch
                line = line_input(ink) if ink.any() else line
            kept_crops.append((ink, origin))
            kept_inputs.append(line)
        return kept_crops, kept_inputs

    def _segment_rows(self, page: Page) -> list[LineReading | None]:
        """Per row, the digit model's likeliest split of the row's blobs (None: no digit)."""
        from .segment import best_path, hypotheses

        runs = [(row, hypotheses(row)) for row in page.rows]
        crops = [page.digit_image(row.atoms[a:b]) for row, spans in runs for a, b in spans]
        if not crops:
            return [None] * len(page.rows)
        probabilities = self._digit_probabilities(np.stack(crops))
        lines, offset = [], 0
        for row, spans in runs:
            scored = probabilities[offset : offset + len(spans)]
            offset += len(spans)
            scores = {span: float(np.log(max(p[:10].max(), 1e-9))) for span, p in zip(spans, scored, strict=True)}
            by_span = dict(zip(spans, scored, strict=True))
            lines.append(self._line(page, row, [(span, by_span[span]) for span in best_path(row, scores)]))
        return lines

    def _line(self, page: Page, row: Row, path: list[tuple[tuple[int, int], np.ndarray]]) -> LineReading | None:
        """Digits along the chosen path (none that is likelier not a digit), with separators."""
        items: list[tuple[int, int, str, DigitReading | None]] = []
        for (start, end), p in path:
            atoms = row.atoms[start:end]
            digit = int(np.argmax(p[:10]))
            if len(p) > 10 and p[10] > p[digit]:
                continue
            x0, x1 = min(a.x0 for a in atoms), max(a.x1 for a in atoms)
            y0, y1 = min(a.y0 for a in atoms), max(a.y1 for a in atoms)
            box = page.input_box(x0, y0, x1, y1)
            items.append((x0, x1, str(digit), DigitReading(digit, float(p[digit]), box)))
        if not items:
            return None
        first, last = min(x0 for x0, *_ in items), max(x1 for _, x1, *_ in items)
        for separator in row.separators:
            if first < separator.x0 and separator.x1 < last:  # only between digits
                items.append((separator.x0, separator.x1, separator.char, None))
        return _assemble_line(items, row.height)

    def _digit_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for MNIST-framed float images (N x 28 x 28)."""
        return self.calibrated(self.model.probabilities(images))

    def classify_mnist(self, images: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for images already in MNIST form (uint8 N x 28 x 28)."""
        return self.calibrated(self.model.probabilities_uint8(images))

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        """Temperature-scaled probabilities (the card's temperature; 1.0 leaves them as they are)."""
        return apply_temperature(probabilities, self.temperature)

    def _prediction(self, probabilities: np.ndarray, prepared: Preprocessed, source: str) -> Prediction:
        digits = probabilities[:10]
        digit = int(np.argmax(digits))
        confidence = float(digits[digit])
        not_digit = float(probabilities[10]) if len(probabilities) > 10 else 0.0
        reason = None
        if not_digit > confidence:
            reason = f"it looks like something other than one digit ({not_digit:.0%} sure)"
        elif confidence < self.threshold:
            reason = f"too unsure: {confidence:.0%} for {digit}, below the {self.threshold:.0%} threshold"
        return Prediction(
            digit=digit,
            confidence=confidence,
            probabilities=digits.astype(np.float32),
            source=source,
            box=prepared.box,
            not_digit=not_digit,
            rejected=reason is not None,
            reason=reason,
            model_input=prepared.digit,
            stages=prepared.stages,
        )


# ---- whole numbers ---------------------------------------------------------------------------

Item = tuple[int, int, str, "DigitReading | None"]  # x0, x1 in working pixels, char, digit


def _assemble_line(items: list[Item], row_height: float) -> LineReading | None:
    """Digits and separators, left to right, into a line; spaces where gaps are wide."""
    items = sorted(items, key=lambda item: item[0])
    digits = [d for *_, d in items if d is not None]
    if not digits:
        return None
    # A space is a gap much wider than this writer's usual gap between digits.
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(items) if a[3] is not None and b[3] is not None]
    space = max(SPACE_GAP * row_height, 2.0 * float(np.median(gaps))) if gaps else np.inf
    full, previous_end = "", None
    for x0, x1, char, _ in items:
        if previous_end is not None and x0 - previous_end > space:
            full += " "
        full += char
        previous_end = x1
    xs = [d.box[0] for d in digits] + [d.box[0] + d.box[2] for d in digits]
    ys = [d.box[1] for d in digits] + [d.box[1] + d.box[3] for d in digits]
    return LineReading(
        text="".join(str(d.digit) for d in digits),
        text_full=full,
        box=(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)),
        confidence=float(np.prod([d.confidence for d in digits])),
        digits=digits,
    )


def _row_reading(
    page: Page,
    row: Row,
    ink: np.ndarray,
    origin: tuple[int, int],
    line: LineInput,
    emitted: list[Emitted],
    digit_model: Callable[[np.ndarray], np.ndarray],
) -> LineReading | None:
    """The line reader's characters, each given the ink between its neighbours' midpoints
    (``digit_model``: calibrated probabilities for MNIST-framed crops, to check the reader)."""
    centres = [e.centre_column(line) for e in emitted]
    bounds = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(centres)), float(ink.shape[1])]
    columns = ink > 0.2
    marks: list[_Mark] = []
    for e, left, right in zip(emitted, bounds, bounds[1:], strict=False):
        lo, hi = max(0, int(np.floor(left))), min(ink.shape[1], int(np.ceil(right)))
        ys, xs = np.nonzero(columns[:, lo:hi])
        if len(ys) == 0:
            continue
        box = (lo + int(xs.min()), int(ys.min()), lo + int(xs.max()) + 1, int(ys.max()) + 1)
        marks.append(_Mark(e.char, e.confidence, box, e.added))
    items: list[Item] = []
    for mark in _flagged_ones_joined(marks, columns, digit_model):
        x0, y0, x1, y1 = mark.box
        x0, x1, y0, y1 = x0 + origin[0], x1 + origin[0], y0 + origin[1], y1 + origin[1]
        reading = None
        if mark.char.isdigit():
            reading = DigitReading(int(mark.char), mark.confidence, page.input_box(x0, y0, x1, y1))
        items.append((x0, x1, mark.char, reading))
    return _assemble_line(items, row.height)


def _on_slashes(row: Row, origin: tuple[int, int], line: LineInput, emitted: list[Emitted]) -> frozenset[int]:
    """The places of the 1s read where the row's geometry found a slash (``segment``)."""
    spans = [(s.x0, s.x1) for s in row.separators if s.char == "/"]
    if not spans:
        return frozenset()
    return frozenset(
        k
        for k, e in enumerate(emitted)
        if e.char == "1" and any(x0 <= origin[0] + e.centre_column(line) <= x1 for x0, x1 in spans)
    )


def _word_spans(emitted: list[Emitted], line: LineInput) -> list[tuple[float, float]]:
    """Column ranges of the row crop that hold words: each run of at least MIN_WORD letters the
    word finder emitted with nothing else between them and no space (WORD_SPACE) inside, and
    on average WORD_CONFIDENCE sure of them, out to halfway to its neighbours, or at the row's
    ends a letter's width past its outer letters (not to the end of the row: a digit there
    that the finder missed is no letter); and a lone letter ending the row, far enough after
    the last digit and sure enough (``UNIT_GAP``, ``UNIT_CONFIDENCE``), out to as far beyond it."""
    from .lines import WORD

    centres = [e.centre_column(line) for e in emitted]
    runs: list[list[int]] = []
    for index, e in enumerate(emitted):
        if e.char != WORD:
            continue
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    spans = []
    for word in (word for run in runs for word in _split_at_spaces(run, centres)):
        if len(word) < MIN_WORD or np.mean([emitted[i].confidence for i in word]) < WORD_CONFIDENCE:
            continue
        first, last = word[0], word[-1]
        pitch = (centres[last] - centres[first]) / (last - first)  # between letters
        left = (centres[first - 1] + centres[first]) / 2 if first > 0 else centres[first] - pitch
        right = (centres[last] + centres[last + 1]) / 2 if last + 1 < len(emitted) else centres[last] + pitch
        spans.append((left, right))
    last = len(emitted) - 1
    if last >= 1 and emitted[last].char == WORD and emitted[last - 1].char != WORD:
        # A short unit after the number ("km", "kg") is often one letter to the finder.
        gap = centres[last] - centres[last - 1]
        if emitted[last].confidence >= UNIT_CONFIDENCE and gap >= UNIT_GAP * float(np.median(np.diff(centres))):
            spans.append((centres[last] - gap / 2, centres[last] + gap / 2))
    return spans


def _split_at_spaces(run: list[int], centres: list[float]) -> list[list[int]]:
    """A run of letters cut where two are much further apart than its letters usually are: the
    space between two words, or between a word and a 0 the finder took for an O."""
    if len(run) < 3:
        return [run]
    steps = np.diff([centres[i] for i in run])
    usual = float(np.median(steps))
    pieces = [[run[0]]]
    for index, step in zip(run[1:], steps, strict=True):
        if step > WORD_SPACE * usual:
            pieces.append([])
        pieces[-1].append(index)
    return pieces


def _ink_outside(
    ink: np.ndarray, origin: tuple[int, int], spans: list[tuple[float, float]]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The row's ink without the blobs that lie in ``spans`` (columns), cropped to what is left.

    Whole blobs go, not columns: a digit close beside a word keeps all its strokes. A blob
    only partly in a word (touching digits the finder half took for letters) stays."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0.2).astype(np.uint8), connectivity=8)
    in_word = np.zeros(ink.shape[1], bool)
    for left, right in spans:
        in_word[max(0, int(np.ceil(left))) : int(right) + 1] = True
    inside = np.concatenate([[0], np.cumsum(in_word)])  # word columns left of each column
    gone = []
    for i in range(1, count):
        x, w = int(stats[i, cv2.CC_STAT_LEFT]), int(stats[i, cv2.CC_STAT_WIDTH])
        if inside[x + w] - inside[x] >= IN_WORD * w:
            gone.append(i)
    if not gone:
        return ink, origin
    # and their faint rims, which the 0.2 cut left out of the blobs
    rims = cv2.dilate(np.isin(labels, gone).astype(np.uint8), np.ones((3, 3), np.uint8))
    kept = np.where(rims > 0, 0.0, ink).astype(np.float32)
    ys, xs = np.nonzero(kept > 0.2)
    if len(ys) == 0:
        return np.zeros((0, 0), np.float32), origin
    y0, x0 = int(ys.min()), int(xs.min())
    return kept[y0 : ys.max() + 1, x0 : xs.max() + 1], (origin[0] + x0, origin[1] + y0)


@dataclass
class _Mark:
    char: str
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the row crop
    added: bool = False  # a date's shape, not the readers, put it there (``lines.as_written``)


def _flagged_ones_joined(
    marks: list[_Mark], ink: np.ndarray, digit_model: Callable[[np.ndarray], np.ndarray]
) -> list[_Mark]:
    """Two 1s the reader saw in what is one 1 with a long flag, joined into that 1.

    A continental 1 starts with a long up-stroke to the top of its stem, and some hands
    bring it down nearly to the baseline; the readers see that flag as a 1 of its own and
    read "11". Where the two 1s are one stroke, the digit model, shown that stroke framed
    as one digit, tells a flagged 1 (which it reads as a 1) from two touching ones. A 1 put
    in where a date lacked it (``lines.as_written``) stays.
    """
    out: list[_Mark] = []
    for mark in marks:
        previous = out[-1] if out else None
        added = mark.added or (previous is not None and previous.added)
        if previous is not None and previous.char == mark.char == "1" and not added:
            joined = _one_stroke(previous, mark, ink)
            if joined is not None:
                p = digit_model(frame_digit(joined)[None])[0]
                if p[1] >= FLAGGED_ONE:
                    box = (
                        previous.box[0],
                        min(previous.box[1], mark.box[1]),
                        mark.box[2],
                        max(previous.box[3], mark.box[3]),
                    )
                    out[-1] = _Mark("1", float(p[1]), box)
                    continue
        out.append(mark)
    return out


def _one_stroke(a: _Mark, b: _Mark, ink: np.ndarray) -> np.ndarray | None:
    """The ink of two neighbouring marks when it is one stroke (a tiny speck aside), else None."""
    x0, x1 = a.box[0], b.box[2]
    y0, y1 = min(a.box[1], b.box[1]), max(a.box[3], b.box[3])
    window = ink[y0:y1, x0:x1].astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(window, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < 0.9 * stats[1:, cv2.CC_STAT_AREA].sum():
        return None
    return (labels == largest).astype(np.float32)


def _plausible(line: LineReading) -> bool:
    """Writing, rather than a shadow's edge or paper texture taken for a row: digits read
    with some conviction on average (geometric mean of their confidences)."""
    return line.confidence ** (1 / len(line.digits)) >= MIN_ROW_CONFIDENCE  # confidence: their product


def _second_opinion(read: LineReading | None, segmented: LineReading | None) -> LineReading | None:
    """The line reader's line, each digit replaced where the digit model reads it otherwise
    and more surely: all of them when both found the same number of digits in the same
    places, else those both found over nearly the same span (also where the counts agree
    but a place does not: 1 more of 1,000 development pages read right, none lost; the
    benchmark's 1,000 pages read the same).

    The reader sees a whole row 26 pixels tall; the digit model sees one digit framed as in
    MNIST and is the better judge of a digit that stands alone. Where the two disagree on the
    digits' count, some digits touch, and there the reader is trusted with every digit the
    segmentation did not find over nearly the same span.
    """
    if read is None or segmented is None:
        return read
    pairs = list(zip(read.digits, segmented.digits, strict=True)) if len(read.digits) == len(segmented.digits) else []
    if pairs and all(_overlap_centres(a.box, b.box) for a, b in pairs):
        digits = [b if b.digit != a.digit and b.confidence > a.confidence else a for a, b in pairs]
    else:
        digits = [_same_digit(a, segmented.digits) for a in read.digits]
    if all(a is d for a, d in zip(read.digits, digits, strict=True)):
        return read
    replacements = iter(str(d.digit) for d in digits)
    return LineReading(
        text="".join(str(d.digit) for d in digits),
        text_full="".join(next(replacements) if c.isdigit() else c for c in read.text_full),
        box=read.box,
        confidence=float(np.prod([d.confidence for d in digits])),
        digits=digits,
    )


def _same_digit(a: DigitReading, candidates: list[DigitReading]) -> DigitReading:
    """Where the counts differ: the digit model's reading of the same ink as ``a`` (nearly
    the same span), when it reads it otherwise and more surely; else ``a``."""
    for b in candidates:
        overlap = min(a.box[0] + a.box[2], b.box[0] + b.box[2]) - max(a.box[0], b.box[0])
        union = max(a.box[0] + a.box[2], b.box[0] + b.box[2]) - min(a.box[0], b.box[0])
        if overlap >= SAME_SPAN * union and b.digit != a.digit and b.confidence > a.confidence:
            return b
    return a


def _overlap_centres(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Each box's horizontal centre lies within the other: the same digit."""
    return a[0] <= b[0] + b[2] / 2 <= a[0] + a[2] and b[0] <= a[0] + a[2] / 2 <= b[0] + b[2]


@dataclass
class DigitReading:
    digit: int
    confidence: float
    box: tuple[int, int, int, int]  # [x, y, w, h] in input pixels

    def to_dict(self) -> dict[str, Any]:
        return {"digit": self.digit, "confidence": round(self.confidence, 6), "box": list(self.box)}


@dataclass
class LineReading:
    """One row of handwriting: its digits, and the same with separators kept."""

    text: str  # digits only
    text_full: str  # digits with ".", ",", "-", "/" and spaces where they were written
    box: tuple[int, int, int, int]
    confidence: float  # the product of its digits' confidences: how sure the whole line is
    digits: list[DigitReading]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "text_full": self.text_full,
            "box": list(self.box),
            "confidence": round(self.confidence, 6),
            "digits": [d.to_dict() for d in self.digits],
        }


@dataclass
class Reading:
    """Every number found in one image, rows in reading order."""

    lines: list[LineReading]
    source: str = ""

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "lines": [line.to_dict() for line in self.lines]}
