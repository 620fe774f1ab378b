"""The picture path: tiles straight into one canvas, and PNGs compressed band by band while decoding."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaegen_infer
from vaegen_infer import grids
from vaegen_infer.images import make_grid, to_uint8
from vaegen_infer.png import StreamedPNG


def _reference_grid(images: np.ndarray, cols: int, pad: int, scale: int, background: int = 64) -> np.ndarray:
    """The layout written out tile by tile, the way make_grid did before it pasted whole rows."""
    tiles = to_uint8(images).repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, c = tiles.shape
    rows = -(-n // cols)
    canvas = np.full((pad + rows * (h + pad), pad + cols * (w + pad), c), background, np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = tiles[i]
    return canvas[..., 0] if c == 1 else canvas


@pytest.mark.parametrize(
    ("n", "c", "cols", "pad", "scale"), [(23, 1, 5, 2, 2), (10, 3, 4, 1, 3), (7, 1, 7, 0, 1), (1, 3, 1, 2, 2)]
)
def test_make_grid_pastes_the_same_pixels_as_tile_by_tile(n: int, c: int, cols: int, pad: int, scale: int) -> None:
    x = np.random.default_rng(n).random((n, c, 6, 5)).astype(np.float32)
    x[0, 0, 0, 0] = 1.0  # the extremes round the same way
    x[-1, -1, -1, -1] = 0.0
    got = np.asarray(make_grid(x, cols=cols, pad=pad, scale=scale))
    np.testing.assert_array_equal(got, _reference_grid(x, cols, pad, scale))


def _decode(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    im.load()
    return np.asarray(im)


@pytest.mark.parametrize("channels", [1, 3])
def test_streamed_png_is_a_valid_png_of_the_rows(channels: int) -> None:
    picture = np.random.default_rng(0).integers(0, 256, (37, 11, channels), dtype=np.uint8)
    buf = io.BytesIO()
    w = StreamedPNG(buf, 11, 37, channels, level=6)
    for lo, hi in [(0, 5), (5, 6), (6, 37)]:
        w.add(picture[lo:hi])
    w.close()
    data = buf.getvalue()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    got = _decode(data)
    np.testing.assert_array_equal(got, picture[..., 0] if channels == 1 else picture)


def test_streamed_png_refuses_wrong_rows() -> None:
    w = StreamedPNG(io.BytesIO(), 4, 3, 1)
    with pytest.raises(ValueError, match=r"rows must be uint8 \(r, 4, 1\)"):
        w.add(np.zeros((1, 5, 1), np.uint8))
    w.add(np.zeros((2, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="2 rows given for a picture of 3"):
        w.close()


@pytest.mark.parametrize(("n", "cols", "scale"), [(1100, None, 2), (700, 7, 1), (1, None, 2), (600, 64, 3)])
def test_sample_png_has_the_grid_pixels(n: int, cols: int | None, scale: int) -> None:
    g = vaegen_infer.load("mnist-vae", providers="cpu")
    buf = io.BytesIO()
    size = grids.sample_png(g, n, 3, buf, cols=cols, scale=scale, compress_level=1)
    want = np.asarray(grids.sample_grid(g, n, 3, cols=cols).image(scale))
    got = _decode(buf.getvalue())
    assert size == (want.shape[1], want.shape[0])
    np.testing.assert_array_equal(got, want)


def test_sample_png_bytes_depend_on_seed_and_level_only() -> None:
    g = vaegen_infer.load("mnist-vae", providers="cpu")

    def png(seed: int, level: int) -> bytes:
        buf = io.BytesIO()
        grids.sample_png(g, 1030, seed, buf, compress_level=level)
        return buf.getvalue()

    a = png(0, 1)
    assert png(0, 1) == a
    assert png(1, 1) != a
    smaller = png(0, 9)
    assert smaller != a and len(smaller) < len(a)
    assert _decode(smaller).tobytes() == _decode(a).tobytes()


def test_cli_large_sample_grid_is_streamed_and_reproducible(tmp_path: Path) -> None:
    from vaegen_infer.cli import STREAM_PNG_FROM, STREAM_PNG_LEVEL, app

    n = STREAM_PNG_FROM + 1
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for p in paths:
        with pytest.raises(SystemExit) as exc:
            app(["sample", "--n", str(n), "--seed", "5", "-o", str(p)])
        assert exc.value.code == 0
    data = paths[0].read_bytes()
    assert data == paths[1].read_bytes()
    # the streamed writer's signature: one zlib stream at its level, every scanline filter 0
    idat = b"".join(_chunks(data, b"IDAT"))
    raw = zlib.decompress(idat)
    im = _decode(data)
    assert raw[:: im.shape[1] + 1] == bytes(im.shape[0])
    level = zlib.compressobj(STREAM_PNG_LEVEL)
    assert idat == level.compress(raw) + level.flush()  # exactly one zlib stream at that level
    g = vaegen_infer.load("mnist-vae", providers="cpu")
    np.testing.assert_array_equal(im, np.asarray(grids.sample_grid(g, n, 5).image()))


def test_small_grids_keep_pillows_bytes_so_the_readme_picture_is_unchanged(tmp_path: Path) -> None:
    from tests.conftest import ROOT
    from vaegen_infer.cli import app

    out = tmp_path / "s.png"
    with pytest.raises(SystemExit) as exc:
        app(["sample", "--n", "64", "--seed", "0", "-o", str(out)])  # the README's command
    assert exc.value.code == 0
    assert out.read_bytes() == (ROOT / "docs" / "img" / "mnist-vae-samples.png").read_bytes()


def _chunks(data: bytes, kind: bytes) -> list[bytes]:
    out, i = [], 8
    while i < len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        if data[i + 4 : i + 8] == kind:
            out.append(data[i + 8 : i + 8 + length])
        i += 12 + length
    return out
