"""Load test for ``inkdigits serve`` on loopback: first answer, sustained load, bad-input storm.

It starts a real server (``python -m inkdigits serve``) on a free port and then:

1. First prediction: the time from the port accepting connections to the first
   ``/api/predict`` answer (the model must already be warm).
2. Load: ``--clients`` concurrent clients (default 64), each sending one request after the
   other (``--think`` seconds apart; default 0, a closed loop) for ``--seconds`` (default
   30) to ``--endpoint`` (default ``/api/predict``), with PNG and JPEG images from 28x28
   to 300x300 pixels (MNIST test digits drawn on paper).
   Half the requests are multipart forms, half raw bodies. Reported: requests/s, p50 / p90 /
   p99 latency, errors (anything but 200), and the server's resident memory before and after.
3. Bad-input storm: truncated, oversized, decompression-bomb, wrong-type, empty and garbage
   uploads from ``--clients`` clients for ``--storm-seconds``; reported per kind by status
   code. Then the server must still answer ``/api/health`` and a good image.

The clients speak HTTP/1.1 keep-alive over asyncio streams (no HTTP library), on uvloop where
it is installed, so the load generator costs as little CPU as it can on the same machine.
Counts and times are bounded.

    python benchmarks/load.py [--clients 64] [--seconds 30] [--storm-seconds 10] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inkdigits.data import load_mnist

MAX_CLIENTS = 256
MAX_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the server's workers)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child))
    return total


# ---- request bodies --------------------------------------------------------------------------


def good_images(count: int, data_dir: str | None) -> list[tuple[bytes, str]]:
    """Dark digits on light paper, 28 to 300 pixels a side, PNG or JPEG."""
    mnist = load_mnist(data_dir, progress=False)
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        side = int(rng.integers(28, 301))
        digit = Image.fromarray(255 - mnist.test_images[i]).resize((side, side), Image.BICUBIC)
        page = np.asarray(digit, np.float32) * rng.uniform(0.85, 1.0) + rng.normal(0, 3, (side, side))
        image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        kind = "png" if i % 2 else "jpeg"
        image.save(buffer, format=kind.upper(), **({"quality": 85} if kind == "jpeg" else {}))
        out.append((buffer.getvalue(), f"image/{kind}"))
    return out


def png_bomb(side: int = 20000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    body = zlib.compress(row * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def bad_inputs(sample_png: bytes) -> dict[str, tuple[bytes, str]]:
    rng = np.random.default_rng(1)
    return {
        "truncated": (sample_png[: len(sample_png) // 2], "image/png"),
        "oversized (12 MB)": (rng.integers(0, 256, 12 * 1024 * 1024, dtype=np.uint8).tobytes(), "image/png"),
        "pixel bomb (400 MP)": (png_bomb(), "image/png"),
        "wrong type (text)": (b"these are my notes, not an image\n" * 20, "text/plain"),
        "empty": (b"", "image/png"),
        "garbage bytes": (rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), "application/octet-stream"),
        "json": (b'{"image": "not here"}', "application/json"),
    }


def multipart(data: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "inkdigitsload7d1f"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="digit"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request_bytes(path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


# ---- a minimal HTTP/1.1 client ---------------------------------------------------------------


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; reconnect when the server closed the connection (after an error)."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


async def get(port: int, path: str) -> tuple[int, bytes]:
    connection = Connection(port)
    try:
        return await connection.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    finally:
        await connection.close()


async def run_clients(port: int, clients: int, seconds: float, requests: list[bytes], think: float = 0.0) -> dict:
    """Every client sends its next request ``think`` seconds after the last one was answered
    (0: at once, a closed loop that measures the server saturated)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        connection = Connection(port)
        turn = index
        while time.perf_counter() < deadline:
            raw = requests[turn % len(requests)]
            turn += clients
            started = time.perf_counter()
            try:
                status, _ = await connection.send(raw)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                failures.append(type(exc).__name__)
                await connection.close()
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if think:
                await asyncio.sleep(think * (0.5 + random.random()))  # jittered, so clients do not march in step
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    values = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(values, 50)) if len(values) else float("nan"),
        "p90_ms": float(np.percentile(values, 90)) if len(values) else float("nan"),
        "p99_ms": float(np.percentile(values, 99)) if len(values) else float("nan"),
        "statuses": statuses,
        "connection_failures": len(failures),
    }


# ---- phases ----------------------------------------------------------------------------------


def start_server(port: int, model: str | None, log: Path) -> tuple[subprocess.Popen, float]:
    """Start ``inkdigits serve``; return it and the time at which its port accepted a connection."""
    command = [sys.executable, "-m", "inkdigits", "serve", "--port", str(port), *(["--model", model] if model else [])]
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    limit = time.monotonic() + 60
    while time.monotonic() < limit:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return server, time.perf_counter()
        except OSError:
            time.sleep(0.005)
    server.kill()
    raise SystemExit("the server did not open its port within 60 s")


async def main_async(args: argparse.Namespace) -> dict:
    port = free_port()
    log = Path(args.log)
    images = good_images(200, args.data_dir)
    server, opened = start_server(port, args.model, log)
    try:
        first_raw = request_bytes("/api/predict", images[1][0], images[1][1])
        connection = Connection(port)
        status, body = await connection.send(first_raw)
        first_ms = (time.perf_counter() - opened) * 1000
        await connection.close()
        print(f"first prediction after the port opened: {first_ms:.1f} ms (status {status}; target <= 300 ms)")
        report: dict = {"first_prediction_ms": first_ms, "first_status": status}

        requests = []
        for i, (data, content_type) in enumerate(images):
            body_bytes, ctype = multipart(data, content_type) if i % 2 else (data, content_type)
            requests.append(request_bytes(args.endpoint, body_bytes, ctype))
        await run_clients(port, min(8, args.clients), 2.0, requests)  # warm the connections and caches
        before = rss_mb(server.pid)
        load = await run_clients(port, args.clients, args.seconds, requests, args.think)
        after = rss_mb(server.pid)
        errors = sum(n for s, n in load["statuses"].items() if s != 200) + load["connection_failures"]
        print(
            f"load: {args.clients} clients x {args.seconds:g} s on {args.endpoint}, "
            f"{f'{args.think:g} s between requests' if args.think else 'closed loop'}: {load['requests']} requests, "
            f"{load['rps']:.0f} req/s; latency p50 {load['p50_ms']:.1f} ms, p90 {load['p90_ms']:.1f} ms, "
            f"p99 {load['p99_ms']:.1f} ms; errors {errors}; statuses {load['statuses']}"
        )
        print(
            f"server memory: {before:.1f} MB before, {after:.1f} MB after "
            f"(growth {after - before:+.1f} MB; target <= 50 MB)"
        )
        report.update({"load": load, "errors": errors, "rss_before_mb": before, "rss_after_mb": after})

        storm = {}
        for kind, (data, content_type) in bad_inputs(images[1][0]).items():
            raw = request_bytes(args.endpoint, data, content_type)
            result = await run_clients(port, args.clients, args.storm_seconds / 7, [raw])
            storm[kind] = result["statuses"] | (
                {"dropped": result["connection_failures"]} if result["connection_failures"] else {}
            )
        server_errors = sum(
            n for counts in storm.values() for s, n in counts.items() if isinstance(s, int) and s >= 500
        )
        print(f"bad-input storm ({args.clients} clients, {args.storm_seconds:g} s): responses by status per kind")
        for kind, counts in storm.items():
            print(f"  {kind:<20} {counts}")
        health, _ = await get(port, "/api/health")
        good, body = await Connection(port).send(first_raw)
        alive = health == 200 and good == 200 and "digit" in json.loads(body)
        print(f"5xx responses in the storm: {server_errors}; afterwards health {health}, predict {good}: "
              f"{'still answering' if alive else 'NOT ANSWERING'}")  # fmt: skip
        report.update({"storm": {k: {str(s): n for s, n in v.items()} for k, v in storm.items()},
                       "storm_5xx": server_errors, "alive_after_storm": alive})  # fmt: skip
        return report
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


def run_event_loop(coroutine: Any) -> Any:
    """Run on uvloop where it is installed (the serve extra brings it): the clients then take
    less of the CPU that the server shares with them."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--storm-seconds", type=float, default=10)
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds each client waits between requests, jittered (default 0: a closed loop, the server saturated)",
    )
    parser.add_argument("--endpoint", default="/api/predict")
    parser.add_argument("--model", help="ONNX model or run folder (default: bundled)")
    parser.add_argument("--data-dir")
    parser.add_argument("--log", default=os.devnull, help="file for the server's own output")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--clients must be 1..{MAX_CLIENTS} and --seconds 0..{MAX_SECONDS}")
    report = run_event_loop(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
