"""The explorer page in a real browser: Debian's chromium driven by Playwright, against a live
server on a free 127.0.0.1 port. Each state is checked against the library's pixels and
screenshotted (to $VAEGEN_SCREENSHOTS, else a temporary directory)."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
if shutil.which("chromium") is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

import vaegen_infer as vi  # noqa: E402
from vaegen_infer.images import load_image, to_uint8  # noqa: E402
from vaegen_infer.serve import Settings  # noqa: E402

from .conftest import ROOT  # noqa: E402
from .test_serve import live_server  # noqa: E402

EXAMPLES = ROOT / "docs" / "examples"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


RGB = "color-dsprites"  # the shipped 64x64 RGB bundle, when this checkout has it


@pytest.fixture(scope="module")
def models() -> dict[str, vi.Model]:
    names = ["mnist-vae", "mnist-vae-2d", "mnist-aae"] + ([RGB] if RGB in vi.models() else [])
    return {name: vi.load(name, providers="cpu") for name in names}


@pytest.fixture(scope="module")
def server(models: dict[str, vi.Model]) -> Iterator[str]:
    with live_server(models, Settings(batch_window_ms=2.0)) as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = os.environ.get("VAEGEN_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    outside: list[str] = []
    pg.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    pg.goto(server + "/")
    pg.wait_for_function("window.explorer && window.explorer.samples.length > 0 && window.explorer.last")
    yield pg
    context.close()
    assert not errors, errors
    assert not outside, f"the page fetched from outside the server: {outside}"  # works offline


def pixels(page: Any, selector: str) -> np.ndarray:
    """A canvas's pixels (H, W, 3) uint8, read back through getImageData."""
    data = page.eval_on_selector(selector, """cv => {
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height);
        return {w: cv.width, h: cv.height, px: Array.from(d.data)};
    }""")
    return np.asarray(data["px"], np.uint8).reshape(data["h"], data["w"], 4)[..., :3]


def as_shown(images: np.ndarray) -> np.ndarray:
    """Library images (N, 1, H, W) -> what a canvas holds, (N, H, W, 3)."""
    return np.repeat(to_uint8(images), 3, axis=3)


def settle(page: Any) -> None:
    """Wait until the page has no request in flight and its last decode is drawn."""
    page.wait_for_function("window.explorer.pending === 0")
    assert "error" not in (page.get_attribute("#status", "class") or ""), page.text_content("#status")


def test_samples_path_and_sliders(page: Any, models: dict[str, vi.Model], shots: Path) -> None:
    g = models["mnist-vae"]
    page.select_option("#model", "mnist-vae")
    page.fill("#seed", "3")
    page.fill("#n", "12")
    page.click("#draw")
    page.wait_for_function(
        "window.explorer.samples.length === 12 && document.querySelector('#status').textContent.includes('seed 3')"
    )
    want = as_shown(g.sample(12, seed=3))
    for i in range(12):
        np.testing.assert_array_equal(pixels(page, f"#samples canvas[data-index='{i}']"), want[i])
    page.screenshot(path=str(shots / "1-samples.png"), full_page=True)

    # two clicks: the slerp path between the two samples
    page.click("#samples canvas[data-index='2']")
    page.click("#samples canvas[data-index='7']")
    page.wait_for_function("document.querySelectorAll('#path canvas').length === 10")
    settle(page)
    z = g.sample_latents(12, seed=3)
    path = as_shown(g.interpolate(z[2], z[7], steps=10))
    for k in range(10):
        np.testing.assert_array_equal(pixels(page, f"#path canvas:nth-child({k + 1})"), path[k])
    np.testing.assert_array_equal(pixels(page, "#current"), as_shown(g.decode(z[7][None]))[0])
    page.screenshot(path=str(shots / "2-path.png"), full_page=True)

    # drag the most used dimension's slider with the mouse: the image changes as it moves
    top = g.dims_by_importance()[0]
    before = pixels(page, "#current")
    handle = page.locator(f"#dims input[data-dim='{top}']")
    box = handle.bounding_box()
    requests_before = page.evaluate("window.explorer.requests")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(box["x"] + box["width"] * (0.5 + 0.09 * step), box["y"] + box["height"] / 2)
        page.wait_for_timeout(60)
    page.mouse.up()
    settle(page)
    assert page.evaluate("window.explorer.requests") > requests_before + 1  # a request per move, not one at the end
    assert not np.array_equal(pixels(page, "#current"), before)
    # set it exactly: +2 prior standard deviations equals the library's traversal of that code
    page.eval_on_selector(f"#dims input[data-dim='{top}']",
                          "el => { el.value = '2'; el.dispatchEvent(new Event('input')); }")  # fmt: skip
    settle(page)
    want = g.traverse(z[7], dims=[top], span=2.0, steps=2)[0, 1]  # values -2, +2
    # one row decoded alone vs two together: equal to float32 rounding, so at most one grey level apart
    np.testing.assert_allclose(pixels(page, "#current").astype(int), as_shown(want[None])[0].astype(int), atol=1)
    page.screenshot(path=str(shots / "3-slider.png"), full_page=True)

    # an attribute slider on top: the page's code is mu + amount * v, decoded by the library
    page.eval_on_selector("#attrs input[data-attr='thickness']",
                          "el => { el.value = '1.5'; el.dispatchEvent(new Event('input')); }")  # fmt: skip
    settle(page)
    code = np.asarray(page.evaluate("window.explorer.last.z"), np.float32)
    expect = z[7].copy()
    expect[top] = g.prior.mean()[top] + 2.0 * g.prior.std()[top]
    expect = expect + 1.5 * g.attribute("thickness").vector
    np.testing.assert_allclose(code, expect, atol=1e-5)
    np.testing.assert_array_equal(pixels(page, "#current"), as_shown(g.decode(code[None]))[0])
    page.screenshot(path=str(shots / "4-attribute.png"), full_page=True)


def _drop(page: Any, selector: str, path: Path) -> None:
    """Drop a file on an element as a person dragging it in would (a DataTransfer with the file)."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle("""([b64, name]) => {
        const bin = atob(b64), bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: 'image/png'}));
        return dt;
    }""", [data, path.name])  # fmt: skip
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_drop_an_image_and_the_latent_map(page: Any, models: dict[str, vi.Model], shots: Path) -> None:
    g = models["mnist-vae-2d"]
    page.select_option("#model", "mnist-vae-2d")
    page.wait_for_function("window.explorer.model.name === 'mnist-vae-2d' && window.explorer.map")
    settle(page)
    for k in (0, 1, 7):
        count = len(page.evaluate("window.explorer.mapCodes"))
        _drop(page, "#drop", EXAMPLES / f"digit-{k}.png")
        page.wait_for_function(f"window.explorer.mapCodes.length === {count + 1}")
    settle(page)
    x = load_image(EXAMPLES / "digit-7.png", g.image_shape)
    mu, _ = g.encode(x[None])
    np.testing.assert_allclose(page.evaluate("window.explorer.base"), mu[0], atol=1e-5)
    np.testing.assert_array_equal(pixels(page, "#current"), as_shown(g.reconstruct(x[None]))[0])
    page.screenshot(path=str(shots / "5-dropped.png"), full_page=True)

    # two samples of the 2-D model: their path, and their dots on the map
    page.click("#samples canvas[data-index='0']")
    page.click("#samples canvas[data-index='9']")
    page.wait_for_function("document.querySelectorAll('#path canvas').length === 10")
    settle(page)

    # click on the map: the page decodes the point under the mouse
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.3)
    settle(page)
    win = page.evaluate("window.explorer.map.window")
    z = np.asarray(page.evaluate("window.explorer.last.z"), np.float32)
    assert abs(z[0] - (win["x"][0] + 0.7 * (win["x"][1] - win["x"][0]))) < 0.05
    assert abs(z[1] - (win["y"][1] - 0.3 * (win["y"][1] - win["y"][0]))) < 0.05
    np.testing.assert_array_equal(pixels(page, "#current"), as_shown(g.decode(z[None]))[0])
    page.screenshot(path=str(shots / "6-map-click.png"), full_page=True)


def test_conditional_model_gets_a_label_picker(page: Any, models: dict[str, vi.Model], shots: Path) -> None:
    g = models["mnist-aae"]
    page.select_option("#model", "mnist-aae")
    page.wait_for_function("window.explorer.model.name === 'mnist-aae'")
    assert page.is_visible("#label")
    page.fill("#seed", "5")
    page.fill("#n", "40")
    page.select_option("#label", "*")
    page.click("#draw")
    page.wait_for_function("window.explorer.samples.length === 40")
    settle(page)
    assert page.locator("#samples .row").count() == 10
    want = as_shown(g.sample(4, seed=5 + 3, label="3"))  # row 3: label 3 from seed + 3, as the CLI's grid
    for j in range(4):
        np.testing.assert_array_equal(pixels(page, f"#samples canvas[data-index='{12 + j}']"), want[j])
    page.screenshot(path=str(shots / "7-per-label.png"), full_page=True)
    page.select_option("#model", "mnist-vae")
    page.wait_for_function("window.explorer.model.name === 'mnist-vae'")
    assert not page.is_visible("#label")
    assert "not label-conditioned" in page.text_content("#label-note")


def test_api_docs_render_offline(browser: Any, server: str) -> None:
    context = browser.new_context()
    pg = context.new_page()
    outside: list[str] = []
    pg.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    pg.goto(server + "/docs")
    pg.wait_for_selector(".opblock-summary-path", timeout=30_000)  # Swagger UI rendered the schema
    paths = pg.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent)")
    context.close()
    assert "/v1/models/{name}/sample" in "".join(paths)
    assert not outside, outside


def test_the_page_asks_for_the_api_key(browser: Any, models: dict[str, vi.Model]) -> None:
    with live_server({"mnist-vae": models["mnist-vae"]}, Settings(api_key="page-key-123456")) as url:
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(url + "/")
        pg.wait_for_selector("#key-box:not([hidden])")
        assert "API key" in pg.text_content("#status")
        pg.fill("#key", "page-key-123456")
        pg.dispatch_event("#key", "change")
        pg.wait_for_function("window.explorer.samples.length === 16 && window.explorer.pending === 0")
        want = as_shown(models["mnist-vae"].sample(16, seed=0))
        np.testing.assert_array_equal(pixels(pg, "#samples canvas[data-index='5']"), want[5])
        context.close()


def test_an_rgb_model_is_drawn_in_colour(page: Any, models: dict[str, vi.Model], shots: Path) -> None:
    if RGB not in models:
        pytest.skip(f"{RGB} is not shipped in this checkout")
    g = models[RGB]
    assert page.is_hidden("#prior-box")  # mnist-vae, shown first, has no fitted sampler
    page.select_option("#model", RGB)
    page.wait_for_function(f"window.explorer.model.name === '{RGB}'")
    page.fill("#seed", "2")
    page.fill("#n", "8")
    page.click("#draw")
    page.wait_for_function("window.explorer.samples.length === 8 && window.explorer.pending === 0")
    want = to_uint8(g.sample(8, seed=2))  # (8, 64, 64, 3)
    for i in (0, 7):
        np.testing.assert_array_equal(pixels(page, f"#samples canvas[data-index='{i}']"), want[i])
    page.screenshot(path=str(shots / "8-rgb.png"), full_page=True)
    if g.manifest.sampler is None:
        return
    # the bundle's fitted sampler: the edit starts from the first sample drawn on load (seed 0), not
    # from the prior's mean; the page offers the prior instead, and redraws from it
    page.select_option("#model", "mnist-vae")
    page.wait_for_function("window.explorer.model.name === 'mnist-vae' && window.explorer.pending === 0")
    page.select_option("#model", RGB)
    page.wait_for_function(f"window.explorer.model.name === '{RGB}' && window.explorer.samples.length > 0")
    settle(page)
    first = to_uint8(g.decode(g.sample_latents(int(page.input_value("#n")), seed=int(page.input_value("#seed")))[:1]))
    np.testing.assert_array_equal(pixels(page, "#current"), first[0])
    assert page.is_visible("#prior-box") and "fitted sampler" in page.text_content("#about")
    page.fill("#seed", "2")
    page.fill("#n", "8")
    page.click("#draw")
    page.wait_for_function("window.explorer.samples.length === 8 && window.explorer.pending === 0")
    before = pixels(page, "#samples canvas[data-index='0']")
    z0 = page.evaluate("window.explorer.samples[0].z")
    page.check("#from-prior")
    page.wait_for_function(  # the grid was redrawn with other codes
        "(z0) => window.explorer.pending === 0 && window.explorer.samples.length === 8 && "
        "JSON.stringify(window.explorer.samples[0].z) !== JSON.stringify(z0)",
        arg=z0,
    )
    prior = to_uint8(g.sample(8, seed=2, from_prior=True))
    got = pixels(page, "#samples canvas[data-index='0']")
    assert not np.array_equal(got, before)
    np.testing.assert_array_equal(got, prior[0])
    page.screenshot(path=str(shots / "9-rgb-from-prior.png"), full_page=True)
