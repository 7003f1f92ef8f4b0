"""Labelled digit sets other than MNIST, for ``inkdigits evaluate --dataset PATH``.

Four layouts are understood:

- a folder of images with ``labels.csv`` (``file,label`` rows, a header line allowed);
- a folder with one sub-folder per class, ``0/`` ... ``9/``;
- IDX files: a folder holding one ``*images*`` and one ``*labels*`` IDX file (.gz or raw);
- an ``.npz`` file with ``images`` and ``labels`` arrays.

Image files go through the full preprocessing, like any photo. Arrays of 28x28 images are
taken to be in MNIST form already, with their polarity detected (white-on-black is used as
it is, dark-on-light is inverted); arrays of any other size are preprocessed image by image.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import read_idx
from .errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


@dataclass
class LabelledSet:
    """Either ``mnist_form`` (uint8 N x 28 x 28, white on black) or ``sources`` to preprocess."""

    labels: np.ndarray
    names: list[str]
    layout: str
    mnist_form: np.ndarray | None = None
    sources: list[object] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def _label(value: object, where: str) -> int:
    try:
        label = int(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: label {value!r} is not a digit 0-9.") from None
    if not 0 <= label <= 9:
        raise DataError(f"{where}: label {label} is not a digit 0-9.")
    return label


def white_on_black(images: np.ndarray) -> np.ndarray:
    """Invert the images whose border is brighter than their centre (dark ink on paper)."""
    border = np.concatenate([images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1).astype(
        np.float32
    )
    light = np.median(border, axis=1) > 127
    out = images.copy()
    out[light] = 255 - out[light]
    return out


def _as_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    values = images.astype(np.float32)
    if values.max(initial=0) <= 1.0:
        values = values * 255
    return np.clip(values, 0, 255).round().astype(np.uint8)


def from_arrays(images: np.ndarray, labels: np.ndarray, layout: str, origin: str) -> LabelledSet:
    if len(images) != len(labels):
        raise DataError(f"{origin} has {len(images)} images but {len(labels)} labels.")
    labels = np.array([_label(v, origin) for v in labels.ravel()], dtype=np.int64)
    names = [f"{origin}[{i}]" for i in range(len(labels))]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 3 and images.shape[1:] == (28, 28):
        return LabelledSet(labels, names, layout, mnist_form=white_on_black(_as_uint8(images)))
    if images.ndim not in (3, 4):
        raise DataError(f"{origin}: images must be N x H x W (or N x H x W x C), not {images.shape}.")
    return LabelledSet(labels, names, layout, sources=list(images))


def _from_csv(folder: Path) -> LabelledSet:
    names, labels = [], []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and row[0].strip().lower() in ("file", "filename", "path")):
                continue
            if len(row) < 2:
                raise DataError(f"{folder / 'labels.csv'} line {number}: expected 'file,label'.")
            names.append(row[0].strip())
            labels.append(_label(row[1], f"{folder / 'labels.csv'} line {number}"))
    paths = [folder / name for name in names]
    return LabelledSet(np.array(labels, np.int64), [str(p) for p in paths], "labels.csv", sources=list(paths))


def _from_class_folders(folder: Path) -> LabelledSet:
    paths, labels = [], []
    for digit in range(10):
        for path in sorted((folder / str(digit)).glob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(digit)
    return LabelledSet(np.array(labels, np.int64), [str(p) for p in paths], "class folders", sources=list(paths))


def _from_idx(folder: Path) -> LabelledSet:
    images = sorted(p for p in folder.iterdir() if "images" in p.name and "idx" in p.name)
    labels = sorted(p for p in folder.iterdir() if "labels" in p.name and "idx" in p.name)
    if len(images) != 1 or len(labels) != 1:
        raise DataError(f"{folder} must hold exactly one *images*idx* and one *labels*idx* file.")
    return from_arrays(read_idx(images[0]), read_idx(labels[0]), "IDX", images[0].name)


def _from_npz(path: Path) -> LabelledSet:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive or "labels" not in archive:
                raise DataError(f"{path} must hold 'images' and 'labels' arrays (it has {sorted(archive)}).")
            return from_arrays(archive["images"], archive["labels"], "npz", path.name)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}).") from exc


def load_labelled(path: str | os.PathLike[str]) -> LabelledSet:
    """Recognize the layout of ``path`` and load it (images are read lazily for folders)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Dataset {path} does not exist.")
    if path.is_file():
        if path.suffix == ".npz":
            return _from_npz(path)
        raise DataError(f"{path} is a file; a dataset is a folder (labels.csv, 0/-9/ or IDX files) or an .npz.")
    if (path / "labels.csv").is_file():
        dataset = _from_csv(path)
    elif any((path / str(d)).is_dir() for d in range(10)):
        dataset = _from_class_folders(path)
    elif any("idx" in p.name for p in path.iterdir()):
        dataset = _from_idx(path)
    else:
        raise DataError(f"{path} has no labels.csv, no 0/-9/ folders and no IDX files.")
    if not len(dataset):
        raise DataError(f"{path} holds no labelled images.")
    return dataset
