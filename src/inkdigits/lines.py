"""Reading a whole row of handwriting at once: the input and output sides of the line reader.

Cutting touching or overlapping digits apart before classifying them is where segmentation
readers fail. The line reader (a CNN + bidirectional LSTM trained with CTC, see
``models.LineReader``) reads the row as one picture instead and emits a character, or
nothing, for every two columns of it; CTC's rule (repeats merged, blanks dropped) turns that
into text. This module is torch-free: it is used both to make training rows and at runtime.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import MNIST_BOX, thicken

ALPHABET = "0123456789.,-/"
BLANK = 0  # class 0 is CTC's "nothing here"; class i + 1 is ALPHABET[i]
CLASSES = len(ALPHABET) + 1
# The word finder (``train-reader --words``) reads one more class: any letter of a word
# written beside a number (a label, a unit), so that the word can be left out of the reading.
WORD = "?"
CHARACTERS = ALPHABET + WORD
WORD_CLASSES = len(CHARACTERS) + 1
LINE_HEIGHT = 32
INK_HEIGHT = 26  # the row's ink fills this much of the height; the rest is a margin
LEFT = 6  # blank columns before and after the ink
FRAME = 2  # input columns per output step
MAX_WIDTH = 2400  # widest input; a longer row is squeezed horizontally
# Numbers as written. A steep handwritten slash and a slanted 1 are one stroke alike, and the
# readers take either for the other; a 1 written into its neighbour is lost. A date's shape
# tells what was meant (``as_written``). Log likelihoods, in nats per reader: a date that
# exists is preferred by DATE_PRIOR; a text with one slash that is no date's, and one written
# like a date but none as it stands (a year of three digits), are held LONE_SLASH and
# MALFORMED_DATE less likely. Set on the development pages (1,600 plain, 200 with words):
# where these mend a reading, what was written scored up to 3.3 below the readers' own
# text; no reading they had right was lost.
DATE_LIKE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{1,4})")
# Written like a date but with a part a digit too long, as a stroke read twice leaves it
# ("25-112-11992"). On 1,000 development pages (seeds 3 and 4) mending such texts and
# malformed dates by a slip or two (``_slipped_dates``) put 4 readings right and none wrong.
SLIPPED_DATE_LIKE = re.compile(r"(\d{1,3})([/.-])(\d{1,3})\2(\d{1,5})")
DATE_PRIOR = 2.5
LONE_SLASH = 3.0
MALFORMED_DATE = 3.0
# A 1 the page's geometry found to be a slash (a long straight stroke leaning far over,
# ``segment``) is SLASH_SEEN nats likelier a slash, where that makes the text a date. On the
# development pages a date's straight slashes read as 1s scored 2 to 12 nats below them.
SLASH_SEEN = 3.0


@dataclass
class LineInput:
    image: np.ndarray  # LINE_HEIGHT x W float32, white ink on black
    scale_x: float  # input columns per crop column
    grown: int  # pixels thickening added around the crop

    @property
    def steps(self) -> int:
        """The reader's output steps for this row (one per FRAME columns, the last one partial)."""
        return -(-self.image.shape[1] // FRAME)


def line_input(ink: np.ndarray) -> LineInput:
    """A row's ink, cropped to it (white on black, 0..1) -> the reader's fixed-height input.

    Thin strokes are thickened toward MNIST's width as for one digit, so a fine pen on a big
    page does not fade to grey threads when the row is shrunk to 26 pixels.
    """
    height = ink.shape[0]
    thick = thicken(ink, MNIST_BOX / max(1, height))  # strokes in proportion to MNIST's
    grown = (thick.shape[0] - height) // 2
    h, w = thick.shape
    scale = INK_HEIGHT / h
    width = max(1, min(MAX_WIDTH - 2 * LEFT, round(w * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(thick.astype(np.float32), (width, INK_HEIGHT), interpolation=interpolation)
    top = (LINE_HEIGHT - INK_HEIGHT) // 2
    image = np.zeros((LINE_HEIGHT, width + 2 * LEFT), np.float32)
    image[top : top + INK_HEIGHT, LEFT : LEFT + width] = np.clip(resized, 0.0, 1.0)
    return LineInput(image, width / w, grown)


def pad_batch(images: list[np.ndarray]) -> np.ndarray:
    """Rows of different widths as one (N, 1, H, W) batch, padded with blank columns on the right."""
    width = max(i.shape[1] for i in images)
    width += -width % FRAME
    batch = np.zeros((len(images), 1, LINE_HEIGHT, width), np.float32)
    for index, image in enumerate(images):
        batch[index, 0, :, : image.shape[1]] = image
    return batch


@dataclass
class Emitted:
    char: str
    confidence: float  # the highest probability among the steps that emitted it
    first: int  # first and last output step that emitted it
    last: int
    added: bool = False  # a character the readers missed, put in by ``as_written``

    def centre_column(self, line: LineInput) -> float:
        """Its position in the cropped row's columns (before thickening's margin)."""
        column = ((self.first + self.last) / 2 + 0.5) * FRAME - LEFT
        return column / line.scale_x - line.grown


def greedy_decode(probabilities: np.ndarray) -> list[Emitted]:
    """CTC best path: the likeliest class per step, repeats merged, blanks dropped."""
    best = probabilities.argmax(1)
    out: list[Emitted] = []
    previous = BLANK
    for step, cls in enumerate(best):
        cls = int(cls)
        if cls != BLANK:
            p = float(probabilities[step, cls])
            if cls == previous:
                out[-1].confidence = max(out[-1].confidence, p)
                out[-1].last = step
            else:
                out.append(Emitted(CHARACTERS[cls - 1], p, step, step))
        previous = cls
    return out


def encode(text: str) -> list[int]:
    return [CHARACTERS.index(c) + 1 for c in text]


def ctc_log_likelihood(log_probabilities: np.ndarray, text: str) -> float:
    """log P(text | a row's per-step log probabilities) under CTC: over every alignment.

    The forward algorithm over the text with blanks around and between its characters: a
    step may stay on a state, move to the next, or skip a blank between two different
    characters (between two equal ones the blank is what keeps them two).
    """
    return float(ctc_log_likelihoods(log_probabilities[None], text)[0])


def ctc_log_likelihoods(log_probabilities: np.ndarray, text: str) -> np.ndarray:
    """``ctc_log_likelihood`` under several readers at once (M x T x C -> M): one pass over
    the steps for all of them, as the loop over steps is what costs."""
    return ctc_log_likelihoods_of(log_probabilities, [text])[0]


def ctc_log_likelihoods_of(log_probabilities: np.ndarray, texts: list[str]) -> np.ndarray:
    """``ctc_log_likelihood`` of several texts of one length under several readers (M x T x C
    -> len(texts) x M), in one pass over the steps."""
    labels = np.array([encode(text) for text in texts], np.int64).reshape(len(texts), -1)
    readers = len(log_probabilities)
    if labels.shape[1] == 0:
        return np.tile(log_probabilities[:, :, BLANK].sum(axis=1), (len(texts), 1))
    states = np.full((len(texts), 2 * labels.shape[1] + 1), BLANK, np.int64)
    states[:, 1::2] = labels
    may_skip = np.zeros(states.shape, bool)
    may_skip[:, 3::2] = states[:, 3::2] != states[:, 1:-2:2]
    may_skip = np.repeat(may_skip, readers, axis=0)  # per text and reader
    steps, width = log_probabilities.shape[1], states.shape[1]
    emitted = log_probabilities[:, :, states.ravel()].reshape(readers, steps, len(texts), width)
    emitted = emitted.transpose(2, 0, 1, 3).reshape(len(texts) * readers, steps, width)
    alpha = np.full((len(emitted), width), -np.inf)
    alpha[:, :2] = emitted[:, 0, :2]
    blocked = np.full((len(emitted), 1), -np.inf)
    for step in range(1, steps):
        moved = np.concatenate((blocked, alpha[:, :-1]), axis=1)
        skipped = np.where(may_skip, np.concatenate((blocked, blocked, alpha[:, :-2]), axis=1), -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, moved), skipped) + emitted[:, step]
    return np.logaddexp(alpha[:, -1], alpha[:, -2]).reshape(len(texts), readers)


def agreed_reading(member_probabilities: list[np.ndarray]) -> int:
    """Which member's best path to keep when several readers read the same row.

    Each member proposes its best path's text; the text the members find likeliest together
    (the sum of its CTC log likelihoods under each) wins, so one reader sure of a wrong
    reading is outvoted where the others give the right one real weight.
    """
    if len(member_probabilities) == 1:  # one reader: nothing to weigh, and no decoding twice
        return 0
    texts = ["".join(e.char for e in greedy_decode(p)) for p in member_probabilities]
    if len(set(texts)) == 1:
        return 0
    logs = np.log(np.maximum(np.stack(member_probabilities), 1e-12))
    scores = {text: float(ctc_log_likelihoods(logs, text).sum()) for text in set(texts)}
    return max(range(len(texts)), key=lambda i: scores[texts[i]])


def as_written(
    member_probabilities: list[np.ndarray], emitted: list[Emitted], seen_slashes: frozenset[int] = frozenset()
) -> list[Emitted]:
    """The best path, read again where a date's shape says what was written: "19/0912000" (a
    slash read as 1) is "19/09/2000", "1/45" (a 1 read as a slash) "1145", "24-12-203" (a 1
    lost in its neighbour) "24-12-2013", "03/72/2021" (a digit misread) "03/12/2021",
    "25-112-11992" (strokes read twice) "25-12-1992"; each only where the readers find that
    reading nearly as likely as their own (``DATE_PRIOR``, ``LONE_SLASH``, ``MALFORMED_DATE``).

    ``seen_slashes``: the places of characters that the page's geometry says are slashes
    (``SLASH_SEEN``): "2310912009" with slashes seen at the 1s is "23/09/2009".

    A changed or added character's confidence is that of the character it stands on (that
    a character is there) times the share of the likelihood its reading holds among those
    weighed.
    """
    text = "".join(e.char for e in emitted)
    seen = _seen_slash_dates(text, seen_slashes)
    slips = _slipped_dates(text)
    alternatives = _slash_alternatives(text) | _lost_digits(text) | set(seen) | set(slips)
    if not alternatives:
        return emitted
    logs = np.log(np.maximum(np.stack(member_probabilities), 1e-12))
    texts = [text, *sorted(alternatives)]
    likelihood: dict[str, float] = {}
    for length in {len(t) for t in texts}:  # one pass over the steps per length
        same = [t for t in texts if len(t) == length]
        likelihood.update(zip(same, ctc_log_likelihoods_of(logs, same).mean(1).tolist(), strict=True))
    scores = np.array([likelihood[t] + _format_prior(t) + SLASH_SEEN * seen.get(t, 0) for t in texts])
    best = int(scores.argmax())
    if best == 0:
        return emitted
    share = float(np.exp(scores[best] - np.logaddexp.reduce(scores)))
    if texts[best] in slips:
        return _rewritten([emitted[k] for k in slips[texts[best]]], texts[best], share)
    return _rewritten(emitted, texts[best], share)


def _rewritten(emitted: list[Emitted], text: str, share: float) -> list[Emitted]:
    """``emitted`` spelling ``text``: the same length with characters swapped, or one longer,
    the added character just beside the one it was written into."""
    out = list(emitted)
    if len(text) > len(out):
        k = next((i for i, (e, char) in enumerate(zip(out, text, strict=False)) if e.char != char), len(out))
        beside = out[k - 1] if k > 0 else out[0]
        if k > 0 and beside.char == text[k] and beside.last > beside.first:  # "1" read for "11": split its steps
            middle = (beside.first + beside.last) // 2
            out[k - 1] = Emitted(beside.char, beside.confidence, beside.first, middle, beside.added)
            first, last = middle + 1, beside.last
        else:
            first = last = beside.last + 1 if k > 0 else beside.first - 1
        out.insert(k, Emitted(text[k], beside.confidence * share, first, last, added=True))
    return [
        e if char == e.char else Emitted(char, e.confidence * share, e.first, e.last, e.added)
        for e, char in zip(out, text, strict=True)
    ]


def _date_parts(text: str) -> tuple[str, str, str] | None:
    """Day and month (either first) and year of a text written like a date, else None."""
    match = DATE_LIKE.fullmatch(text)
    return None if match is None else (match[1], match[3], match[4])


def _is_date(text: str) -> bool:
    """A date that exists, written one way throughout: a year of two or four digits, and day
    and month both padded with a 0 or neither."""
    parts = _date_parts(text)
    if parts is None:
        return False
    first, second, year = parts
    month, day = sorted((int(first), int(second)))
    padded = [len(part) == 2 and part[0] == "0" for part in (first, second)]
    single = [len(part) == 1 for part in (first, second)]
    return len(year) in (2, 4) and 1 <= month <= 12 and day <= 31 and not (any(padded) and any(single))


def _format_prior(text: str) -> float:
    if _is_date(text):
        return DATE_PRIOR
    if _date_parts(text) is not None:
        return -MALFORMED_DATE
    return -LONE_SLASH if text.count("/") == 1 else 0.0


def _lost_digits(text: str) -> set[str]:
    """A date with a part too short (a year of one or three digits, a month of 0, a month
    of one digit beside a day padded with a 0) with a digit put in that part, where that
    makes a date: most often a 1 written into its neighbour, or an open 0 missed."""
    parts = _date_parts(text)
    if parts is None or _is_date(text):
        return set()
    separator = text[len(parts[0])]
    candidates = set()
    for index, part in enumerate(parts):
        for k, digit in itertools.product(range(len(part) + 1), "0123456789"):
            longer = [*parts]
            longer[index] = part[:k] + digit + part[k:]
            candidates.add(separator.join(longer))
    return {t for t in candidates if _is_date(t)}


def _slipped_dates(text: str) -> dict[str, tuple[int, ...]]:
    """Dates a slip or two away from a text written like a date but none as it stands: a
    digit misread ("03/72/2021" for "03/12/2021"), a stroke read twice ("25-112-11992" for
    "25-12-1992"), or both. Each with the places of the text's characters it keeps."""
    if SLIPPED_DATE_LIKE.fullmatch(text) is None or _is_date(text):
        return {}
    places = [k for k, char in enumerate(text) if char.isdigit()]
    dates: dict[str, tuple[int, ...]] = {}
    drops = [(), *((k,) for k in places), *itertools.combinations(places, 2)]
    for dropped in drops:
        kept = tuple(k for k in range(len(text)) if k not in dropped)
        shorter = "".join(text[k] for k in kept)
        if dropped and _is_date(shorter):
            dates.setdefault(shorter, kept)
        if len(dropped) == 2:  # two slips at most
            continue
        for k, digit in itertools.product(range(len(shorter)), "0123456789"):
            if shorter[k].isdigit() and shorter[k] != digit:
                changed = shorter[:k] + digit + shorter[k + 1 :]
                if _is_date(changed):
                    dates.setdefault(changed, kept)
    return dates


def _seen_slash_dates(text: str, places: frozenset[int]) -> dict[str, int]:
    """Dates made by reading one or two of the 1s at ``places`` as slashes, each with how many."""
    ones = sorted(k for k in places if k < len(text) and text[k] == "1")
    dates = {}
    for count in range(1, min(2, len(ones)) + 1):
        for chosen in itertools.combinations(ones, count):
            date = "".join("/" if k in chosen else char for k, char in enumerate(text))
            if _is_date(date):
                dates[date] = count
    return dates


def _slash_alternatives(text: str) -> set[str]:
    """Texts of the same length with 1s and slashes swapped that could be what was written:
    a lone slash as a 1, or a 1 as the slash a date lacks; ten or eight digits with 1s where
    a date's slashes go, as that date."""
    if text.count("/") == 1 and not _is_date(text):
        ones = (k for k, char in enumerate(text) if char == "1")
        dates = {t for t in (text[:k] + "/" + text[k + 1 :] for k in ones) if _is_date(t)}
        return {text.replace("/", "1"), *dates}
    if text.isdigit() and len(text) in (8, 10) and text[2] == text[5] == "1":
        date = f"{text[:2]}/{text[3:5]}/{text[6:]}"
        return {date} if _is_date(date) else set()
    return set()
