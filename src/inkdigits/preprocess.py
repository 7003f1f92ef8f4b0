"""Any image of one handwritten digit -> the 28x28 white-on-black frame MNIST models expect.

MNIST digits were made by a fixed recipe: the digit's ink cropped, its longer side scaled to
20 pixels with the aspect ratio kept (anti-aliased), then pasted into 28x28 with its centre
of mass at the centre. A model trained on MNIST only works on images brought into that same
form, so each step below is one small function, and ``to_mnist`` keeps every intermediate
picture so a user can see why a digit was misread (``inkdigits predict --save-plot``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import NoDigitError

MNIST_SIZE = 28
MNIST_BOX = 20
# Typical MNIST stroke width in the 20-pixel box; thinner strokes are thickened toward it.
MNIST_STROKE = 2.2
# Working resolution: larger inputs are reduced first, which keeps every stage fast and its
# memory bounded, while leaving far more pixels than the 20-pixel box needs.
WORKING_SIDE = 640
# A digit is looked for first at QUICK_SIDE, where it costs a fraction of the time: most
# uploads are one digit filling the picture, which still spans at least twice the 20-pixel
# box there. Only a digit found smaller than QUICK_MIN_DIGIT pixels, or drawn with strokes under
# QUICK_MIN_STROKE pixels (a fine pen, which the reduction fades), or none at all, is looked
# for again at WORKING_SIDE.
QUICK_SIDE = 96
QUICK_MIN_DIGIT = 40
QUICK_MIN_STROKE = 2.5
# A digit found too small at QUICK_SIDE is looked for at the side where it would pass, with
# this margin, when that side is under this share of WORKING_SIDE.
RETRY_MARGIN = 1.25
RETRY_SHARE = 0.75
# Below this contrast between ink and background (on a 0..1 scale) there is nothing to read,
# and ink must also stand this many times above the paper's grain.
MIN_CONTRAST = 0.15
MIN_CONTRAST_OVER_GRAIN = 8.0
# Illumination is estimated at this resolution (it is smooth), with a closing this wide
# relative to the image's longer side, and only on images at least FLATTEN_MIN_SIDE wide.
BACKGROUND_SIDE = 256
BACKGROUND_KERNEL = 1 / 5
FLATTEN_MIN_SIDE = 40
# Lighting is taken out as a plane first only where one fits the paper this closely (the
# spread of what is left on a PLANE_GRID-cell grid, in levels of 0..1): a gradient yes, a
# shadow's edge no.
PLANE_MAX_SPREAD = 0.03
PLANE_GRID = 16
# A plane rising less than this across the picture leaves the closing nothing to miss.
PLANE_MIN_TILT = 0.02
# Ink mass (pixels times levels) beyond the border's span, per pixel, below which the border
# does not tell dark ink from light; nor does it when both sides hold comparable mass.
INCONCLUSIVE_MASS = 0.001
# Blobs with less than this fraction of the largest one's ink are specks, not strokes; a
# largest blob under MIN_INK_PIXELS means there is no stroke at all, only grain.
SPECK_FRACTION = 0.05
MIN_INK_PIXELS = 12
# Page edges are sought in this outer band (a fraction of each side); blobs within this
# fraction of the digit's size from it belong to it.
BORDER_BAND = 0.06
GROUP_REACH = 1 / 3
# Levels and percentiles are taken on a grid of about this many pixels, at this many levels.
STATISTICS_SAMPLE = 60_000
LEVELS = 1024
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Preprocessed:
    """The model's input plus how it was made."""

    digit: np.ndarray  # 28 x 28 float32 in [0, 1], white ink on black
    box: tuple[int, int, int, int]  # the ink's [x, y, w, h] in input pixels, as exact as the working size
    inverted: bool  # True when the input was dark ink on a light background
    stages: dict[str, np.ndarray] = field(default_factory=dict)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """One channel with the most ink contrast: luminance, or a single colour channel.

    Blue ink on white paper is faint in the blue channel but strong in the red one, so the
    channel whose values spread the most (between its 1st and 99th percentiles) wins.
    The choice is made on every fourth pixel; only the chosen channel is made at full size.
    """
    if pixels.ndim == 2:
        return pixels.astype(np.float32, copy=False)
    sample = pixels[::4, ::4]
    candidates = [sample @ LUMA_WEIGHTS, sample[..., 0], sample[..., 1], sample[..., 2]]
    spreads = [high - low for low, high in (_percentiles(c, (1, 99)) for c in candidates)]
    best = int(np.argmax(spreads))
    # Prefer luminance unless a single channel is clearly better: it is the least noisy.
    if spreads[best] < spreads[0] * 1.15:
        return _luma(pixels)
    return np.ascontiguousarray(pixels[..., best - 1], dtype=np.float32)


def _luma(pixels: np.ndarray) -> np.ndarray:
    """ITU-R 601 luminance; OpenCV's conversion (float32 RGB) is several times numpy's matmul."""
    if pixels.dtype == np.float32 and pixels.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    return (pixels @ LUMA_WEIGHTS).astype(np.float32, copy=False)


def _percentiles(values: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """``np.percentile``'s linear interpolation from one partial sort, at a fraction of its overhead."""
    flat = values.ravel()
    last = flat.size - 1
    positions = [percent / 100 * last for percent in percents]
    ranks = sorted({min(int(x) + step, last) for x in positions for step in (0, 1)})
    ordered = np.partition(flat, ranks)
    out = []
    for position in positions:
        below = int(position)
        low, high = float(ordered[below]), float(ordered[min(below + 1, last)])
        out.append(low + (high - low) * (position - below))
    return out


def limit_size(gray: np.ndarray, side: int = WORKING_SIDE) -> tuple[np.ndarray, float]:
    """Reduce an image whose longer side exceeds ``side``; return it and the scale used."""
    height, width = gray.shape
    longest = max(height, width)
    if longest <= side:
        return gray, 1.0
    scale = side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA), scale


def remove_ruled_lines(ink: np.ndarray) -> np.ndarray:
    """Erase straight lines that run across most of the image: ruled or grid paper.

    A line counts when it is thin (a few percent of the image) and spans at least 3/4 of the
    image's width (or height); the thickness test keeps a tightly cropped digit's bar.
    """
    mask = (ink > 0.3).astype(np.uint8)
    height, width = mask.shape
    lines = np.zeros_like(mask)
    for length, kernel_shape in ((width, (max(3, width // 4), 1)), (height, (1, max(3, height // 4)))):
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, kernel_shape)
        # The opening (erosion, then dilation) is only finished, and labelled, when it can
        # hold a line: its runs span what the erosion leaves plus the kernel's length.
        eroded = cv2.erode(mask, kernel)
        _, _, eroded_width, eroded_height = cv2.boundingRect(eroded)
        horizontal = kernel_shape[0] > 1
        reach = (eroded_width if horizontal else eroded_height) + max(kernel_shape) - 1
        if reach < 0.75 * length:
            continue
        run = cv2.dilate(eroded, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(run, connectivity=8)
        for index in range(1, count):
            span = stats[index, cv2.CC_STAT_WIDTH if horizontal else cv2.CC_STAT_HEIGHT]
            thickness = stats[index, cv2.CC_STAT_HEIGHT if horizontal else cv2.CC_STAT_WIDTH]
            if span >= 0.75 * length and thickness <= max(3, 0.03 * (height if horizontal else width)):
                lines[labels == index] = 1
    if not lines.any():
        return ink
    lines = cv2.dilate(lines, np.ones((3, 3), np.uint8))
    return ink * (1 - lines)


def _working_copy(gray: np.ndarray) -> np.ndarray:
    """The image at BACKGROUND_SIDE: lighting and polarity are smooth, global properties."""
    factor = min(1.0, BACKGROUND_SIDE / max(gray.shape))
    if factor == 1.0:
        return gray
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def _paper_closing(paper: np.ndarray) -> tuple[np.ndarray, int]:
    """The closing of ``paper`` (dark strokes filled in), as 8-bit levels, by a square safely
    wider than the strokes, and that square's side: a fifth of the image, or more for fat pens.

    A closing narrower than a stroke would hollow it out. The strokes' width is measured on
    what a first closing finds (twice area over outline); when they need a side over three
    strokes wide, the closing is done again with it. The filters run on 8-bit levels, several
    times faster than on floats; a smooth estimate loses nothing to 1/255 steps.
    """
    side = max(5, round(max(paper.shape) * BACKGROUND_KERNEL) | 1)
    levels = cv2.convertScaleAbs(paper, alpha=255)
    residual = cv2.morphologyEx(levels, cv2.MORPH_BLACKHAT, _square(side), borderType=cv2.BORDER_REPLICATE)
    peak = int(residual.max())
    wanted = side if peak == 0 else max(side, round(3 * stroke_width(residual, 0.4 * peak)) | 1)
    if wanted == side:
        closed = levels + residual  # black-hat is closing minus image
    else:
        closed = cv2.morphologyEx(levels, cv2.MORPH_CLOSE, _square(wanted), borderType=cv2.BORDER_REPLICATE)
    return closed, wanted


def _square(side: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))


def ink_polarity(gray: np.ndarray) -> bool:
    """True when the ink is darker than its background (paper), False for a dark board.

    The image's border is nearly all background, shadows and lighting included, so its
    levels (5th to 95th percentile) span the background. Ink lies outside that span: the
    side with more ink mass beyond it (how many pixels, times how far) names the polarity.
    Loops (the inside of a 0) and shadows stay within the span, so neither can mislead it.
    """
    small = _working_copy(cv2.GaussianBlur(gray, (3, 3), 0))
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    low, high = _percentiles(border, (5, 95))
    darker = float(np.clip(low - small, 0, None).sum())
    lighter = float(np.clip(small - high, 0, None).sum())
    clear = max(darker, lighter) >= INCONCLUSIVE_MASS * small.size and min(darker, lighter) < 0.2 * max(darker, lighter)
    if darker + lighter > 0 and not clear:
        # A deep shadow along the border can span the ink's own levels, leaving only traces
        # outside the span on both sides. The wrong polarity then shows itself: under it,
        # the lit paper comes out as ink over much of the picture.
        dark_cover = float((flatten_illumination(small, True) > 0.2).mean())
        light_cover = float((flatten_illumination(small, False) > 0.2).mean())
        if max(dark_cover, light_cover) > 0.3 and min(dark_cover, light_cover) < 0.5 * max(dark_cover, light_cover):
            return dark_cover < light_cover
    if darker + lighter > 0:
        return darker >= lighter
    # Ink fills the border too (a tight crop): the extreme farther from the median is ink.
    background = float(np.median(small))
    return background - float(small.min()) > float(small.max()) - background


def flatten_illumination(gray: np.ndarray, dark_ink: bool) -> np.ndarray:
    """How much darker (or, on a board, lighter) each pixel is than the paper around it, 0..1.

    In a photo, paper in a shadow can be darker than ink in the light, so no single level
    separates ink from paper. The paper's brightness is estimated by a morphological closing
    (a max then a min filter wider than any stroke): it erases the strokes but keeps a
    shadow's edge where it is. Light multiplies, so dividing by that estimate cancels
    gradients and shadows alike. Tiny images (an MNIST-sized crop) are measured against one
    global level.
    """
    paper = gray if dark_ink else 1.0 - gray
    height, width = paper.shape
    if max(height, width) < FLATTEN_MIN_SIDE:
        background = np.full_like(paper, float(np.median(paper)))
    else:
        small = _working_copy(paper)
        tilt = _lighting_plane(small)
        if tilt is None:
            closed, side = _paper_closing(small)
            estimate = _smooth(closed, side / 16)
        else:
            level = small - tilt
            lift = max(0.0, -float(level.min()))  # the closing works on 8-bit levels: none may fall below 0
            closed, side = _paper_closing(level + lift)
            estimate = _smooth(closed, side / 16) - lift
            estimate += cv2.resize(tilt, (estimate.shape[1], estimate.shape[0]), interpolation=cv2.INTER_LINEAR)
        background = cv2.resize(estimate, (width, height), interpolation=cv2.INTER_LINEAR)
    # The floor keeps a dark photo's noise (or a wrongly guessed polarity) from being amplified.
    darkness = (background - paper) / np.maximum(background, 0.3)
    return np.clip(darkness, 0.0, 1.0).astype(np.float32)


def _lighting_plane(paper: np.ndarray) -> np.ndarray | None:
    """Evenly graded lighting as a plane (less its lowest value), or None where the paper is
    level, or where a plane does not describe it to within its grain (a shadow's edge, a
    lamp's spot).

    A closing cannot follow a gradient into the picture's edge: within half its square of
    the edge it sees only the brighter side, and the darker paper there came out as a band
    of ink (a smoothly lit empty surface read as a "1"). With the plane taken out first the
    closing sees a level page. The plane is fitted to the picture's mean levels on a coarse
    grid (PLANE_GRID cells a side: cheap, and grain averages out); cells well below the
    first fit (ink) are left out of the second. A step, such as a shadow, is left to the
    closing, which keeps its edge in place.
    """
    height, width = paper.shape
    grid = (min(PLANE_GRID, width), min(PLANE_GRID, height))
    levels = cv2.resize(paper, grid, interpolation=cv2.INTER_AREA)
    # A plane rising by PLANE_MIN_TILT spans at least 0.9 of that along the border cells
    # (their centres span all but half a cell at each end): level paper around the writing,
    # the common case, is known after a resize instead of two fits.
    border = np.concatenate([levels[0], levels[-1], levels[:, 0], levels[:, -1]])
    if float(border.max() - border.min()) < 0.9 * PLANE_MIN_TILT:
        return None
    cells = levels.ravel()
    design, inverse = _plane_design(*grid)
    coefficients = inverse @ cells
    residual = cells - design @ coefficients
    # Spreads as mean absolute deviations (1.25 of one is a normal spread's sigma): this
    # runs on every image, and a mean costs a fraction of a median or a standard deviation.
    paper_like = residual > -2.5 * float(np.abs(residual).mean())
    if 3 <= paper_like.sum() < cells.size:
        kept = design[paper_like]
        coefficients = np.linalg.solve(kept.T @ kept, kept.T @ cells[paper_like])
        residual = cells[paper_like] - kept @ coefficients
    # A level page needs nothing taken out; a page the plane does not fit is left to the closing.
    if abs(coefficients[1]) + abs(coefficients[2]) < PLANE_MIN_TILT:
        return None
    if 1.25 * float(np.abs(residual).mean()) > PLANE_MAX_SPREAD:
        return None
    x = (np.arange(width, dtype=np.float32) + 0.5) / width
    y = (np.arange(height, dtype=np.float32) + 0.5) / height
    plane = coefficients[1] * x[None, :] + coefficients[2] * y[:, None]
    return (plane - plane.min()).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _plane_design(columns: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares design (1, x, y at each cell's centre) of a grid, and its pseudo-inverse."""
    ys, xs = np.mgrid[0:rows, 0:columns].astype(np.float32)
    design = np.stack([np.ones(xs.size, np.float32), (xs.ravel() + 0.5) / columns, (ys.ravel() + 0.5) / rows], 1)
    return design, np.linalg.pinv(design).astype(np.float32)


def _histogram(darkness: np.ndarray) -> np.ndarray:
    """Counts of a darkness map's sampled pixels at LEVELS levels: its paper level, grain and
    ink level all come from this one histogram instead of a pass over the pixels each."""
    return np.bincount(_levels(_sample(darkness)).ravel(), minlength=LEVELS)


def _smooth(levels: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of 8-bit ``levels`` as floats in [0, 1]. A wide blur costs as much as
    its kernel is long, so a smooth picture is blurred at a fraction of its size, where the
    kernel is a few pixels, and the caller's resize brings it back."""
    shrink = max(1, round(sigma))
    small = levels.astype(np.float32) / np.float32(255)
    if shrink > 1:
        height, width = levels.shape
        size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
        sigma = sigma * small.shape[1] / width
    return cv2.GaussianBlur(small, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def _paper_level(counts: np.ndarray) -> tuple[float, float]:
    """The paper's level and grain (robust spread) from a darkness map's histogram.

    Measured on the pixels Otsu's split calls paper, because in a tight crop the ink can
    cover more than half the picture, and then the median would be ink.
    """
    split = _otsu(counts.reshape(-1, 4).sum(axis=1))  # at 256 levels, as for an 8-bit image
    paper = counts[: 4 * (split + 1)]
    if not paper.any():
        paper = counts
    level = _quantile(paper, 0.5)
    # The histogram of |value - level| over the paper: the two sides folded onto each other.
    distances = np.zeros(LEVELS, dtype=counts.dtype)
    above, below = paper[level:], paper[: level + 1][::-1]
    distances[: len(above)] += above
    distances[1 : len(below)] += below[1:]
    spread = _quantile(distances, 0.5)
    return level / (LEVELS - 1), 1.4826 * spread / (LEVELS - 1)


def _otsu(counts: np.ndarray) -> int:
    """Otsu's threshold of a histogram: the last bin of the darker class (OpenCV's rule)."""
    total = counts.sum()
    if total == 0:
        return 0
    p = counts / total
    q1 = np.cumsum(p)
    m1 = np.cumsum(p * np.arange(len(p)))
    mu = m1[-1]
    q2 = 1.0 - q1
    eps = np.finfo(np.float32).eps
    valid = (np.minimum(q1, q2) >= eps) & (np.maximum(q1, q2) <= 1.0 - eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu1 = m1 / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = np.where(valid, q1 * q2 * (mu1 - mu2) ** 2, 0.0)
    best = int(np.argmax(sigma))
    return best if sigma[best] > 0 else 0


def _peak(darkness: np.ndarray, counts: np.ndarray) -> float:
    """The ink's level: a high percentile, so a few hot pixels cannot set it."""
    top = float(darkness.max())
    if darkness.size <= 4000:
        return top
    return max(_quantile(counts, 0.999) / (LEVELS - 1), 0.9 * top)


def _levels(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as integer levels 0..LEVELS-1: medians and percentiles then come
    from a histogram in one pass instead of a sort."""
    return np.minimum((values * (LEVELS - 1) + 0.5).astype(np.int32), LEVELS - 1)


def _quantile(counts: np.ndarray, q: float) -> int:
    cumulative = np.cumsum(counts)
    return int(np.searchsorted(cumulative, q * cumulative[-1]))


def _sample(values: np.ndarray, limit: int = STATISTICS_SAMPLE) -> np.ndarray:
    """A regular grid of about ``limit`` pixels: plenty for a level or a percentile, and it
    keeps a 1-megapixel photo's statistics from costing more than its filtering."""
    stride = max(1, int(np.ceil(np.sqrt(values.size / limit))))
    return values[::stride, ::stride]


def paper_statistics(darkness: np.ndarray) -> tuple[float, float, float]:
    """A darkness map's paper level, the paper's grain, and the ink's contrast over the paper."""
    counts = _histogram(darkness)
    background, grain = _paper_level(counts)
    return background, grain, _peak(darkness, counts) - background


def ink_intensity(darkness: np.ndarray) -> np.ndarray:
    """Ink as bright-on-black in [0, 1]: paper level subtracted, contrast stretched.

    Raises ``NoDigitError`` when no ink stands out from the paper by much more than the
    paper's own grain and noise (a blank page, canvas, or board).
    """
    background, grain, contrast = paper_statistics(darkness)
    # Noise is independent from pixel to pixel and strokes are not, so a slight blur tells
    # them apart: it melts grain away while ink keeps most of its level.
    smooth = cv2.GaussianBlur(darkness, (0, 0), 1.2)
    smooth_counts = _histogram(smooth)
    smooth_level, smooth_grain = _paper_level(smooth_counts)
    coherent = _peak(smooth, smooth_counts) - smooth_level
    if contrast < MIN_CONTRAST or coherent < MIN_CONTRAST_OVER_GRAIN * smooth_grain:
        raise NoDigitError("No digit found: the image is blank (no ink stands out from the background).")
    stretched = (darkness - background) / contrast
    # Values near the paper's level are grain, sensor noise or JPEG ringing.
    floor = max(0.25, min(0.5, 3.0 * grain / contrast))
    return np.clip((stretched - floor) / (1.0 - floor), 0.0, 1.0).astype(np.float32)


def _components(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected ink blobs: the label image, their [x, y, w, h, area] rows, their ink mass."""
    mask = (ink > 0.2).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:  # one blob or none, as in most crops: its mass is just the ink's sum
        return labels, stats[1:], np.array([float(ink[mask > 0].sum())] * (count - 1))
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count)
    return labels, stats[1:], mass[1:]


def _along_border(box: np.ndarray, shape: tuple[int, int]) -> bool:
    """A page edge or a table's rim: a long, thin blob that lies within the image's outer band."""
    x, y, w, h = (int(v) for v in box[:4])
    height, width = shape
    band_y, band_x = max(2, round(BORDER_BAND * height)), max(2, round(BORDER_BAND * width))
    horizontal = w >= 0.3 * width and (y + h <= band_y or y >= height - band_y)
    vertical = h >= 0.3 * height and (x + w <= band_x or x >= width - band_x)
    return horizontal or vertical


def choose_digit(ink: np.ndarray) -> np.ndarray:
    """Keep the digit and nothing else: drop specks, page edges and marks far from the digit.

    The digit is the blob with the most ink; blobs near it (a 5's detached bar, a pencil
    stroke's gaps) join it, and the group grows while more blobs lie within a third of its
    size. Specks, page borders and stray marks farther away are erased.
    """
    labels, stats, mass = _components(ink)
    if len(stats) == 0 or stats[:, cv2.CC_STAT_AREA].max() < MIN_INK_PIXELS:
        raise NoDigitError("No digit found: no stroke is left once noise is removed.")
    candidates = [
        i for i in range(len(stats)) if mass[i] >= SPECK_FRACTION * mass.max() and stats[i, cv2.CC_STAT_AREA] >= 2
    ]
    edges = [i for i in candidates if _along_border(stats[i], ink.shape)]
    if len(edges) < len(candidates):
        candidates = [i for i in candidates if i not in edges]
    group = [max(candidates, key=lambda i: mass[i])]
    rest = [i for i in candidates if i != group[0]]
    x0, y0, x1, y1 = _box_corners(stats[group[0]])
    grew = True
    while grew and rest:
        grew = False
        reach = max(2.0, GROUP_REACH * max(x1 - x0, y1 - y0))
        for i in list(rest):
            bx0, by0, bx1, by1 = _box_corners(stats[i])
            gap = max(bx0 - x1, x0 - bx1, by0 - y1, y0 - by1, 0)
            if gap <= reach:
                group.append(i)
                rest.remove(i)
                x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
                grew = True
    if len(group) == len(stats):
        kept_mask = (labels > 0).astype(np.uint8)
    else:
        keep = np.zeros(len(stats) + 1, dtype=np.uint8)
        keep[np.array(group) + 1] = 1
        kept_mask = keep[labels]
    # Keep the faint anti-aliased rim of kept strokes: grow the kept mask by a pixel.
    kept = cv2.dilate(kept_mask, np.ones((3, 3), np.uint8))
    return ink * kept


def _box_corners(row: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = (int(v) for v in row[:4])
    return x, y, x + w, y + h


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box [x, y, w, h] of all remaining ink."""
    points = cv2.findNonZero((ink > 0.2).astype(np.uint8))
    if points is None:
        raise NoDigitError("No digit found: the image holds no ink.")
    x, y, w, h = cv2.boundingRect(points)
    return int(x), int(y), int(w), int(h)


def stroke_width(ink: np.ndarray, level: float = 0.4) -> float:
    """Mean stroke width in pixels of the ink above ``level``: twice its area over its outline."""
    # Closing first: chalk and pencil leave pin-holes whose outlines would count as edges.
    mask = cv2.morphologyEx((ink > level).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / perimeter if perimeter > 0 else 1.0


def thicken(crop: np.ndarray, scale: float, width: float | None = None) -> np.ndarray:
    """Dilate thin strokes so that after scaling by ``scale`` they are about MNIST's width.

    A one-pixel pen on a large canvas would otherwise shrink to a faint grey thread.
    """
    width = stroke_width(crop) if width is None else width
    wanted = MNIST_STROKE / scale
    grow = round(wanted - width)
    if grow < 1:
        return crop
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow + 1, grow + 1))
    padded = cv2.copyMakeBorder(crop, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
    return cv2.dilate(padded, kernel)


def fit_box(crop: np.ndarray, box: int = MNIST_BOX) -> np.ndarray:
    """Scale so the longer side is ``box`` pixels, aspect ratio kept, anti-aliased."""
    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(crop, size, interpolation=interpolation), 0.0, 1.0)


def center_by_mass(small: np.ndarray, size: int = MNIST_SIZE) -> np.ndarray:
    """Paste into ``size`` x ``size`` with the centre of mass on the centre pixel."""
    canvas = np.zeros((size, size), dtype=np.float32)
    height, width = small.shape
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top : top + height, left : left + width] = small
    moments = cv2.moments(canvas)
    if moments["m00"] <= 0:
        return canvas
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    shift = np.float32([[1, 0, round(size / 2 - cx)], [0, 1, round(size / 2 - cy)]])
    return cv2.warpAffine(canvas, shift, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)


def ink_map(pixels: np.ndarray, side: int = WORKING_SIDE) -> tuple[np.ndarray, float, bool, dict[str, np.ndarray]]:
    """Any image -> ink strength in [0, 1], bright on black, at most ``side`` pixels a side.

    Returns the ink, the scale from input to working pixels, whether the input had dark ink,
    and the intermediate pictures. Raises ``NoDigitError`` on a blank image.
    """
    return _gray_ink_map(to_gray(pixels), side)


def _gray_ink_map(gray: np.ndarray, side: int) -> tuple[np.ndarray, float, bool, dict[str, np.ndarray]]:
    gray, scale = limit_size(gray, side)
    dark_ink = ink_polarity(gray)
    darkness = flatten_illumination(gray, dark_ink)
    ink = ink_intensity(darkness)
    stages = {"grayscale": gray, "lighting flattened": darkness, "ink (background removed)": ink}
    return remove_ruled_lines(ink), scale, dark_ink, stages


def frame_digit(
    crop: np.ndarray, stages: dict[str, np.ndarray] | None = None, stroke: float | None = None
) -> np.ndarray:
    """A tight crop of one digit's ink -> MNIST's 28x28: thickened, 20-pixel box, centred.

    ``stroke``: the crop's stroke width, where the caller has measured it already.
    """
    height, width = crop.shape
    thick = thicken(crop, MNIST_BOX / max(height, width), stroke)
    small = fit_box(thick)
    digit = center_by_mass(small)
    if stages is not None:
        stages["cropped"] = crop
        if thick is not crop:
            stages["strokes thickened"] = thick
        stages["20 px box"] = small
        stages["28x28 model input"] = digit
    return digit


def to_mnist(pixels: np.ndarray, keep_stages: bool = False) -> Preprocessed:
    """The whole chain for one digit; ``keep_stages`` records each intermediate picture.

    Tried at QUICK_SIDE first. Where that finds a digit too small or too finely drawn to
    frame well from so few pixels, it is looked for again at the side where it would be
    large enough (a digit that fills a fifth of a phone photo: about 300 pixels, a quarter
    of the work of WORKING_SIDE), and where that fails, or nothing was found, at WORKING_SIDE.
    """
    gray = to_gray(pixels)
    side = QUICK_SIDE
    while side < min(max(gray.shape), WORKING_SIDE):
        try:
            found, needed = _digit_at(gray, side, keep_stages, quick=True)
        except NoDigitError:
            break
        if found is not None:
            return found
        # Only a side clearly short of WORKING_SIDE saves enough to be worth another pass.
        side = needed if side == QUICK_SIDE and needed < RETRY_SHARE * WORKING_SIDE else WORKING_SIDE
    result, _ = _digit_at(gray, WORKING_SIDE, keep_stages)
    assert result is not None
    return result


def _digit_at(gray: np.ndarray, side: int, keep_stages: bool, quick: bool = False) -> tuple[Preprocessed | None, int]:
    """The digit framed from the picture at ``side``; with ``quick``, None where it is too
    small or too thin there to frame well, and the side at which it would not be."""
    ink, scale, dark_ink, stages = _gray_ink_map(gray, side)
    ink = choose_digit(ink)
    x, y, w, h = ink_box(ink)
    crop = ink[y : y + h, x : x + w]
    stroke = None
    if quick:
        stroke = stroke_width(crop)
        short = max(QUICK_MIN_DIGIT / max(w, h), QUICK_MIN_STROKE / max(stroke, 0.5))
        if short > 1.0:
            return None, math.ceil(side * short * RETRY_MARGIN)
    digit = frame_digit(crop, stages if keep_stages else None, stroke)
    box = tuple(round(v / scale) for v in (x, y, w, h))
    return Preprocessed(digit, box, dark_ink, stages if keep_stages else {}), side  # type: ignore[arg-type]
