"""A page -> rows of handwriting -> digit hypotheses and separators (numpy + OpenCV only).

Reading a number is harder than reading a digit because digits touch, strokes break, and
lines, boxes and dots get in the way. This module does the geometry; the recognizer decides
(``Recognizer.read``), which is recognition-driven segmentation:

1. The page's ink, as for one digit (``preprocess.ink_map``): lighting divided out, blank
   pages refused, ruled lines gone; rows photographed at a tilt levelled (``skew_angle``).
   Then form lines: long horizontal strokes (box edges, underlines, also when a photo broke
   them into dashes or set them a little off the level), the short verticals that join them
   (the sides of form boxes) and the stubs that hang from them (a comb's teeth).
2. Blobs, the typical text height, and rows: blobs that share most of their height.
3. Per row: small blobs become separators (point, comma, dash) or join the digit above them
   (a 5's detached bar); a long thin slanted blob is a slash. Wide blobs are cut at thin
   columns (where touching digits join) into *atoms*.
4. Hypotheses: every run of up to four consecutive atoms narrow enough to be one digit.
   The recognizer scores them all in one batch, and dynamic programming picks the best path.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import NoDigitError
from .preprocess import frame_digit, ink_map, paper_statistics, stroke_width

PAGE_SIDE = 1600
COARSE_SIDE = 800
COARSE_TEXT_HEIGHT = 40
# A photo of a note is rarely square to its rows. Rows tilted more than MIN_SKEW degrees
# (the line reader learnt rows tilted up to 3) are levelled, up to MAX_SKEW degrees either
# way, when levelling makes the rows' profile clearly tighter (SKEW_GAIN nats less entropy).
MIN_SKEW = 1.5
MAX_SKEW = 20.0
SKEW_GAIN = 0.05
SKEW_ROW = 3.0  # text heights: a shorter row's tilt is not told from its digits' slant
SKEW_POINTS = 3000  # ink pixels the angle is measured on, at most
LEVEL_LINE = 2.2  # text heights: a straight level run this long is a printed line (as a form line)
# Blobs shorter than this share of the text height are separators or parts of a digit.
SMALL = 0.45
# Ink is evened out up to this level: fainter neighbourhoods are specks, not writing.
EVEN_OUT_FLOOR = 0.4
# Writing whose strongest stroke nearby is below this share of the page's contrast is faint
# (a shadow, a fading pen) and measured locally; the local stretch stops at this many times
# the paper's grain and this share of the page's contrast.
FAINT_SHARE = 0.6
FAINT_MIN_GRAIN = 8.0
FAINT_MIN_SHARE = 0.2
# A blob at the picture's edge thicker than this share of its height is a smudge of light.
SMUDGE_THICKNESS = 0.5
# A lone box side is drawn at most this share of the pen's mean stroke width.
BAR_STROKE_SHARE = 0.75
# A bar at most this share of the pen's stroke is printed: a box side from this share of the
# text height up (or what a photo left of one: a straight piece of a fine line).
PRINTED_BAR_SHARE = 0.4
PRINTED_BAR_HEIGHT = 0.6
# A row whose marks are typically shorter than this share of the text height is no row.
SHORT_ROW = 0.6
# A horizontal run with writing both above and below it along this share of its length is
# writing (heavy, touching digits), not a line. On 2,000 development pages every printed
# line scored 0 and 58 of 60 bands of writing 0.15 or more; a descender or two crossing an
# underline would score a few hundredths.
WRITING_ABOVE_AND_BELOW = 0.15
LINE_PLAY = 0.04  # text heights a form line may wander up or down along 2.2 of them
LINE_THIN = 0.06  # text heights thick, at most, along THIN_SHARE of such a line: finer than a pen
THIN_SHARE = 0.7
# A thin printed line photographed breaks into dashes; gaps up to DASH_GAP text heights are
# bridged to find it, and a piece with DASH_SHARE of its ink on the line is a dash of it (a
# stroke that crosses or touches the line has most of its ink off it).
DASH_GAP = 0.25
DASH_SHARE = 0.8
DASH_LARGEST = 0.6  # no dash of a line holds more of its ink
DASH_THICKNESS = 0.15  # text heights across a dash, at most: a printed word's letters are more
DASH_MEAN_THICKNESS = 0.08  # or on average along it (a corner of a box, with a stub of its side)
# A straight upright run on one erased line is a box's side when at least this many text
# heights tall (a box stands taller than what is written in it); between two, at any height.
BOX_SIDE_HEIGHT = 1.1
# A comb's teeth (short walls between a form's cells, standing on its top or bottom line)
# are thin stubs shorter than this share of the text height.
TOOTH_HEIGHT = 0.7
# The least share of its box that a row of touching digits in a fine pen fills, when it is
# the only blob of writing (a box's outline, or a line drawn at a slant, fills less).
LONE_ROW_FILL = 0.1
# A mark joins a longer row beside it when this share of its height lies in the row's band.
STRAGGLER_SHARE = 0.25
# A row's reading takes in loose ink (a faded stroke's pieces, a separator) up to this many
# text heights beyond its ends.
ROW_REACH = 1.5
# A loose mark above or below a row's digits, smaller than SPECK_AREA text heights squared and
# drawn in a pen under SPECK_PEN of the row's, is no part of the writing (a pencil speck, dust,
# a printed line's crumb): taken in, it stretched the row's crop and the readers lost digits of
# a heavy row among specks. Among the digits such a mark may be a thin piece of a broken stroke.
SPECK_AREA = 0.03
SPECK_PEN = 0.4
# Most atoms one digit may be made of, and the widest a digit may be (times text height).
MAX_ATOMS = 4
MAX_DIGIT_WIDTH = 1.5
# The log-probability a reading pays for cutting one blob into two digits.
CUT_PENALTY = 1.0


@dataclass
class Atom:
    """A piece of ink: a blob (or a slice of a wide blob between two cut columns)."""

    labels: tuple[int, ...]  # the blob labels it holds (a digit plus its detached parts)
    blob: int  # the blob it was cut from: atoms of one blob are one digit unless cut apart
    x0: int  # column range, exclusive end, in working pixels
    x1: int
    y0: int
    y1: int

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass
class Separator:
    char: str  # ".", ",", "-", "/"
    x0: int
    x1: int
    y0: int
    y1: int


@dataclass
class Row:
    atoms: list[Atom]
    separators: list[Separator]
    height: float  # typical digit height in this row, working pixels
    band: tuple[float, float] = (0.0, 0.0)  # the digits' typical top and bottom
    members: tuple[int, ...] = ()  # the blobs that made its atoms


@dataclass
class Page:
    ink: np.ndarray  # working-resolution ink, form lines removed
    labels: np.ndarray  # blob label of every pixel
    scale: float  # input pixels * scale = working pixels
    rows: list[Row] = field(default_factory=list)
    stats: np.ndarray | None = None  # [x, y, w, h, area] of every blob label
    ignored: set[int] = field(default_factory=set)  # printed frames and box sides
    unlevel: np.ndarray | None = None  # 2 x 3: levelled working pixels -> working pixels

    def input_box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        """A box in working pixels -> ``[x, y, w, h]`` around it in the input's own pixels."""
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
        if self.unlevel is not None:
            corners = corners @ self.unlevel[:, :2].T + self.unlevel[:, 2]
        low, high = corners.min(0) / self.scale, corners.max(0) / self.scale
        return round(low[0]), round(low[1]), round(high[0] - low[0]), round(high[1] - low[1])

    def crop(self, atoms: list[Atom]) -> np.ndarray:
        """The ink of ``atoms`` only (other blobs in the same box blanked), tightly cropped."""
        x0, x1 = min(a.x0 for a in atoms), max(a.x1 for a in atoms)
        y0, y1 = min(a.y0 for a in atoms), max(a.y1 for a in atoms)
        window = self.labels[y0:y1, x0:x1]
        keep = np.zeros(window.shape, bool)
        for atom in atoms:
            columns = slice(atom.x0 - x0, atom.x1 - x0)
            keep[:, columns] |= np.isin(window[:, columns], atom.labels)
        crop = np.where(keep, self.ink[y0:y1, x0:x1], 0.0).astype(np.float32)
        ys, xs = np.nonzero(crop > 0.2)
        if len(ys) == 0:
            return crop
        return crop[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]

    def row_ink(self, row: Row) -> tuple[np.ndarray, tuple[int, int]]:
        """All the ink that belongs to the row, cropped to it, and the crop's top-left corner.

        That is the row's own blobs, and every loose mark (a separator, the pieces of a
        faded or broken stroke) whose centre lies in the row's band, within reach of its
        ends; blobs of other rows are left out.
        """
        assert self.stats is not None
        stats, height = self.stats, row.height
        others = {m for r in self.rows if r is not row for m in r.members} | self.ignored
        top, bottom = row.band
        keep = {label for a in row.atoms for label in a.labels}
        x0 = min(int(stats[i, 0]) for i in keep)
        x1 = max(int(stats[i, 0] + stats[i, 2]) for i in keep)
        own, pen = frozenset(keep), 0.0  # the row's own blobs and their pen, measured only if a speck needs it
        centre_x = stats[:, 0] + stats[:, 2] / 2
        centre_y = stats[:, 1] + stats[:, 3] / 2
        in_band = (centre_y >= top - 0.3 * height) & (centre_y <= bottom + 0.45 * height)
        in_band &= (stats[:, 4] >= 2) & (stats[:, 3] <= 1.2 * height)
        for label in sorted(np.nonzero(in_band)[0], key=lambda i: abs(centre_x[i] - (x0 + x1) / 2)):
            label = int(label)
            if label == 0 or label in keep or label in others:
                continue
            if self._small_and_outside(label, row):
                pen = pen or self._pen(own)
                if self._pen({label}) < SPECK_PEN * pen:
                    continue
            lx0, lx1 = int(stats[label, 0]), int(stats[label, 0] + stats[label, 2])
            if lx1 >= x0 - ROW_REACH * height and lx0 <= x1 + ROW_REACH * height:
                keep.add(label)
                x0, x1 = min(x0, lx0), max(x1, lx1)
        y0 = min(int(stats[i, 1]) for i in keep)
        y1 = max(int(stats[i, 1] + stats[i, 3]) for i in keep)
        window = self.labels[y0:y1, x0:x1]
        crop = np.where(np.isin(window, list(keep)), self.ink[y0:y1, x0:x1], 0.0).astype(np.float32)
        return crop, (x0, y0)

    def _pen(self, labels: set[int] | frozenset[int]) -> float:
        """The stroke width of these blobs' ink, in pixels."""
        assert self.stats is not None
        x0 = min(int(self.stats[i, 0]) for i in labels)
        y0 = min(int(self.stats[i, 1]) for i in labels)
        x1 = max(int(self.stats[i, 0] + self.stats[i, 2]) for i in labels)
        y1 = max(int(self.stats[i, 1] + self.stats[i, 3]) for i in labels)
        window = self.labels[y0:y1, x0:x1]
        return stroke_width(np.where(np.isin(window, list(labels)), self.ink[y0:y1, x0:x1], 0.0))

    def _small_and_outside(self, label: int, row: Row) -> bool:
        """A mark small enough to be a speck, wholly above or below the row's digits (among
        them a thin mark may be a piece of a broken stroke)."""
        assert self.stats is not None
        top, bottom = row.band
        y0, y1 = self.stats[label, 1], self.stats[label, 1] + self.stats[label, 3]
        return bool((y1 <= top or y0 >= bottom) and self.stats[label, 4] < SPECK_AREA * row.height**2)

    def digit_image(self, atoms: list[Atom]) -> np.ndarray:
        crop = self.crop(atoms)
        if crop.size == 0 or crop.max() <= 0:
            return np.zeros((28, 28), np.float32)
        return frame_digit(crop)


def find_rows(pixels: np.ndarray) -> Page:
    """Rows of atoms and separators on a page; raises ``NoDigitError`` on a blank page."""
    for side in (COARSE_SIDE, PAGE_SIDE):
        ink, scale, _, stages = ink_map(pixels, side)
        mask = (ink > 0.25).astype(np.uint8)
        _, first_labels, first_stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        height = text_height(first_stats, first_labels)
        if height is None:
            raise NoDigitError("No number found: the image holds no handwriting.")
        # Writing large enough to read at the coarse scale is read there: a quarter of the
        # pixels of a phone photo. Small writing is looked at again at full working size.
        if scale == 1.0 or height >= COARSE_TEXT_HEIGHT:
            break
    darkness, unlevel, widened = stages["lighting flattened"], None, None
    # Lines across most of the picture (ruled paper, a form's box filling it) went with
    # ``ink_map``; a comb's teeth that hung from them are looked for along them.
    ruled = ((stages["ink (background removed)"] > 0.25) & (ink <= 0.25)).astype(np.float32)
    angle = skew_angle(first_labels, first_stats, height)
    if angle and _level_line(mask, height):
        angle = 0.0  # a printed line runs level: the page is square, the writing slants
    if angle:
        # A printed line a pixel or two thin breaks into dashes when turned, and dashes are
        # no line to remove_form_lines: lines are looked for on the ink widened first.
        widened = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32)
        (ink, darkness, widened, ruled), unlevel = level([ink, darkness, widened, ruled], angle)
        mask = (ink > 0.25).astype(np.uint8)
        _, first_labels, first_stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        height = text_height(first_stats, first_labels) or height
    bands = _writing_bands(first_stats, mask.shape[0], height)
    ink = even_out(rescue_faint_ink(ink, darkness, bands, height), height)
    # Faint or grainy strokes (a shadow, a dry pen) break into dots at a hard threshold; a
    # slight blur first keeps each stroke one piece.
    smooth = cv2.GaussianBlur(ink, (0, 0), max(1.0, height / 40))
    mask = ((smooth > 0.2) | (mask > 0)).astype(np.uint8)
    ruled_lines = (ruled > 0.5).astype(np.uint8)
    if widened is None:
        mask = remove_form_lines(mask, height, ruled_lines)
    else:
        mask &= remove_form_lines(((widened > 0.5) | (mask > 0)).astype(np.uint8), height, ruled_lines)
    ink = ink * mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    page = Page(ink, labels, scale, stats=stats, unlevel=unlevel)
    blobs = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= max(4, (0.06 * height) ** 2)]
    big = [i for i in blobs if stats[i, cv2.CC_STAT_HEIGHT] >= SMALL * height]
    stroke = stroke_width(ink) if big else 1.0
    page.ignored = {
        i
        for i in big
        if _is_frame(i, big, stats, labels)
        or _is_bar(i, stats, labels, height, stroke)
        or _is_edge_smudge(i, labels, stats)
    } | _box_sides(big, stats, labels, height)
    big = [i for i in big if i not in page.ignored]
    small = [i for i in blobs if stats[i, cv2.CC_STAT_HEIGHT] < SMALL * height]
    rows = join_stragglers(group_rows(big, stats), stats, height)
    # A "row" of marks all much shorter than the writing (a comma's tail below the line, a
    # broken stroke) is not a row: its marks are left to the rows beside them.
    short = [r for r in rows if max(stats[i, cv2.CC_STAT_HEIGHT] for i in r) < SHORT_ROW * height]
    small += [i for r in short for i in r]
    for members in (r for r in rows if r not in short):
        row_height = float(np.median([stats[i, cv2.CC_STAT_HEIGHT] for i in members]))
        top = float(np.median([stats[i, cv2.CC_STAT_TOP] for i in members]))
        bottom = top + row_height
        row = build_row(members, small, stats, labels, mask, top, bottom, row_height, stroke)
        row.band, row.members = (top, bottom), tuple(members)
        page.rows.append(row)
    page.rows = [row for row in page.rows if row.atoms]
    page.rows.sort(key=lambda row: (min(a.y0 for a in row.atoms), min(a.x0 for a in row.atoms)))
    return page


def skew_angle(labels: np.ndarray, stats: np.ndarray, height: float) -> float:
    """How far the rows of writing are turned, in degrees counter-clockwise; 0.0 when they
    are level within MIN_SKEW, too short to tell, or no angle makes them clearly more level.

    A projection profile of the blobs as tall as writing (not specks, shadows, box sides):
    their ink is projected across trial baselines a sixth of a text height apart, and the
    baseline along the rows gathers it most tightly (the profile of least entropy), first
    in whole degrees, then in tenths. Entropy, not the sum of squared counts: the squares
    line up the heaviest strokes (a fat 2's foot with a 0's top) rather than the rows. A
    row less than SKEW_ROW text heights long (one digit, whose own slant would pass for a
    tilt) is left as it is.
    """
    tall, wide = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
    # A box's sides, taller than the writing and thin, would pull the baseline their way.
    sides = (tall > 1.3 * height) & (wide < 0.25 * tall)
    writing = np.nonzero((tall >= SMALL * height) & (tall <= 2.5 * height) & ~sides)[0]
    writing = writing[writing > 0]
    if len(writing) == 0:
        return 0.0
    # A grid a twelfth of a text height apart samples the strokes finely enough for bins twice that.
    grid = max(1, int(height / 12))
    is_writing = np.zeros(len(stats), bool)
    is_writing[writing] = True
    ys, xs = np.nonzero(is_writing[labels[::grid, ::grid]])
    if len(xs) == 0 or (xs.max() - xs.min()) * grid < SKEW_ROW * height:
        return 0.0
    step = max(1, len(xs) // SKEW_POINTS)
    xs, ys = (xs[::step] - xs.mean()) * grid, (ys[::step] - ys.mean()) * grid
    bin_width = height / 6

    def tightness(degrees: float) -> float:  # the profile's negative entropy, in nats
        radians = np.radians(degrees)
        across = ys * np.cos(radians) + xs * np.sin(radians)
        counts = np.bincount(((across - across.min()) / bin_width).astype(np.int64))
        shares = counts[counts > 0] / len(across)
        return float(np.dot(shares, np.log(shares)))

    best = max(np.arange(-MAX_SKEW, MAX_SKEW + 0.5, 1.0), key=tightness)
    best = float(max(np.arange(best - 0.9, best + 0.95, 0.1), key=tightness))
    if abs(best) < MIN_SKEW or tightness(best) - tightness(0.0) < SKEW_GAIN:
        return 0.0
    return best


def _level_line(mask: np.ndarray, height: float) -> bool:
    """A straight horizontal run of ink LEVEL_LINE text heights long: a printed line (a form's
    box, an underline, a ruled line) lying level, which says the page is square to the
    camera better than handwriting, whose slant and wandering baseline can pass for a tilt
    of a degree or two. A line turned by that much holds no such run."""
    length = max(8, int(LEVEL_LINE * height))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    return bool(cv2.countNonZero(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)))


def level(images: list[np.ndarray], angle: float) -> tuple[list[np.ndarray], np.ndarray]:
    """``images`` (one size) turned by ``angle`` degrees clockwise onto a canvas that holds all
    of them, and the 2 x 3 transform from the levelled pixels back to the given ones."""
    height, width = images[0].shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    size = (int(np.ceil(height * sin + width * cos)), int(np.ceil(height * cos + width * sin)))
    turn[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    levelled = [cv2.warpAffine(image, turn, size, flags=cv2.INTER_LINEAR, borderValue=0) for image in images]
    return levelled, cv2.invertAffineTransform(turn)


def _writing_bands(stats: np.ndarray, rows: int, height: float) -> np.ndarray:
    """Image rows within a quarter text height of a blob as tall as writing (not a frame)."""
    band = np.zeros(rows, bool)
    margin = int(0.25 * height)
    for top, tall in zip(stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_HEIGHT], strict=True):
        if SMALL * height <= tall <= 2.5 * height:
            band[max(0, top - margin) : top + tall + margin] = True
    return band


def rescue_faint_ink(ink: np.ndarray, darkness: np.ndarray, bands: np.ndarray, height: float) -> np.ndarray:
    """Ink where the page's strongest stroke nearby is much weaker than the page's (a shadow
    over part of the page, a fading pen), measured against that stroke instead of the page.
    ``bands``: the image rows that hold writing already found (``_writing_bands``).

    ``ink`` is measured against the whole page's contrast, and its floor, set to keep the
    paper's grain out, also erases writing whose contrast a shadow has cut to a third. There
    the darkness (``preprocess.flatten_illumination``) still holds it, a little grainy: it is
    smoothed slightly and stretched to the strongest stroke within a text height. Ink
    elsewhere is left as it is, and the stretch never reaches below eight times the grain
    or a fifth of the page's contrast, so empty paper does not become ink.
    """
    background, grain, contrast = paper_statistics(darkness)
    rise = np.maximum(cv2.GaussianBlur(darkness, (0, 0), max(0.8, height / 50)) - background, 0.0)
    # Strokes, not broad smudges: what is left of the lighting where the closing could not
    # follow it (a shadow's edge meeting the picture's edge) is wider than any stroke.
    stroke_scale = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(0.35 * height) | 1),) * 2)
    rise = cv2.morphologyEx(rise, cv2.MORPH_TOPHAT, stroke_scale)
    strongest = strongest_nearby(rise, height)
    # Only beside writing already found, along its rows: a row running into a shadow.
    faint = (strongest < FAINT_SHARE * contrast) & bands[:, None]
    # At the picture's edge the paper estimate is least sure (a closing sees one side only).
    edge = max(2, int(0.2 * height))
    faint[:edge], faint[-edge:], faint[:, :edge], faint[:, -edge:] = False, False, False, False
    if not faint.any():
        return ink
    # Only the image rows that hold faint ink (and one either side, for the line test's
    # vertical reach) are worked on: the filters below are all horizontal.
    rows = np.nonzero(faint.any(axis=1))[0]
    part = slice(max(0, int(rows[0]) - 1), min(len(faint), int(rows[-1]) + 2))
    reach = np.maximum(strongest[part], max(FAINT_MIN_GRAIN * grain, FAINT_MIN_SHARE * contrast))
    floor = np.clip(3.0 * grain / reach, 0.25, 0.5)
    stretched = np.clip((rise[part] / reach - floor) / (1.0 - floor), 0.0, 1.0)
    # A ruled line or a box's edge beside the writing is as faint as the writing in a
    # shadow, but long and straight: no digit has a level stroke one and a half heights long.
    # Grain breaks a faint line into dashes: they are joined first. On 8-bit levels (several
    # times faster than on floats with kernels this long; only a level above 0.1 matters).
    levels = cv2.convertScaleAbs(stretched, alpha=255)
    joined = cv2.morphologyEx(levels, cv2.MORPH_CLOSE, np.ones((1, max(3, int(0.3 * height))), np.uint8))
    straight = cv2.morphologyEx(joined, cv2.MORPH_OPEN, np.ones((1, max(3, int(1.5 * height))), np.uint8))
    stretched = np.where(cv2.dilate(straight, np.ones((3, 1), np.uint8)) > 25, 0.0, stretched)
    rescued = ink.astype(np.float32)  # a copy
    rescued[part] = np.where(faint[part], np.maximum(ink[part], stretched), ink[part])
    return rescued


def even_out(ink: np.ndarray, height: float) -> np.ndarray:
    """Ink scaled to its neighbourhood's strongest stroke, so that writing in a shadow or
    with a fading pen reads as firmly as the rest of the page. Only ink already above the
    paper's grain is there to scale, and the floor keeps specks from being blown up."""
    local = strongest_nearby(ink, height)
    return np.clip(ink / np.maximum(local, EVEN_OUT_FLOOR), 0.0, 1.0).astype(np.float32)


def strongest_nearby(values: np.ndarray, height: float) -> np.ndarray:
    """The largest value within about a text height, smoothed over half a text height.

    The result is smooth, so it is made on a grid an eighth of a text height apart (block
    maxima) and enlarged: a blur half a text height wide costs 20 ms on a full page.
    """
    rows, columns = values.shape
    block = max(1, int(height / 8))
    tall, wide = -(-rows // block), -(-columns // block)
    # Block maxima: a dilation anchored at each block's corner, sampled once per block (a
    # tenth of the time of a reshaped max; the same values, as they are never negative).
    grown = cv2.dilate(
        values.astype(np.float32, copy=False),
        np.ones((block, block), np.uint8),
        anchor=(0, 0),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    small = np.ascontiguousarray(grown[::block, ::block])
    side = max(3, int(2 * height / block) | 1)
    small = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    small = cv2.GaussianBlur(small, (0, 0), height / 2 / block)
    if block == 1:
        return small
    return cv2.resize(small, (wide * block, tall * block), interpolation=cv2.INTER_LINEAR)[:rows, :columns]


def text_height(stats: np.ndarray, labels: np.ndarray | None = None) -> float | None:
    """The typical height of handwritten characters: the median of the taller blobs
    (``stats``, ``labels``: the ink mask's ``cv2.connectedComponentsWithStats``)."""
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    widths = stats[1:, cv2.CC_STAT_WIDTH]
    areas = stats[1:, cv2.CC_STAT_AREA]
    # Long lines are not characters: leave out blobs far wider than tall, except a row of
    # touching digits, one blob many times wider than tall, which unlike a line fills much
    # of its box (else the specks around it would set the height).
    chosen = (heights >= 6) & (widths <= 4 * heights)
    chosen |= (heights >= 6) & (widths <= 12 * heights) & (areas >= 0.25 * widths * heights)
    if not chosen.any() and labels is not None:
        # All of the writing one blob, in a fine pen (a row of touching digits fills less of
        # its box): it is the writing unless it is hollow (a box) or hardly fills it (a line).
        wide = (heights >= 6) & (widths <= 12 * heights) & (areas >= LONE_ROW_FILL * widths * heights)
        chosen = wide & np.array([bool(w) and not _hollow(k + 1, stats, labels) for k, w in enumerate(wide)], bool)
    # The sides of a box around the writing are as thin as a 1 and taller than any digit;
    # two of them among four digits would set the height. Bars taller than the rest are
    # left out (not a 1 among digits as tall, nor a row of ones).
    if labels is not None:
        bars = np.array([chosen[k] and _bar_like(k + 1, stats, labels) for k in range(len(chosen))], bool)
        if (chosen & ~bars).any():
            rest = float(np.median(heights[chosen & ~bars]))
            chosen &= ~(bars & (heights > 1.1 * rest))
    heights, widths, areas = heights[chosen], widths[chosen], areas[chosen]
    if len(heights) == 0:
        return None
    tall = heights[heights >= 0.5 * np.percentile(heights, 90)]
    typical = float(np.median(tall))
    # Heavy digits overlapping in a row are one blob, and a shadow over part of them breaks
    # the rest into pieces: the pieces outnumber the blob and set a fraction of its height,
    # at which its every stroke is a "line". A blob of strokes (neither a thin frame nor a
    # solid patch) that holds most of the ink is the writing.
    main = int(np.argmax(areas))
    fill = areas[main] / (widths[main] * heights[main])
    if areas[main] > 0.5 * areas.sum() and heights[main] > 2 * typical and 0.25 <= fill <= 0.6:
        return float(heights[main])
    return typical


def remove_form_lines(mask: np.ndarray, height: float, erased: np.ndarray | None = None) -> np.ndarray:
    """Erase long straight lines (box edges, underlines, margins), the sides of boxes and
    the teeth of combs.

    A horizontal line longer than two text heights is no digit's stroke. The sides of form
    boxes are short vertical lines, as tall as a 1; they are told apart by touching a
    horizontal line that was erased at one of their ends. ``erased``: lines taken out of
    ``mask`` before (ruled lines), whose combs' teeth are looked for too.
    """
    long = max(8, int(2.2 * height))
    horizontal = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (long, 1)))
    horizontal |= _thin_lines_off_the_level(mask, long, height)
    horizontal = _without_runs_through_writing(horizontal, mask, height)
    vertical_long = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, long)))
    lines = cv2.bitwise_or(cv2.bitwise_or(horizontal, vertical_long), dashed_lines(mask, height))
    rest = mask
    if cv2.countNonZero(lines):
        lines = cv2.dilate(lines, np.ones((3, 3), np.uint8))
        rest = _without_box_sides(cv2.bitwise_and(mask, cv2.bitwise_not(lines)), lines, height)
    if erased is not None:
        lines = cv2.bitwise_or(lines, cv2.dilate(erased, np.ones((3, 3), np.uint8)))
    if not cv2.countNonZero(lines):
        return rest
    return _without_comb_teeth(rest.copy() if rest is mask else rest, lines, height)


def _without_box_sides(rest: np.ndarray, lines: np.ndarray, height: float) -> np.ndarray:
    """``rest`` (ink with ``lines`` erased) without the sides of boxes: straight vertical runs
    of most of a text height that touched an erased line, with paper on both sides: within a
    steep stroke (a 2's diagonal standing on an underline) the same runs are flanked by ink,
    and erasing them would cut the digit."""
    side = max(4, int(0.7 * height))
    verticals = cv2.morphologyEx(rest, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, side)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(verticals, connectivity=8)
    touching = cv2.dilate(lines, np.ones((5, 5), np.uint8))
    for i in range(1, count):
        x, y, w, h = stats[i, :4]
        if w > max(3, 0.25 * height):
            continue
        top, bottom = touching[max(0, y - 1), x : x + w].any(), touching[min(rest.shape[0] - 1, y + h), x : x + w].any()
        # Between two lines, or on one and taller than the writing: a 1 may stand on an underline.
        ends = (top and bottom) or ((top or bottom) and h >= BOX_SIDE_HEIGHT * height)
        if ends and not _flanked_by_ink(rest, x, y, w, h):
            rest[labels == i] = 0
    return rest


def dashed_lines(mask: np.ndarray, height: float) -> np.ndarray:
    """The dashes of thin printed lines that a photo broke up (a box's edge a pixel wide,
    blurred and JPEG-coded, thresholds to dots): ``mask`` where such a line runs, else 0.

    Gaps of up to ``DASH_GAP`` text heights are bridged, and straight runs as long as a form
    line sought in the bridged ink (horizontal ones as long as ``remove_form_lines`` asks,
    vertical ones a little taller than the writing: a box's sides). A line of dashes is at
    least two thin pieces each lying nearly wholly on it; a stroke of writing that meets the
    line has most of its ink off it and stays, a 1 drawn straight and tall is one piece, and
    a printed word's letters, lined up as closely, are thicker than a line.
    """
    gap = max(3, int(DASH_GAP * height))
    found = []
    for along_rows, length in ((True, max(8, int(2.2 * height))), (False, max(8, int(1.1 * height)))):
        runs = _runs_along(mask, length, along_rows, gap)
        if cv2.countNonZero(runs):
            found.append((along_rows, runs))
    if not found:
        return np.zeros_like(mask)
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    dashes = np.zeros(count, bool)
    for along_rows, runs in found:
        across = stats[:, cv2.CC_STAT_HEIGHT if along_rows else cv2.CC_STAT_WIDTH]
        along = np.maximum(1, stats[:, cv2.CC_STAT_WIDTH if along_rows else cv2.CC_STAT_HEIGHT])
        # Thin across the line; or, a box's corner with a stub of its side, thin on average.
        thin = (across <= max(4, DASH_THICKNESS * height)) | (
            stats[:, cv2.CC_STAT_AREA] / along <= max(3, DASH_MEAN_THICKNESS * height)
        )
        dashes |= _dashes_on(runs, pieces, stats, thin)
    return (dashes[pieces] * mask).astype(np.uint8)


def _runs_along(mask: np.ndarray, length: int, horizontal: bool, gap: int = 0) -> np.ndarray:
    """Where ``mask`` holds straight runs at least about ``length`` pixels long along rows (or
    columns), gaps of up to ``gap`` pixels bridged first. The opening is worked out in
    stretches of ``length // 16`` pixels, each counted when all ink (an opening costs in
    proportion to its length, and a page's lines are long), then grown back over the ink at
    its ends, where a stretch is only partly ink."""
    rows, columns = mask.shape

    def straight(n: int) -> np.ndarray:  # a line n long, along the runs
        return np.ones((1, n) if horizontal else (n, 1), np.uint8)

    if gap > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, straight(gap))
    step = max(1, length // 16)
    full = cv2.erode(mask, straight(step), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    cells = np.ascontiguousarray(full[:, ::step] if horizontal else full[::step])
    opened = cv2.morphologyEx(cells, cv2.MORPH_OPEN, straight(max(1, length // step - 1)))
    size = (opened.shape[1] * step, rows) if horizontal else (columns, opened.shape[0] * step)
    runs = cv2.resize(opened, size, interpolation=cv2.INTER_NEAREST)[:rows, :columns]
    return cv2.dilate(runs, straight(2 * step + 1)) & mask  # the ends, where they are ink


def _dashes_on(runs: np.ndarray, pieces: np.ndarray, stats: np.ndarray, thin: np.ndarray) -> np.ndarray:
    """Per piece of ink (``pieces``' labels): thin, lying nearly wholly on one of ``runs``
    that is dashes: more than one such piece, none holding most of their ink. A "line" of
    one piece is a solid stroke, and a 1 standing over an underline's dash is a 1 and a dash."""
    count = len(stats)
    near = cv2.dilate(runs, np.ones((3, 3), np.uint8)) > 0
    on_line = pieces[near]
    dash = thin & (np.bincount(on_line, minlength=count) >= DASH_SHARE * np.maximum(1, stats[:, cv2.CC_STAT_AREA]))
    dash[0] = False
    if not dash.any():  # most pages: strokes of writing only
        return dash
    run_count, run_labels = cv2.connectedComponents(near.astype(np.uint8), connectivity=8)
    run_of = np.zeros(count, np.int64)
    run_of[on_line] = run_labels[near]  # a dash lies on one run
    area = stats[:, cv2.CC_STAT_AREA] * dash
    on_run = np.bincount(run_of, weights=area, minlength=run_count)
    largest = np.zeros(run_count)
    by_size = np.argsort(area)
    largest[run_of[by_size]] = area[by_size]  # the last, largest, written wins
    dashed = (np.bincount(run_of[dash], minlength=run_count) >= 2) & (largest <= DASH_LARGEST * on_run)
    return dash & dashed[run_of]


def _without_comb_teeth(rest: np.ndarray, lines: np.ndarray, height: float) -> np.ndarray:
    """``rest`` without a comb's teeth: the short walls between a form's cells, standing on
    its top or bottom line (``lines``, erased), thin, upright and shorter than the writing,
    with paper beyond the line where they meet it; a stroke of writing that crosses the
    line goes on beyond it, and is kept."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
    reach = max(3, int(0.3 * height))
    rows = rest.shape[0]
    for i in range(1, count):
        x, y, w, h = (int(v) for v in stats[i, :4])
        if h >= TOOTH_HEIGHT * height or w > max(3, 0.15 * height) or h < 2 * w:
            continue
        columns = slice(max(0, x - 1), x + w + 1)
        above = y > 0 and lines[y - 1, columns].any()
        below = y + h < rows and lines[y + h, columns].any()
        if above == below:
            continue  # on no line, or between two: no tooth
        step, edge = (-1, y - 1) if above else (1, y + h)
        while 0 <= edge < rows and lines[edge, columns].any():
            edge += step  # across the line
        beyond = rest[max(0, edge - reach + 1) : edge + 1, columns] if above else rest[edge : edge + reach, columns]
        if not beyond.any():
            rest[labels == i] = 0
    return rest


def _thin_lines_off_the_level(mask: np.ndarray, long: int, height: float) -> np.ndarray:
    """Thin lines that drop a pixel or two along their length (an underline printed or
    photographed a little off the level): a line a pixel or two thin then holds no straight
    run ``long`` pixels long, but does with LINE_PLAY text heights' play up and down. Only
    the thin ones: strokes of writing joined up (touching digits' tops or feet, a dash
    between ones) make runs as long with that play, drawn with the pen's width."""
    play = 2 * max(1, int(LINE_PLAY * height)) + 1
    runs = _runs_along(cv2.dilate(mask, np.ones((play, 1), np.uint8)), long, True) & mask
    if not cv2.countNonZero(runs):
        return runs
    # Ink in upright runs no longer than a thin line is thick: the pen's strokes are more.
    most = max(1, int(LINE_THIN * height))
    fine = mask & ~cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((most + 1, 1), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    thin = np.bincount(labels[fine > 0], minlength=count) >= THIN_SHARE * stats[:, cv2.CC_STAT_AREA]
    thin[0] = False
    return (thin[labels] * runs).astype(np.uint8)


def _without_runs_through_writing(horizontal: np.ndarray, mask: np.ndarray, height: float) -> np.ndarray:
    """``horizontal`` without the runs that are writing, not a line. Digits in a heavy pen
    that touch or overlap make one band of ink across the number, as long as a printed line:
    erasing it cut a row of them in two (and the row was lost). A printed line has paper
    above or below it nearly everywhere, and where it crosses writing, paper on both sides
    beyond the writing's ends; a band through writing has writing above and below it along
    much of its length, and no paper on both sides at its ends. Ink all around a run is a
    smudge or a shadow's edge, not strokes: such runs are erased as before."""
    if not cv2.countNonZero(horizontal):  # most pages: no long run at all
        return horizontal
    count, labels, stats, _ = cv2.connectedComponentsWithStats(horizontal, connectivity=8)
    skip, reach = max(3, int(0.08 * height)), max(3, int(0.25 * height))
    for i in range(1, count):
        x, y, w, h = (int(v) for v in stats[i, :4])
        if y - skip - reach < 0 or y + h + skip + reach > mask.shape[0]:
            continue  # at the picture's edge: nothing to judge by
        windows = mask[y - skip - reach : y - skip, x : x + w], mask[y + h + skip : y + h + skip + reach, x : x + w]
        above, below = (window.any(axis=0) for window in windows)
        beside = above | below
        paper_at_ends = max(int(np.argmax(beside)), int(np.argmax(beside[::-1])))
        solid = (windows[0].mean() + windows[1].mean()) / 2 > 0.85  # a smudge or shadow, not strokes
        if (above & below).mean() >= WRITING_ABOVE_AND_BELOW and paper_at_ends < 0.5 * height and not solid:
            horizontal[labels == i] = 0
    return horizontal


def _flanked_by_ink(mask: np.ndarray, x: int, y: int, w: int, h: int) -> bool:
    """Ink beside most of the length of the upright run at (x, y, w, h): part of a wider stroke."""
    beside = np.zeros(h, bool)
    if x > 0:
        beside |= mask[y : y + h, x - 1] > 0
    if x + w < mask.shape[1]:
        beside |= mask[y : y + h, x + w] > 0
    return bool(beside.mean() >= 0.5)


def _is_frame(i: int, blobs: list[int], stats: np.ndarray, labels: np.ndarray) -> bool:
    """A printed box around writing: hollow, and holding a shorter blob wholly inside it."""
    x, y, w, h, area = (int(v) for v in stats[i, :5])
    if area > 0.2 * w * h and not _hollow(i, stats, labels):
        return False
    for j in blobs:
        bx, by, bw, bh = (int(v) for v in stats[j, :4])
        if j != i and x < bx and bx + bw < x + w and y < by and by + bh < y + h and h >= 1.25 * bh:
            return True
    return False


def _hollow(i: int, stats: np.ndarray, labels: np.ndarray) -> bool:
    """An outline with nothing of its own in the middle half of its box, however thick its
    lines: a box drawn in a heavy line around one narrow digit has ink over a fifth of its
    box, and more than the thin-frame rule allows."""
    x, y, w, h = (int(v) for v in stats[i, :4])
    patch = labels[y : y + h, x : x + w] == i
    return not patch[h // 4 : h - h // 4, w // 4 : w - w // 4].any()


def _is_bar(i: int, stats: np.ndarray, labels: np.ndarray, height: float, stroke: float) -> bool:
    """The side of a form box: a straight, upright bar printed far finer than the pen's
    strokes (``stroke``, their mean width) and about as tall as the writing; or one well
    taller than the writing, in a box as narrow as a line, or with stubs of the box's lines
    at its ends and still thinner than the pen: a 1 with a flag can be as tall and straight,
    but is drawn with the pen."""
    _, _, w, h, area = (int(v) for v in stats[i, :5])
    if h < PRINTED_BAR_HEIGHT * height:
        return False
    thickness = _bar_thickness(i, stats, labels)
    if thickness is not None and thickness <= PRINTED_BAR_SHARE * stroke:
        return True  # a printed line, far finer than the pen: a side however tall
    if h < 1.3 * height:
        return False
    if w <= 0.2 * h and area >= 0.6 * w * h:
        return True
    return thickness is not None and thickness <= BAR_STROKE_SHARE * stroke


def _box_sides(blobs: list[int], stats: np.ndarray, labels: np.ndarray, height: float) -> set[int]:
    """Pairs of bars a little taller than the writing, level with each other, with writing
    between them: the sides of a box whose top and bottom lines are gone (a single bar of
    that height may be a 1)."""
    bars = [i for i in blobs if stats[i, cv2.CC_STAT_HEIGHT] >= 1.1 * height and _bar_like(i, stats, labels)]
    sides: set[int] = set()
    for a, b in itertools.combinations(sorted(bars, key=lambda i: stats[i, 0]), 2):
        (ax, ay, _, ah), (bx, by, _, bh) = stats[a, :4], stats[b, :4]
        level = abs(int(ay) - int(by)) <= 0.15 * ah and abs(int(ah) - int(bh)) <= 0.15 * ah
        if not level or bx - ax < 1.5 * height:
            continue
        inside = [
            i
            for i in blobs
            if i not in bars
            and ax < stats[i, 0]
            and stats[i, 0] + stats[i, 2] < bx
            and ay <= stats[i, 1] + stats[i, 3] / 2 <= ay + ah
        ]
        if inside:
            sides |= {a, b}
    return sides


def _bar_like(i: int, stats: np.ndarray, labels: np.ndarray) -> bool:
    return _bar_thickness(i, stats, labels) is not None


def _bar_thickness(i: int, stats: np.ndarray, labels: np.ndarray) -> float | None:
    """The thickness of a straight, upright, thin bar, maybe with stubs at its ends; None
    for any other blob.

    Erasing a box's top and bottom lines leaves stubs of them on its sides (a tilted line
    is not one long horizontal run), so the blob is judged row by row: thin in almost
    every row, upright along its length, wider only near its ends.
    """
    x, y, w, h, area = (int(v) for v in stats[i, :5])
    if h < 12 or (area > 0.5 * w * h and w > 0.15 * h):  # too small to judge, or too solid
        return None
    patch = labels[y : y + h, x : x + w] == i
    widths = patch.sum(axis=1)
    if (widths > 0).mean() < 0.9:
        return None
    thickness = float(np.median(widths[widths > 0]))
    if thickness > 0.15 * h:
        return None
    core = (widths > 0) & (widths <= 2 * thickness + 2)
    ends = max(2, int(0.15 * h))
    if (~core[ends:-ends]).mean() > 0.05:
        return None
    centres = (patch[core] * np.arange(w)).sum(axis=1) / widths[core]
    return thickness if float(centres.max() - centres.min()) <= max(4.0, 0.12 * h) else None


def _is_edge_smudge(i: int, labels: np.ndarray, stats: np.ndarray) -> bool:
    """A solid patch at the picture's edge, where the paper estimate is least sure (what is
    left of a shadow there): thicker, at its thickest, than half its own height. No pen
    stroke is; the thickest marker digit is about a third."""
    x, y, w, h = (int(v) for v in stats[i, :4])
    rows, columns = labels.shape
    if x > 0 and y > 0 and x + w < columns and y + h < rows:
        return False
    patch = (labels[y : y + h, x : x + w] == i).astype(np.uint8)
    thickest = 2 * float(cv2.distanceTransform(np.pad(patch, 1), cv2.DIST_L2, 3).max())
    return thickest > SMUDGE_THICKNESS * h


def group_rows(blobs: list[int], stats: np.ndarray) -> list[list[int]]:
    """Blobs into rows: a blob joins the row whose vertical band it shares the most of."""
    rows: list[list[int]] = []
    bands: list[tuple[float, float]] = []
    for i in sorted(blobs, key=lambda b: stats[b, cv2.CC_STAT_TOP] + stats[b, cv2.CC_STAT_HEIGHT] / 2):
        top, h = stats[i, cv2.CC_STAT_TOP], stats[i, cv2.CC_STAT_HEIGHT]
        best, best_share = None, 0.5
        for r, (band_top, band_bottom) in enumerate(bands):
            overlap = min(band_bottom, top + h) - max(band_top, top)
            share = overlap / max(1, min(h, band_bottom - band_top))
            if share > best_share:
                best, best_share = r, share
        if best is None:
            rows.append([i])
            bands.append((float(top), float(top + h)))
        else:
            rows[best].append(i)
            bands[best] = _band(rows[best], stats)
    return rows


def _band(members: list[int], stats: np.ndarray) -> tuple[float, float]:
    """A row's vertical band: its blobs' median top and median bottom."""
    tops = [stats[i, cv2.CC_STAT_TOP] for i in members]
    bottoms = [stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in members]
    return float(np.median(tops)), float(np.median(bottoms))


def join_stragglers(rows: list[list[int]], stats: np.ndarray, height: float) -> list[list[int]]:
    """Rows of one or two marks lying along a longer row, partly in its band, joined to it.

    A letter reaching below the line (the g of "kg", the p of "pcs") shares less than half
    its height with the digits' band, so ``group_rows`` gives it a row of its own, where one
    letter alone is no word to the word finder and is read as a digit. A straggler lies no
    further than a text height beyond the row's ends and has at least STRAGGLER_SHARE of its
    height in the row's band; a second row of writing below the first lies outside it.
    """

    def joins(straggler: list[int], row: list[int]) -> bool:
        top, bottom = _band(row, stats)
        left = min(stats[i, cv2.CC_STAT_LEFT] for i in row) - height
        right = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in row) + height
        for i in straggler:
            x, y, w, h = (int(v) for v in stats[i, :4])
            if x + w < left or x > right or (min(bottom, y + h) - max(top, y)) < STRAGGLER_SHARE * h:
                return False
        return True

    kept = sorted(rows, key=len, reverse=True)
    for short in [r for r in kept if len(r) <= 2]:
        host = next((r for r in kept if r is not short and len(r) > len(short) and joins(short, r)), None)
        if host is not None:
            host.extend(short)
            kept.remove(short)
    return kept


def build_row(
    members: list[int],
    small: list[int],
    stats: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    top: float,
    bottom: float,
    height: float,
    stroke: float,
) -> Row:
    """Atoms and separators of one row."""
    left = min(stats[i, cv2.CC_STAT_LEFT] for i in members) - height
    right = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in members) + height
    parts: dict[int, list[int]] = {i: [i] for i in members}
    separators: list[Separator] = []
    for s in small:
        x, y, w, h = (int(v) for v in stats[s, :4])
        centre_y = y + h / 2
        if not (left <= x + w / 2 <= right and top - 0.3 * height <= centre_y <= bottom + 0.4 * height):
            continue
        owner = _overlapping(x, w, members, stats)
        if owner is not None and centre_y < top + 0.75 * height:
            parts[owner].append(s)  # a detached stroke of the digit it sits on
            continue
        char = _separator_char(x, y, w, h, top, bottom, height)
        if char:
            separators.append(Separator(char, x, x + w, y, y + h))
    slashes = [i for i in members if _is_slash(labels, i, *(int(v) for v in stats[i, :4]), height)]
    # Slashes alone separate nothing: a row of them is a 1 written leaning far over (alone
    # in a form's box, say), and the readers are left to tell (``lines.as_written``).
    written = [i for i in members if i not in slashes]
    if not written:
        written, slashes = slashes, []
    for i in slashes:
        x, y, w, h = (int(v) for v in stats[i, :4])
        separators.append(Separator("/", x, x + w, y, y + h))
    atoms: list[Atom] = []
    for i in written:
        x, y, w, h = (int(v) for v in stats[i, :4])
        group = tuple(parts[i])
        x0 = min(int(stats[j, cv2.CC_STAT_LEFT]) for j in group)
        x1 = max(int(stats[j, cv2.CC_STAT_LEFT] + stats[j, cv2.CC_STAT_WIDTH]) for j in group)
        y0 = min(int(stats[j, cv2.CC_STAT_TOP]) for j in group)
        y1 = max(int(stats[j, cv2.CC_STAT_TOP] + stats[j, cv2.CC_STAT_HEIGHT]) for j in group)
        cuts = cut_columns(labels[y:y + h, x:x + w] == i, height, stroke) if w > 0.8 * height else []  # fmt: skip
        edges = [x0, *(x + c for c in cuts), x1]
        for a, b in itertools.pairwise(edges):
            atoms.append(Atom(group, i, a, b, y0, y1))
    atoms.sort(key=lambda a: a.centre)
    separators.sort(key=lambda s: s.x0)
    return Row(atoms, separators, height)


def _overlapping(x: int, w: int, members: list[int], stats: np.ndarray) -> int | None:
    """The big blob whose columns cover at least half of the small blob's, if any."""
    best, best_share = None, 0.5
    for i in members:
        bx, bw = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_WIDTH]
        share = (min(x + w, bx + bw) - max(x, bx)) / max(1, w)
        if share >= best_share:
            best, best_share = i, share
    return best


def _separator_char(x: int, y: int, w: int, h: int, top: float, bottom: float, height: float) -> str | None:
    """A point, comma or dash, from its size and where it sits in the row; None for a speck."""
    centre = y + h / 2
    if h <= 0.25 * height and w >= 0.25 * height and top + 0.25 * height <= centre <= bottom - 0.2 * height:
        return "-"
    if max(w, h) <= 0.35 * height and centre >= bottom - 0.3 * height:
        return "," if y + h > bottom + 0.12 * height and h > 1.3 * w else "."
    return None


def _is_slash(labels: np.ndarray, label: int, x: int, y: int, w: int, h: int, height: float) -> bool:
    """A long, thin, straight stroke leaning well away from upright (a 1 leans a little).

    Not a blob much wider than tall: that is a row of digits run together, and a wide enough
    one is as "long and thin" as a slash to the moments below."""
    if h < 0.7 * height or w < 0.3 * h or w > 1.5 * h:
        return False
    ys, xs = np.nonzero(labels[y : y + h, x : x + w] == label)
    points = np.stack([xs, ys], 1).astype(np.float32)
    points -= points.mean(0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(points.T))
    if eigenvalues[0] <= 0 or eigenvalues[1] / eigenvalues[0] < 25:
        return False
    dx, dy = vectors[:, 1]
    lean = np.degrees(np.arctan2(abs(dx), abs(dy)))
    return bool(lean >= 28 and dx * dy < 0)  # top-right to bottom-left, as "/" is written


def cut_columns(blob: np.ndarray, height: float, stroke: float) -> list[int]:
    """Columns where a wide blob is thin enough to be two digits touching (at most 3 cuts)."""
    profile = blob.sum(axis=0).astype(np.float32)
    width = len(profile)
    margin = int(0.25 * height)
    limit = max(2.0, 2.2 * stroke)
    candidates = [
        c
        for c in range(margin, width - margin)
        if profile[c] <= limit and profile[c] <= profile[c - 1] and profile[c] <= profile[c + 1]
    ]
    chosen: list[int] = []
    for c in sorted(candidates, key=lambda c: profile[c]):
        if all(abs(c - k) >= 0.3 * height for k in chosen):
            chosen.append(c)
        if len(chosen) == 3:
            break
    return sorted(chosen)


def hypotheses(row: Row) -> list[tuple[int, int]]:
    """Runs of consecutive atoms (start, end exclusive) that could be one digit."""
    runs = []
    for start in range(len(row.atoms)):
        for end in range(start + 1, min(len(row.atoms), start + MAX_ATOMS) + 1):
            atoms = row.atoms[start:end]
            if max(a.x1 for a in atoms) - min(a.x0 for a in atoms) > MAX_DIGIT_WIDTH * row.height and end > start + 1:
                break
            runs.append((start, end))
    return runs


def best_path(row: Row, scores: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """The split of the row's atoms into runs with the highest total score (dynamic programming).

    Separating two atoms of one blob costs CUT_PENALTY: touching digits happen, but less
    often than one digit, and a slice of a digit can look like another digit.
    """
    count = len(row.atoms)
    best = [-np.inf] * (count + 1)
    back = [0] * (count + 1)
    best[0] = 0.0
    for end in range(1, count + 1):
        for start in range(max(0, end - MAX_ATOMS), end):
            score = scores.get((start, end))
            if score is None:
                continue
            if start > 0 and row.atoms[start - 1].blob == row.atoms[start].blob:
                score -= CUT_PENALTY
            if best[start] + score > best[end]:
                best[end], back[end] = best[start] + score, start
    path = []
    end = count
    while end > 0:
        path.append((back[end], end))
        end = back[end]
    return path[::-1]
