"""`vaegen-infer serve`: the library over HTTP (extra `serve`: fastapi, uvicorn, python-multipart,
prometheus-client), with dynamic batching and the latent-explorer page at `/`.

    from vaegen_infer.serve import Settings, create_app
    app = create_app({"mnist-vae": vaegen_infer.load("mnist-vae")}, Settings())

`Settings` and `Batcher` import without the extra; `create_app` and `run` need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .batcher import Batcher, Closed, QueueFull
from .settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI

    from ..model import Model

MISSING_EXTRA = "the server needs the serve extra: pip install 'vaegen-infer[serve]'"


def unsupported_label_decoder(name: str) -> str:
    """Why the server refuses a model whose decoder takes a label (a supervised AAE)."""
    return (
        f"model '{name}' has a label-conditioned decoder (supervised AAE); the server does not serve those yet: "
        "use the library or the CLI (vaegen-infer sample --label, restyle) for it"
    )


def check_installed() -> None:
    """Raise UsageError naming the extra when the server's dependencies are missing."""
    from ..errors import UsageError

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"{MISSING_EXTRA} ({exc.name} is missing)") from None


def create_app(models: Mapping[str, Model], settings: Settings) -> FastAPI:
    """The FastAPI app serving `models` (name -> loaded Model); see `vaegen_infer.serve.app`."""
    check_installed()
    from .app import create_app as build

    return build(models, settings)


# Young-generation collections every this many container allocations (CPython's default: 700).
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Garbage collection for a server process whose models and app are built: move every object
    alive now to the permanent generation (`gc.freeze`), and collect the young generation every
    GC_GEN0_THRESHOLD allocations instead of 700.

    Why: a request leaves no reference cycles behind (checked with gc.DEBUG_SAVEALL), but at the
    default threshold a young collection ran every few requests and examined the in-flight ones,
    and each full collection walked the ~80,000 objects of fastapi, pydantic, numpy and the
    models, 120-250 ms with the GIL held on this machine: 26% of the event loop's CPU time under
    64 clients (`py-spy record --native` on the server before this change). Process-wide, so
    only `run` does it, not `create_app` (an application that embeds the app decides for its own
    process)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


def run(models: Mapping[str, Model], settings: Settings, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM; on a signal, stop accepting, finish what is in flight, exit."""
    check_installed()
    import logging

    import uvicorn

    from .app import create_app as build

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(message)s")
    app = build(models, settings)
    tune_gc()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # the app writes its own structured access log
        log_config=None,
        log_level=log_level,
        timeout_graceful_shutdown=settings.graceful_timeout_s,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()


__all__ = [
    "Batcher",
    "Closed",
    "QueueFull",
    "Settings",
    "check_installed",
    "create_app",
    "run",
    "unsupported_label_decoder",
]
