"""``latentbridge serve``: check the bind address and the key, load the models, run uvicorn."""

from __future__ import annotations

import logging

from latentbridge.errors import LatentbridgeError
from latentbridge.serve.security import is_loopback

log = logging.getLogger("latentbridge.serve")


def check_bind(host: str, api_key: str | None) -> None:
    """Binding beyond the loopback interface needs an API key: LatentbridgeError otherwise."""
    if not is_loopback(host) and not api_key:
        raise LatentbridgeError(f"serve: binding to {host} (beyond this machine) needs an API key: "
                                "--api-key KEY or the LATENTBRIDGE_API_KEY environment variable")


def serve(model_dirs, *, host: str = "127.0.0.1", port: int = 8000, settings=None, log_level: str = "info") -> None:
    """Load ``model_dirs`` once and serve them until interrupted."""
    import uvicorn

    from latentbridge.serve.app import ServeSettings, create_app
    from latentbridge.serve.registry import load_models

    settings = settings or ServeSettings()
    check_bind(host, settings.api_key)
    models = load_models(model_dirs)
    app = create_app(models, settings)
    logging.getLogger("latentbridge.serve").setLevel(getattr(logging, log_level.upper(), logging.INFO))
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = ", ".join(f"{n} ({m.task})" for n, m in models.items())
    print(f"serving {names} on http://{host if ':' not in host else f'[{host}]'}:{port}/ "
          f"(API docs at /docs{'; API key required' if settings.api_key else ''})", flush=True)
    # uvicorn's own access log is off: it would print query strings (which may hold the API key);
    # latentbridge.serve logs every request without them.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, ws_max_size=settings.max_frame_bytes)
