"""Decoding real image files in every supported format and flavour, and refusing bad ones."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, png_bomb
from inkdigits.errors import BadImageError, ImageTooLargeError
from inkdigits.images import decode_image, load_image
from inkdigits.preprocess import to_mnist


def _digit_canvas() -> np.ndarray:
    """A dark '1'-like bar on light paper, off-centre, 120 x 80 (H x W)."""
    canvas = np.full((120, 80), 240, np.uint8)
    canvas[20:100, 50:58] = 20
    return canvas


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_every_format_decodes_to_the_same_picture(fmt, tmp_path):
    path = tmp_path / f"digit.{fmt.lower()}"
    Image.fromarray(_digit_canvas()).save(path, format=fmt)
    pixels = load_image(path)
    assert pixels.shape == (120, 80)
    assert np.abs(pixels - _digit_canvas() / 255.0).mean() < 0.02


def test_bytes_numpy_and_pil_inputs_agree(tmp_path):
    canvas = _digit_canvas()
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    from_bytes = load_image(buffer.getvalue())
    from_array = load_image(canvas)
    from_pil = load_image(Image.fromarray(canvas))
    assert np.allclose(from_bytes, from_array) and np.allclose(from_array, from_pil)


def _sideways_jpeg(path, scale: int = 1):
    """Stored landscape (80 x 120 times ``scale``) with orientation 6 ("rotate 90° clockwise
    to view"), as phones do, and a dark band along the top edge of the stored pixels."""
    stored = np.full((80 * scale, 120 * scale), 240, np.uint8)
    stored[10 * scale : 20 * scale, :] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_honoured(tmp_path):
    pixels = load_image(_sideways_jpeg(tmp_path / "phone.jpg"))
    assert pixels.shape == (120, 80), "displayed upright: portrait"
    assert pixels[:, -20:-10].mean() < 0.2, "the top band is now on the right"


def test_transparent_canvas_is_composited_against_the_ink(tmp_path):
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[10:50, 28:33] = (0, 0, 0, 255)  # black ink on a fully transparent canvas
    path = tmp_path / "ink.png"
    Image.fromarray(rgba, "RGBA").save(path)
    pixels = load_image(path)
    assert pixels[0, 0].min() > 0.99 and pixels[30, 30].max() < 0.01, "black ink on white"
    rgba[..., :3] = 255  # now white ink on transparent: must not vanish into white
    Image.fromarray(rgba, "RGBA").save(path)
    pixels = load_image(path)
    assert pixels[0, 0].max() < 0.01 and pixels[30, 30].min() > 0.99, "white ink on black"


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    gray16 = np.full((50, 50), 60000, np.uint16)
    gray16[10:40, 20:26] = 3000
    path = tmp_path / "scan.png"
    Image.fromarray(gray16).save(path)
    pixels = load_image(path)
    assert abs(pixels[0, 0] - 60000 / 65535) < 1e-3 and abs(pixels[20, 22] - 3000 / 65535) < 1e-3


def test_example_images_cover_the_formats():
    suffixes = {p.suffix for p in EXAMPLES.iterdir() if p.name[0].isdigit()}
    assert {".png", ".jpg", ".bmp", ".tif", ".webp"} <= suffixes


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("missing", BadImageError, "does not exist"),
        ("text", BadImageError, "not an image"),
        ("truncated", BadImageError, "truncated or damaged"),
        ("empty", BadImageError, "empty"),
        ("bomb", ImageTooLargeError, "30000x30000"),
    ],
)
def test_bad_inputs_raise_one_clear_error(bad_inputs, kind, error, words):
    with pytest.raises(error, match=words) as caught:
        load_image(bad_inputs[kind])
    assert str(bad_inputs[kind]) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bomb_is_refused_before_decoding(tmp_path):
    import tracemalloc

    bomb = png_bomb(tmp_path / "bomb.png")
    tracemalloc.start()
    with pytest.raises(ImageTooLargeError):
        load_image(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6, f"refusing the bomb used {peak / 1e6:.0f} MB"


def test_pixel_limit_is_adjustable():
    with pytest.raises(ImageTooLargeError):
        load_image(_digit_canvas(), max_pixels=5000)
    assert load_image(_digit_canvas(), max_pixels=10000).shape == (120, 80)


def test_mnist_framing_of_a_drawn_digit():
    prepared = to_mnist(load_image(_digit_canvas()), keep_stages=True)
    digit = prepared.digit
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    rows, _ = np.nonzero(digit > 0.1)
    assert rows.max() - rows.min() + 1 <= 21, "the longer side fits the 20-pixel box"
    mass = digit.sum()
    cy, cx = (np.arange(28) @ digit.sum(1)) / mass, (np.arange(28) @ digit.sum(0)) / mass
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, "centre of mass at the centre"
    assert prepared.inverted, "dark ink on light paper was detected"
    # Found at QUICK_SIDE (96 px for this 120 px canvas), the box is exact to a working pixel.
    assert np.abs(np.subtract(prepared.box, (50, 20, 8, 80))).max() <= 1, prepared.box
    assert {"grayscale", "cropped", "28x28 model input"} <= set(prepared.stages)


def test_polarity_does_not_change_the_result():
    canvas = _digit_canvas()
    dark_on_light = to_mnist(load_image(canvas)).digit
    light_on_dark = to_mnist(load_image(255 - canvas)).digit
    assert np.abs(dark_on_light - light_on_dark).max() < 0.05


def test_mnist_digits_survive_the_pipeline(mnist):
    """An MNIST digit is already in MNIST form: the pipeline should give it back nearly unchanged."""
    differences = []
    for image in mnist.test_images[:200]:
        again = to_mnist(load_image(image)).digit
        differences.append(np.abs(again - image / 255.0).mean())
    assert np.median(differences) < 0.05


def _phone_jpeg(path, scale: int = 20) -> np.ndarray:
    """The digit canvas enlarged to a phone photo's size (2400 x 1600) and saved as a JPEG."""
    canvas = np.kron(_digit_canvas(), np.ones((scale, scale), np.uint8))
    Image.fromarray(canvas).save(path, quality=90)
    return canvas


def test_a_big_jpeg_is_decoded_no_larger_than_the_caller_needs(tmp_path):
    path = tmp_path / "phone.jpg"
    canvas = _phone_jpeg(path)
    pixels, scale = decode_image(path, side=640)
    assert pixels.shape == (1200, 800) and scale == 0.5  # a quarter would be under 640: a half
    smaller = np.asarray(Image.fromarray(canvas).resize((800, 1200), Image.BOX)) / 255.0
    assert np.abs(pixels - smaller).mean() < 0.02
    assert decode_image(path, side=300)[0].shape == (300, 200)  # an eighth, the least a JPEG gives
    full, one = decode_image(path)
    assert full.shape == (2400, 1600) and one == 1.0
    assert np.array_equal(load_image(path), full)


def test_only_jpegs_twice_the_needed_size_are_reduced(tmp_path):
    png = tmp_path / "scan.png"
    Image.fromarray(np.kron(_digit_canvas(), np.ones((20, 20), np.uint8))).save(png)
    assert decode_image(png, side=640)[0].shape == (2400, 1600)  # PNG has no cheap reduced decode
    jpeg = tmp_path / "small.jpg"
    _phone_jpeg(jpeg, scale=5)  # 600 x 400: under twice 640
    assert decode_image(jpeg, side=640)[0].shape == (600, 400)


def test_a_reduced_decode_still_honours_exif_orientation(tmp_path):
    pixels, scale = decode_image(_sideways_jpeg(tmp_path / "phone.jpg", scale=20), side=640)
    assert pixels.shape == (1200, 800) and scale == 0.5, "displayed upright: portrait, halved"
    assert pixels[:, -190:-110].mean() < 0.2, "the top band is now on the right"
