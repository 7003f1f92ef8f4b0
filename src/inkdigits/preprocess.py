"""Any image of one handwritten digit -> the 28x28 white-on-black frame MNIST models expect.

MNIST digits were made by a fixed recipe: the digit's ink cropped, its longer side scaled to
20 pixels with the aspect ratio kept (anti-aliased), then pasted into 28x28 with its centre
of mass at the centre. A model trained on MNIST only works on images brought into that same
form, so each step below is one small function, and ``to_mnist`` keeps every intermediate
picture so a user can see why a digit was misread (``inkdigits predict --save-plot``).
"""

from __future__ import annotations

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
WORKING_SIDE = 1024
# Below this contrast between ink and background (on a 0..1 scale) there is nothing to read.
MIN_CONTRAST = 0.12
# Components smaller than this fraction of the largest are specks, not strokes.
SPECK_FRACTION = 0.05


@dataclass
class Preprocessed:
    """The model's input plus how it was made."""

    digit: np.ndarray  # 28 x 28 float32 in [0, 1], white ink on black
    box: tuple[int, int, int, int]  # the ink's [x, y, w, h] in input pixels
    inverted: bool  # True when the input was dark ink on a light background
    stages: dict[str, np.ndarray] = field(default_factory=dict)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """One channel with the most ink contrast: luminance, or a single colour channel.

    Blue ink on white paper is faint in the blue channel but strong in the red one, so the
    channel whose values spread the most (between its 1st and 99th percentiles) wins.
    """
    if pixels.ndim == 2:
        return pixels.astype(np.float32, copy=False)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    candidates = [luma, pixels[..., 0], pixels[..., 1], pixels[..., 2]]
    sample = [c[::4, ::4] for c in candidates]
    spreads = [float(np.percentile(s, 99) - np.percentile(s, 1)) for s in sample]
    best = int(np.argmax(spreads))
    # Prefer luminance unless a single channel is clearly better: it is the least noisy.
    if spreads[best] < spreads[0] * 1.15:
        best = 0
    return np.ascontiguousarray(candidates[best], dtype=np.float32)


def limit_size(gray: np.ndarray, side: int = WORKING_SIDE) -> tuple[np.ndarray, float]:
    """Reduce an image whose longer side exceeds ``side``; return it and the scale used."""
    height, width = gray.shape
    longest = max(height, width)
    if longest <= side:
        return gray, 1.0
    scale = side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA), scale


def ink_polarity(gray: np.ndarray) -> bool:
    """True when the ink is darker than the background (paper), False for a dark board.

    The background is most of the picture, so the median is a background value; the ink is
    whichever extreme lies farther from it. A light blur first keeps a single hot pixel from
    deciding, while a one-pixel pen line still counts.
    """
    blurred = cv2.GaussianBlur(gray, (3, 3), 0)
    background = float(np.median(blurred))
    return background - float(blurred.min()) > float(blurred.max()) - background


def remove_ruled_lines(ink: np.ndarray) -> np.ndarray:
    """Erase straight lines that run across most of the image: ruled or grid paper.

    A line counts when it is thin (a few percent of the image) and spans at least 3/4 of the
    image's width (or height); the thickness test keeps a tightly cropped digit's bar.
    """
    mask = (ink > 0.3).astype(np.uint8)
    height, width = mask.shape
    lines = np.zeros_like(mask)
    for length, kernel_shape in ((width, (max(3, width // 4), 1)), (height, (1, max(3, height // 4)))):
        run = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel_shape))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(run, connectivity=8)
        horizontal = kernel_shape[0] > 1
        for index in range(1, count):
            span = stats[index, cv2.CC_STAT_WIDTH if horizontal else cv2.CC_STAT_HEIGHT]
            thickness = stats[index, cv2.CC_STAT_HEIGHT if horizontal else cv2.CC_STAT_WIDTH]
            if span >= 0.75 * length and thickness <= max(3, 0.03 * (height if horizontal else width)):
                lines[labels == index] = 1
    if not lines.any():
        return ink
    lines = cv2.dilate(lines, np.ones((3, 3), np.uint8))
    return ink * (1 - lines)


def ink_intensity(gray: np.ndarray, dark_ink: bool) -> np.ndarray:
    """Ink as bright-on-black in [0, 1]: background subtracted, contrast stretched.

    Raises ``NoDigitError`` when there is no contrast at all (a blank page or canvas).
    """
    ink = 1.0 - gray if dark_ink else gray
    background = float(np.median(ink))
    peak = float(np.percentile(ink, 99.9)) if ink.size > 4000 else float(ink.max())
    peak = max(peak, float(ink.max()) * 0.9)
    contrast = peak - background
    if contrast < MIN_CONTRAST:
        raise NoDigitError("No digit found: the image is blank (no ink stands out from the background).")
    stretched = (ink - background) / contrast
    # Values near the background level are paper grain, sensor noise or JPEG ringing.
    floor = 0.25
    return np.clip((stretched - floor) / (1.0 - floor), 0.0, 1.0).astype(np.float32)


def remove_specks(ink: np.ndarray) -> np.ndarray:
    """Zero every connected blob much smaller than the largest one."""
    mask = (ink > 0.2).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        raise NoDigitError("No digit found: no stroke is left once noise is removed.")
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= max(2, SPECK_FRACTION * areas.max())
    # Keep the faint anti-aliased rim of kept strokes: grow the kept mask by a pixel.
    kept = cv2.dilate(keep[labels].astype(np.uint8), np.ones((3, 3), np.uint8))
    return ink * kept


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box [x, y, w, h] of all remaining ink."""
    points = cv2.findNonZero((ink > 0.2).astype(np.uint8))
    if points is None:
        raise NoDigitError("No digit found: the image holds no ink.")
    x, y, w, h = cv2.boundingRect(points)
    return int(x), int(y), int(w), int(h)


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the area over the outline length of the ink."""
    # Closing first: chalk and pencil leave pin-holes whose outlines would count as edges.
    mask = cv2.morphologyEx((ink > 0.4).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / perimeter if perimeter > 0 else 1.0


def thicken(crop: np.ndarray, scale: float) -> np.ndarray:
    """Dilate thin strokes so that after scaling by ``scale`` they are about MNIST's width.

    A one-pixel pen on a large canvas would otherwise shrink to a faint grey thread.
    """
    width = stroke_width(crop)
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


def to_mnist(pixels: np.ndarray, keep_stages: bool = False) -> Preprocessed:
    """The whole chain for one digit; ``keep_stages`` records each intermediate picture."""
    stages: dict[str, np.ndarray] = {}
    gray = to_gray(pixels)
    gray, scale = limit_size(gray)
    dark_ink = ink_polarity(gray)
    ink = ink_intensity(gray, dark_ink)
    if keep_stages:
        stages["grayscale"] = gray
        stages["ink (background removed)"] = ink
    ink = remove_ruled_lines(ink)
    ink = remove_specks(ink)
    x, y, w, h = ink_box(ink)
    crop = ink[y : y + h, x : x + w]
    thick = thicken(crop, MNIST_BOX / max(h, w))
    small = fit_box(thick)
    digit = center_by_mass(small)
    if keep_stages:
        stages["cropped"] = crop
        if thick is not crop:
            stages["strokes thickened"] = thick
        stages["20 px box"] = small
        stages["28x28 model input"] = digit
    box = tuple(round(v / scale) for v in (x, y, w, h))
    return Preprocessed(digit, box, dark_ink, stages)  # type: ignore[arg-type]
