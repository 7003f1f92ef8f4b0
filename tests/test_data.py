"""MNIST loading, verification, search order and downloading (against a real loopback server)."""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from inkdigits import data
from inkdigits.errors import DataError


def test_mnist_loads_verified_with_the_documented_shapes(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert set(np.unique(mnist.train_labels)) == set(range(10))
    # White ink on black: the border is background (0), the centre holds ink.
    assert mnist.test_images[:, 0, :].max() == 0
    assert mnist.test_images[:, 10:18, 10:18].mean() > 60
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_raw_and_gzip_idx_read_the_same(mnist_dir, tmp_path):
    gz = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    assert np.array_equal(data.read_idx(gz), data.read_idx(raw))
    assert np.array_equal(data.load_file(raw, "test-labels"), data.read_idx(gz))


def test_truncated_gzip_is_named_and_not_used(mnist_dir, tmp_path):
    damaged = tmp_path / "t10k-labels-idx1-ubyte.gz"
    whole = (mnist_dir / damaged.name).read_bytes()
    damaged.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=str(damaged)):
        data.load_file(damaged, "test-labels")


def test_modified_file_fails_its_checksum(mnist_dir, tmp_path):
    raw = bytearray(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one wrong label, same size: only the digest can tell
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="does not match the canonical"):
        data.load_file(path, "test-labels")


def test_truncated_raw_idx_is_reported():
    with pytest.raises(DataError, match="truncated"):
        data.parse_idx(b"\x00\x00\x08\x01\x00\x00\x00\x0a" + b"\x01" * 5, "labels")
    with pytest.raises(DataError, match="not an IDX"):
        data.parse_idx(b"PK\x03\x04", "zip")


def test_search_order_data_dir_then_env_then_cache(isolated_env, mnist_dir, monkeypatch, tmp_path):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", env_dir)
    assert data.locate("test-labels") is None
    monkeypatch.setenv("INKDIGITS_DATA", str(env_dir))
    assert data.locate("test-labels") == env_dir / "t10k-labels-idx1-ubyte.gz"
    assert data.locate("test-labels", mnist_dir) == mnist_dir / "t10k-labels-idx1-ubyte.gz"
    assert data.search_dirs(mnist_dir) == [mnist_dir, env_dir, data.cache_dir()]
    assert str(data.cache_dir()).startswith(str(tmp_path / "cache"))


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``root`` with HTTP Range support, like a real mirror."""

    root: Path
    log: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.log.append((self.path, self.headers.get("Range")))
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror_server(tmp_path):
    """Three mirrors on one loopback server: /missing (404s), /corrupt (wrong bytes), /good."""
    root = tmp_path / "www"
    (root / "good").mkdir(parents=True)
    (root / "corrupt").mkdir()
    log: list[tuple[str, str | None]] = []
    handler = type("Handler", (_MirrorHandler,), {"root": root, "log": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield root, base, log
    server.shutdown()
    server.server_close()


def test_download_skips_bad_mirrors_and_verifies(isolated_env, mnist_dir, mirror_server):
    root, base, log = mirror_server
    name = "t10k-labels-idx1-ubyte.gz"
    shutil.copy(mnist_dir / name, root / "good" / name)
    (root / "corrupt" / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 10004))
    mirrors = [f"{base}/missing/", f"{base}/corrupt/", f"{base}/good/"]
    path = data.download("test-labels", mirror_list=mirrors, retries=1, progress=False)
    assert path == data.cache_dir() / name
    assert data.load_file(path, "test-labels")[:3].tolist() == [7, 2, 1]
    assert [entry[0].split("/")[1] for entry in log] == ["missing", "corrupt", "good"]
    assert not list(data.cache_dir().glob("*.part")), "no partial file is left behind"


def test_download_resumes_a_partial_file(isolated_env, mnist_dir, mirror_server):
    root, base, log = mirror_server
    name = "t10k-labels-idx1-ubyte.gz"
    whole = (mnist_dir / name).read_bytes()
    (root / "good" / name).write_bytes(whole)
    data.cache_dir().mkdir(parents=True)
    (data.cache_dir() / f"{name}.part").write_bytes(whole[:1000])
    path = data.download("test-labels", mirror_list=[f"{base}/good/"], progress=False)
    assert log == [(f"/good/{name}", "bytes=1000-")]
    assert path.read_bytes() == whole


def test_load_mnist_downloads_into_the_cache_when_nothing_is_found(isolated_env, mnist_dir, mirror_server, monkeypatch):
    root, base, _ = mirror_server
    for spec in data.MNIST_FILES.values():
        shutil.copy(mnist_dir / f"{spec.name}.gz", root / "good")
    monkeypatch.setenv("INKDIGITS_MIRRORS", f"{base}/good/")
    loaded = data.load_mnist(progress=False)
    assert loaded.test_labels[:3].tolist() == [7, 2, 1]
    assert all(Path(p).parent == data.cache_dir() for p in loaded.paths.values())


def test_offline_gives_one_sentence_that_says_what_to_do(isolated_env, monkeypatch):
    # Port 9 on loopback (discard) has no listener here: connections are refused at once.
    monkeypatch.setenv("INKDIGITS_MIRRORS", "http://127.0.0.1:9/")
    with pytest.raises(DataError) as caught:
        data.load_mnist(progress=False)
    message = str(caught.value)
    assert "--data-dir" in message and "INKDIGITS_DATA" in message
    result = run_cli("data", "--download", env={"INKDIGITS_MIRRORS": "http://127.0.0.1:9/"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "--data-dir" in result.stderr


def test_data_command_reports_each_file(mnist_dir, isolated_env):
    ok = run_cli("data", "--data-dir", str(mnist_dir), "--json")
    assert ok.returncode == 0, ok.stderr
    rows = json.loads(ok.stdout)
    assert [r["file"] for r in rows] == [s.name for s in data.MNIST_FILES.values()]
    assert all(r["ok"] for r in rows)
    empty = run_cli("data", "--data-dir", str(isolated_env / "nothing"))
    assert empty.returncode == 1
    assert "not found" in empty.stdout and "--data-dir" in empty.stdout
