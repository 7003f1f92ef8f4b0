"""The HTTP server: a REST API over ``Recognizer`` and the drawing page, on FastAPI + uvicorn.

Recognition is CPU work, so it never runs on the event loop: a backend (``backends``) runs
it in threads of this process or in worker processes. Every limit (upload size, decoded
pixels, time per request) has a default and a flag, and every error a client can cause is
answered with JSON and a 4xx status, never a 5xx.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import InkdigitsError, NotAnImageError
from ..images import DEFAULT_MAX_PIXELS
from ..recognize import Recognizer
from .backends import PREDICT, READ, Backend, ThreadBackend, error_status

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


def create_app(
    recognizer: Recognizer | None = None, limits: Limits | None = None, backend: Backend | None = None
) -> FastAPI:
    """The API and page over ``backend``, or over ``recognizer`` in ``limits.workers`` threads."""
    limits = limits or Limits()
    if backend is None:
        if recognizer is None:
            raise ValueError("create_app needs a recognizer or a backend")
        backend = ThreadBackend(recognizer, limits.workers, limits.timeout_seconds)
    card = backend.card

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        backend.start()
        yield
        backend.close()  # after the requests in flight are answered

    app = FastAPI(
        lifespan=lifespan,
        title="inkdigits",
        version=__version__,
        description="Read handwritten digits from images. POST an image (multipart form or raw body).",
    )
    static = resources.files("inkdigits.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    async def respond(request: Request, task: str, include_input: bool = False) -> Response:
        try:
            data, name = await read_image_body(request)
            if not data:
                raise NotAnImageError("The request holds no image (empty body).")
        except InkdigitsError as exc:
            return JSONResponse({"error": str(exc)}, status_code=error_status(exc))
        status, body = await backend.run(task, data, name, include_input)
        headers = {"Retry-After": "1"} if status == 503 else None
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness: the server answers and its model is loaded."""
        return {"status": "ok", "version": __version__, "model": card.get("architecture")}

    @app.get("/api/model")
    async def model_card() -> dict[str, Any]:
        """The model card: architecture, recipe, data digests, metrics, versions."""
        return card

    @app.post("/api/predict")
    async def predict(request: Request, include: str = "") -> Response:
        """Read one digit: the same JSON as ``inkdigits predict --json``.

        ``?include=model_input`` adds the 28x28 the model saw (0-255 integers). An image
        with no digit answers 200 with an ``error``; bad input answers 413, 415 or 422.
        """
        return await respond(request, PREDICT, include_input=include == "model_input")

    @app.post("/api/read")
    async def read(request: Request) -> Response:
        """Read every handwritten number: the same JSON as ``inkdigits read --json``.

        ``text`` is empty (and ``lines`` is []) when the image holds no number; bad input
        answers 413, 415 or 422.
        """
        return await respond(request, READ)

    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes)
    app.state.backend = backend
    return app
