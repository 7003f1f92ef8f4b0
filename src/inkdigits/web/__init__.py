"""``inkdigits serve``: the drawing page and the REST API (the ``serve`` extra).

Recognition is mostly Python-driven NumPy and OpenCV work on small images, so threads in
one process queue behind each other's GIL; the server therefore runs one worker process per
core, each with its own warm model and one recognition thread, all accepting on one socket.
The socket is bound only after every worker has loaded and warmed its model, so the first
request to reach the port is answered at full speed.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import socket
import sys
from dataclasses import replace
from typing import Any

from ..errors import InkdigitsError
from .app import Limits, create_app, warm_up

__all__ = ["Limits", "create_app", "serve", "warm_up"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
    threshold: float | None = None,
) -> None:
    """Start ``limits.workers`` warm worker processes, then open the port; SIGTERM drains them."""
    try:
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InkdigitsError("The server needs the 'serve' extra: pip install 'inkdigits[serve]'.") from exc
    limits = limits or Limits()
    # Bound now, so a taken port fails at once; listening (the port opening) waits for warm workers.
    listener = _bind(host, port)
    settings = {"model": model, "limits": limits, "log_level": log_level, "threshold": threshold}
    context = multiprocessing.get_context("spawn")  # fork would copy onnxruntime's thread state
    outbox: Any = context.Queue()
    inboxes: list[Any] = [context.Queue() for _ in range(limits.workers)]
    workers = [
        context.Process(target=_worker, args=(settings, inbox, outbox), name=f"inkdigits-worker-{i}", daemon=True)
        for i, inbox in enumerate(inboxes)
    ]
    for worker in workers:
        worker.start()
    try:
        milliseconds = _wait_until_warm(outbox, workers)
        listener.listen(2048)
        for inbox in inboxes:
            inbox.put(listener)
        print(
            f"inkdigits: {len(workers)} worker(s) warm ({milliseconds:.1f} ms per prediction); "
            f"serving http://{host}:{port}/",
            file=sys.stderr,
            flush=True,
        )
        _supervise(workers)
    except KeyboardInterrupt:  # Ctrl+C while the workers were still loading: just stop
        pass
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join(15)
        listener.close()


def _wait_until_warm(outbox: Any, workers: list[Any]) -> float:
    """Block until every worker reports its model warm; a worker's load error is ours."""
    timings = []
    while len(timings) < len(workers):
        try:
            kind, value = outbox.get(timeout=0.5)
        except queue.Empty:
            failed = [w for w in workers if w.exitcode is not None]
            if failed:
                raise InkdigitsError(f"A server worker failed to start (exit code {failed[0].exitcode}).") from None
            continue
        if kind == "error":
            raise InkdigitsError(value)
        timings.append(value)
    return max(timings)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise InkdigitsError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
    return listener


def _supervise(workers: list[Any]) -> None:
    """Forward SIGTERM and SIGINT to the workers (each drains its requests) and wait for them."""

    def stop(_signum: int, _frame: Any) -> None:
        # SIGTERM either way: uvicorn drains on it, and unlike SIGINT it ends without a traceback.
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _worker(settings: dict[str, Any], inbox: Any, outbox: Any) -> None:
    """One process: load and warm the model, report, then serve on the socket it is sent."""
    import uvicorn

    from ..recognize import Recognizer

    # Our own process group: a terminal's Ctrl+C reaches the supervisor alone, which passes it
    # on once (a second SIGINT would make uvicorn drop in-flight requests).
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    limits: Limits = settings["limits"]
    try:
        # One onnxruntime thread: each worker already has a core to itself.
        recognizer = Recognizer.load(
            settings["model"], max_pixels=limits.max_pixels, threads=1, threshold=settings["threshold"]
        )
        app = create_app(recognizer, replace(limits, workers=1))
        # Warm on the thread that will serve: onnxruntime sets up per-thread state on first use.
        milliseconds = app.state.pool.submit(warm_up, recognizer).result()
    except InkdigitsError as exc:
        outbox.put(("error", str(exc)))
        return
    outbox.put(("ready", milliseconds))
    listener = inbox.get()
    config = uvicorn.Config(app, log_level=settings["log_level"], timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[listener])
