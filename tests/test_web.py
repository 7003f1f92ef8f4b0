"""The REST API of ``inkdigits serve``, against a real server on loopback."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, ROOT, png_bomb

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``inkdigits serve`` in a subprocess; stopped with SIGTERM, as a service manager would."""

    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inkdigits", "serve", "--port", str(self.port), *flags],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in 60 s")

    def stop(self) -> str:
        """SIGTERM; uvicorn finishes in-flight work, then re-raises the signal as it exits."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        log = self.process.stdout.read()
        assert code in (0, -signal.SIGTERM), f"exit {code}:\n{log[-2000:]}"
        assert "Application shutdown complete" in log, log[-2000:]
        return log


@pytest.fixture(scope="module")
def server():
    running = Server()
    yield running
    log = running.stop()
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_model_card_and_docs(server):
    health = httpx.get(f"{server.url}/api/health").json()
    assert health["status"] == "ok" and health["model"]
    card = httpx.get(f"{server.url}/api/model").json()
    assert card["metrics"]["test"]["accuracy"] > 0.99 and card["data"]["mnist_sha256"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/api/predict", "/api/read", "/api/health", "/api/model"} <= set(spec["paths"])


def test_predict_multipart_and_raw_body_match_the_cli(server):
    path = EXAMPLES / "4-red-marker.webp"
    multipart = httpx.post(f"{server.url}/api/predict", files={"image": (path.name, path.read_bytes())})
    raw = httpx.post(f"{server.url}/api/predict", content=path.read_bytes(), headers={"Content-Type": "image/webp"})
    assert multipart.status_code == raw.status_code == 200
    a, b = multipart.json(), raw.json()
    assert a["file"] == path.name and a["digit"] == b["digit"] == 4
    assert a["probabilities"] == b["probabilities"]
    cli = subprocess.run(
        [sys.executable, "-m", "inkdigits", "predict", "--json", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    from_cli = json.loads(cli.stdout)
    assert set(from_cli) == set(a)
    assert from_cli["digit"] == a["digit"] and from_cli["probabilities"] == a["probabilities"]


def test_read_answers_like_the_cli(server, mnist, tmp_path):
    from PIL import Image
    from test_read import written_number

    path = tmp_path / "number.png"
    Image.fromarray(written_number(mnist, [0, 1, 2, 3], gap=40, separator_after=1)).save(path)
    response = httpx.post(f"{server.url}/api/read", files={"image": (path.name, path.read_bytes())})
    assert response.status_code == 200
    cli = subprocess.run(
        [sys.executable, "-m", "inkdigits", "read", "--json", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    from_cli = json.loads(cli.stdout)
    answer = response.json()
    assert answer["file"] == path.name and answer["text"] == from_cli["text"] == "7210"
    assert answer["lines"] == from_cli["lines"] and answer["lines"][0]["text_full"] == "72.10"
    blank = httpx.post(f"{server.url}/api/read", content=b"", headers={"Content-Type": "image/png"})
    assert blank.status_code == 415


def test_model_input_is_included_on_request(server):
    response = httpx.post(
        f"{server.url}/api/predict?include=model_input", content=(EXAMPLES / "7-white-on-black.png").read_bytes()
    )
    pixels = np.array(response.json()["model_input"])
    assert pixels.shape == (28, 28) and pixels.max() > 200 and pixels[0].max() == 0


def test_blank_image_is_an_answer_not_an_error(server):
    response = httpx.post(f"{server.url}/api/predict", content=png_bytes(np.full((100, 100), 255, np.uint8)))
    assert response.status_code == 200
    assert "No digit found" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 415),
        (b"hello, this is text", 415),
        ((EXAMPLES / "3-transparent.png").read_bytes()[:800], 422),
    ],
)
def test_bad_bodies_get_json_4xx(server, body, status):
    response = httpx.post(f"{server.url}/api/predict", content=body)
    assert response.status_code == status
    assert response.json()["error"]


def test_decompression_bomb_is_413(server, tmp_path):
    response = httpx.post(f"{server.url}/api/predict", content=png_bomb(tmp_path / "bomb.png").read_bytes())
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_oversized_upload_is_refused_declared_or_chunked(server):
    big = os.urandom(11 * 1024 * 1024)
    declared = httpx.post(f"{server.url}/api/predict", content=big)
    assert declared.status_code == 413 and "10 MB" in declared.json()["error"]

    def chunks():
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    chunked = httpx.post(f"{server.url}/api/predict", content=chunks())
    assert chunked.status_code == 413
    form = httpx.post(f"{server.url}/api/predict", files={"image": ("big.png", big)})
    assert form.status_code == 413


def test_form_without_a_file_is_4xx(server):
    response = httpx.post(f"{server.url}/api/predict", files={"note": (None, "no file here")})
    assert 400 <= response.status_code < 500 and "no file" in response.json()["error"]


def test_server_still_answers_after_bad_input(server):
    for body in (b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, os.urandom(5000)):
        assert httpx.post(f"{server.url}/api/predict", content=body).status_code < 500
    ok = httpx.post(f"{server.url}/api/predict", content=(EXAMPLES / "0-paint-program.png").read_bytes())
    assert ok.status_code == 200 and ok.json()["digit"] == 0


def test_limits_are_flags(tmp_path):
    small = Server("--max-upload-mb", "0.01", "--max-pixels", "10000")
    try:
        too_big = httpx.post(f"{small.url}/api/predict", content=(EXAMPLES / "5-pencil-scan.bmp").read_bytes())
        assert too_big.status_code == 413
        pixels = httpx.post(f"{small.url}/api/predict", content=(EXAMPLES / "3-transparent.png").read_bytes())
        assert pixels.status_code == 413 and "limit" in pixels.json()["error"]
    finally:
        small.stop()


def test_page_and_static_files_are_served(server):
    page = httpx.get(server.url)
    assert page.status_code == 200 and "<canvas" in page.text and "cdn" not in page.text.lower()
    for name in ("app.js", "style.css", "favicon.svg"):
        assert httpx.get(f"{server.url}/static/{name}").status_code == 200
    assert Path(ROOT / "src/inkdigits/web/static/index.html").is_file()


def recognition_workers(pid: int) -> set[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
    return found


def test_a_killed_recognition_worker_is_replaced(tmp_path):
    """A worker lost to the OOM killer (SIGKILL) is replaced; requests keep being answered."""
    running = Server("--workers", "2")
    try:
        workers = recognition_workers(running.process.pid)
        assert len(workers) == 2
        os.kill(min(workers), signal.SIGKILL)
        image = (EXAMPLES / "0-paint-program.png").read_bytes()
        answers = [httpx.post(f"{running.url}/api/predict", content=image, timeout=30) for _ in range(20)]
        assert [a.status_code for a in answers] == [200] * 20 and {a.json()["digit"] for a in answers} == {0}
        deadline = time.monotonic() + 30
        while len(recognition_workers(running.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        now = recognition_workers(running.process.pid)
        assert len(now) == 2 and min(workers) not in now
    finally:
        running.stop()


def test_a_request_past_the_timeout_is_503_and_the_server_goes_on():
    running = Server("--timeout", "0.0001")
    try:
        late = httpx.post(f"{running.url}/api/predict", content=(EXAMPLES / "0-paint-program.png").read_bytes())
        assert late.status_code == 503 and late.headers["retry-after"] == "1"
        assert "longer than" in late.json()["error"]
        assert httpx.get(f"{running.url}/api/health").status_code == 200
    finally:
        running.stop()
