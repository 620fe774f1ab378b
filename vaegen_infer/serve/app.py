"""`create_app(models, settings) -> FastAPI`: the HTTP front door over the library.

No module-level state: everything a request touches hangs off the app this factory builds, so
tests build apps in-process and uvicorn only runs one. Each operation route converts HTTP input
to the library function's parameters, runs the library's code (through `BatchedModel`, so graph
calls are batched across requests), and converts the result to PNG, NPY or JSON.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import io
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UsageError, VaegenError
from ..model import Model
from . import unsupported_label_decoder
from .batched import BatchedModel
from .batcher import Batcher, Closed, QueueFull
from .bodies import (
    MEDIA,
    OPERATIONS,
    DecodeBody,
    EncodeBody,
    InterpolateBody,
    LatentMapBody,
    ManifoldBody,
    Operation,
    ReconstructBody,
    SampleBody,
    ScoreBody,
    ShiftBody,
    TraverseBody,
)  # fmt: skip
from .inputs import (
    BodyTooLarge,
    Upload,
    codes_or_images,
    decode_images,
    negotiate,
    read_params,
    validate,
)  # fmt: skip
from .metrics import Metrics
from .problems import PROBLEM_TYPE, Problem
from .render import grids, png_bytes
from .settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("vaegen_infer.serve")
access_log = logging.getLogger("vaegen_infer.serve.access")

_OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/openapi.json", "/static/")  # no API key needed


# -- the app's state ------------------------------------------------------------------------------


@dataclass
class Served:
    """One model and its batchers."""

    model: Model
    batched: BatchedModel


@dataclass
class _State:
    models: dict[str, Model]
    settings: Settings
    metrics: Metrics
    served: dict[str, Served] = field(default_factory=dict)
    ready: bool = False
    limiter: Any = None  # anyio.CapacityLimiter, made inside the event loop
    # Answers that depend on the model alone, computed once (a prior's std may take 100,000 draws).
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    density: dict[tuple[int, tuple[int, int]], dict[str, Any]] = field(default_factory=dict)
    # operation name -> endpoint, for the front door's direct dispatch of POST /v1/models/NAME/OP
    endpoints: dict[str, Callable[[str, Request], Awaitable[Response]]] = field(default_factory=dict)

    def get(self, name: str) -> Served:
        served = self.served.get(name)  # a dict lookup: a name never reaches the file system
        if served is None:
            if name not in self.models:
                raise Problem(404, f"unknown model '{name}'; available models: {', '.join(self.models) or '(none)'}")
            raise Problem(503, "the server is starting or stopping; retry in a moment", {"Retry-After": "1"})
        return served


def create_app(models: Mapping[str, Model], settings: Settings) -> FastAPI:
    """An app serving `models` (name -> loaded Model) under `settings`. Batchers start, and every
    session is created, in the app's lifespan (startup); shutdown serves what is queued, then stops."""
    if not isinstance(settings, Settings):
        raise TypeError("settings must be a vaegen_infer.serve.Settings")
    for name, model in models.items():
        if model.label_decoder:
            raise UsageError(unsupported_label_decoder(name))
    state = _State(dict(models), settings, Metrics())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        state.limiter = anyio.CapacityLimiter(settings.threads)
        for name, model in state.models.items():
            state.served[name] = _serve(name, model, settings, state.metrics)
        await anyio.to_thread.run_sync(_warm_up, list(state.served.values()))
        state.ready = True
        log.info("ready: %s", ", ".join(state.models) or "no models")
        try:
            yield
        finally:
            state.ready = False
            served = list(state.served.values())
            await anyio.to_thread.run_sync(_close, served, settings.graceful_timeout_s)
            state.served.clear()

    app = FastAPI(
        title="vaegen-infer",
        version=__version__,
        description="Images from VAE/AAE bundles: every operation of the vaegen_infer library over HTTP.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.vaegen = state
    app.add_middleware(_FrontDoor, state=state)  # auth, body limit, metrics, access log
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(Problem(exc.status_code, str(exc.detail)), request.url.path)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.get("/", include_in_schema=False)
    async def explorer() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="vaegen-infer API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        """Every model is loaded and its sessions are created (503 before that and while stopping)."""
        if not state.ready:
            return problem_response(Problem(503, "not ready: models are loading or the server is stopping"), "/readyz")
        return JSONResponse({"status": "ready", "models": list(state.models)})

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus metrics: requests by endpoint and status, latency, batch sizes, queue depth."""
        body, media = state.metrics.render()
        return Response(body, media_type=media)

    @app.get("/v1/models", tags=["models"])
    async def list_models() -> dict[str, Any]:
        """The models this server holds, one summary each."""
        return {"models": [summary(m) for m in state.models.values()]}

    @app.get("/v1/models/{name}", tags=["models"])
    async def one_model(name: str) -> dict[str, Any]:
        """One model's summary: its manifest without file names and hashes, plus what the explorer needs."""
        model = state.models.get(name)
        if model is None:
            raise Problem(404, f"unknown model '{name}'; available models: {', '.join(state.models) or '(none)'}")
        if name not in state.summaries:
            state.summaries[name] = await _thread(state, lambda: summary(model, full=True))
        return state.summaries[name]

    for op in OPERATIONS.values():
        state.endpoints[op.name] = _endpoint(state, op)
        app.add_api_route(
            f"/v1/models/{{name}}/{op.name}",
            state.endpoints[op.name],
            methods=["POST"],
            name=op.name,
            summary=op.summary,
            tags=["operations on a model"],
            response_class=Response,
            openapi_extra=_openapi_for(op),
        )
    return app


def _serve(name: str, model: Model, settings: Settings, metrics: Metrics) -> Served:
    window = settings.batch_window_ms / 1000.0

    def batcher(graph: str, fn: Callable[[np.ndarray], Any]) -> Batcher:
        b = Batcher(
            fn, f"{name}/{graph}", window, settings.max_batch, settings.max_queue,
            on_batch=lambda rows, reqs, secs: metrics.batch(name, graph, rows, reqs, secs),
        )  # fmt: skip
        metrics.watch_queue(name, graph, b.depth)
        return b

    return Served(model, BatchedModel(model, batcher("decoder", model.decode), batcher("encoder", model.encode)))


def _warm_up(served: list[Served]) -> None:
    """Create every session now (readyz means it) with one tiny call per graph."""
    for s in served:
        m = s.model
        s.batched.decode(np.asarray(m.prior.mean(), np.float32)[None])
        lo, hi = m.manifest.image.value_range
        s.batched.encode(np.full((1, *m.image_shape), (lo + hi) / 2, np.float32))


def _close(served: list[Served], timeout: float) -> None:
    for s in served:
        s.batched.decoder.close(timeout)
        s.batched.encoder.close(timeout)


# -- model summaries ------------------------------------------------------------------------------


def summary(model: Model, full: bool = False) -> dict[str, Any]:
    m = model.manifest
    out: dict[str, Any] = {
        "name": m.name,
        "kind": m.kind,
        "description": m.description,
        "image": {
            "channels": m.image.channels, "height": m.image.height, "width": m.image.width,
            "value_range": list(m.image.value_range), "likelihood": m.image.likelihood,
        },
        "latent_dim": m.latent_dim,
        "prior": m.prior.name,
        "sampler": m.sampler.name if m.sampler else None,
        "conditional": bool(m.conditional),
        "labels": list(m.labels) if m.labels else None,
        "attributes": sorted(m.attributes),
    }  # fmt: skip
    if not full:
        return out
    prior = model.prior
    out["prior"] = {"name": m.prior.name, "describe": _short(prior.describe(), 200)}
    out["prior_mean"] = [float(v) for v in prior.mean()]
    out["prior_std"] = [float(v) for v in prior.std()]
    out["dims_by_importance"] = model.dims_by_importance()
    out["attributes"] = {
        key: {
            "description": a.description,
            "source": a.source,
            "kind": getattr(a, "kind", "direction"),
            "amount": getattr(a, "amount", None),
            "vector": [float(v) for v in a.vector],
        }
        for key, a in m.attributes.items()
    }
    per_dim = (m.latent_factors or {}).get("per_dim")
    if per_dim:  # the ground-truth factor each dimension captures ("-": none), for slider labels
        out["factor_per_dim"] = [entry.get("factor") for entry in per_dim]
    out["metrics"] = m.metrics
    out["operations"] = list(OPERATIONS)
    return out


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- responses ------------------------------------------------------------------------------------


def problem_response(p: Problem, instance: str | None = None) -> Response:
    return Response(p.body(instance), status_code=p.status, media_type=PROBLEM_TYPE, headers=p.headers)


def npy_bytes(a: np.ndarray) -> bytes:
    """`np.save`'s bytes of `a` as float32: its header (made once per shape) and the raw values."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return _npy_header(a.shape) + a.tobytes()


@functools.lru_cache(maxsize=256)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The NPY header `np.save` writes for a C-ordered float32 array of `shape`, made once per shape
    (numpy formats it with a dict repr and padding, which costs more than copying a small answer)."""
    buf = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(np.float32))
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def json_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def array_response(fmt: str, key: str, a: np.ndarray, extra: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    """An array as NPY, or as JSON {"shape", key: nested lists, **extra} (arrays in extra become lists)."""
    if fmt == "npy":
        return Response(npy_bytes(a), media_type=MEDIA["npy"], headers=headers)
    more = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in (extra or {}).items()}
    doc = {"shape": list(a.shape), key: a.tolist(), **more}
    return Response(json_bytes(doc), media_type=MEDIA["json"], headers=headers)


INLINE_VALUES = 1 << 16  # answers up to this many numbers are encoded on the event loop (< ~1 ms)


async def answer(state: _State, fmt: str, key: str, a: np.ndarray, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    """`array_response`, off the event loop when the answer is large (JSON of 4096 images takes seconds)."""
    if a.size <= INLINE_VALUES and (fmt == "npy" or a.size <= INLINE_VALUES // 8):
        return array_response(fmt, key, a, extra, headers)
    return await _thread(state, lambda: array_response(fmt, key, a, extra, headers))


# -- operations -----------------------------------------------------------------------------------


def _endpoint(state: _State, op: Operation) -> Callable[[str, Request], Awaitable[Response]]:
    settings = state.settings
    runner = _RUNNERS[op.name]

    async def endpoint(name: str, request: Request) -> Response:
        served = state.get(name)
        try:
            fields, uploads = await read_params(request, settings)
            body = validate(op, fields)
            fmt = negotiate(op, body.format, request.headers.get("accept"))
            return await runner(state, served, body, uploads, fmt)
        except Problem:
            raise
        except BodyTooLarge:
            raise Problem(413, f"the request body is larger than {settings.max_upload_bytes:,} bytes") from None
        except QueueFull as exc:
            raise Problem(503, str(exc), {"Retry-After": "1"}) from None
        except Closed:
            raise Problem(503, "the server is stopping; retry on another instance", {"Retry-After": "1"}) from None
        except VaegenError as exc:
            if exc.exit_code == 2 or isinstance(exc, ValueError):  # UsageError, InputError: the caller's
                raise Problem(400, str(exc)) from None
            log.error("model %s failed in %s: %s", name, op.name, exc)
            state.metrics.model_error(name)
            raise Problem(500, f"model '{name}' failed: {exc}") from None
        except Exception as exc:
            log.exception("model %s failed in %s", name, op.name)
            state.metrics.model_error(name)
            detail = f"model '{name}' failed in {op.name} ({type(exc).__name__}); see the server log"
            raise Problem(500, detail) from None

    endpoint.__name__ = f"op_{op.name.replace('-', '_')}"
    return endpoint


async def _thread(state: _State, fn: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(fn, limiter=state.limiter)


def _check_n(n: int, settings: Settings, what: str = "n") -> None:
    if n > settings.max_n:
        raise Problem(400, f"{what} = {n:,} is more than this server's limit of {settings.max_n:,} images per request")


def _seed(seed: int | None) -> int:
    return int.from_bytes(os.urandom(4), "little") if seed is None else seed


async def _png(state: _State, make: Callable[[], bytes], headers: dict[str, str] | None = None) -> Response:
    return Response(await _thread(state, make), media_type=MEDIA["png"], headers=headers)


async def run_sample(state: _State, s: Served, b: SampleBody, _u: list[Upload], fmt: str) -> Response:
    g = s.batched
    seed = _seed(b.seed)
    headers = {"X-Seed": str(seed)}
    if b.per_label is not None:
        if b.label is not None:
            raise Problem(400, "give either label or per_label, not both")
        labels = list(s.model.manifest.labels or [])
        _check_n(b.per_label * max(1, len(labels)), state.settings, "per_label x labels")
        if fmt == "png":
            return await _png(state, lambda: grids.per_label_grid(g, b.per_label, seed).png(b.scale), headers)
        x = await _thread(state, lambda: g.sample_per_label(b.per_label, seed))  # (L, per_label, C, H, W)
        return await answer(state, fmt, "images", x, {"labels": labels, "seed": seed}, headers)
    _check_n(b.n, state.settings)
    if fmt == "png":
        return await _png(
            state, lambda: grids.sample_grid(g, b.n, seed, b.label, b.cols, b.from_prior).png(b.scale), headers
        )
    # The hot path: draw this request's codes from its own seed here, then one batched decode.
    if b.n <= 256:  # a small draw (tens of microseconds) stays on the event loop
        z = s.model.sample_latents(b.n, seed, b.label, b.from_prior)  # (n, D)
    else:
        z = await _thread(state, lambda: s.model.sample_latents(b.n, seed, b.label, b.from_prior))
    x = await s.batched.decoder.submit_async(z)  # (n, C, H, W)
    return await answer(state, fmt, "images", x, {"z": z, "seed": seed}, headers)


async def run_decode(state: _State, s: Served, b: DecodeBody, _u: list[Upload], fmt: str) -> Response:
    _check_n(len(b.z), state.settings, "rows of z")
    from .batched import latents_of

    z = latents_of(b.z, s.model.latent_dim) if b.z else latents_of(np.zeros((0, s.model.latent_dim)), 1)
    g = s.batched
    if fmt == "png":
        return await _png(state, lambda: grids.decode_grid(g, z, b.cols).png(b.scale))
    x = await g.decoder.submit_async(z)
    return await answer(state, fmt, "images", x)


async def run_encode(state: _State, s: Served, b: EncodeBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings

    def work() -> tuple[np.ndarray, np.ndarray]:
        return g.encode(decode_images(s.model, b.images or [], uploads, st, b.strict, b.invert))

    mu, logvar = await _thread(state, work)
    if fmt == "npy":
        return Response(npy_bytes(mu), media_type=MEDIA["npy"])
    return Response(json_bytes({"shape": list(mu.shape), "mu": mu.tolist(), "logvar": logvar.tolist()}),
                    media_type=MEDIA["json"])  # fmt: skip


async def run_reconstruct(state: _State, s: Served, b: ReconstructBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings
    seed = _seed(b.seed) if b.sample else (b.seed or 0)

    def work() -> Any:
        x = decode_images(s.model, b.images or [], uploads, st, b.strict, b.invert)
        if fmt == "png":
            return grids.reconstruct_grid(g, x, cols=b.cols, sample=b.sample, seed=seed).png(b.scale)
        return g.reconstruct(x, sample=b.sample, seed=seed)

    out = await _thread(state, work)
    if fmt == "png":
        return Response(out, media_type=MEDIA["png"])
    return await answer(state, fmt, "images", out)


async def run_interpolate(state: _State, s: Served, b: InterpolateBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings
    if b.steps > st.max_steps:
        raise Problem(400, f"steps = {b.steps} is more than this server's limit of {st.max_steps}")
    if b.images:
        raise Problem(400, "interpolate takes its images as `anchors` (or uploaded `files`), not `images`")

    def work() -> Any:
        anchors = codes_or_images(s.model, b.anchors or [], uploads, st, b.strict, b.invert)
        if len(anchors) < 2:
            raise Problem(400, f"interpolation needs at least two anchors, got {len(anchors)}")
        _check_n((len(anchors) - 1) * (b.steps - 1) + 1, st, "images on the path")
        if fmt == "png":
            names = [f"z{i}" for i in range(len(anchors))]
            return grids.interpolate_grid(g, anchors, steps=b.steps, method=b.method, names=names).png(b.scale)
        return g.interpolate(*anchors, steps=b.steps, method=b.method)

    out = await _thread(state, work)
    if fmt == "png":
        return Response(out, media_type=MEDIA["png"])
    return await answer(state, fmt, "images", out)


async def run_shift(state: _State, s: Served, b: ShiftBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings
    s.model.attribute(b.attribute)  # an unknown name fails before any image is read

    def work() -> Any:
        x = decode_images(s.model, b.images or [], uploads, st, b.strict, b.invert)
        _check_n(len(x) * len(b.amounts), st, "images x amounts")
        if fmt == "png":
            names = [u.name for u in uploads] if len(uploads) == len(x) else None
            return grids.shift_grid(g, x, b.attribute, b.amounts, names=names).png(b.scale)
        return g.shift(x, b.attribute, b.amounts)

    out = await _thread(state, work)
    if fmt == "png":
        return Response(out, media_type=MEDIA["png"])
    return await answer(state, fmt, "images", out)


async def run_traverse(state: _State, s: Served, b: TraverseBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings
    if b.steps > st.max_steps:
        raise Problem(400, f"steps = {b.steps} is more than this server's limit of {st.max_steps}")
    if b.images:
        raise Problem(400, "traverse takes one `image` (or one uploaded file), not `images`")
    if b.dims is not None:
        _check_n(len(b.dims) * b.steps, st, "dims x steps")

    def work() -> Any:
        items = [b.image] if b.image is not None else []
        image = None
        if items or uploads:
            x = decode_images(s.model, items, uploads, st, b.strict, b.invert)
            if len(x) != 1:
                raise Problem(400, f"traverse takes one image, got {len(x)}")
            image = x[0]
        if fmt == "png":
            return grids.traverse_grid(g, image, dims=b.dims, span=b.span, steps=b.steps).png(b.scale)
        return g.traverse(image, dims=b.dims, span=b.span, steps=b.steps)

    out = await _thread(state, work)
    if fmt == "png":
        return Response(out, media_type=MEDIA["png"])
    return await answer(state, fmt, "images", out)


async def run_manifold(state: _State, s: Served, b: ManifoldBody, _u: list[Upload], fmt: str) -> Response:
    g = s.batched
    _check_n(b.n * b.n, state.settings, "n x n")
    dims = None if b.dims is None else (b.dims[0], b.dims[1])
    if fmt == "png":
        return await _png(state, lambda: grids.manifold_grid(g, b.n, dims).png(b.scale))
    out = await _thread(state, lambda: g.manifold(b.n, dims))
    return await answer(state, fmt, "images", out)


async def run_latent_map(state: _State, s: Served, b: LatentMapBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings
    m = s.model
    dims = m.latent_pair(b.dims)  # the library's choice and checks (the two most used by default)

    def work() -> Any:
        x = None
        if b.images or uploads:
            x = decode_images(m, b.images or [], uploads, st, b.strict, b.invert)
        if b.labels is not None and (x is None or len(b.labels) != len(x)):
            raise Problem(400, "labels needs one class index per posted image")
        if fmt == "png":
            return png_bytes(grids.latent_map(g, images=x, labels=b.labels, dims=dims))
        codes = g.encode(x)[0] if x is not None else np.zeros((0, m.latent_dim), np.float32)
        key = (id(s.model), (int(dims[0]), int(dims[1])))
        if key not in state.density:
            state.density[key] = density_map(m, dims)
        return state.density[key] | {"codes": codes.tolist(), "labels": b.labels}

    out = await _thread(state, work)
    if fmt == "png":
        return Response(out, media_type=MEDIA["png"])
    return Response(json_bytes(out), media_type=MEDIA["json"])


def density_map(model: Model, dims: tuple[int, int], bins: int = 64, draws: int = 20_000) -> dict[str, Any]:
    """The prior's density on the plane of `dims`, as a histogram of seeded draws (every prior can
    be sampled; not all have a closed-form density): a window and a (bins, bins) grid in [0, 1],
    rows from the top (highest value of the second dimension) down, for a client to draw."""
    a, b = dims
    pts = model.prior.sample(draws, np.random.default_rng(0))[:, [a, b]].astype(np.float64)  # (draws, 2)
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    half = float(max(hi - lo)) * 0.6
    centre = (lo + hi) / 2
    lo, hi = centre - half, centre + half  # square, equal scale on both axes
    hist, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    dens = np.log1p(hist.T[::-1])
    dens = dens / max(float(dens.max()), 1e-12)
    return {
        "dims": [a, b],
        "window": {"x": [float(lo[0]), float(hi[0])], "y": [float(lo[1]), float(hi[1])]},
        "density": np.round(dens, 4).tolist(),
        "mean": [float(v) for v in model.prior.mean()],
    }


async def run_score(state: _State, s: Served, b: ScoreBody, uploads: list[Upload], fmt: str) -> Response:
    g = s.batched
    st = state.settings

    def work() -> Any:
        x = decode_images(s.model, b.images or [], uploads, st, b.strict, b.invert)
        return np.asarray(g.score(x, b.k, seed=b.seed))

    out = await _thread(state, work)
    return await answer(state, fmt, "scores", out)


_RUNNERS: dict[str, Callable[..., Awaitable[Response]]] = {
    "sample": run_sample, "encode": run_encode, "decode": run_decode, "reconstruct": run_reconstruct,
    "interpolate": run_interpolate, "shift": run_shift, "traverse": run_traverse, "manifold": run_manifold,
    "latent-map": run_latent_map, "score": run_score,
}  # fmt: skip


def _openapi_for(op: Operation) -> dict[str, Any]:
    schema = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    form = {"type": "object", "properties": {"files": files}}
    return {
        "requestBody": {
            "content": {"application/json": {"schema": schema}, "multipart/form-data": {"schema": form}},
            "required": False,
        },
        "responses": {
            "200": {"description": "The result", "content": {MEDIA[f]: {} for f in op.formats}},
            "4XX": {"description": "A problem with the request (RFC 9457)", "content": {PROBLEM_TYPE: {}}},
        },
    }


# -- the front door: auth, body limit, metrics, access log (pure ASGI: no per-request task) -------

_OP_PATH = re.compile(r"^/v1/models/[^/]+/([a-z-]+)$")


def endpoint_label(path: str) -> str:
    """A bounded label for metrics: route templates, never raw model names or unknown paths."""
    m = _OP_PATH.match(path)
    if m:
        return f"/v1/models/{{name}}/{m.group(1)}" if m.group(1) in OPERATIONS else "other"
    if path.startswith("/v1/models/"):
        return "/v1/models/{name}"
    if path.startswith("/static/"):
        return "/static"
    if path in ("/", "/v1/models", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        return path
    return "other"


class _FrontDoor:
    def __init__(self, app: Any, state: _State) -> None:
        self.app = app
        self.state = state
        key = state.settings.api_key
        self.key = None if key is None else key.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        status = [0]
        sent = [0]

        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        self.state.metrics.in_flight.inc()
        try:
            problem = self._refuse(scope, path)
            if problem is not None:
                await problem_response(problem, path)(scope, receive, send_counted)
                return
            limit = self.state.settings.max_upload_bytes
            received = [0]

            async def receive_limited() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise BodyTooLarge()
                return message

            op = _OP_PATH.match(path) if scope["method"] == "POST" else None
            endpoint = self.state.endpoints.get(op.group(1)) if op else None
            if op is not None and endpoint is not None:
                # An operation: straight to its endpoint, past the router and FastAPI's request
                # handling (a third of the event loop's time per small request, all spent finding a
                # route whose answer the path already gives). The endpoint reads and validates the
                # body itself and maps every failure to a Problem, as it does behind the router.
                request = Request(scope, receive_limited)
                try:
                    response = await endpoint(path[len("/v1/models/") : op.start(1) - 1], request)
                except Problem as exc:
                    response = problem_response(exc, request.url.path)
                await response(scope, receive_limited, send_counted)
                return
            await self.app(scope, receive_limited, send_counted)
        finally:
            self.state.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            label = endpoint_label(path)
            self.state.metrics.request(label, scope["method"], status[0] or 500, seconds)
            if self.state.settings.access_log and access_log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                access_log.info(json.dumps({
                    "ts": round(time.time(), 3), "client": client[0], "method": scope["method"], "path": path,
                    "status": status[0] or 500, "ms": round(seconds * 1000, 2), "bytes": sent[0],
                }))  # fmt: skip

    def _refuse(self, scope: dict[str, Any], path: str) -> Problem | None:
        headers = dict(scope["headers"])
        if self.key is not None and path != "/" and not path.startswith(_OPEN_PATHS):
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                return Problem(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                               {"WWW-Authenticate": 'Bearer realm="vaegen-infer"'})  # fmt: skip
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return Problem(400, "Content-Length is not a number")
            if size > self.state.settings.max_upload_bytes:
                return Problem(413, f"the request body is larger than {self.state.settings.max_upload_bytes:,} bytes")
        return None
