"""``inkdigits evaluate --dataset`` on every layout, with small sets made from MNIST test digits."""

from __future__ import annotations

import gzip
import json
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from inkdigits.datasets import load_labelled
from inkdigits.errors import DataError
from inkdigits.evaluate import evaluate_dataset

COUNT = 120


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test_images[:COUNT], mnist.test_labels[:COUNT]


def _as_photo(image: np.ndarray) -> np.ndarray:
    """A test digit as a user's picture: dark ink on light paper, 5x larger, off-centre."""
    big = cv2.resize(255 - image, (140, 140), interpolation=cv2.INTER_CUBIC)
    page = np.full((200, 240), 255, np.uint8)
    page[40:180, 70:210] = big
    return page


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_labels_csv_folder_of_photos(digits, tmp_path):
    images, labels = digits
    rows = ["file,label"]
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(_as_photo(image)).save(tmp_path / f"scan-{index}.jpg", quality=90)
        rows.append(f"scan-{index}.jpg,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    report = evaluate_dataset(tmp_path, out=tmp_path / "eval", progress=False)
    assert report.metrics["n"] == COUNT and report.metrics["unread"] == 0
    assert report.accuracy >= 0.95
    assert (tmp_path / "eval" / "errors.png").is_file() and (tmp_path / "eval" / "confusion.png").is_file()


def test_class_folders_with_an_unreadable_file(digits, tmp_path):
    images, labels = digits
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / str(label)).mkdir(exist_ok=True)
        Image.fromarray(_as_photo(image)).save(tmp_path / str(label) / f"{index}.png")
    (tmp_path / "3" / "broken.png").write_bytes(b"not a png")
    report = evaluate_dataset(tmp_path, progress=False)
    assert report.metrics["n"] == COUNT + 1 and report.metrics["unread"] == 1
    assert report.metrics["per_class"][3]["support"] == int((labels == 3).sum()) + 1
    assert report.accuracy >= 0.94


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_files_white_on_black(digits, tmp_path, suffix):
    images, labels = digits
    _write_idx(tmp_path / f"my-images-idx3-ubyte{suffix}", images)
    _write_idx(tmp_path / f"my-labels-idx1-ubyte{suffix}", labels)
    dataset = load_labelled(tmp_path)
    assert dataset.mnist_form is not None and np.array_equal(dataset.mnist_form, images)
    assert evaluate_dataset(tmp_path, progress=False).accuracy >= 0.97


def test_npz_dark_on_light_is_detected(digits, tmp_path):
    images, labels = digits
    path = tmp_path / "set.npz"
    np.savez(path, images=255 - images, labels=labels)
    dataset = load_labelled(path)
    assert np.array_equal(dataset.mnist_form, images), "inverted back to white on black"
    assert evaluate_dataset(path, progress=False).accuracy >= 0.97


def test_npz_of_another_size_goes_through_preprocessing(digits, tmp_path):
    images, labels = digits
    small = np.stack([cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA) for image in images])
    path = tmp_path / "usps-like.npz"
    np.savez(path, images=small, labels=labels)
    dataset = load_labelled(path)
    assert dataset.mnist_form is None and len(dataset.sources) == COUNT
    assert evaluate_dataset(path, progress=False).accuracy >= 0.9


def test_cli_reports_dataset_errors_in_one_sentence(tmp_path, digits):
    (tmp_path / "empty").mkdir()
    result = run_cli("evaluate", "--dataset", str(tmp_path / "empty"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no labels.csv" in result.stderr
    images, labels = digits
    np.savez(tmp_path / "ok.npz", images=images, labels=labels)
    result = run_cli("evaluate", "--dataset", str(tmp_path / "ok.npz"), "--json", "--out", str(tmp_path / "e"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["n"] == COUNT


def test_bad_labels_are_named():
    with pytest.raises(DataError, match="not a digit"):
        from inkdigits.datasets import from_arrays

        from_arrays(np.zeros((2, 28, 28), np.uint8), np.array([1, 12]), "npz", "x.npz")
