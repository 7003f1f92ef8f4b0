"""Shared fixtures: the real MNIST from ../shared/data/mnist, real images, a real CLI."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MNIST_DIR = Path(os.environ.get("INKDIGITS_TEST_DATA", ROOT.parent / "shared" / "data" / "mnist"))


def example_images() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.name[0].isdigit())


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.fail(f"MNIST is expected at {MNIST_DIR} (set INKDIGITS_TEST_DATA to point elsewhere)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from inkdigits.data import load_mnist

    return load_mnist(mnist_dir, allow_download=False, progress=False)


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No INKDIGITS_DATA and an empty cache, so only what a test passes is found."""
    monkeypatch.delenv("INKDIGITS_DATA", raising=False)
    monkeypatch.delenv("INKDIGITS_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real ``inkdigits`` command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "inkdigits", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=600,
    )


def png_bomb(path: Path, side: int = 30000) -> Path:
    """A valid 1-bit PNG of side x side pixels, about 100 KB on disk (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    """One real file for each kind of bad input a user can hand us."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.png"
    text.write_text("this is a shopping list, not a picture\n")
    good = (EXAMPLES / "3-transparent.png").read_bytes()
    truncated = folder / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    blank = folder / "blank.png"
    Image.fromarray(np.full((200, 200), 255, np.uint8)).save(blank)
    return {
        "missing": folder / "does-not-exist.png",
        "text": text,
        "truncated": truncated,
        "empty": empty,
        "blank": blank,
        "bomb": png_bomb(folder / "bomb.png"),
    }
