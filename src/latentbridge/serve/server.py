"""``latentbridge serve``: check the bind address and the key, load the models, run uvicorn."""

from __future__ import annotations

import logging

from latentbridge.errors import LatentbridgeError
from latentbridge.serve.security import is_loopback

log = logging.getLogger("latentbridge.serve")


class QueryRedactor(logging.Filter):
    """Cuts query strings out of uvicorn's own lines: it logs each accepted WebSocket with its path and query,
    where a browser's API key travels (``?api_key=...``); a secret never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(a.split("?", 1)[0] + "?..." if isinstance(a, str) and "?" in a and a.startswith("/")
                                else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg and "api_key" in record.msg.lower():
            record.msg = record.msg.split("?", 1)[0] + "?..."
        return True


def check_port(host: str, port: int) -> None:
    """The port is one of 1-65535 and free on ``host`` (before the models load and the address is announced):
    LatentbridgeError otherwise (uvicorn's own error came after a line saying the models were served, exit 3; a port
    above 65535 or below 0 was bind()'s OverflowError, a traceback; 0 bound a port the announcement never named)."""
    import errno
    import socket

    if not 1 <= port <= 65535:
        raise LatentbridgeError(f"serve: --port must be 1 to 65535, got {port}" + (
            " (0 lets the system pick a free port, which the server could not announce)" if port == 0 else ""))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise LatentbridgeError(f"serve: port {port} on {host} is in use (another server?): choose another "
                                        "with --port") from None
            raise LatentbridgeError(f"serve: cannot listen on {host}:{port} ({e.strerror or e})") from None


def check_bind(host: str, api_key: str | None) -> None:
    """Binding beyond the loopback interface needs an API key: LatentbridgeError otherwise."""
    if not is_loopback(host) and not api_key:
        raise LatentbridgeError(f"serve: binding to {host} (beyond this machine) needs an API key: "
                                "--api-key KEY or the LATENTBRIDGE_API_KEY environment variable")


def check_serve_extra() -> None:
    """ImportError naming the first of the serve extra's packages missing: uvicorn and python-multipart are
    imported only once the models are loaded and the app built (a traceback then, fastapi alone was checked)."""
    import importlib.util

    import uvicorn  # noqa: F401

    try:  # python-multipart as FastAPI reads it (a package of its own named multipart is another)
        multipart = importlib.util.find_spec("python_multipart") or importlib.util.find_spec("multipart.multipart")
    except ModuleNotFoundError:
        multipart = None
    if multipart is None:
        raise ImportError("No module named 'python_multipart'")
    if importlib.util.find_spec("websockets") is None and importlib.util.find_spec("wsproto") is None:
        raise ImportError("No module named 'websockets' (the live stream's WebSocket)")


def serve(model_dirs, *, host: str = "127.0.0.1", port: int = 8000, settings=None, log_level: str = "info") -> None:
    """Load ``model_dirs`` once and serve them until interrupted."""
    import uvicorn

    from latentbridge.serve.app import ServeSettings, create_app
    from latentbridge.serve.registry import load_models

    settings = settings or ServeSettings()
    check_bind(host, settings.api_key)
    check_port(host, port)
    models = load_models(model_dirs)
    app = create_app(models, settings)
    logging.getLogger("latentbridge.serve").setLevel(getattr(logging, log_level.upper(), logging.INFO))
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = ", ".join(f"{n} ({m.task})" for n, m in models.items())
    print(f"serving {names} on http://{host if ':' not in host else f'[{host}]'}:{port}/ "
          f"(API docs at /docs{'' if app.state.docs_offline else ', which loads its page script from a CDN'}; "
          "the schema at /openapi.json"
          f"{'; API key required' if settings.api_key else ''})", flush=True)
    # uvicorn's own access log is off: it would print query strings (which may hold the API key);
    # latentbridge.serve logs every request without them, and uvicorn's other lines lose theirs.
    redactor = QueryRedactor()
    for name in ("uvicorn.error", "uvicorn"):
        logging.getLogger(name).addFilter(redactor)
    # on SIGTERM / Ctrl-C, requests still running after --shutdown-grace are cancelled (uvicorn waited for them without
    # end: a long enhancement held the server's exit for minutes), which stops their work between two batches
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, ws_max_size=settings.max_frame_bytes,
                timeout_graceful_shutdown=settings.shutdown_grace_s)
