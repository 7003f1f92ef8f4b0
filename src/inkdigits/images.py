"""Turn whatever a user hands us (a path, bytes, a numpy array, a PIL image) into pixels.

Decoding is where hostile or broken input arrives, so every failure becomes a
``BadImageError`` with one sentence naming the input. The pixel count is checked on the
header, before a single pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImageError, ImageTooLargeError, NotAnImageError

# 40 megapixels is above any phone camera in common use and about 160 MB as RGB.
DEFAULT_MAX_PIXELS = 40_000_000

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | bytearray | np.ndarray | Image.Image

_FORMATS = "PNG, JPEG, BMP, TIFF, WebP"


def describe(source: Any) -> str:
    """A short name for an input, used in messages and in JSON output."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))}>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.width}x{source.height}>"
    return f"<{type(source).__name__}>"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} MP" if pixels >= 10_000_000 else f"{pixels / 1e6:.2g} MP"


def _check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} pixels ({_megapixels(width * height)}), over the "
            f"{_megapixels(max_pixels)} limit; scale it down or raise --max-pixels."
        )
    if width == 0 or height == 0:
        raise BadImageError(f"{name} has no pixels.")


def _open(source: str | os.PathLike[str] | bytes | bytearray, name: str) -> Image.Image:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise BadImageError(f"{name} does not exist.")
        if path.is_dir():
            raise BadImageError(f"{name} is a folder, not an image.")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadImageError(f"{name} cannot be read: {exc.strerror or exc}.") from exc
    else:
        data = bytes(source)
    if not data:
        raise NotAnImageError(f"{name} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard would warn or raise first; ours names the input.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError as exc:
        raise NotAnImageError(f"{name} is not an image inkdigits can read ({_FORMATS}).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{name} is damaged and cannot be read ({exc}).") from exc


def _decode(image: Image.Image, name: str, max_pixels: int, side: int | None = None) -> tuple[Image.Image, float]:
    """The image's pixels (EXIF orientation applied) and their scale against its header's size."""
    _check_pixels(image.width, image.height, name, max_pixels)
    full_width = image.width
    try:
        if side is not None and image.format == "JPEG" and max(image.size) >= 2 * side:
            # The decoder picks the largest of 1/2, 1/4, 1/8 that keeps both sides at least this.
            factor = side / max(image.size)
            image.draft(image.mode, (math.ceil(image.width * factor), math.ceil(image.height * factor)))
        scale = image.width / full_width
        image.load()
        image = ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(f"{name} is truncated or damaged ({exc}).") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name} decodes to too many pixels ({exc}).") from exc
    return image, scale


def _high_bit_depth(image: Image.Image) -> np.ndarray:
    """16-bit and 32-bit integer or float grayscale, scaled to [0, 1]."""
    values = np.asarray(image, dtype=np.float32)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    scale = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
    return np.clip(values / scale, 0.0, 1.0)


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten transparency onto a background that contrasts with the ink.

    A drawing program's transparent canvas carries the ink in the opaque pixels, whatever
    colour it is; compositing white ink onto white paper would erase it, so the background
    is chosen opposite to the opaque pixels' mean brightness.
    """
    if float(alpha.min()) >= 1.0:
        return rgb
    weight = float(alpha.sum())
    gray = rgb.mean(axis=2) if rgb.ndim == 3 else rgb
    ink_brightness = float((gray * alpha).sum() / weight) if weight > 0 else 0.0
    background = 1.0 if ink_brightness < 0.5 else 0.0
    a = alpha[..., None] if rgb.ndim == 3 else alpha
    return rgb * a + background * (1.0 - a)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A float32 array in [0, 1]: H x W for grayscale, H x W x 3 (RGB) for colour."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _high_bit_depth(image)
    if image.mode in ("1", "L"):
        return _unit_float(np.asarray(image.convert("L")))
    if image.mode in ("LA", "La", "PA", "P", "RGBA", "RGBa") or "transparency" in image.info:
        rgba = _unit_float(np.asarray(image.convert("RGBA")))
        flat = _composite(rgba[..., :3], rgba[..., 3])
        return flat.mean(axis=2) if image.mode in ("LA", "La") else flat
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return _unit_float(rgb[..., 0] if _neutral(rgb) else rgb)


def _unit_float(array: np.ndarray, top: float = 255.0) -> np.ndarray:
    """Integer pixels / ``top`` as float32 in one pass, no float copy first: a quarter of
    the time on a phone photo, the same values."""
    return np.divide(array, np.float32(top), dtype=np.float32)


def _neutral(rgb: np.ndarray) -> bool:
    """Equal channels: a grayscale picture that the codec (WebP) decoded to RGB anyway.

    A sample settles it for nearly every colour photo; only a picture neutral there is
    compared whole (and then converted as one channel, a third of the work).
    """
    for pixels in (rgb[::16, ::16], rgb):
        if not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])):
            return False
    return True


def array_to_float(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Accept uint8, uint16, bool or float arrays, 2-D or H x W x {1, 3, 4} (RGB order)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise BadImageError(f"{name} must be H x W or H x W x 3/4, not {array.shape}.")
    if array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        top = 65535.0 if array.dtype.itemsize > 1 and array.max(initial=0) > 255 else 255.0
        values = _unit_float(array, top)
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if values.size and float(np.nanmax(values)) > 1.0:
            values = values / 255.0
        values = np.nan_to_num(np.clip(values, 0.0, 1.0))
    else:
        raise BadImageError(f"{name} has an unsupported dtype {array.dtype}.")
    if values.ndim == 3 and values.shape[2] == 4:
        values = _composite(values[..., :3], values[..., 3])
    return values


def load_image(source: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode any supported input into float32 pixels in [0, 1] (H x W or H x W x 3 RGB).

    EXIF orientation is applied, transparency is composited, 16-bit data is scaled; inputs
    over ``max_pixels`` are refused before they are decoded.
    """
    return decode_image(source, max_pixels)[0]


def decode_image(
    source: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS, side: int | None = None
) -> tuple[np.ndarray, float]:
    """``load_image``, for a caller that will work at most ``side`` pixels a side anyway.

    A JPEG at least twice that size is decoded straight from its DCT coefficients at a half,
    a quarter or an eighth of its size, never below ``side``: a phone's 12 MP photo read for
    one digit takes about a sixth of the time and a sixteenth of the memory. Returns the
    pixels and their scale against the input's own pixels (1.0: full size), to map
    positions back.
    """
    name = describe(source)
    if isinstance(source, np.ndarray):
        _check_pixels(source.shape[1] if source.ndim > 1 else 0, source.shape[0], name, max_pixels)
        return array_to_float(source, name), 1.0
    if isinstance(source, Image.Image):
        return pil_to_array(_decode(source, name, max_pixels)[0]), 1.0
    if isinstance(source, str | os.PathLike | bytes | bytearray):
        with _open(source, name) as image:
            decoded, scale = _decode(image, name, max_pixels, side)
            return pil_to_array(decoded), scale
    raise NotAnImageError(f"{name} is not an image: pass a path, bytes, a numpy array or a PIL image.")
