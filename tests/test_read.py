"""Reading whole numbers: inkdigits read / Recognizer.read on real MNIST test digits."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, png_bomb, run_cli
from inkdigits import Recognizer
from inkdigits.preprocess import ink_map
from inkdigits.segment import MIN_SKEW, skew_angle, text_height

FIXTURES = Path(__file__).parent / "fixtures"


def written_number(mnist, picks: list[int], gap: int = 30, separator_after: int | None = None) -> np.ndarray:
    """MNIST test digits written in a row on white paper, dark ink, a decimal point optional."""
    height = 80
    row = np.full((height + 80, 40 + len(picks) * (height + gap) + 40), 255, np.uint8)
    x = 40
    for index, pick in enumerate(picks):
        digit = cv2.resize(mnist.test_images[pick], (height, height), interpolation=cv2.INTER_CUBIC)
        row[40 : 40 + height, x : x + height] = np.minimum(row[40 : 40 + height, x : x + height], 255 - digit)
        x += height + gap
        if separator_after == index:
            cv2.circle(row, (x - gap // 2 - 6, 40 + height - 10), 5, 0, -1)
    return row


def test_read_finds_a_row_of_separate_digits_and_its_decimal_point(mnist, tmp_path):
    picks = [0, 1, 2, 3, 4]  # test digits 7, 2, 1, 0, 4
    image = written_number(mnist, picks, gap=40, separator_after=2)
    path = tmp_path / "amount.png"
    Image.fromarray(image).save(path)
    result = run_cli("read", "--json", str(path))
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    expected = "".join(str(mnist.test_labels[i]) for i in picks)
    assert reading["text"] == expected
    line = reading["lines"][0]
    assert line["text_full"] == expected[:3] + "." + expected[3:]
    assert len(line["digits"]) == 5
    boxes = [d["box"] for d in line["digits"]]
    assert all(a[0] < b[0] for a, b in itertools.pairwise(boxes))  # left to right
    assert all(35 <= box[1] <= 70 for box in boxes)  # in input pixels, within the written row


def test_two_rows_are_read_top_to_bottom(mnist):
    top = written_number(mnist, [5, 6, 7], gap=40)
    bottom = written_number(mnist, [8, 9], gap=40)
    page = np.full((top.shape[0] + bottom.shape[0], max(top.shape[1], bottom.shape[1])), 255, np.uint8)
    page[: top.shape[0], : top.shape[1]] = top
    page[top.shape[0] :, : bottom.shape[1]] = bottom
    reading = Recognizer.load().read(page)
    first = "".join(str(mnist.test_labels[i]) for i in [5, 6, 7])
    second = "".join(str(mnist.test_labels[i]) for i in [8, 9])
    assert reading.text == f"{first} {second}"
    assert [line.text for line in reading.lines] == [first, second]


def test_an_image_with_no_number_gives_empty_text_and_exit_1(tmp_path):
    path = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 400), 250, np.uint8)).save(path)
    result = run_cli("read", "--json", str(path))
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"file": str(path), "text": "", "lines": []}


def test_a_100_megapixel_image_is_refused_with_a_clear_message(tmp_path):
    path = png_bomb(tmp_path / "huge.png", side=10_000)
    result = run_cli("read", str(path))
    assert result.returncode == 2
    assert "100 MP" in result.stderr and "over the 40 MP limit" in result.stderr
    assert "Traceback" not in result.stderr


def test_touching_and_overlapping_digits_are_read_whole(mnist):
    """Digits whose strokes run into each other: the line reader reads the row as one picture."""
    recognizer = Recognizer.load()
    assert recognizer.reader is not None, "the bundled line reader is missing"
    picks = [10, 11, 12, 13, 14, 15]
    expected = "".join(str(mnist.test_labels[i]) for i in picks)
    for gap in (-8, -16):  # 80-pixel digits whose boxes overlap by 10% and 20%
        reading = recognizer.read(written_number(mnist, picks, gap=gap))
        assert reading.text == expected, f"gap {gap}: read {reading.text!r}"
        boxes = [d.box for d in reading.lines[0].digits]
        assert all(a[0] < b[0] for a, b in itertools.pairwise(boxes))


def test_segmentation_alone_still_reads_separate_digits(mnist):
    """Without a line reader (a custom setup), recognition-driven segmentation does the work."""
    recognizer = Recognizer.load()
    recognizer.reader = None
    picks = [20, 21, 22, 23]
    reading = recognizer.read(written_number(mnist, picks, gap=40))
    assert reading.text == "".join(str(mnist.test_labels[i]) for i in picks)


def test_save_plot_draws_the_reading(mnist, tmp_path):
    path = tmp_path / "number.png"
    Image.fromarray(written_number(mnist, [0, 1, 2], gap=40)).save(path)
    plot = tmp_path / "reading.png"
    result = run_cli("read", str(path), "--save-plot", str(plot))
    assert result.returncode == 0, result.stderr
    picture = np.asarray(Image.open(plot).convert("RGB")).astype(int)
    assert picture.shape[0] > 200 and picture.shape[1] > 300
    red = (picture[..., 0] > 180) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    assert red.sum() > 200  # the digit boxes are drawn


def test_a_file_that_is_no_line_reader_is_refused_with_a_clear_message(tmp_path):
    from inkdigits.recognize import bundled_model_path

    image = tmp_path / "number.png"
    Image.fromarray(np.full((100, 200), 255, np.uint8)).save(image)
    result = run_cli("read", str(image), "--reader", str(bundled_model_path()))  # a digit model
    assert result.returncode == 2
    assert "is not an inkdigits line reader" in result.stderr and "Traceback" not in result.stderr


def test_the_digit_model_overrules_the_reader_only_on_a_digit_both_see_in_the_same_place():
    from inkdigits.recognize import DigitReading, LineReading, _second_opinion

    def line(digits: list[tuple[int, float, int]], full: str) -> LineReading:
        readings = [DigitReading(d, c, (x, 0, 20, 30)) for d, c, x in digits]
        text = "".join(str(d) for d, _, _ in digits)
        return LineReading(text, full, (0, 0, 100, 30), float(np.prod([c for _, c, _ in digits])), readings)

    read = line([(1, 0.99, 0), (7, 0.60, 40)], "1.7")
    sure_one = line([(1, 0.98, 2), (1, 0.97, 38)], "1.1")
    merged = _second_opinion(read, sure_one)
    assert (merged.text, merged.text_full) == ("11", "1.1")
    assert merged.confidence == pytest.approx(0.99 * 0.97)
    # Less sure, elsewhere, or another count of digits: the reader's line stands.
    assert _second_opinion(read, line([(1, 0.99, 0), (1, 0.55, 40)], "11")) is read
    assert _second_opinion(read, line([(1, 0.99, 0), (1, 0.99, 70)], "11")) is read
    assert _second_opinion(read, line([(1, 0.99, 0)], "1")) is read
    assert _second_opinion(read, None) is read
    # Other counts (the reader sees a third digit the segmentation missed): each digit both
    # see over nearly the same span is still judged alone.
    three = line([(1, 0.99, 0), (7, 0.60, 40), (4, 0.90, 80)], "1.74")
    assert _second_opinion(three, sure_one).text == "114"
    wide = LineReading("1", "1", (0, 0, 100, 30), 0.99, [DigitReading(1, 0.99, (30, 0, 60, 30))])
    assert _second_opinion(three, wide) is three
    # The same count but not all in the same places: still digit by digit.
    shifted = line([(9, 0.98, 2), (1, 0.99, 70)], "9.1")
    assert _second_opinion(line([(4, 0.60, 0), (7, 0.90, 40)], "4.7"), shifted).text == "97"


def test_a_row_run_together_into_one_long_blob_is_still_a_row(mnist):
    """Overlapping digits in a fat pen make one blob five times wider than tall: neither a
    ruled line (too wide to be a character) nor a slash (long and thin to its moments)."""
    picks = [i for i in range(200) if mnist.test_labels[i] in (0, 2, 3, 5, 6, 8)][4:12]
    image = cv2.erode(written_number(mnist, picks, gap=-40), np.ones((5, 5), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats((image < 128).astype(np.uint8))
    blobs = stats[1:][stats[1:, cv2.CC_STAT_AREA] > 50]
    assert len(blobs) == 1 and blobs[0, 2] > 4 * blobs[0, 3]  # the case this test is about
    reading = Recognizer.load().read(image)
    expected = "".join(str(mnist.test_labels[i]) for i in picks)
    assert len(reading.lines) == 1 and len(reading.text) == len(expected)
    assert sum(a == b for a, b in zip(reading.text, expected, strict=True)) >= len(expected) - 1


def test_pencil_specks_around_a_row_stay_out_of_its_crop_and_a_decimal_point_stays_in(mnist):
    """Specks in a finer pen than the writing, above and below a row's gaps, are no part of it:
    taken in, they stretched the crop the readers see. A decimal point in the writing's pen is.
    (A speck right over a digit still joins that digit, as a detached stroke of it would.)"""
    from inkdigits.images import array_to_float
    from inkdigits.segment import find_rows

    image = written_number(mnist, [0, 1, 2, 3, 4], gap=40, separator_after=2)
    digits_top, digits_bottom = np.nonzero((image < 128).any(axis=1))[0][[0, -1]]
    for x in range(136, image.shape[1] - 120, 120):  # above and below each gap between digits
        for y in (digits_top - 14, digits_bottom + 5):
            cv2.line(image, (x, y), (x + 2, y + 9), 0, 1)
    page = find_rows(array_to_float(image))
    (row,) = page.rows
    crop, (_, top) = page.row_ink(row)
    assert top >= digits_top - 2 and top + crop.shape[0] <= digits_bottom + 3
    reading = Recognizer.load().read(image)
    expected = "".join(str(mnist.test_labels[i]) for i in range(5))
    assert reading.lines[0].text_full == expected[:3] + "." + expected[3:]


def test_a_row_run_together_among_specks_still_sets_the_text_height(mnist):
    """The one long blob, not the pencil specks around it, is the writing's height: else the
    specks are read as rows of ones."""
    picks = [i for i in range(200) if mnist.test_labels[i] in (0, 2, 3, 5, 6, 8)][4:12]
    image = cv2.erode(written_number(mnist, picks, gap=-40), np.ones((5, 5), np.uint8))
    rng = np.random.default_rng(0)
    for _ in range(12):
        x, y = int(rng.integers(0, image.shape[1])), int(rng.integers(0, image.shape[0]))
        cv2.line(image, (x, y), (x + int(rng.integers(-3, 4)), y + 9), 0, 2)
    reading = Recognizer.load().read(image)
    expected = "".join(str(mnist.test_labels[i]) for i in picks)
    assert len(reading.lines) == 1 and len(reading.text) == len(expected)
    assert sum(a == b for a, b in zip(reading.text, expected, strict=True)) >= len(expected) - 2


def test_a_page_half_in_deep_shadow_is_read_as_dark_ink_on_paper():
    """The shadow along the border spans the ink's own levels, so the border alone cannot
    say which way round the ink is; read as light ink, the lit paper would be all ink and
    the page would hold "no number" (a page of read_numbers.py, seed 0, image 268)."""
    reading = Recognizer.load().read(FIXTURES / "shadowed-rows.jpg")
    assert reading.lines[0].text_full == "50 63 01 11 87"
    # Its end lies in the deepest shadow, where the ink has a third of its contrast; "00"
    # there is still read as one 0.
    assert reading.lines[1].text.startswith("3464") and reading.lines[1].text.endswith("01")


def test_writing_that_runs_into_a_shadow_is_read_to_its_end(mnist):
    """A hand's shadow over the right half darkens the paper but not the ink (as on the
    benchmark's pages), so the ink there has a fraction of its contrast; those digits are
    measured against the strongest stroke near them and read, and no row comes from the
    shadow's edge."""
    picks = [3, 2, 1, 18, 4, 8, 11, 0]  # 0 1 2 3 4 5 6 7 in MNIST's test set
    ink = 1.0 - written_number(mnist, picks).astype(np.float32) / 255
    shade = np.ones(ink.shape[1], np.float32)
    shade[ink.shape[1] // 2 :] = 0.45
    shade = cv2.GaussianBlur(shade[None, :], (0, 0), 25)[0]
    page = 0.9 * shade[None, :] * (1 - ink) + 0.35 * ink
    reading = Recognizer.load().read((page * 255).astype(np.uint8))
    assert reading.text == "".join(str(mnist.test_labels[p]) for p in picks)


def test_a_shadow_edge_below_the_writing_is_not_read_as_a_row():
    """The edge of a hand's shadow under a written date comes out as a row of faint pieces;
    the reader's guesses there (26623, 1% sure) are dropped, the date's row is kept (a page
    of read_numbers.py, seed 0, image 71; its steep slashes are still read as ones)."""
    reading = Recognizer.load().read(FIXTURES / "date-beside-a-shadow.jpg")
    assert len(reading.lines) == 1
    assert reading.lines[0].text.startswith("04")


def _steps(*classes: tuple[int, float]) -> np.ndarray:
    """Per-step probabilities: each step's likeliest class and its probability, the rest shared."""
    out = np.zeros((len(classes), 15), np.float32)
    for step, (cls, p) in enumerate(classes):
        out[step] = (1 - p) / 14
        out[step, cls] = p
    return out


def test_readers_agree_on_the_reading_they_find_likeliest_together():
    """Two readers read "1" clearly; a third reads "11", only just preferring a second 1 over
    a blank. The ensemble keeps "1", though the third member alone would have said "11"."""
    from inkdigits.lines import agreed_reading, greedy_decode

    blank, one = 0, 2  # class 0 is CTC's blank, class d + 1 the digit d
    sure = _steps((blank, 0.9), (one, 0.95), (blank, 0.9), (blank, 0.9), (blank, 0.9))
    unsure = _steps((blank, 0.9), (one, 0.9), (blank, 0.9), (one, 0.45), (blank, 0.9))
    assert "".join(e.char for e in greedy_decode(unsure)) == "11"
    members = [unsure, sure, sure]
    assert "".join(e.char for e in greedy_decode(members[agreed_reading(members)])) == "1"
    assert agreed_reading([unsure]) == 0 and agreed_reading([sure, sure]) == 0


def _written(text: str, doubt: dict[int, tuple[str, float]]) -> np.ndarray:
    """Per-step probabilities of a reader reading ``text``, a blank between characters; at
    the characters in ``doubt`` it gives the other character ("": none) that share of its
    belief."""
    from inkdigits.lines import ALPHABET

    def number(char: str) -> int:
        return ALPHABET.index(char) + 1 if char else 0  # "": CTC's blank

    steps = []
    for index, char in enumerate(text):
        other, share = doubt.get(index, (char, 0.0))
        steps += [((0,), (0.99,)), ((number(char), number(other)), (0.99 - share, share))]
    steps.append(((0,), (0.99,)))
    out = np.full((len(steps), 15), 0.01 / 14, np.float32)
    for step, (classes, shares) in enumerate(steps):
        for cls, p in zip(classes, shares, strict=True):
            out[step, cls] += p - 0.01 / 14
    return out / out.sum(1, keepdims=True)


def test_a_slash_read_as_1_in_a_date_is_a_slash_and_a_lone_slash_a_1():
    from inkdigits.lines import as_written, greedy_decode

    def settled(text: str, doubt: dict[int, tuple[str, float]]) -> str:
        members = [_written(text, doubt)] * 3
        return "".join(e.char for e in as_written(members, greedy_decode(members[0])))

    # the second slash of a date, read as a 1 but with doubt: the date
    assert settled("19/0912000", {5: ("/", 0.3)}) == "19/09/2000"
    # a lone slash in an amount, with doubt: the 1 it was
    assert settled("36/74,64", {2: ("1", 0.3)}) == "36174,64"
    # where the readers are sure, they keep their reading: a real 1, a real slash
    assert settled("19/0912000", {5: ("/", 0.0005)}) == "19/0912000"
    assert settled("12/3", {}) == "12/3"
    # no date has a 13th month: the 1s of a code stay 1s
    assert settled("3111312024", {2: ("/", 0.3), 5: ("/", 0.3)}) == "3111312024"
    assert settled("3110112024", {2: ("/", 0.3), 5: ("/", 0.3)}) == "31/01/2024"


def test_a_1_written_into_its_neighbour_in_a_date_is_put_back():
    from inkdigits.lines import as_written, greedy_decode

    def settled(text: str, doubt: dict[int, tuple[str, float]]) -> list:
        members = [_written(text, doubt)] * 3
        return as_written(members, greedy_decode(members[0]))

    # the 1 of 2013 half seen: "24-12-203" is no date, "24-12-2013" is
    emitted = settled("24-12-2013", {8: ("", 0.6)})
    assert "".join(e.char for e in emitted) == "24-12-2013"
    zero, one, three = emitted[7:]
    assert zero.last < one.first <= one.last < three.first  # between its neighbours
    assert one.confidence < three.confidence
    # a month of 0 beside a padded day; a 1 seen by no reader stays unseen
    assert "".join(e.char for e in settled("04-10-2000", {3: ("", 0.6)})) == "04-10-2000"
    assert "".join(e.char for e in settled("24-12-2013", {8: ("", 0.9899)})) == "24-12-203"
    # a date written without padding is a date: nothing is added to "16-1-1990"
    assert "".join(e.char for e in settled("16-1-1990", {})) == "16-1-1990"


def test_a_date_misread_by_a_digit_or_a_stroke_read_twice_is_mended_where_the_readers_doubt():
    from inkdigits.lines import as_written, greedy_decode

    def settled(text: str, doubt: dict[int, tuple[str, float]]) -> list:
        members = [_written(text, doubt)] * 3
        return as_written(members, greedy_decode(members[0]))

    def text(emitted: list) -> str:
        return "".join(e.char for e in emitted)

    # no 72nd month: the 7 the readers half took for a 1 was one
    assert text(settled("03/72/2021", {3: ("1", 0.3)})) == "03/12/2021"
    # the 1 of "12" and of "1992" each read twice, one of the two readings with doubt
    emitted = settled("25-112-11992", {4: ("", 0.45), 7: ("", 0.45)})
    assert text(emitted) == "25-12-1992"
    assert all(a.last < b.first for a, b in itertools.pairwise(emitted))  # still in order
    # where the readers are sure of what they read, it stays, date or not
    assert text(settled("03/72/2021", {})) == "03/72/2021"
    assert text(settled("25-112-11992", {4: ("", 0.45)})) == "25-112-11992"
    # a phone number is no date to mend
    assert text(settled("123-456-7890", {1: ("1", 0.4)})) == "123-456-7890"


def test_photographed_training_rows_are_found_and_cropped_by_the_page_reader(mnist):
    """The reader's photographed rows go through ``find_rows`` as ``Recognizer.read`` does; if
    the page came in the wrong form (uint8) every one of them would be blank and dropped, and
    the reader would never see a photographed row, as once happened."""
    from inkdigits.synth import handwriting_fonts, number_line

    pools = [mnist.train_images[:2000][mnist.train_labels[:2000] == d] for d in range(10)]
    rng = np.random.default_rng(0)
    made = [number_line(pools, handwriting_fonts(), rng, photographed=True) for _ in range(20)]
    rows = [m for m in made if m is not None]
    assert len(rows) >= 16
    for ink, text in rows:
        assert ink.dtype == np.float32 and 0 < ink.max() <= 1 and text and " " not in text


def test_a_solid_smudge_of_shadow_at_the_pictures_edge_is_no_row():
    """Where a shadow's edge meets the picture's edge the paper estimate fails and leaves a
    solid patch below the writing; it was read as a second row, "6" (a page of
    read_numbers.py, seed 1, image 303). A pen stroke is never that thick for its height."""
    reading = Recognizer.load().read(FIXTURES / "number-above-a-shadow-smudge.jpg")
    assert len(reading.lines) == 1
    assert reading.lines[0].text.startswith("0997")


def test_heavy_touching_digits_are_not_erased_as_a_line():
    """Two rows in a heavy marker, digits touching (a page of read_numbers.py, seed 1, image
    122): through each row one unbroken band of ink runs longer than any digit, as a printed
    line does. Erased as a line, it cut the underlined row in two, and that row was lost."""
    reading = Recognizer.load().read(FIXTURES / "heavy-touching-digits-over-an-underline.jpg")
    assert [line.text for line in reading.lines] == ["6363412", "0171834"]


def test_heavy_overlapping_digits_half_in_a_shadow_set_the_text_height():
    """90036.91 in a heavy pen, digits overlapping, the last three in a shadow (a page of
    read_numbers.py, seed 2, image 290): the first five are one blob, the shadow breaks the
    rest into a dozen pieces, and the pieces set the text height at a ninth of the writing's.
    Every stroke was then a "line", and the page read 86366."""
    from inkdigits.images import array_to_float

    image = np.asarray(Image.open(FIXTURES / "overlapping-digits-half-in-a-shadow.jpg").convert("RGB"))
    ink = ink_map(array_to_float(image), 800)[0]
    _, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0.25).astype(np.uint8), connectivity=8)
    assert text_height(stats, labels) > 60  # the writing is about 88 pixels tall
    reading = Recognizer.load().read(image)
    assert len(reading.lines) == 1 and reading.lines[0].text_full.startswith("90036.")
    assert len(reading.text) == 7


def test_a_1_leaning_far_over_alone_is_read_not_dropped_as_a_slash():
    """A lone 1 in a form's box, written leaning as far as a slash (a page of read_numbers.py,
    seed 2, image 345): as a row of separators alone it had no digit to read and the page
    came out empty."""
    reading = Recognizer.load().read(FIXTURES / "a-1-leaning-far-over-in-a-box.jpg")
    assert reading.text == "1"


def test_a_box_just_taller_than_the_digits_is_not_read_as_ones(mnist):
    # Its top line runs through the digits' tops and is erased with the bottom one; its
    # sides are left, upright bars only a little taller than the digits.
    picks = [0, 1, 3, 4]  # test digits 7, 2, 0, 4
    page = written_number(mnist, picks, gap=30)
    ys, xs = np.nonzero(page < 128)
    cv2.rectangle(page, (int(xs.min()) - 15, int(ys.min()) + 3), (int(xs.max()) + 15, int(ys.max()) + 12), 60, 2)
    assert Recognizer.load().read(page).text == "".join(str(mnist.test_labels[i]) for i in picks)


@pytest.mark.parametrize("drop", [0, 6])
def test_a_number_in_a_box_is_read_without_the_boxs_sides(mnist, drop):
    # Four digits and two box sides: the sides, taller than the digits, must neither set the
    # text's height nor be read as ones, also when a tilted box's top and bottom lines
    # leave stubs on them.
    picks = [0, 1, 3, 4]  # test digits 7, 2, 0, 4: no 1 among them
    row = written_number(mnist, picks, gap=30)
    page = np.full((row.shape[0] + 80, row.shape[1] + 80), 255, np.uint8)
    page[40 : 40 + row.shape[0], 40:-40] = row
    h, w = page.shape
    corners = np.array([[50, 50 + drop], [w - 50, 50], [w - 50, h - 50 - drop], [50, h - 50]], np.int32)
    cv2.polylines(page, [corners], True, 60, 2)
    reading = Recognizer.load().read(page)
    assert reading.text == "".join(str(mnist.test_labels[i]) for i in picks)


def test_ones_with_long_flags_are_read_one_each(mnist):
    # A continental 1's up-stroke, nearly as long as its stem, is no 1 of its own; two
    # plain ones written close together stay two.
    page = np.full((260, 120 + 150 * 3), 240, np.uint8)
    for x in (140, 290, 440):
        stroke = np.array([[x - 80, 170], [x, 40], [x - 6, 200]], np.int32)
        cv2.polylines(page, [stroke], False, 30, 9, cv2.LINE_AA)
    recognizer = Recognizer.load()
    assert recognizer.read(page).text == "111"
    ones = [i for i in range(100) if mnist.test_labels[i] == 1][:2]
    assert recognizer.read(written_number(mnist, ones, gap=-20)).text == "11"


def test_a_tall_straight_one_is_not_taken_for_a_box_side():
    # The cheque's amount, in a box, starts with a 1 nearly twice as tall as its other
    # digits and as straight as a box's side, but drawn with the pen, not a printed line.
    reading = Recognizer.load().read(EXAMPLES / "number-cheque.jpg")
    assert reading.lines[-1].text_full == "1250.00"


def test_a_printed_box_as_tall_as_the_digits_is_not_read_as_ones(mnist):
    # One-pixel printed lines, far finer than the pen, spanning just the digits' height:
    # once its top and bottom are erased, the sides are no taller than the digits.
    picks = [5, 6, 7, 8, 9]
    page = written_number(mnist, picks, gap=30)
    ys, xs = np.nonzero(page < 128)
    cv2.rectangle(page, (int(xs.min()) - 12, int(ys.min())), (int(xs.max()) + 12, int(ys.max())), 90, 1)
    assert Recognizer.load().read(page).text == "".join(str(mnist.test_labels[i]) for i in picks)


def test_a_phone_sized_jpeg_is_read_alike_and_boxed_in_its_own_pixels(mnist, tmp_path):
    # A page of 4,000 pixels a side is decoded at half size (the page reader works at 1,600
    # at most): the same digits, boxes in the input's own pixels.
    image = written_number(mnist, [0, 1, 2, 3, 4], gap=40)
    big = cv2.resize(image, None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "page.jpg"
    Image.fromarray(big).save(path, quality=90)
    recognizer = Recognizer.load()
    from_array, from_jpeg = recognizer.read(big), recognizer.read(path)
    assert from_jpeg.text == from_array.text == "72104"
    boxes = [np.array(d.box) for line in (from_array, from_jpeg) for d in line.lines[0].digits]
    assert all(np.abs(a - b).max() <= 0.03 * big.shape[0] for a, b in zip(boxes[:5], boxes[5:], strict=True))


@pytest.mark.parametrize("angle", [-12, 8])
def test_a_row_photographed_at_a_tilt_is_levelled_and_boxed_where_its_digits_are(mnist, angle):
    # A note photographed crooked: unlevelled, a row tilted by 8 degrees falls apart into
    # bands and is read as scraps ("721 041"). The boxes stay in the photo's own pixels.
    picks = [0, 1, 2, 3, 4, 5]
    image = written_number(mnist, picks, gap=20)
    height, width = image.shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turn[1, 2] += 100  # all of the row on the picture
    tilted = cv2.warpAffine(image, turn, (width, height + 200), borderValue=255)
    reading = Recognizer.load().read(tilted)
    assert reading.text == "".join(str(mnist.test_labels[i]) for i in picks)
    centres = [(40 + index * 100 + 40, 80) for index in range(len(picks))]  # written_number's layout
    for digit, (x, y) in zip(reading.lines[0].digits, centres, strict=True):
        tx, ty = turn @ (x, y, 1.0)
        bx, by, bw, bh = digit.box
        assert bx <= tx <= bx + bw and by <= ty <= by + bh, (digit.box, (tx, ty))


def test_the_tilt_is_measured_on_rows_and_left_alone_where_it_cannot_be_told(mnist):
    def angle(image: np.ndarray) -> float:
        ink = ink_map(image, 800)[0]
        _, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0.25).astype(np.uint8), connectivity=8)
        return skew_angle(labels, stats, text_height(stats, labels))

    row = written_number(mnist, [0, 1, 2, 3, 4, 5], gap=20)
    height, width = row.shape
    for degrees in (-9.0, 6.0):
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        turn[1, 2] += 100  # all of the row on the picture
        # Within what counts as level: these six digits' own baseline leans a degree.
        assert abs(angle(cv2.warpAffine(row, turn, (width, height + 200), borderValue=255)) - degrees) <= MIN_SKEW
    assert angle(row) == 0.0  # level
    one = written_number(mnist, [0])  # a lone 7: its slant is no tilt
    turn = cv2.getRotationMatrix2D((one.shape[1] / 2, one.shape[0] / 2), 12, 1.0)
    assert angle(cv2.warpAffine(one, turn, one.shape[::-1], borderValue=255)) == 0.0


def _with_word(row: np.ndarray, word: str, size: int, after: bool = False) -> np.ndarray:
    """A written row with a printed word beside it, on one baseline (a form's label, a unit)."""
    import matplotlib
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "STIXGeneral.ttf"), size)
    width = int(font.getlength(word)) + 60
    page = Image.new("L", (row.shape[1] + width, row.shape[0]), 255)
    page.paste(Image.fromarray(row), (0 if after else width, 0))
    ImageDraw.Draw(page).text((row.shape[1] + 20 if after else 40, 120), word, fill=30, font=font, anchor="ls")
    return np.asarray(page)


@pytest.mark.parametrize(
    ("word", "after"),
    [("Total:", False), ("Amount", False), ("EUR", True), ("kg", True)],  # the g of kg hangs below the digits' line
)
def test_a_word_beside_the_number_is_left_out_of_the_reading(mnist, word, after):
    picks = [0, 1, 2, 3, 4]  # 7, 2, 1, 0, 4
    row = written_number(mnist, picks, gap=30)
    page = _with_word(row, word, 56, after)
    reading = Recognizer.load().read(page)
    assert reading.text == "72104"
    x, _, w, _ = reading.lines[0].box
    written = (0, row.shape[1]) if after else (page.shape[1] - row.shape[1], page.shape[1])
    assert written[0] + 30 <= x and x + w <= written[1]  # the line's box holds the digits, not the word


def test_a_unit_the_word_finder_reads_as_one_letter_is_left_out():
    """A printed bold "km" after a handwritten date (a page of read_numbers.py --words 1, seed
    1, image 69): the word finder sees one letter there, no run of two, and the readers read
    it as 66."""
    reading = Recognizer.load().read(FIXTURES / "unit-after-a-date.jpg")
    assert reading.text == "19071991"
    x, _, w, _ = reading.lines[0].box
    assert x + w < 370  # the date ends at x 337, "km" starts at 388


def test_a_page_of_words_alone_has_no_number(tmp_path):
    import matplotlib
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "STIXGeneralItalic.ttf"), 60)
    page = Image.new("L", (900, 300), 255)
    ImageDraw.Draw(page).text((40, 120), "Pay to the order of", fill=20, font=font, anchor="ls")
    ImageDraw.Draw(page).text((40, 240), "Name Surname", fill=20, font=font, anchor="ls")
    path = tmp_path / "words.png"
    page.save(path)
    result = run_cli("read", "--json", str(path))
    assert result.returncode == 1, result.stdout
    assert json.loads(result.stdout)["text"] == ""


def test_a_file_that_is_no_word_finder_is_refused_with_a_clear_message(tmp_path):
    from inkdigits.recognize import bundled_reader_path

    image = tmp_path / "number.png"
    Image.fromarray(np.full((100, 200), 255, np.uint8)).save(image)
    result = run_cli("read", str(image), "--word-finder", str(bundled_reader_path()))  # digits only
    assert result.returncode == 2
    assert "is not an inkdigits word finder" in result.stderr and "Traceback" not in result.stderr


def test_the_forms_amount_is_read_without_its_printed_label_and_unit():
    """examples/number-form.jpg: "Total:" 86,40 "EUR" in a row whose marks are mostly printed
    letters shorter than the writing (once dropped whole, as a row of specks and comma tails)."""
    reading = Recognizer.load().read(EXAMPLES / "number-form.jpg")
    assert len(reading.lines) == 2
    assert reading.lines[1].text == "8640" and reading.lines[1].text_full == "86,40"


def _dashed_line(page: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> None:
    """A printed line a pixel wide as a photo leaves it: dashes 7 pixels long, 4 apart."""
    (x0, y0), (x1, y1) = start, end
    length = max(abs(x1 - x0), abs(y1 - y0))
    for s in range(0, length, 11):
        a, b = s / length, min(length, s + 7) / length
        ends = [(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t)) for t in (a, b)]
        cv2.line(page, ends[0], ends[1], 90, 1)


def test_a_box_printed_in_a_line_broken_into_dashes_is_not_read(mnist):
    # A box's edge a pixel wide breaks into dashes when photographed; none of them is a long
    # line to erase, and they were read as ones and sevens (1527591 for 72104).
    ones = [i for i in range(100) if mnist.test_labels[i] == 1]
    picks = [0, 1, ones[0], 3, 4]
    page = written_number(mnist, picks, gap=30)
    ys, xs = np.nonzero(page < 128)
    x0, y0, x1, y1 = int(xs.min()) - 15, int(ys.min()) - 12, int(xs.max()) + 15, int(ys.max()) + 12
    for start, end in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        _dashed_line(page, start, end)
    recognizer = Recognizer.load()
    assert recognizer.read(page).text == "".join(str(mnist.test_labels[i]) for i in picks)
    # Ones standing just over a dashed underline are no box's sides, nor dashes of a line.
    picks = [ones[0], 1, ones[1], 4]
    page = written_number(mnist, picks, gap=30)
    ys, xs = np.nonzero(page < 128)
    _dashed_line(page, (int(xs.min()) - 10, int(ys.max()) + 3), (int(xs.max()) + 10, int(ys.max()) + 3))
    assert recognizer.read(page).text == "".join(str(mnist.test_labels[i]) for i in picks)


def test_a_digit_in_a_box_drawn_in_a_heavy_line_is_read_without_the_box(mnist):
    # A narrow 1 in a box drawn 7 pixels thick: the box's ink fills more than a fifth of its
    # bounds, which the thin-frame rule took for a blob of writing (read 17).
    one = next(i for i in range(100) if mnist.test_labels[i] == 1)
    page = written_number(mnist, [one])
    ys, xs = np.nonzero(page < 128)
    cv2.rectangle(page, (int(xs.min()) - 18, int(ys.min()) - 18), (int(xs.max()) + 18, int(ys.max()) + 18), 30, 7)
    assert Recognizer.load().read(page).text == "1"


def test_a_combs_teeth_are_not_read_as_ones():
    """19356.64 in a form's comb of boxes (a page of read_numbers.py, seed 3, image 97): the
    cells' walls hang from its top line as short stubs, one of them over the 1, and the
    page read 791356.64."""
    assert Recognizer.load().read(FIXTURES / "a-comb-of-boxes-with-teeth.jpg").text == "1935664"


def test_a_level_printed_line_keeps_the_page_from_being_turned():
    """38466 in a heavy marker in a comb (a page of read_numbers.py, seed 3, image 913): the
    digits' baseline wanders by enough to pass for a tilt of a few degrees, and turning the
    page by it turned the comb's lines off the level, where they were no longer found and
    erased (the page read 138466). The comb's level lines say the page is square."""
    from inkdigits.images import decode_image
    from inkdigits.segment import PAGE_SIDE, find_rows

    pixels, _ = decode_image(FIXTURES / "heavy-digits-in-a-level-comb.jpg", 10**8, PAGE_SIDE)
    assert find_rows(pixels).unlevel is None
    assert Recognizer.load().read(FIXTURES / "heavy-digits-in-a-level-comb.jpg").text == "38466"


def test_a_combs_teeth_are_found_when_its_lines_went_with_the_ruled_lines():
    """89101.51 in a comb of boxes as wide as the picture (a page of read_numbers.py, seed 3,
    image 192): its top and bottom lines span the picture and are erased with ruled lines
    before any form line is looked for, so its teeth stood on nothing and stayed, and the
    page read 51."""
    reading = Recognizer.load().read(FIXTURES / "a-comb-filling-the-picture.jpg")
    assert reading.text == "8910151"


def test_slashes_the_page_shows_are_read_as_a_dates_slashes():
    """23/09/2009 in a box, its slashes long straight strokes (a page of read_numbers.py,
    seed 3, image 965): the readers take them for 1s, more surely than a date's shape alone
    outweighs (2310912009); the segmentation finds them leaning as only slashes do."""
    reading = Recognizer.load().read(FIXTURES / "a-date-whose-slashes-look-like-ones.jpg")
    assert reading.text == "23092009"
    assert reading.lines[0].text_full == "23/09/2009"


def test_a_piece_of_a_printed_box_side_is_not_read_as_a_1():
    """8940393 in a box printed in a fine line (a page of read_numbers.py, seed 3, image
    291): all that the photo left of the box's right side is a straight piece a pixel wide
    and three quarters of the writing's height, and it was read as a last 1."""
    assert Recognizer.load().read(FIXTURES / "a-box-with-a-side-broken-off.jpg").text == "8940393"


def test_an_underline_a_little_off_the_level_is_erased():
    """0480 over an underline a pixel thin that drops two pixels along its length (a page of
    read_numbers.py, seed 3, image 921): it holds no straight run as long as a form line, and
    was read with the digits (04812)."""
    reading = Recognizer.load().read(FIXTURES / "an-underline-a-little-off-the-level.jpg")
    assert [line.text for line in reading.lines] == ["2959805", "0480"]


def test_a_row_of_touching_digits_in_a_fine_pen_alone_is_read():
    """44049 in a fine pen, its digits touching (a page of read_numbers.py, seed 3, image
    465): the one blob on the page is five times wider than tall and fills a fifth of its
    box, like no single character, so no text height was found and the page read empty."""
    assert Recognizer.load().read(FIXTURES / "one-blob-of-touching-digits-in-a-fine-pen.jpg").text == "44049"
