"""``inkdigits serve``: the drawing page and the REST API (the ``serve`` extra).

One process speaks HTTP (uvicorn); recognition runs in worker processes, one per core, each
with its own warm model, taking requests from one shared queue (see ``backends``). The port
opens only after every worker has loaded and warmed its model, so the first request to reach
it is answered at full speed.
"""

from __future__ import annotations

import os
import socket
import sys

from ..errors import InkdigitsError
from .app import Limits, create_app
from .backends import ProcessBackend, ThreadBackend, warm_up

__all__ = ["Limits", "ProcessBackend", "ThreadBackend", "create_app", "serve", "warm_up"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
    threshold: float | None = None,
) -> None:
    """Start ``limits.workers`` warm recognition processes, then open the port and serve.

    SIGTERM or Ctrl+C stop taking connections, answer the requests in flight, then stop the
    workers.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise InkdigitsError("The server needs the 'serve' extra: pip install 'inkdigits[serve]'.") from exc
    limits = limits or Limits()
    # Bound now, so a taken port fails at once; listening (the port opening) waits for warm workers.
    listener = _bind(host, port)
    load = {"model": model, "max_pixels": limits.max_pixels, "threshold": threshold}
    backend = ProcessBackend(load, limits.workers, limits.timeout_seconds)
    try:
        milliseconds = backend.wait_until_warm()
        app = create_app(limits=limits, backend=backend)
        listener.listen(2048)
        print(
            f"inkdigits: {limits.workers} recognition worker(s) warm ({milliseconds:.1f} ms per prediction); "
            f"serving http://{host}:{port}/",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=10)
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:  # Ctrl+C while the workers were still loading: just stop
        pass
    finally:
        backend.close()  # at once if the app's shutdown already stopped them
        listener.close()


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
