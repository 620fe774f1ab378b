"""The latent-space commands through the CLI, in-process, and their bad-input behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vaegen_infer.cli import app
from vaegen_infer.datasets import load_idx_dir

from .conftest import MNIST_DIR, VAE_DIM

runner = CliRunner()


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def digit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six MNIST test digits as PNG files (two 3s, two 7s, two 8s when the data is present)."""
    out = tmp_path_factory.mktemp("digits")
    if MNIST_DIR.is_dir():
        x, y = load_idx_dir(MNIST_DIR, "test")
        picks = [i for k in (3, 7, 8) for i in np.flatnonzero(y == k)[:2]]
        imgs = (x[picks, 0] * 255).round().astype(np.uint8)
    else:
        imgs = np.zeros((6, 28, 28), np.uint8)
        for i in range(6):
            imgs[i, 5:23, 10 + i : 14 + i] = 255
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(out / f"d{i}.png")
    return out


def test_encode_to_npy_and_json_then_decode(digit_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run("encode", digit_dir, "-o", tmp_path / "z.npy")
    assert code == 0 and f"6 codes of {VAE_DIM} dimensions" in out
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (6, VAE_DIM) and z.dtype == np.float32
    code, _, _ = run("encode", digit_dir / "d0.png", digit_dir / "d1.png", "-o", tmp_path / "z.json")
    data = json.loads((tmp_path / "z.json").read_text())
    assert data["model"] == "mnist-vae" and len(data["mu"]) == 2 and len(data["logvar"][0]) == VAE_DIM
    np.testing.assert_allclose(np.array(data["mu"]), z[:2], atol=1e-6)
    for src in ("z.npy", "z.json"):
        code, _, err = run("decode", tmp_path / src, "-o", tmp_path / f"{src}.png", "--scale", "1")
        assert code == 0, err
    assert Image.open(tmp_path / "z.npy.png").size == (2 + 3 * 30, 2 + 2 * 30)


def test_reconstruct_shows_inputs_above_outputs(digit_dir: Path, tmp_path: Path) -> None:
    code, _, err = run("reconstruct", digit_dir, "-o", tmp_path / "r.png", "--cols", "3")
    assert code == 0, err
    w, h = Image.open(tmp_path / "r.png").size
    assert h > 4 * 56 and w > 3 * 56  # 2 pairs of rows of 3 tiles at scale 2, plus labels


def test_interpolate_png_and_gif(digit_dir: Path, tmp_path: Path) -> None:
    a, b, c = (digit_dir / f"d{i}.png" for i in (0, 2, 4))
    code, out, err = run("interpolate", a, b, c, "--steps", "6", "--method", "slerp", "-o", tmp_path / "p.png")
    # The count said is the count shown: 2 rows of 6 tiles (the middle anchor ends one and starts the next).
    assert code == 0 and "12 tiles: 2 segments of 6 steps" in out, err
    w, h = Image.open(tmp_path / "p.png").size
    assert (w, h) > (6 * 56, 2 * 56) and h < 3 * 56
    code, out, err = run("interpolate", a, b, "--steps", "8", "--method", "lerp", "-o", tmp_path / "p.gif")
    assert code == 0 and "8 images on the path, 14 frames with --loop bounce" in out, err
    gif = Image.open(tmp_path / "p.gif")
    assert gif.n_frames == 8 + 6  # forth and back, ends not repeated
    code, out, err = run("interpolate", a, b, "--steps", "8", "--loop", "forward", "-o", tmp_path / "f.gif")
    assert code == 0 and "8 frames with --loop forward" in out, err
    assert Image.open(tmp_path / "f.gif").n_frames == 8
    code, _, err = run("interpolate", a, b, "--loop", "sideways", "-o", tmp_path / "x.gif")
    assert code == 2 and "sideways" in err


def test_shift_traverse_manifold(digit_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "shift", digit_dir / "d0.png", "--attribute", "thickness", "--amounts", "-2,-1,0,1,2", "-o", tmp_path / "s.png"
    )
    assert code == 0, err
    code, _, err = run(
        "traverse", digit_dir / "d1.png", "--dims", "0-7", "--span", "3", "--steps", "9", "-o", tmp_path / "t.png"
    )
    assert code == 0, err
    code, _, err = run("traverse", "-o", tmp_path / "t0.png")
    assert code == 0, err
    code, _, err = run("manifold", "--n", "10", "-o", tmp_path / "m.png")
    assert code == 0, err
    assert Image.open(tmp_path / "m.png").size == (280, 280)


def test_attributes_list_and_add(digit_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run("attributes", "list")
    assert code == 0 and "thickness" in out and "digit-9" in out
    code, out, err = run(
        "attributes",
        "add",
        "--name",
        "threes",
        "--with",
        digit_dir / "d0.png",
        "--with",
        digit_dir / "d1.png",
        "--without",
        digit_dir / "d4.png",
    )
    assert code == 0, err
    assert "copied" in err and "shipped bundle is unchanged" in err
    code, out, _ = run("attributes", "list")
    assert "threes" in out and "user" in out
    code, _, err = run("shift", digit_dir / "d5.png", "-a", "threes", "-o", tmp_path / "s.png")
    assert code == 0, err
    code, _, err = run("attributes", "add", "--name", "thickness", "--with", digit_dir, "--without", digit_dir)
    assert code == 2 and "built-in" in err


def _bad_npy(tmp_path: Path, name: str, arr: np.ndarray, allow_pickle: bool = False) -> Path:
    p = tmp_path / f"{name}.npy"
    np.save(p, arr, allow_pickle=allow_pickle)
    return p


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("unreadable-image", 1, "bad.png is not an image"),
        ("latent-width", 1, f"shape (N, {VAE_DIM})"),
        ("latent-nan", 1, "NaN"),
        ("latent-inf", 1, "NaN or infinity"),
        ("latent-object", 1, "Python objects"),
        ("latent-json", 1, "not valid JSON"),
        ("unknown-attribute", 2, "valid attributes: thickness"),
        ("steps-1", 2, "steps must be at least 2"),
        ("empty-folder", 1, "no images in directory"),
        ("unwritable", 1, "cannot "),
        ("dims-reversed", 2, "start is after the end"),
        ("negative-span", 2, "span"),
        ("bad-method", 2, "cubic"),
        ("bad-amounts", 2, "bad amounts"),
        ("encode-ext", 2, ".npy or .json"),
    ],
)
def test_bad_input_one_line_no_traceback_no_output(
    case: str, code: int, message: str, digit_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "result.png"
    d0 = digit_dir / "d0.png"
    (tmp_path / "bad.png").write_text("not an image at all")
    (tmp_path / "empty").mkdir()
    args = {
        "unreadable-image": ["reconstruct", d0, tmp_path / "bad.png", "-o", out],
        "latent-width": ["decode", _bad_npy(tmp_path, "w", np.zeros((2, 5), np.float32)), "-o", out],
        "latent-nan": ["decode", _bad_npy(tmp_path, "nan", np.full((2, VAE_DIM), np.nan, np.float32)), "-o", out],
        "latent-inf": ["decode", _bad_npy(tmp_path, "inf", np.full((2, VAE_DIM), np.inf, np.float32)), "-o", out],
        "latent-object": ["decode", _bad_npy(tmp_path, "obj", np.array([{"a": 1}], dtype=object), True), "-o", out],
        "latent-json": ["decode", tmp_path / "z.json", "-o", out],
        "unknown-attribute": ["shift", d0, "--attribute", "smiling", "-o", out],
        "steps-1": ["interpolate", d0, d0, "--steps", "1", "-o", out],
        "empty-folder": ["reconstruct", tmp_path / "empty", "-o", out],
        "unwritable": ["reconstruct", d0, "-o", "/proc/vaegen/x.png"],
        "dims-reversed": ["traverse", "--dims", "5-2", "-o", out],
        "negative-span": ["traverse", "--span", "-1", "-o", out],
        "bad-method": ["interpolate", d0, d0, "--method", "cubic", "-o", out],
        "bad-amounts": ["shift", d0, "-a", "thickness", "--amounts", "1,x", "-o", out],
        "encode-ext": ["encode", d0, "-o", tmp_path / "out" / "z.txt"],
    }[case]
    (tmp_path / "z.json").write_text("{not json")
    got, stdout, stderr = run(*args)
    assert got == code, stderr
    assert message in stderr, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
