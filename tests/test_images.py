"""Reading user images in any mode and size, and the grids we write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vaegen_infer.errors import InputError
from vaegen_infer.images import expand_inputs, grid_shape, labelled_grid, load_image, load_images, make_grid

SHAPE = (1, 28, 28)


def _digit() -> np.ndarray:
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255  # a vertical bar, light on dark
    return a


@pytest.mark.parametrize(
    "mode",
    ["L", "RGB", "RGBA", "LA", "P", "CMYK", "1", "I;16", "I", "F"],
)
def test_every_mode_loads_as_grey_in_unit_range(mode: str, tmp_path: Path) -> None:
    base = Image.fromarray(_digit())
    if mode == "I;16":
        img = Image.fromarray(_digit().astype(np.uint16) * 257)  # 16-bit grey
    elif mode == "F":
        img = Image.fromarray(_digit().astype(np.float32) / 255.0, mode="F")
    else:
        img = base.convert(mode)
    path = tmp_path / ("x.tiff" if mode in ("I;16", "I", "F", "CMYK") else "x.png")
    img.save(path)
    x = load_image(path, SHAPE)
    assert x.shape == SHAPE and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x[0, 14, 13] > 0.9 and x[0, 2, 2] < 0.1


def test_alpha_is_composited_over_black(tmp_path: Path) -> None:
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere...
    rgba[6:22, 12:16, 3] = 255  # ...but opaque only on the bar
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", SHAPE)
    assert x[0, 14, 13] > 0.99 and x[0, 2, 2] == 0.0


def test_other_sizes_are_resized_with_a_note_or_refused_with_strict(tmp_path: Path) -> None:
    Image.fromarray(np.kron(_digit(), np.ones((4, 4), np.uint8))).save(tmp_path / "big.png")  # 112 x 112
    notes: list[str] = []
    x = load_image(tmp_path / "big.png", SHAPE, note=notes.append)
    assert x.shape == SHAPE and notes == ["big.png: resized 112x112 -> 28x28"]
    np.testing.assert_allclose(x[0], _digit() / 255.0, atol=1e-5)  # 4x4 box averaging undoes the kron
    with pytest.raises(InputError, match="--strict"):
        load_image(tmp_path / "big.png", SHAPE, strict=True)


def test_animated_images_use_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(_digit()), Image.fromarray(255 - _digit())]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    notes: list[str] = []
    x = load_image(tmp_path / "a.gif", SHAPE, note=notes.append)
    assert "2 frames" in notes[0] and x[0, 2, 2] < 0.1


def test_light_background_gets_a_hint_and_invert_flips(tmp_path: Path) -> None:
    Image.fromarray(255 - _digit()).save(tmp_path / "paper.png")
    notes: list[str] = []
    load_image(tmp_path / "paper.png", SHAPE, note=notes.append)
    assert "--invert" in notes[0]
    x = load_image(tmp_path / "paper.png", SHAPE, invert=True)
    assert x[0, 14, 13] > 0.9 and x[0, 2, 2] < 0.1


def test_colour_models_get_three_channels(tmp_path: Path) -> None:
    Image.fromarray(_digit()).save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png", (3, 28, 28))
    assert x.shape == (3, 28, 28) and np.allclose(x[0], x[2])


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40],
    ids=["zero-bytes", "text", "png-header-only"],
)
def test_unreadable_files_are_named(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"bad\.png (is not an image|cannot be read)"):
        load_image(path, SHAPE)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t\.png"):
        load_image(tmp_path / "t.png", SHAPE)


def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("L", (200, 200)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own guard, with a small limit
    with pytest.raises(InputError, match="too many pixels"):
        load_image(tmp_path / "bomb.png", SHAPE)


def test_directories_and_globs_expand_sorted(tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "c.jpg"):
        Image.fromarray(_digit()).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.png", "b.png", "c.jpg"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")])] == ["a.png", "b.png"]
    x, paths = load_images([tmp_path], SHAPE)
    assert x.shape == (3, *SHAPE) and len(paths) == 3


@pytest.mark.parametrize("what", ["empty-dir", "no-match", "missing"])
def test_nothing_to_load_is_an_error(what: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    arg = {"empty-dir": tmp_path / "empty", "no-match": str(tmp_path / "*.png"), "missing": tmp_path / "nope.png"}[what]
    with pytest.raises(InputError):
        expand_inputs([arg])


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 200), cols=st.one_of(st.none(), st.integers(1, 30)))
def test_grid_layout_holds_every_tile_in_near_square_rows(n: int, cols: int | None) -> None:
    rows, c = grid_shape(n, cols)
    assert rows * c >= n > (rows - 1) * c
    if cols is None:
        assert abs(rows - c) <= 1 or c * c >= n


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), pad=st.integers(0, 3), scale=st.integers(1, 3))
def test_grid_pixels_land_in_their_tiles(n: int, pad: int, scale: int) -> None:
    tiles = np.zeros((n, 1, 4, 5), np.float32)
    for i in range(n):
        tiles[i, 0, 0, 0] = 1.0  # mark each tile's top-left pixel
    img = np.asarray(make_grid(tiles, pad=pad, scale=scale))
    rows, cols = grid_shape(n)
    assert img.shape == (pad + rows * (4 * scale + pad), pad + cols * (5 * scale + pad))
    for i in range(n):
        r, c = divmod(i, cols)
        assert img[pad + r * (4 * scale + pad), pad + c * (5 * scale + pad)] == 255


def test_labelled_grid_adds_margins_for_labels() -> None:
    tiles = np.zeros((2, 3, 1, 28, 28), np.float32)
    plain = labelled_grid(tiles, scale=1)
    labelled = labelled_grid(tiles, row_labels=["z0", "z11"], col_labels=["-1", "0", "+1"], scale=1)
    assert plain.size == (2 + 3 * 30, 2 + 2 * 30)
    assert labelled.width > plain.width and labelled.height > plain.height
