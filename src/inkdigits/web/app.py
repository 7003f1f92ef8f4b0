"""The HTTP server: a REST API over ``Recognizer`` and the drawing page, on FastAPI + uvicorn.

Recognition is CPU work, so it runs in a thread pool sized to the cores, never on the event
loop. Every limit (upload size, decoded pixels, time per request) has a default and a flag,
and every error a client can cause is answered with JSON and a 4xx status, never a 5xx.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import ImageTooLargeError, InkdigitsError, NoDigitError, NotAnImageError
from ..images import DEFAULT_MAX_PIXELS
from ..recognize import Recognizer

MB = 1024 * 1024
MAX_WORKERS = 8


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 10 * MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    timeout_seconds: float = 10.0
    # ``serve``: worker processes; ``create_app`` alone: recognition threads in this process.
    # One per core, but at most MAX_WORKERS: each process holds its own models (~170 MB).
    workers: int = min(MAX_WORKERS, max(1, os.cpu_count() or 1))


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before they are buffered.

    A declared Content-Length is checked at once; a chunked body is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(self.limit)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"The upload is over the {limit / MB:.0f} MB limit."}, status_code=413)


def error_status(error: InkdigitsError) -> int:
    """413 for too large, 415 for what is not an image at all, 422 for a damaged image."""
    if isinstance(error, ImageTooLargeError):
        return 413
    if isinstance(error, NotAnImageError):
        return 415
    return 422


async def read_image_body(request: Request) -> tuple[bytes, str]:
    """The image bytes from a multipart form (any file field) or from the raw body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        for value in form.values():
            if hasattr(value, "read"):
                return await value.read(), getattr(value, "filename", None) or "upload"
        raise NotAnImageError("The form holds no file: send the image as a file field (e.g. 'image').")
    return await request.body(), "upload"


def create_app(recognizer: Recognizer, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="recognize")
    app = FastAPI(
        title="inkdigits",
        version=__version__,
        description="Read handwritten digits from images. POST an image (multipart form or raw body).",
    )
    static = resources.files("inkdigits.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    async def run(function: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(pool, function, *args), limits.timeout_seconds)

    async def answer(request: Request, work: Any) -> JSONResponse:
        name = "upload"
        try:
            data, name = await read_image_body(request)
            if not data:
                raise NotAnImageError("The request holds no image (empty body).")
            payload = await run(work, data, name)
            return JSONResponse(payload)
        except NoDigitError as exc:
            return JSONResponse({"file": name, "error": str(exc)})
        except InkdigitsError as exc:
            return JSONResponse({"error": str(exc)}, status_code=error_status(exc))
        except TimeoutError:
            return JSONResponse(
                {"error": f"Recognition took longer than {limits.timeout_seconds:g} s; try a smaller image."},
                status_code=503,
                headers={"Retry-After": "1"},
            )

    def predict_one(data: bytes, name: str, include_input: bool) -> dict[str, Any]:
        prediction = recognizer.predict(data)
        payload: dict[str, Any] = {"file": name, **prediction.to_dict()}
        if include_input and prediction.model_input is not None:
            payload["model_input"] = np.round(prediction.model_input * 255).astype(int).tolist()
        return payload

    def read_numbers(data: bytes, name: str) -> dict[str, Any]:
        return {"file": name, **recognizer.read(data).to_dict()}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness: the server answers and its model is loaded."""
        return {"status": "ok", "version": __version__, "model": recognizer.card.get("architecture")}

    @app.get("/api/model")
    async def model_card() -> dict[str, Any]:
        """The model card: architecture, recipe, data digests, metrics, versions."""
        return recognizer.card

    @app.post("/api/predict")
    async def predict(request: Request, include: str = "") -> JSONResponse:
        """Read one digit: the same JSON as ``inkdigits predict --json``.

        ``?include=model_input`` adds the 28x28 the model saw (0-255 integers). An image
        with no digit answers 200 with an ``error``; bad input answers 413, 415 or 422.
        """
        return await answer(request, lambda data, name: predict_one(data, name, include == "model_input"))

    @app.post("/api/read")
    async def read(request: Request) -> JSONResponse:
        """Read every handwritten number: the same JSON as ``inkdigits read --json``.

        ``text`` is empty (and ``lines`` is []) when the image holds no number; bad input
        answers 413, 415 or 422.
        """
        return await answer(request, read_numbers)

    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes)
    app.state.pool = pool
    return app


def warm_up(recognizer: Recognizer, rounds: int = 3) -> float:
    """Run a few predictions so the first real request pays no start-up cost; return ms."""
    canvas = np.full((64, 64), 255, np.uint8)  # small enough for any sensible --max-pixels
    canvas[12:52, 29:35] = 0
    started = time.perf_counter()
    for _ in range(rounds):
        recognizer.predict(canvas)
    return (time.perf_counter() - started) * 1000 / rounds
