"""Make the example images in this folder: one digit per image, each in a different real-world style.

Digits are rendered from handwriting fonts (Debian: fonts-dkg-handwriting fonts-breip
fonts-rufscript fonts-humor-sans fonts-sjfonts fonts-bwht) or drawn as pen
strokes, then given the look of a paint program, a phone photo, a chalkboard or a scan.
None comes from MNIST. Re-run with ``python examples/make_examples.py``; it is deterministic.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
FONTS = Path("/usr/share/fonts")
rng = np.random.default_rng(2026)


def render(
    text: str, font: str, size: int, canvas: tuple[int, int], at: tuple[int, int], stroke: int = 0
) -> np.ndarray:
    """Ink coverage in [0, 1] (1 = ink) of ``text`` drawn with its ink box centred on ``at``."""
    image = Image.new("L", canvas, 0)
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(str(FONTS / font), size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face, stroke_width=stroke)
    origin = (at[0] - (left + right) / 2, at[1] - (top + bottom) / 2)
    draw.text(origin, text, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
    return np.asarray(image, dtype=np.float32) / 255.0


def strokes(paths: list[list[tuple[float, float]]], canvas: tuple[int, int], width: int) -> np.ndarray:
    """Ink coverage of polylines, drawn anti-aliased like a brush in a paint program."""
    image = np.zeros((canvas[1], canvas[0]), np.uint8)
    for path in paths:
        points = np.array(path, np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [points], False, 255, width, lineType=cv2.LINE_AA)
    return image.astype(np.float32) / 255.0


def on_paper(ink: np.ndarray, paper: tuple[float, float, float], color: tuple[float, float, float]) -> np.ndarray:
    """Composite ink of a colour onto paper of a colour (RGB in [0, 1])."""
    paper_rgb = np.ones((*ink.shape, 3), np.float32) * np.array(paper, np.float32)
    return paper_rgb * (1 - ink[..., None]) + np.array(color, np.float32) * ink[..., None]


def lighting(rgb: np.ndarray, strength: float) -> np.ndarray:
    """A soft left-to-right and top-to-bottom fall-off, as under a desk lamp."""
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gain = 1 - strength * (0.6 * xx / w + 0.4 * yy / h)
    return rgb * gain[..., None]


def noise(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return rgb + rng.normal(0, sigma, rgb.shape).astype(np.float32)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def save(name: str, rgb: np.ndarray, **options: object) -> None:
    Image.fromarray(to_uint8(rgb)).save(HERE / name, **options)
    print("wrote", name)


def ruled_lines(rgb: np.ndarray, spacing: int, color: tuple[float, float, float]) -> np.ndarray:
    out = rgb.copy()
    for y in range(spacing // 2, rgb.shape[0], spacing):
        out[y : y + 2] = out[y : y + 2] * 0.3 + np.array(color, np.float32) * 0.7
    return out


def main() -> None:
    # 0: a circle drawn with the mouse in a paint program, black brush on white.
    t = np.linspace(0, 2 * np.pi * 1.05, 80)
    loop = [(200 + 95 * np.sin(a) + 6 * np.sin(3 * a), 200 - 140 * np.cos(a)) for a in t]
    save("0-paint-program.png", on_paper(strokes([loop], (400, 400), 22), (1, 1, 1), (0, 0, 0)))

    # 1: chalk on a green board: light ink on a dark background.
    ink = render("1", "truetype/sjfonts/SteveHand.ttf", 260, (300, 360), (150, 180))
    ink = np.clip(ink * rng.uniform(0.6, 1.0, ink.shape), 0, 1)
    save("1-chalkboard.jpg", noise(on_paper(ink, (0.12, 0.25, 0.18), (0.92, 0.94, 0.9)), 0.03), quality=85)

    # 2: blue ballpoint on ruled paper, photographed under a lamp.
    ink = render("2", "truetype/fifthhorseman/dkg.ttf", 300, (480, 400), (250, 205))
    paper = ruled_lines(on_paper(ink, (0.96, 0.95, 0.9), (0.1, 0.2, 0.65)), 60, (0.55, 0.7, 0.9))
    save("2-ballpoint-photo.jpg", noise(lighting(paper, 0.35), 0.02), quality=80)

    # 3: exported from a drawing app: black ink on a transparent canvas (RGBA).
    ink = render("3", "truetype/breip/Breip.ttf", 300, (320, 380), (160, 190))
    rgba = np.dstack([np.zeros_like(ink)] * 3 + [ink])
    Image.fromarray(to_uint8(rgba), "RGBA").save(HERE / "3-transparent.png")
    print("wrote 3-transparent.png")

    # 4: red felt marker, off-centre on a wide sticky note.
    ink = render("4", "truetype/rufscript/Rufscript010.ttf", 220, (600, 360), (430, 180), stroke=3)
    save("4-red-marker.webp", noise(on_paper(ink, (1.0, 0.93, 0.55), (0.8, 0.1, 0.1)), 0.015), quality=90)

    # 5: soft pencil, grey and grainy, on off-white paper (a scanner's BMP).
    ink = render("5", "truetype/sjfonts/Delphine.ttf", 300, (320, 400), (160, 200))
    ink = ink * rng.uniform(0.45, 0.75, ink.shape)
    save("5-pencil-scan.bmp", noise(on_paper(ink, (0.93, 0.92, 0.88), (0.25, 0.25, 0.28)), 0.025))

    # 6: a 1-pixel pen on a large canvas, far from the centre.
    loop = [(660 + 32 * np.cos(a), 470 + 36 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 48)]
    stem = [(712, 322), (684, 336), (657, 368), (638, 410), (629, 452), (630, 478)]
    thin = strokes([loop, stem], (900, 600), 1)
    save("6-thin-pen.png", on_paper(thin, (1, 1, 1), (0.05, 0.05, 0.05)))

    # 7: white-on-black strokes like MNIST, with a European crossbar.
    seven = [[(110, 90), (290, 85), (230, 200), (170, 330)], [(160, 200), (270, 205)]]
    save("7-white-on-black.png", on_paper(strokes([*seven], (400, 400), 26), (0, 0, 0), (1, 1, 1)))

    # 8: a 16-bit grayscale scan (TIFF), dark ink.
    ink = render("8", "opentype/bwht/BecauseWeLearn-Regular.otf", 300, (320, 400), (160, 200), stroke=2)
    gray16 = ((1 - 0.85 * ink) * 60000 + rng.normal(0, 600, ink.shape)).clip(0, 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(gray16).save(buffer, format="TIFF")
    (HERE / "8-scan-16bit.tif").write_bytes(buffer.getvalue())
    print("wrote 8-scan-16bit.tif")

    # 9: a phone photo of a marker digit on a whiteboard with glare and shadow.
    ink = render("9", "truetype/humor-sans/Humor-Sans.ttf", 320, (420, 420), (210, 210), stroke=3)
    board = on_paper(ink, (0.9, 0.92, 0.95), (0.05, 0.1, 0.15))
    yy, xx = np.mgrid[0:420, 0:420]
    glare = 0.12 * np.exp(-(((xx - 330) ** 2 + (yy - 90) ** 2) / (2 * 70.0**2)))
    save("9-whiteboard-photo.jpg", noise(lighting(board, 0.3) + glare[..., None], 0.02), quality=75)

    # A cheque's date and amount (for `inkdigits read`): blue ballpoint, the amount in a
    # printed box, photographed under a lamp.
    size = (900, 420)
    date = render("24/11/2026", "truetype/fifthhorseman/dkg.ttf", 90, size, (620, 90))
    amount = render("1250.00", "truetype/fifthhorseman/dkg.ttf", 130, size, (450, 280))
    page = on_paper(np.maximum(date, amount), (0.97, 0.95, 0.88), (0.1, 0.15, 0.55))
    cv2.rectangle(page, (200, 190), (700, 370), (0.35, 0.35, 0.4), 3)
    save("number-cheque.jpg", noise(lighting(page, 0.3), 0.02), quality=85)

    # A form (for `inkdigits read`): printed labels and unit, a handwritten date and amount
    # beside them. The words are no number: read leaves them out.
    size = (1000, 400)
    printed = "truetype/dejavu/DejaVuSans.ttf"
    labels = np.maximum.reduce(
        [
            render("Date:", printed, 52, size, (110, 110)),
            render("Total:", printed, 52, size, (115, 290)),
            render("EUR", printed, 52, size, (720, 290)),
        ]
    )
    writing = np.maximum.reduce(
        [
            render("03.12.2026", "truetype/fifthhorseman/dkg.ttf", 100, size, (480, 100)),
            render("86,40", "truetype/fifthhorseman/dkg.ttf", 110, size, (400, 280)),
        ]
    )
    page = on_paper(writing, (0.96, 0.96, 0.93), (0.1, 0.15, 0.55))
    page = page * (1 - labels[..., None]) + np.array((0.15, 0.15, 0.15), np.float32) * labels[..., None]
    save("number-form.jpg", noise(lighting(page, 0.25), 0.02), quality=85)


if __name__ == "__main__":
    main()
