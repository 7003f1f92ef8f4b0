"""Where the server's recognition runs: threads in this process, or a pool of processes.

Both take a request's image bytes and answer with a status and a JSON body through
``answer``, the one function that turns a recognition (or the error a client caused) into
the HTTP answer, so a thread and a worker process answer alike.

``ProcessBackend`` is what ``inkdigits serve`` uses. Recognition is mostly Python-driven
NumPy and OpenCV work on small images, so threads in one process queue for the GIL; worker
processes each hold a warm model, and the HTTP process keeps one first-come queue of
requests that it hands, over a pipe, to whichever worker is free. So no worker idles while
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
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ImageTooLargeError, InkdigitsError, NoDigitError, NotAnImageError
from ..recognize import Recognizer

Answer = tuple[int, dict[str, Any]]
Rendered = tuple[int, bytes]

PREDICT = "predict"
READ = "read"
# A worker whose parent is gone (killed outright) notices within this many seconds and exits.
ORPHAN_CHECK_SECONDS = 1.0


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

    A request goes to an idle worker, or waits in one first-come queue for the next worker
    to finish. The pipes are read by the event loop itself (no threads here), and a worker
    sends its answer as finished JSON, so this process only moves bytes. A worker that dies
    (killed, out of memory) is replaced; the request it held is answered with a 500, since
    that failure is the server's, not the client's.
    """

    def __init__(self, load: dict[str, Any], workers: int, timeout_seconds: float) -> None:
        self.load, self.timeout_seconds = load, timeout_seconds
        self.context = multiprocessing.get_context("spawn")  # fork would copy onnxruntime's thread state
        self.workers: list[_Worker] = [self._start(index) for index in range(workers)]
        self.card: dict[str, Any] = {}
        self.idle: deque[int] = deque()
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
        return _Worker(process, ours)

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
        self.idle.extend(range(len(self.workers)))
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
        while self.idle:
            index = self.idle.popleft()
            if self.workers[index].process.exitcode is None:
                self._send(index, job, future)
                break
            self._replace(index)  # died while idle: its pipe's end may not have been seen yet
        else:
            self.waiting.append((job, future))
        try:
            # On timeout the future is cancelled: a worker that holds it finishes the job (its
            # answer is dropped), and one still waiting in the queue is never sent.
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            return timed_out(self.timeout_seconds)

    def _listen(self, index: int) -> None:
        assert self.loop is not None
        self.loop.add_reader(self.workers[index].pipe.fileno(), self._on_message, index)

    def _send(self, index: int, job: tuple[Any, ...], future: asyncio.Future[Rendered]) -> None:
        worker = self.workers[index]
        worker.job = future
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
        if message[0] == "done" and worker.job is not None and not worker.job.done():
            worker.job.set_result((message[1], message[2]))
        if message[0] == "error":  # a replacement could not load the model: stay without it
            assert self.loop is not None
            self.loop.remove_reader(worker.pipe.fileno())
            return
        worker.job = None
        self._next_job(index)

    def _next_job(self, index: int) -> None:
        while self.waiting:
            job, future = self.waiting.popleft()
            if not future.done():  # a request that timed out while waiting is dropped
                self._send(index, job, future)
                return
        self.idle.append(index)

    def _replace(self, index: int) -> None:
        assert self.loop is not None
        worker = self.workers[index]
        if index in self.idle:
            self.idle.remove(index)
        self.loop.remove_reader(worker.pipe.fileno())
        worker.pipe.close()
        worker.process.join(1)
        if worker.job is not None and not worker.job.done():
            message = f"The recognition worker stopped (exit code {worker.process.exitcode}); please retry."
            worker.job.set_result(render(500, {"error": message}))
        if self.closed:
            return
        self.workers[index] = self._start(index)  # it joins the idle ones once it reports ready
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
    job: asyncio.Future[Rendered] | None = None


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
