"""``inkdigits serve``: the drawing page and the REST API (the ``serve`` extra)."""

from __future__ import annotations

import os
import sys

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
    """Load the model once, warm it up, then open the port; SIGTERM shuts down gracefully."""
    try:
        import uvicorn
    except ImportError as exc:
        raise InkdigitsError("The server needs the 'serve' extra: pip install 'inkdigits[serve]'.") from exc
    from ..recognize import Recognizer

    limits = limits or Limits()
    # One onnxruntime thread per request: the pool already runs one request per core.
    recognizer = Recognizer.load(model, max_pixels=limits.max_pixels, threads=1, threshold=threshold)
    milliseconds = warm_up(recognizer)
    print(
        f"inkdigits: model warm ({milliseconds:.1f} ms per prediction); serving http://{host}:{port}/",
        file=sys.stderr,
        flush=True,
    )
    app = create_app(recognizer, limits)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()
