"""Where the server's recognition runs: threads in this process, or a pool of processes.

Both take a request's image bytes and answer with a status and a JSON body through
``answer``, the one function that turns a recognition (or the error a client caused) into
the HTTP answer, so a thread and a worker process answer alike.

``ProcessBackend`` is what ``inkdigits serve`` uses. Recognition is mostly Python-driven
NumPy and OpenCV work on small images, so threads in one process queue for the GIL; worker
processes each hold a warm model, and the HTTP process keeps one first-come queue of
requests that it hands, over a pipe, to the least busy worker. So no worker idles while
another has a backlog (with every worker accepting on one socket, the kernel hands out
connections unevenly and a client on the busier worker waits longer), and the event loop
that speaks HTTP never waits for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from ..errors import ImageTooLargeError, InkdigitsError, NoDigitError, NotAnImageError
from ..recognize import Recognizer

Answer = tuple[int, dict[str, Any]]
Rendered = tuple[int, bytes]

PREDICT = "predict"
READ = "read"
# A worker whose parent is gone (killed outright) notices within this many seconds and exits.
ORPHAN_CHECK_SECONDS = 1.0
# Jobs a worker holds at once: the one it works on and the next. Under load, a worker that
# held only one job sat idle for about a sixth of the time between sending an answer and
# the HTTP process (busy on the same cores) sending it the next job.
WORKER_DEPTH = 2
# The next job waits in the pipe's buffer while the worker is busy, so it is sent early only
# when it fits with room to spare: a larger one would block the event loop until the worker
# read it. Most uploads (a canvas, a cropped digit) are far smaller than this.
PIPE_BUFFER_BYTES = 256 * 1024


def error_status(error: InkdigitsError) -> int:
    """413 for too large, 415 for what is not an image at all, 422 for a damaged image."""
    if isinstance(error, ImageTooLargeError):
        return 413
    if isinstance(error, NotAnImageError):
        return 415
    return 422


def answer(recognizer: Recognizer, task: str, data: bytes, name: str, include_input: bool = False) -> Answer:
    """One request's answer: 200 with the reading (or, for no digit, an ``error``), else a 4xx."""
    try:
        if task == READ:
            return 200, {"file": name, **recognizer.read(data).to_dict()}
        prediction = recognizer.predict(data)
        payload: dict[str, Any] = {"file": name, **prediction.to_dict()}
        if include_input and prediction.model_input is not None:
            payload["model_input"] = np.round(prediction.model_input * 255).astype(int).tolist()
        return 200, payload
    except NoDigitError as exc:
        return 200, {"file": name, "error": str(exc)}
    except InkdigitsError as exc:
        return error_status(exc), {"error": str(exc)}


def warm_up(recognizer: Recognizer, rounds: int = 3) -> float:
    """Run a few predictions so the first real request pays no start-up cost; return ms."""
    canvas = np.full((64, 64), 255, np.uint8)  # small enough for any sensible --max-pixels
    canvas[12:52, 29:35] = 0
    started = time.perf_counter()
    for _ in range(rounds):
        recognizer.predict(canvas)
    return (time.perf_counter() - started) * 1000 / rounds


def render(status: int, payload: dict[str, Any]) -> Rendered:
    """The answer as the response body's JSON bytes (compact, UTF-8, as Starlette writes it)."""
    return status, json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def timed_out(seconds: float) -> Rendered:
    return render(503, {"error": f"Recognition took longer than {seconds:g} s; try a smaller image."})


class Backend(Protocol):
    card: dict[str, Any]

    def start(self) -> None: ...

    async def run(self, task: str, data: bytes, name: str, include_input: bool = False) -> Rendered:
        """The answer's status and JSON body."""
        ...

    def close(self) -> None: ...


class ThreadBackend:
    """Recognition in ``workers`` threads of this process, off the event loop."""

    def __init__(self, recognizer: Recognizer, workers: int, timeout_seconds: float) -> None:
        self.recognizer, self.timeout_seconds = recognizer, timeout_seconds
        self.card = recognizer.card
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recognize")

    async def run(self, task: str, data: bytes, name: str, include_input: bool = False) -> Rendered:
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self.pool, self._answer, task, data, name, include_input)
        try:
            return await asyncio.wait_for(job, self.timeout_seconds)
        except TimeoutError:
            return timed_out(self.timeout_seconds)

    def start(self) -> None:
        pass

    def _answer(self, task: str, data: bytes, name: str, include_input: bool) -> Rendered:
        return render(*answer(self.recognizer, task, data, name, include_input))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class ProcessBackend:
    """Recognition in ``workers`` processes, each with its own warm model and a pipe to us.

    A request goes to the worker holding the fewest jobs (each holds at most WORKER_DEPTH,
    answered in order), or waits in one first-come queue until a worker finishes one. The
    pipes are read by the event loop itself (no threads here), and a worker sends its answer
    as finished JSON, so this process only moves bytes. A worker that dies (killed, out of
    memory) is replaced; the requests it held are answered with a 500, since that failure is
    the server's, not the client's.
    """

    def __init__(self, load: dict[str, Any], workers: int, timeout_seconds: float) -> None:
        self.load, self.timeout_seconds = load, timeout_seconds
        self.context = multiprocessing.get_context("spawn")  # fork would copy onnxruntime's thread state
        self.workers: list[_Worker] = [self._start(index) for index in range(workers)]
        self.card: dict[str, Any] = {}
        self.waiting: deque[tuple[tuple[Any, ...], asyncio.Future[Rendered]]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def _start(self, index: int) -> _Worker:
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_worker,
            args=(self.load, theirs, os.getpid()),
            name=f"inkdigits-recognizer-{index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        return _Worker(process, ours, early_bytes=_enlarge_send_buffer(ours) // 4)

    def wait_until_warm(self) -> float:
        """Block until every worker has loaded and warmed its model; return ms per prediction.

        A worker's load error (a missing or corrupt model) is raised here, before the port opens.
        """
        timings = []
        for worker in self.workers:
            while not worker.pipe.poll(0.05):
                if worker.process.exitcode is not None:
                    raise InkdigitsError(f"A recognition worker failed to start (exit code {worker.process.exitcode}).")
            message = worker.pipe.recv()
            if message[0] == "error":
                raise InkdigitsError(message[1])
            timings.append(message[1])
            self.card = message[2]
            worker.ready = True
        return max(timings)

    def start(self) -> None:
        """Watch the workers' pipes from the running event loop (the app's startup calls this)."""
        self.loop = asyncio.get_running_loop()
        for index in range(len(self.workers)):
            self._listen(index)

    async def run(self, task: str, data: bytes, name: str, include_input: bool = False) -> Rendered:
        if self.loop is None:
            self.start()
        assert self.loop is not None
        future: asyncio.Future[Rendered] = self.loop.create_future()
        job = (task, data, name, include_input)
        index = self._least_busy(len(data))
        if index is None:
            self.waiting.append((job, future))
        else:
            self._send(index, job, future)
        # On timeout the request is answered 503: a worker that holds the job finishes it (its
        # answer is dropped), and a job still waiting in the queue is never sent.
        expiry = self.loop.call_later(self.timeout_seconds, _expire, future, self.timeout_seconds)
        try:
            return await future
        finally:
            expiry.cancel()

    def _least_busy(self, size: int) -> int | None:
        """The ready worker with the fewest jobs, if one can take a job of ``size`` bytes."""
        best = None
        for index, worker in enumerate(self.workers):
            if worker.ready and self._can_take(worker, size):
                if worker.process.exitcode is not None:
                    self._replace(index)  # died idle: its pipe's end may not have been seen yet
                elif best is None or len(worker.jobs) < len(self.workers[best].jobs):
                    best = index
        return best

    def _listen(self, index: int) -> None:
        assert self.loop is not None
        self.loop.add_reader(self.workers[index].pipe.fileno(), self._on_message, index)

    def _send(self, index: int, job: tuple[Any, ...], future: asyncio.Future[Rendered]) -> None:
        worker = self.workers[index]
        worker.jobs.append(future)
        try:
            worker.pipe.send(job)
        except OSError:  # it died just now: the job is answered as lost and the worker replaced
            self._replace(index)

    def _on_message(self, index: int) -> None:
        worker = self.workers[index]
        try:
            message = worker.pipe.recv()
        except (EOFError, OSError):
            self._replace(index)
            return
        if message[0] == "done":
            future = worker.jobs.popleft()
            if not future.done():
                future.set_result((message[1], message[2]))
        elif message[0] == "ready":  # a replacement has loaded its model
            worker.ready = True
        else:  # a replacement could not load the model: stay without it
            assert self.loop is not None
            self.loop.remove_reader(worker.pipe.fileno())
            return
        self._feed(index)

    @staticmethod
    def _can_take(worker: _Worker, size: int) -> bool:
        if not worker.jobs:
            return True
        return len(worker.jobs) < WORKER_DEPTH and size <= worker.early_bytes

    def _feed(self, index: int) -> None:
        """Send the worker queued jobs, first come first, while it can take them."""
        worker = self.workers[index]
        while self.waiting and self.workers[index] is worker and self._can_take(worker, self._next_size()):
            job, future = self.waiting.popleft()
            if not future.done():  # a request that timed out while waiting is dropped
                self._send(index, job, future)

    def _next_size(self) -> int:
        """The image size of the first queued job."""
        (_, data, *_), _ = self.waiting[0]
        return len(data)

    def _replace(self, index: int) -> None:
        assert self.loop is not None
        worker = self.workers[index]
        self.loop.remove_reader(worker.pipe.fileno())
        worker.pipe.close()
        worker.process.join(1)
        message = f"The recognition worker stopped (exit code {worker.process.exitcode}); please retry."
        for future in worker.jobs:
            if not future.done():
                future.set_result(render(500, {"error": message}))
        if self.closed:
            return
        self.workers[index] = self._start(index)  # it takes jobs once it reports ready
        self._listen(index)

    def close(self) -> None:
        """Stop the workers once they finish what they hold (a second call does nothing)."""
        if self.closed:
            return
        self.closed = True
        for worker in self.workers:
            if self.loop is not None:
                with contextlib.suppress(ValueError, OSError):
                    self.loop.remove_reader(worker.pipe.fileno())
            with contextlib.suppress(OSError):
                worker.pipe.send(None)
        deadline = time.monotonic() + 10
        for worker in self.workers:
            worker.process.join(max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(5)
            worker.pipe.close()


@dataclass
class _Worker:
    process: Any
    pipe: Any
    early_bytes: int = 0  # the largest image sent while the worker still works on another
    ready: bool = False
    jobs: deque[asyncio.Future[Rendered]] = field(default_factory=deque)  # sent, in order


def _enlarge_send_buffer(pipe: Any) -> int:
    """Ask for PIPE_BUFFER_BYTES of send buffer on our end of a worker's pipe; return what the
    system granted (0 where the pipe is no socket)."""
    try:
        sock = socket.socket(fileno=pipe.fileno())
    except OSError:
        return 0
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_BUFFER_BYTES)
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    except OSError:
        return 0
    finally:
        sock.detach()  # the pipe still owns the descriptor


def _expire(future: asyncio.Future[Rendered], seconds: float) -> None:
    if not future.done():
        future.set_result(timed_out(seconds))


def _worker(load: dict[str, Any], pipe: Any, parent: int) -> None:
    """One recognition process: load and warm the model, report, then answer jobs until told."""
    # Our own process group: a terminal's Ctrl+C reaches the server alone, which stops us once
    # the requests in flight are answered.
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    # The HTTP process must get a core the moment a request or an answer arrives: when the
    # workers saturate the machine, it would otherwise wait out their time slices.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)
    # One worker per core already: OpenCV's own threads would only take the other workers'
    # cores (its connected components cost 1.6 times the CPU with two threads).
    cv2.setNumThreads(1)
    try:
        recognizer = Recognizer.load(
            load["model"], max_pixels=load["max_pixels"], threads=1, threshold=load["threshold"]
        )
        milliseconds = warm_up(recognizer)
    except InkdigitsError as exc:
        pipe.send(("error", str(exc)))
        return
    pipe.send(("ready", milliseconds, recognizer.card))
    serve_jobs(recognizer, pipe, lambda: os.getppid() != parent)


def serve_jobs(recognizer: Recognizer, pipe: Any, orphaned: Callable[[], bool]) -> None:
    """Answer the jobs that arrive on ``pipe`` until a ``None``, a closed pipe or our parent's end."""
    while True:
        if not pipe.poll(ORPHAN_CHECK_SECONDS):
            if orphaned():
                return
            continue
        try:
            job = pipe.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            status, body = render(*answer(recognizer, *job))
        except Exception as exc:  # a bug, not the client's doing: answer 500 and stay up
            status, body = render(500, {"error": f"Recognition failed: {type(exc).__name__}: {exc}"})
        pipe.send(("done", status, body))
