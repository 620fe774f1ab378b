"""examples/sample_onnxruntime.py, a reader of the bundle format written without vaegen_infer, gives the
same codes and images as `vaegen_infer.load(...).sample` for the same seed."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

import vaegen_infer as vi
from vaegen_infer import model as vi_model

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "sample_onnxruntime.py"
# Runs the example in a fresh interpreter in which `import vaegen_infer` fails, so it cannot lean on it.
_RUN = (
    "import runpy, sys; sys.modules['vaegen_infer'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_onnxruntime", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.fixture
def uniform_bundle(tmp_path: Path) -> Path:
    """mnist-vae-2d's graphs under a uniform prior: no shipped bundle has one."""
    dst = tmp_path / "uniform-2d"
    shutil.copytree(ROOT / "exported" / "mnist-vae-2d", dst)
    manifest = json.loads((dst / "model.json").read_text())
    manifest["prior"] = {"name": "uniform", "params": {"half_width": 1.5}}
    (dst / "model.json").write_text(json.dumps(manifest))
    return dst


def test_example_draw_chunk_is_the_runtime_s() -> None:
    assert _example().DRAW_CHUNK == vi_model.DRAW_CHUNK


@pytest.mark.parametrize(
    ("bundle", "label"),
    [
        ("mnist-vae", None),
        ("mnist-vae-2d", None),
        ("mnist-aae", None),
        ("mnist-aae", "3"),
        ("mnist-aae-swissroll", "7"),
    ],
)
def test_example_codes_are_the_runtime_s_bit_for_bit(bundle: str, label: str | None) -> None:
    """Two draw blocks (DRAW_CHUNK + 3 codes), so the block rule is exercised too."""
    ex = _example()
    manifest = json.loads((ROOT / "exported" / bundle / "model.json").read_text())
    index = None if label is None else ex.label_index(manifest, label)
    n = vi_model.DRAW_CHUNK + 3
    ours = ex.sample_latents(manifest, n, 11, index)
    theirs = vi.load(bundle).sample_latents(n, seed=11, label=label)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (n, manifest["latent_dim"])
    assert np.array_equal(ours, theirs)


def test_example_uniform_codes(uniform_bundle: Path) -> None:
    manifest = json.loads((uniform_bundle / "model.json").read_text())
    ours = _example().sample_latents(manifest, 100, 5)
    assert np.array_equal(ours, vi.load(uniform_bundle).sample_latents(100, seed=5))
    assert np.abs(ours).max() <= 1.5


@pytest.mark.parametrize(
    ("bundle", "n", "seed", "label"),
    [("mnist-vae", 64, 0, None), ("mnist-aae", 16, 1, "3"), ("mnist-aae-swissroll", 10, 2, None)],
)
def test_example_images_match_model_sample(bundle: str, n: int, seed: int, label: str | None, tmp_path: Path) -> None:
    out = tmp_path / "x.npy"
    extra = [] if label is None else ["--label", label]
    proc = run_example(str(ROOT / "exported" / bundle), "--n", str(n), "--seed", str(seed), "-o", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    ours = np.load(out)
    theirs = vi.load(bundle).sample(n, seed=seed, label=label)
    assert ours.shape == theirs.shape == (n, 1, 28, 28)
    assert float(np.abs(ours - theirs).max()) < 1e-5


def test_example_images_uniform_prior(uniform_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "u.npy"
    proc = run_example(str(uniform_bundle), "--n", "9", "--seed", "4", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert float(np.abs(np.load(out) - vi.load(uniform_bundle).sample(9, seed=4)).max()) < 1e-5


def test_example_png_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    proc = run_example(str(ROOT / "exported" / "mnist-vae"), "--n", "10", "--seed", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 28, 4 * 28)  # 10 tiles in rows of ceil(sqrt(10)) = 4
    images = vi.load("mnist-vae").sample(10, seed=3)
    tile = grid[28:56, 28:56]  # image 5: row 1, column 1
    assert np.abs(tile.astype(int) - np.rint(images[5, 0] * 255).astype(int)).max() <= 1
    assert not grid[56:, 56:].any()  # the two places after the tenth image stay black


def test_example_refuses_label_on_unconditional_bundle(tmp_path: Path) -> None:
    proc = run_example(str(ROOT / "exported" / "mnist-vae"), "--n", "2", "--label", "3", "-o", str(tmp_path / "x.npy"))
    assert proc.returncode == 1
    assert "not label-conditioned" in proc.stderr
    assert not (tmp_path / "x.npy").exists()
