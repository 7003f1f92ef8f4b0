"""MNIST: find it, verify it, download it when it is nowhere to be found, read it.

Where the files are looked for, in this order: the folder passed as ``data_dir`` (the CLI's
``--data-dir``), the folder in ``INKDIGITS_DATA``, then the user cache
(``$XDG_CACHE_HOME/inkdigits/mnist``, by default ``~/.cache/inkdigits/mnist``). When a file
is in none of them it is downloaded into the cache from the public mirrors, tried in turn.

Every file is checked against the sha256 of its *decompressed* bytes, because mirrors
re-compress the same data with different gzip headers. A file that fails the check is named
and never used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .progress import Progress


@dataclass(frozen=True)
class IdxFile:
    name: str
    sha256: str
    size: int
    shape: tuple[int, ...]


MNIST_FILES: dict[str, IdxFile] = {
    "train-images": IdxFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47040016,
        (60000, 28, 28),
    ),
    "train-labels": IdxFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60008,
        (60000,),
    ),
    "test-images": IdxFile(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7840016,
        (10000, 28, 28),
    ),
    "test-labels": IdxFile(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10008,
        (10000,),
    ),
}

# Public mirrors of the canonical .gz files, most reliable first. INKDIGITS_MIRRORS
# (comma-separated base URLs) replaces the list, e.g. for a company mirror.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

OFFLINE_HINT = "pass --data-dir DIR or set INKDIGITS_DATA to a folder holding the four MNIST IDX files (.gz or raw)"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 20


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inkdigits" / "mnist"


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders looked in, in order of preference."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("INKDIGITS_DATA")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(cache_dir())
    return dirs


def mirrors() -> list[str]:
    env = os.environ.get("INKDIGITS_MIRRORS")
    if env:
        return [m.strip().rstrip("/") + "/" for m in env.split(",") if m.strip()]
    return list(DEFAULT_MIRRORS)


def _read_all(path: Path) -> bytes:
    """The decompressed bytes of an IDX file, gzip or raw, told apart by the gzip magic."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    try:
        if gzipped:
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path} is a damaged gzip file ({exc}); delete it to fetch it again.") from exc
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes (magic, dimensions, then the values) into an array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{source} is not an IDX file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source} is truncated: its header is incomplete.")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{source} is truncated or padded: {len(data)} bytes where its header promises {expected}.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any IDX file (gzip-compressed or raw) into a numpy array, without checksums."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    return parse_idx(_read_all(path), str(path))


def _candidates(folder: Path, spec: IdxFile) -> list[Path]:
    return [folder / f"{spec.name}.gz", folder / spec.name]


def locate(key: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first existing copy of one MNIST file in the search folders, or None."""
    spec = MNIST_FILES[key]
    for folder in search_dirs(data_dir):
        for path in _candidates(folder, spec):
            if path.is_file():
                return path
    return None


def verify_bytes(data: bytes, spec: IdxFile, source: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != spec.size or digest != spec.sha256:
        raise DataError(
            f"{source} does not match the canonical {spec.name} "
            f"({len(data)} bytes, sha256 {digest[:12]}…; expected {spec.size} bytes, "
            f"{spec.sha256[:12]}…); delete or replace it."
        )


def load_file(path: Path, key: str) -> np.ndarray:
    """Read one MNIST file, verifying its decompressed bytes before they are used."""
    spec = MNIST_FILES[key]
    data = _read_all(path)
    verify_bytes(data, spec, str(path))
    array = parse_idx(data, str(path))
    if array.shape != spec.shape:
        raise DataError(f"{path} has shape {array.shape}, expected {spec.shape}.")
    return array


@dataclass
class FileStatus:
    key: str
    name: str
    path: Path | None
    ok: bool
    problem: str | None = None


def status(data_dir: str | os.PathLike[str] | None = None) -> list[FileStatus]:
    """Where each MNIST file is and whether it verifies; downloads nothing."""
    rows = []
    for key, spec in MNIST_FILES.items():
        path = locate(key, data_dir)
        if path is None:
            rows.append(FileStatus(key, spec.name, None, False, "not found"))
            continue
        try:
            verify_bytes(_read_all(path), spec, str(path))
            rows.append(FileStatus(key, spec.name, path, True))
        except DataError as exc:
            rows.append(FileStatus(key, spec.name, path, False, str(exc)))
    return rows


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming from its current size when the server allows."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "inkdigits"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = have and response.status == 206
        mode = "ab" if resumed else "wb"
        start = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        with (
            open(part, mode) as out,
            Progress(
                total, f"download {part.name.removesuffix('.part')}", unit="B", enabled=None if progress else False
            ) as bar,
        ):
            bar.count = start
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def download(
    key: str,
    dest: Path | None = None,
    mirror_list: Sequence[str] | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Fetch one MNIST file into ``dest`` (the cache by default), verified, atomically.

    Each mirror is tried ``retries`` times with back-off; a partial download is kept as
    ``NAME.gz.part`` and resumed. Bytes that fail the checksum are discarded and the next
    mirror is tried.
    """
    spec = MNIST_FILES[key]
    dest = dest or cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / f"{spec.name}.gz"
    part = dest / f"{spec.name}.gz.part"
    problems: list[str] = []
    network_down = True
    for base in mirror_list or mirrors():
        url = base + spec.name + ".gz"
        for attempt in range(retries):
            try:
                _fetch_once(url, part, timeout, progress)
                network_down = False
                verify_bytes(_read_all(part), spec, url)
                os.replace(part, final)
                return final
            except DataError as exc:
                # Wrong or damaged bytes: resuming them cannot help, and neither can this mirror.
                part.unlink(missing_ok=True)
                problems.append(str(exc))
                break
            except urllib.error.HTTPError as exc:
                network_down = False
                problems.append(f"{url}: HTTP {exc.code}")
                if exc.code == 416:
                    part.unlink(missing_ok=True)
                if 400 <= exc.code < 500 and exc.code not in (408, 416, 429):
                    break
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                problems.append(f"{url}: {getattr(exc, 'reason', exc)}")
            time.sleep(min(2.0**attempt * 0.5, 5.0))
    if network_down:
        raise DataError(f"Could not download {spec.name}: no mirror is reachable (offline?); {OFFLINE_HINT}.")
    raise DataError(f"Could not download a valid {spec.name} from any mirror ({problems[-1]}); {OFFLINE_HINT}.")


@dataclass
class Mnist:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def digests(self) -> dict[str, str]:
        return {MNIST_FILES[key].name: MNIST_FILES[key].sha256 for key in MNIST_FILES}


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    progress: bool = True,
) -> Mnist:
    """All four MNIST arrays as uint8 (images white-on-black, N x 28 x 28), verified."""
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, str] = {}
    for key in MNIST_FILES:
        path = locate(key, data_dir)
        if path is None:
            if not allow_download:
                raise DataError(f"{MNIST_FILES[key].name} was not found; {OFFLINE_HINT}.")
            path = download(key, progress=progress)
        arrays[key] = load_file(path, key)
        paths[key] = str(path)
    return Mnist(arrays["train-images"], arrays["train-labels"], arrays["test-images"], arrays["test-labels"], paths)
