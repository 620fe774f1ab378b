"""The rough edges a new user hit (issue 12), each pinned by a test that failed on the old code."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer import providers
from vaegen_infer.cli import app
from vaegen_infer.errors import InputError, ProviderError, UsageError
from vaegen_infer.io import make_temp_dir

runner = CliRunner()
DIGIT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "digit-3.png"


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def g() -> vi.Model:
    return vi.load("mnist-vae", providers="cpu")


# 1. Every image format Pillow writes that suits a grid.
@pytest.mark.parametrize(("ext", "pillow"), [("jpg", "JPEG"), ("webp", "WEBP"), ("bmp", "BMP"), ("tiff", "TIFF"),
                                             ("gif", "GIF"), ("png", "PNG")])  # fmt: skip
def test_sample_writes_every_grid_format(tmp_path: Path, ext: str, pillow: str) -> None:
    code, _, err = run("sample", "--n", "4", "--seed", "1", "-o", tmp_path / f"s.{ext}")
    assert code == 0, err
    with Image.open(tmp_path / f"s.{ext}") as img:
        assert img.format == pillow and img.size == (2 + 2 * 58, 2 + 2 * 58)
    code, _, err = run("sample", "--n", "4", "--format", ext, "-o", tmp_path / f"t.{ext}")
    assert code == 0, err


# 2. A directory as the output says so and suggests a file name.
def test_output_directory_is_named_as_such(tmp_path: Path) -> None:
    code, _, err = run("sample", "--n", "2", "-o", str(tmp_path) + "/")
    assert code == 2 and "is a directory" in err and "samples.png" in err, err
    # Typer hands over the path without its trailing slash, so a new directory reads as a name
    # without an extension: the message then suggests a file name inside it.
    code, _, err = run("sample", "--n", "2", "-o", str(tmp_path / "new-dir") + "/")
    assert code == 2 and "no extension" in err and str(tmp_path / "new-dir" / "samples.png") in err, err
    assert not (tmp_path / "new-dir").exists()


# 3 is in tests/test_cli_ops.py (interpolate counts and --loop).


# 4. ONNX Runtime's own multi-line warnings do not come before our one line.
def test_cuda_request_without_gpu_prints_only_our_line(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and shutil.which("nvidia-smi"):
        pytest.skip("a GPU may be present: the request could succeed")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "vaegen_infer", "sample", "--n", "2", "--providers", "cuda", "-o", tmp_path / "s.png"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: CUDA was requested"), proc.stderr
    assert not (tmp_path / "s.png").exists()


# 5. traverse's help is true for every shipped model.
def test_traverse_help_is_true_for_mixture_priors() -> None:
    code, out, _ = run("traverse", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "prior's mean" in text and "variance of mu" in text
    assert "by KL)" not in text and "(or 0)" not in text and "centre, 0" not in text
    assert "{" not in out and "<list" not in out  # no Typer placeholders


# 7. The Python API.
def test_shape_errors_name_what_was_passed(g: vi.Model) -> None:
    with pytest.raises(InputError, match=r"got \(4, 28, 28\)") as err:
        g.encode(np.zeros((4, 28, 28), np.float32))
    assert "(N, 1, 28, 28)" in str(err.value)
    with pytest.raises(InputError, match="channels last"):
        g.encode(np.zeros((2, 28, 28, 1), np.float32))


def test_shift_takes_a_scalar_amount(g: vi.Model) -> None:
    x = np.full((1, 1, 28, 28), 0.2, np.float32)
    one = g.shift(x, "thickness", 1.0)
    assert one.shape == (1, 1, 1, 28, 28)
    np.testing.assert_array_equal(one, g.shift(x, "thickness", [1.0]))
    with pytest.raises(UsageError, match="amounts"):
        g.shift(x, "thickness", "a lot")  # type: ignore[arg-type]


def test_uint8_images_are_scaled_once_and_other_integers_refused(g: vi.Model) -> None:
    pixels = np.asarray(Image.open(DIGIT).convert("L"))  # (28, 28) uint8
    as_uint8 = g.encode(pixels[None, None])[0]
    as_float = g.encode(pixels[None, None].astype(np.float32) / 255)[0]
    np.testing.assert_allclose(as_uint8, as_float, atol=1e-6)
    with pytest.raises(InputError, match="int32 are ambiguous"):
        g.encode(pixels[None, None].astype(np.int32))


def test_python_errors_do_not_mention_cli_flags(g: vi.Model) -> None:
    with pytest.raises(UsageError) as err:
        g.sample(2, label=3)
    assert "--" not in str(err.value)


def test_load_images_and_add_attribute_are_public(tmp_path: Path, g: vi.Model) -> None:
    x = vi.load_images([DIGIT], g)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(x, vi.load_images([str(DIGIT)], "mnist-vae"))
    bold = np.clip(x * 1.5, 0, 1)
    added = vi.add_attribute("mnist-vae", "bolder", np.repeat(bold, 3, 0), np.repeat(x, 3, 0))
    np.testing.assert_allclose(added.attribute.vector, g.encode(bold)[0][0] - g.encode(x)[0][0], atol=1e-5)
    assert "bolder" in vi.load("mnist-vae").manifest.attributes


def test_dir_shows_the_public_api_only() -> None:
    names = dir(vi)
    assert "annotations" not in names and "np" not in names and "os" not in names
    assert {"load", "load_images", "add_attribute", "Model", "models"} <= set(names)


# 8. One truth about labels; counts agree in number.
def test_models_lists_labels_and_counts_are_singular() -> None:
    code, out, _ = run("models")
    row = next(ln for ln in out.splitlines() if ln.startswith("mnist-vae "))
    assert code == 0 and "0,1,2,3,4,5,6,7,8,9" in row
    code, out, err = run("reconstruct", DIGIT, "-o", Path(os.environ.get("TMPDIR", "/tmp")) / "vi-r.png")
    assert code == 0 and "(1 reconstruction by" in out, err


# 9. A broken ONNX Runtime install is named, with the fix.
def test_broken_onnxruntime_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    with pytest.raises(ProviderError, match=r"broken .*pip install --force-reinstall onnxruntime"):
        providers.onnxruntime_module()


# 11. Directories made for bundles get the permissions of a normal mkdir.
def test_bundle_directories_follow_the_umask(tmp_path: Path) -> None:
    made = make_temp_dir(tmp_path / "bundle")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(made.stat().st_mode) == 0o777 & ~umask
