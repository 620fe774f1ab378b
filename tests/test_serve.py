"""The HTTP server: every endpoint against the library, every kind of bad request, auth, limits,
batching equivalence, and shutdown. In-process (TestClient) except where a real socket matters."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

import vaegen_infer as vi  # noqa: E402
from vaegen_infer import grids  # noqa: E402
from vaegen_infer.errors import UsageError  # noqa: E402
from vaegen_infer.images import load_image, to_uint8  # noqa: E402
from vaegen_infer.serve import Settings, create_app  # noqa: E402

from .conftest import ROOT  # noqa: E402

EXAMPLES = ROOT / "docs" / "examples"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def models() -> dict[str, vi.Model]:
    return {name: vi.load(name, providers="cpu") for name in ("mnist-vae", "mnist-vae-2d", "mnist-aae")}


@pytest.fixture(scope="module")
def client(models: dict[str, vi.Model]) -> Iterator[TestClient]:
    app = create_app(models, Settings(batch_window_ms=1.0, max_n=1024, max_upload_bytes=512 * 1024))
    with TestClient(app) as c:
        yield c


def npy(r: Any) -> np.ndarray:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-npy"
    return np.load(io.BytesIO(r.content), allow_pickle=False)


def png(r: Any) -> Image.Image:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(r.content))


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert doc["status"] == status and doc["title"] and doc["detail"], doc
    assert "Traceback" not in r.text
    return doc


def digit(k: int) -> bytes:
    return (EXAMPLES / f"digit-{k}.png").read_bytes()


def lib_image(g: vi.Model, k: int) -> np.ndarray:
    return load_image(EXAMPLES / f"digit-{k}.png", g.image_shape)


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("port", 70000, "port"),
        ("batch_window_ms", -1, "batch_window_ms"),
        ("max_batch", 0, "max_batch"),
        ("host", "my host", "host"),
        ("api_key", "short", "at least 8"),
        ("cors_origins", ("example.com",), "CORS"),
        ("max_queue", True, "max_queue"),
    ],
)
def test_settings_validate_themselves(field: str, value: Any, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        Settings(**{field: value})


def test_settings_hide_the_api_key() -> None:
    assert "s3cret-key" not in repr(Settings(api_key="s3cret-key"))
    assert Settings().host == "127.0.0.1" and Settings().batching and not Settings(batch_window_ms=0).batching


# -- models and metadata ---------------------------------------------------------------------------


def test_models_list_and_summary(client: TestClient, models: dict[str, vi.Model]) -> None:
    r = client.get("/v1/models")
    assert [m["name"] for m in r.json()["models"]] == list(models)
    one = client.get("/v1/models/mnist-vae").json()
    g = models["mnist-vae"]
    assert one["latent_dim"] == g.latent_dim and one["image"]["height"] == 28
    assert one["dims_by_importance"] == g.dims_by_importance()
    np.testing.assert_allclose(one["prior_std"], g.prior.std(), rtol=1e-6)
    np.testing.assert_allclose(one["attributes"]["thickness"]["vector"], g.attribute("thickness").vector, rtol=1e-6)
    assert "sha256" not in json.dumps(one) and "encoder.onnx" not in json.dumps(one)
    assert client.get("/v1/models/mnist-aae").json()["conditional"] is True


def test_summary_names_the_factor_of_each_dimension(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "model.json").read_text())
    dim = manifest["latent_dim"]
    per_dim = [{"factor": "scale" if d == 3 else "-", "mi": 0.5 if d == 3 else 0.0} for d in range(dim)]
    manifest["latent_factors"] = {"per_dim": per_dim, "factors": ["scale"], "protocol": {}}
    (bundle_copy / "model.json").write_text(json.dumps(manifest))
    g = vi.load(bundle_copy, providers="cpu")
    with TestClient(create_app({"mine": g}, Settings())) as c:
        doc = c.get("/v1/models/mine").json()
    assert doc["factor_per_dim"][3] == "scale" and doc["factor_per_dim"][0] == "-"


def test_serve_without_the_extra_names_it() -> None:
    code = "import sys; sys.modules['fastapi'] = None; from vaegen_infer.cli import main; main(['serve'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "pip install 'vaegen-infer[serve]'" in r.stderr, r.stderr


def test_model_names_are_looked_up_never_used_as_paths(client: TestClient) -> None:
    for name in ("..%2F..%2Fetc", "exported%2Fmnist-vae", "mnist-vae%00", "%2E%2E"):
        r = client.post(f"/v1/models/{name}/sample", json={"n": 1})
        assert r.status_code == 404, (name, r.status_code)
    doc = problem(client.get("/v1/models/nope"), 404)
    assert "mnist-vae" in doc["detail"]


def test_health_ready_metrics_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    client.post("/v1/models/mnist-vae/sample", json={"n": 2, "seed": 0, "format": "npy"})
    text = client.get("/metrics").text
    assert 'vaegen_requests_total{endpoint="/v1/models/{name}/sample",method="POST",status="200"}' in text
    assert 'vaegen_batch_rows_count{graph="decoder",model="mnist-vae"}' in text
    assert 'vaegen_queue_depth{graph="decoder",model="mnist-vae"} 0.0' in text
    docs = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "https://" not in docs and "http://" not in docs
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    ops = ("sample", "encode", "decode", "reconstruct", "interpolate", "shift", "traverse", "manifold", "latent-map")
    for op in ops:
        assert f"/v1/models/{{name}}/{op}" in spec["paths"], op


# -- every operation equals the library --------------------------------------------------------


def test_sample_same_seed_same_images_as_the_library(client: TestClient, models: dict[str, vi.Model]) -> None:
    g = models["mnist-vae"]
    x = npy(client.post("/v1/models/mnist-vae/sample", json={"n": 5, "seed": 11, "format": "npy"}))
    np.testing.assert_array_equal(x, g.sample(5, seed=11))
    doc = client.post("/v1/models/mnist-vae/sample", json={"n": 3, "seed": 4}, headers={"Accept": "application/json"})
    assert doc.headers["x-seed"] == "4"
    body = doc.json()
    np.testing.assert_allclose(np.asarray(body["images"], np.float32), g.sample(3, seed=4), atol=0)
    np.testing.assert_array_equal(np.asarray(body["z"], np.float32), g.sample_latents(3, seed=4))
    aae = models["mnist-aae"]
    lab = npy(client.post("/v1/models/mnist-aae/sample", json={"n": 4, "seed": 2, "label": "3", "format": "npy"}))
    np.testing.assert_array_equal(lab, aae.sample(4, seed=2, label="3"))
    rows = npy(client.post("/v1/models/mnist-aae/sample", json={"per_label": 2, "seed": 5, "format": "npy"}))
    assert rows.shape == (10, 2, 1, 28, 28)
    np.testing.assert_array_equal(rows[3], aae.sample(2, seed=8, label="3"))


def test_sample_png_is_byte_identical_to_the_library_grid(client: TestClient, models: dict[str, vi.Model]) -> None:
    r = client.post("/v1/models/mnist-vae/sample", json={"n": 16, "seed": 3})  # PNG is the default
    assert r.content == grids.sample_grid(models["mnist-vae"], 16, 3).png()
    assert png(r).size == (2 + 4 * 58, 2 + 4 * 58)
    r = client.post("/v1/models/mnist-aae/sample", json={"per_label": 3, "seed": 1, "scale": 1})
    assert r.content == grids.per_label_grid(models["mnist-aae"], 3, 1).png(1)
    np.testing.assert_array_equal(
        npy(client.post("/v1/models/mnist-aae/sample", json={"per_label": 2, "seed": 9, "format": "npy"})),
        models["mnist-aae"].sample_per_label(2, 9),
    )


def test_sample_png_is_byte_identical_to_the_cli(client: TestClient, tmp_path: Path) -> None:
    from vaegen_infer.cli import main

    out = tmp_path / "s.png"
    with pytest.raises(SystemExit) as done:
        main(["sample", "--n", "9", "--seed", "7", "-o", str(out), "--model", "mnist-vae"])
    assert done.value.code == 0
    r = client.post("/v1/models/mnist-vae/sample", json={"n": 9, "seed": 7})
    assert r.content == out.read_bytes()  # the same file, byte for byte


def test_decode_encode_reconstruct(client: TestClient, models: dict[str, vi.Model]) -> None:
    g = models["mnist-vae"]
    z = g.sample_latents(3, seed=9)
    x = npy(client.post("/v1/models/mnist-vae/decode", json={"z": z.tolist(), "format": "npy"}))
    np.testing.assert_array_equal(x, g.decode(z))
    r = client.post("/v1/models/mnist-vae/decode", json={"z": z.tolist()})
    assert r.content == grids.decode_grid(g, z).png()
    # encode: multipart uploads and base64 JSON give the library's codes for the same files
    files = [("files", (f"digit-{k}.png", digit(k), "image/png")) for k in (1, 4)]
    doc = client.post("/v1/models/mnist-vae/encode", files=files).json()
    want_mu, want_lv = g.encode(np.stack([lib_image(g, 1), lib_image(g, 4)]))
    np.testing.assert_allclose(doc["mu"], want_mu, atol=1e-6)
    np.testing.assert_allclose(doc["logvar"], want_lv, atol=1e-6)
    b64 = ["data:image/png;base64," + base64.b64encode(digit(k)).decode() for k in (1, 4)]
    mu = npy(client.post("/v1/models/mnist-vae/encode", json={"images": b64, "format": "npy"}))
    np.testing.assert_allclose(mu, want_mu, atol=1e-6)
    # reconstruct
    rec = npy(client.post("/v1/models/mnist-vae/reconstruct", files=files, data={"format": "npy"}))
    np.testing.assert_allclose(rec, g.reconstruct(np.stack([lib_image(g, 1), lib_image(g, 4)])), atol=1e-6)
    r = client.post("/v1/models/mnist-vae/reconstruct", files=files)
    assert r.content == grids.reconstruct_grid(g, np.stack([lib_image(g, 1), lib_image(g, 4)])).png()


def test_interpolate_shift_traverse_manifold(client: TestClient, models: dict[str, vi.Model]) -> None:
    g = models["mnist-vae"]
    a, b = lib_image(g, 1), lib_image(g, 7)
    files = [("files", (f"digit-{k}.png", digit(k), "image/png")) for k in (1, 7)]
    path = npy(client.post("/v1/models/mnist-vae/interpolate", files=files, data={"steps": "6", "format": "npy"}))
    np.testing.assert_allclose(path, g.interpolate(a, b, steps=6), atol=1e-6)
    za, zb = g.sample_latents(2, seed=1)
    lerp = npy(client.post("/v1/models/mnist-vae/interpolate",
                           json={"anchors": [za.tolist(), zb.tolist()], "steps": 4, "method": "lerp", "format": "npy"}))
    np.testing.assert_allclose(lerp, g.interpolate(za, zb, steps=4, method="lerp"), atol=1e-6)
    r = client.post("/v1/models/mnist-vae/interpolate", json={"anchors": [za.tolist(), zb.tolist()], "steps": 5})
    assert r.content == grids.interpolate_grid(g, [za, zb], steps=5, names=["z0", "z1"]).png()

    sh = npy(client.post("/v1/models/mnist-vae/shift", files=files[:1],
                         data={"attribute": "thickness", "amounts": "-1,0,2", "format": "npy"}))
    np.testing.assert_allclose(sh, g.shift(a[None], "thickness", [-1, 0, 2]), atol=1e-6)

    body = {"dims": [0, 3], "steps": 3, "span": 2, "format": "npy"}
    tr = npy(client.post("/v1/models/mnist-vae/traverse", json=body))
    np.testing.assert_allclose(tr, g.traverse(None, dims=[0, 3], span=2.0, steps=3), atol=1e-6)
    r = client.post("/v1/models/mnist-vae/traverse", files=files[:1], data={"steps": "5"})
    assert r.content == grids.traverse_grid(g, a, steps=5).png()

    g2 = models["mnist-vae-2d"]
    mf = npy(client.post("/v1/models/mnist-vae-2d/manifold", json={"n": 5, "format": "npy"}))
    np.testing.assert_allclose(mf, g2.manifold(5), atol=1e-6)
    r = client.post("/v1/models/mnist-vae-2d/manifold", json={"n": 6})
    assert r.content == grids.manifold_grid(g2, 6).png()  # tiles touching, natural size, as the CLI
    r = client.post("/v1/models/mnist-vae-2d/manifold", json={"n": 6, "scale": 3})
    assert r.content == grids.manifold_grid(g2, 6).png(3)


def test_score_equals_the_library(client: TestClient, models: dict[str, vi.Model]) -> None:
    g = models["mnist-vae"]
    files = [("files", (f"digit-{k}.png", digit(k), "image/png")) for k in (2, 5)]
    doc = client.post("/v1/models/mnist-vae/score", files=files, data={"k": "20"}).json()
    want = g.score(np.stack([lib_image(g, 2), lib_image(g, 5)]), 20, seed=0)
    np.testing.assert_allclose(doc["scores"], want, rtol=1e-5)
    assert doc["shape"] == [2]
    problem(client.post("/v1/models/mnist-aae-swissroll/score", files=files), 404)  # not served here


def test_latent_map_png_and_json(client: TestClient, models: dict[str, vi.Model]) -> None:
    g2 = models["mnist-vae-2d"]
    files = [("files", (f"digit-{k}.png", digit(k), "image/png")) for k in (0, 1, 2)]
    r = client.post("/v1/models/mnist-vae-2d/latent-map", files=files, data={"labels": "0,1,2"})
    img = png(r)
    assert img.mode == "RGB" and img.width > 600
    x = np.stack([lib_image(g2, k) for k in (0, 1, 2)])
    assert np.array_equal(np.asarray(img), np.asarray(grids.latent_map(g2, x, np.array([0, 1, 2]))))
    doc = client.post("/v1/models/mnist-vae-2d/latent-map", files=files, data={"format": "json"}).json()
    want, _ = g2.encode(np.stack([lib_image(g2, k) for k in (0, 1, 2)]))
    np.testing.assert_allclose(doc["codes"], want, atol=1e-6)
    dens = np.asarray(doc["density"])
    assert dens.shape == (64, 64) and dens.max() == 1.0 and dens.min() >= 0
    (x0, x1), (y0, y1) = doc["window"]["x"], doc["window"]["y"]
    assert x0 < -2 and x1 > 2 and y0 < -2 and y1 > 2  # a unit Gaussian's mass lies inside


# -- format negotiation ---------------------------------------------------------------------------


def test_format_field_wins_over_accept(client: TestClient) -> None:
    url = "/v1/models/mnist-vae/sample"
    assert client.post(url, json={"n": 1, "seed": 0}, headers={"Accept": "application/x-npy"}).headers[
        "content-type"] == "application/x-npy"  # fmt: skip
    r = client.post(url, json={"n": 1, "seed": 0, "format": "png"}, headers={"Accept": "application/x-npy"})
    assert r.headers["content-type"] == "image/png"
    r = client.post(url, json={"n": 1, "seed": 0}, headers={"Accept": "text/html;q=1, application/json;q=0.5"})
    assert r.headers["content-type"] == "application/json"
    assert client.post("/v1/models/mnist-vae/encode", files=[("files", ("a.png", digit(0), "image/png"))]).headers[
        "content-type"] == "application/json"  # fmt: skip
    problem(client.post(url, json={"n": 1}, headers={"Accept": "text/html"}), 406)
    problem(client.post("/v1/models/mnist-vae/encode", json={"images": [], "format": "png"}), 400)


# -- bad requests: a 4xx with problem details, never a traceback ---------------------------------


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "words"),
    [
        ("sample", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ("sample", {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "object"),
        ("sample", {"json": {"n": "many"}}, 422, "n"),
        ("sample", {"json": {"n": 2, "sede": 1}}, 422, "sede"),
        ("sample", {"json": {"n": 5000}}, 400, "limit"),
        ("sample", {"json": {"n": 2, "label": 3}}, 400, "not label-conditioned"),
        ("sample", {"json": {"n": 2, "format": "gif"}}, 422, "format"),
        ("sample", {"content": b"n=2", "headers": {"content-type": "text/plain"}}, 415, "application/json"),
        ("decode", {"json": {"z": [[0.0, 1.0]]}}, 400, "shape"),
        ("decode", {"content": b'{"z": [[NaN]]}', "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ("decode", {"json": {}}, 422, "z"),
        ("encode", {"json": {}}, 400, "no images"),
        ("encode", {"json": {"images": ["not base64!"]}}, 400, "base64"),
        ("encode", {"files": [("files", ("x.png", b"definitely not a png", "image/png"))]}, 400, "not an image"),
        ("encode", {"files": [("image", ("x.png", b"abc", "image/png"))]}, 400, "files"),
        ("interpolate", {"json": {"anchors": [[0.0] * 32]}}, 400, "two anchors"),
        ("interpolate", {"json": {"anchors": [[0.0] * 32, "abc!"]}}, 400, "anchors[1] is not base64"),
        ("decode", {"content": b'{"z": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                    "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ("encode", {"content": b"garbage", "headers": {"content-type": "multipart/form-data"}}, 400, "form"),
        ("encode", {"json": {"images": [[[[2.0] * 28] * 28]]}}, 400, "[0, 1]"),
        ("sample", {"json": {"n": 2, "seed": -1}}, 422, "seed"),
        ("interpolate", {"json": {"anchors": [[0.0] * 32, [1.0] * 32], "steps": 500}}, 400, "steps"),
        ("interpolate", {"json": {"anchors": [[0.0] * 32, [1.0] * 32], "method": "cubic"}}, 422, "method"),
        ("shift", {"json": {"attribute": "smile", "images": [[[[0.0] * 28] * 28]]}}, 400, "unknown attribute"),
        ("shift", {"json": {"images": [[[[0.0] * 28] * 28]]}}, 422, "attribute"),
        ("traverse", {"json": {"dims": [99]}}, 400, "0-31"),
        ("traverse", {"json": {"span": -1}}, 422, "span"),
        ("manifold", {"json": {"n": 1000}}, 422, "n"),
        ("nonsense", {"json": {}}, 404, "Not Found"),
    ],
)
def test_bad_requests_get_problem_details(client: TestClient, path: str, kwargs: dict[str, Any], status: int,
                                          words: str) -> None:  # fmt: skip
    doc = problem(client.post(f"/v1/models/mnist-vae/{path}", **kwargs), status)
    assert words.lower() in doc["detail"].lower(), doc


def test_method_not_allowed_and_unknown_route(client: TestClient) -> None:
    problem(client.get("/v1/models/mnist-vae/sample"), 405)
    problem(client.get("/no/such/page"), 404)


def test_upload_limits(client: TestClient) -> None:
    big = b"x" * (600 * 1024)  # over the fixture's 512 KiB
    doc = problem(client.post("/v1/models/mnist-vae/encode", files=[("files", ("a.png", big, "image/png"))]), 413)
    assert "524,288 bytes" in doc["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body streams in
        for _ in range(20):
            yield b"y" * 65536

    r = client.post("/v1/models/mnist-vae/encode", content=chunks(), headers={"content-type": "application/json"})
    problem(r, 413)
    huge = io.BytesIO()  # 5000 x 4000 = 20 M pixels in a few KB of PNG: refused before decoding
    Image.new("L", (5000, 4000)).save(huge, format="PNG")
    assert len(huge.getvalue()) < 512 * 1024
    bomb = [("files", ("bomb.png", huge.getvalue(), "image/png"))]
    doc = problem(client.post("/v1/models/mnist-vae/encode", files=bomb), 413)
    assert "pixels" in doc["detail"]
    many = [("files", (f"{i}.png", digit(i % 10), "image/png")) for i in range(65)]
    problem(client.post("/v1/models/mnist-vae/encode", files=many), 413)


def test_a_failing_model_is_a_500_with_a_short_message(models: dict[str, vi.Model],
                                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    broken = vi.load("mnist-vae", providers="cpu")

    def boom(z: np.ndarray, chunk: int = 0) -> np.ndarray:
        if len(z) > 1:
            raise RuntimeError("onnxruntime exploded")
        return models["mnist-vae"].decode(z)

    broken.decode = boom  # type: ignore[method-assign]
    with TestClient(create_app({"mnist-vae": broken}, Settings())) as c:
        doc = problem(c.post("/v1/models/mnist-vae/sample", json={"n": 3, "format": "npy"}), 500)
        assert "mnist-vae" in doc["detail"] and "RuntimeError" in doc["detail"] and "exploded" not in doc["detail"]
        assert "model_errors_total{model=\"mnist-vae\"} 1.0" in c.get("/metrics").text
    assert any("exploded" in r.getMessage() or "exploded" in str(r.exc_info) for r in caplog.records)


# -- auth and CORS --------------------------------------------------------------------------------


def test_api_key(models: dict[str, vi.Model]) -> None:
    app = create_app({"mnist-vae": models["mnist-vae"]}, Settings(api_key="correct-horse-battery"))
    with TestClient(app) as c:
        url = "/v1/models/mnist-vae/sample"
        doc = problem(c.post(url, json={"n": 1}), 401)
        assert "Bearer" in doc["detail"]
        assert c.post(url, json={"n": 1}).headers["www-authenticate"].startswith("Bearer")
        problem(c.post(url, json={"n": 1}, headers={"Authorization": "Bearer wrong-key"}), 401)
        problem(c.post(url, json={"n": 1}, headers={"Authorization": "Basic correct-horse-battery"}), 401)
        problem(c.get("/metrics"), 401)
        ok = c.post(url, json={"n": 1, "seed": 0}, headers={"Authorization": "Bearer correct-horse-battery"})
        assert ok.status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/").status_code == 200  # the page itself holds no data; its API calls need the key


def test_cors_off_unless_asked(models: dict[str, vi.Model]) -> None:
    origin = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app({"mnist-vae": models["mnist-vae"]}, Settings())) as c:
        r = c.get("/v1/models", headers=origin)
        assert "access-control-allow-origin" not in r.headers
    app = create_app({"mnist-vae": models["mnist-vae"]}, Settings(cors_origins=("http://elsewhere.example",)))
    with TestClient(app) as c:
        assert c.get("/v1/models", headers=origin).headers["access-control-allow-origin"] == "http://elsewhere.example"
        assert c.options("/v1/models/mnist-vae/sample", headers=origin).status_code == 200


# -- batching -------------------------------------------------------------------------------------


@contextlib.contextmanager
def live_server(models: dict[str, vi.Model], settings: Settings) -> Iterator[str]:
    """The app under uvicorn in a thread, on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(models, settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_concurrent_requests_are_batched_and_equal_the_unbatched_result(models: dict[str, vi.Model]) -> None:
    g = models["mnist-vae"]
    with live_server({"mnist-vae": g}, Settings(batch_window_ms=30, max_batch=256)) as url:
        def one(i: int) -> tuple[int, np.ndarray]:
            r = httpx.post(f"{url}/v1/models/mnist-vae/sample", json={"n": 1 + i % 3, "seed": 100 + i, "format": "npy"},
                           timeout=30)  # fmt: skip
            return i, npy(r)

        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(48)))
        metrics = httpx.get(f"{url}/metrics").text
    for i, x in results:
        np.testing.assert_allclose(x, g.sample(1 + i % 3, seed=100 + i), atol=1e-6, rtol=0)
    calls = _metric(metrics, 'vaegen_batch_requests_count{graph="decoder",model="mnist-vae"}')
    reqs = _metric(metrics, 'vaegen_batch_requests_sum{graph="decoder",model="mnist-vae"}')
    assert reqs == 48 + 1  # + the warm-up call
    assert calls < reqs / 2, (calls, reqs)  # several requests shared each graph call


def _metric(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{key} not in metrics")


def test_a_full_queue_answers_503_with_retry_after(models: dict[str, vi.Model]) -> None:
    gate = threading.Event()
    slow = vi.load("mnist-vae", providers="cpu")
    real = models["mnist-vae"].decode

    def held(z: np.ndarray, chunk: int = 0) -> np.ndarray:
        gate.wait(20)
        return real(z)

    slow.decode = held  # type: ignore[method-assign]
    gate.set()  # let the warm-up through
    with live_server({"mnist-vae": slow}, Settings(batch_window_ms=0, max_queue=2)) as url:
        gate.clear()
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(httpx.post, f"{url}/v1/models/mnist-vae/sample", json={"n": 1, "seed": i, "format": "npy"},
                            timeout=30)
                for i in range(8)
            ]  # fmt: skip
            key = 'vaegen_requests_total{endpoint="/v1/models/{name}/sample",method="POST",status="503"}'
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the five that find no room have been refused
                text = httpx.get(f"{url}/metrics").text
                if key in text and _metric(text, key) >= 5:
                    break
                time.sleep(0.05)
            gate.set()
            answers = [f.result() for f in futures]
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 3 + [503] * 5, codes  # one running and two queued get through
    full = next(r for r in answers if r.status_code == 503)
    assert full.headers["retry-after"] == "1" and "full" in problem(full, 503)["detail"]


# -- the command and graceful shutdown --------------------------------------------------------------


def test_serve_command_refuses_bad_options() -> None:
    from typer.testing import CliRunner

    from vaegen_infer.cli import app

    r = CliRunner().invoke(app, ["serve", "--api-key-env", "VAEGEN_TEST_UNSET_VARIABLE"])
    assert r.exit_code == 2 and "VAEGEN_TEST_UNSET_VARIABLE" in r.stderr
    r = CliRunner().invoke(app, ["serve", "--host", "not a host"])
    assert r.exit_code == 2 and "host" in r.stderr
    r = CliRunner().invoke(app, ["serve", "--model", "no-such-model", "--port", "0"])
    assert r.exit_code == 2 and "unknown model" in r.stderr


def test_the_cli_does_not_import_the_server_stack() -> None:
    code = "import sys, vaegen_infer.cli, vaegen_infer.serve; bad = [m for m in ('fastapi', 'uvicorn', 'prometheus_client') if m in sys.modules]; print(bad); sys.exit(bool(bad))"  # noqa: E501
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_sigterm_finishes_requests_in_flight(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "from vaegen_infer.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "-m", "mnist-vae", "--port", str(port), "--batch-window-ms", "1000",
         "--providers", "cpu"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "server did not become ready"
            time.sleep(0.1)
        with ThreadPoolExecutor(6) as pool:
            futures = [
                pool.submit(httpx.post, f"{url}/v1/models/mnist-vae/sample", json={"n": 16, "seed": i, "format": "npy"},
                            timeout=30)
                for i in range(6)  # 6 x 16 rows < max_batch 256: all wait for the window to end
            ]  # fmt: skip
            # SIGTERM once all six are being answered (sitting in the 1 s batching window): the
            # metrics request itself is the seventh in flight
            while _metric(httpx.get(f"{url}/metrics").text, "vaegen_requests_in_flight") < 7:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        # uvicorn re-raises the signal after its graceful shutdown, so the parent sees "killed by SIGTERM"
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    g = vi.load("mnist-vae", providers="cpu")
    for i, r in enumerate(answers):
        np.testing.assert_allclose(npy(r), g.sample(16, seed=i), atol=1e-6)
    out = proc.stdout.read() if proc.stdout else ""
    assert "Shutting down" in out or "shutdown" in out.lower(), out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_pixels_equal_to_uint8(models: dict[str, vi.Model], client: TestClient) -> None:
    """What the page draws from JSON is the library's uint8 picture (the JS rounding is float32's)."""
    g = models["mnist-vae"]
    doc = client.post("/v1/models/mnist-vae/sample", json={"n": 2, "seed": 1, "format": "json"}).json()
    x = np.asarray(doc["images"], np.float32)
    np.testing.assert_array_equal(to_uint8(x), to_uint8(g.sample(2, seed=1)))


# -- what the server does for speed keeps its answers -----------------------------------------------


def test_npy_answers_are_np_save_bytes() -> None:
    from vaegen_infer.serve.app import npy_bytes

    for shape in [(1, 1, 28, 28), (5, 3, 64, 64), (7, 32), (0, 5), (3,)]:
        a = np.random.default_rng(0).random(shape)  # float64: the answer is float32
        buf = io.BytesIO()
        np.save(buf, a.astype(np.float32), allow_pickle=False)
        assert npy_bytes(a) == buf.getvalue(), shape
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    assert np.array_equal(np.load(io.BytesIO(npy_bytes(fortran))), fortran)


def test_tune_gc_freezes_the_heap_and_raises_the_young_threshold() -> None:
    import gc

    from vaegen_infer.serve import GC_GEN0_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000 and gc.get_threshold()[0] == GC_GEN0_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_serve_command_runs_small_batches_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import vaegen_infer.serve
    from vaegen_infer.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(vaegen_infer.serve, "run", lambda models, settings, level: seen.update(models))
    r = CliRunner().invoke(app, ["serve", "--model", "mnist-vae", "--providers", "cpu", "--port", "0"])
    assert r.exit_code == 0, r.output
    request = seen["mnist-vae"].request
    assert request.small_batch_threads == 1
    from vaegen_infer import providers

    opts = providers.session_options(request, small_batch=True)
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
