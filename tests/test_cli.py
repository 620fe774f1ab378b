"""The CLI in-process (Typer's CliRunner) and once as the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vaegen_infer.cli import app

from .conftest import VAE_DIM

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sample_writes_an_8x8_grid(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "dir" / "s.png"
    code, stdout, _ = run("sample", "--n", "64", "--seed", "0", "-o", str(out), "--scale", "1")
    assert code == 0
    assert f"wrote {out}" in stdout
    img = np.asarray(Image.open(out))
    # 8 tiles of 28 px with 2 px padding on each side: 2 + 8 * 30 = 242
    assert img.shape == (242, 242)
    assert not list(out.parent.glob(".*.part"))


def test_sample_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    run("sample", "--n", "9", "--seed", "4", "-o", str(a))
    run("sample", "--n", "9", "--seed", "4", "-o", str(b))
    assert a.read_bytes() == b.read_bytes()


def test_sample_without_seed_prints_the_seed_it_used(tmp_path: Path) -> None:
    code, stdout, _ = run("sample", "--n", "4", "-o", str(tmp_path / "s.png"))
    assert code == 0 and "seed " in stdout


def test_near_square_grid_for_other_counts(tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    run("sample", "--n", "10", "--seed", "0", "-o", str(out), "--scale", "1")
    assert Image.open(out).size == (2 + 4 * 30, 2 + 3 * 30)  # 10 tiles -> 4 columns, 3 rows


def test_models_and_info() -> None:
    code, stdout, _ = run("models")
    assert code == 0 and "mnist-vae" in stdout and "shipped" in stdout
    code, stdout, _ = run("info", "--model", "mnist-vae", "--providers", "cpu")
    assert code == 0
    assert f"latent:      {VAE_DIM} dimensions, prior " in stdout
    assert "provider:    cpu" in stdout


def test_version() -> None:
    code, stdout, _ = run("--version")
    assert code == 0 and stdout.startswith("vaegen-infer ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["sample", "--n", "0"], 2, "n must be at least 1"),
        (["sample", "--n", "abc"], 2, "--n"),
        (["sample", "--model", "no-such-model"], 2, "unknown model 'no-such-model'; available models:"),
        (["sample", "--providers", "tpu"], 2, "tpu"),
        (["sample", "--label", "3"], 2, "not label-conditioned"),
        (["sample", "-o", "out.xyz"], 2, "cannot tell the image format"),
        (["sample", "--model", "/no/such/dir"], 2, "no bundle directory"),
        (["nosuchcommand"], 2, "nosuchcommand"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    args: list[str], code: int, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    got, stdout, stderr = run(*args)
    assert got == code
    assert message in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ")
    assert "Traceback" not in stderr + stdout
    assert list(tmp_path.iterdir()) == []  # no output file left behind


def test_tampered_bundle_fails_with_exit_1_and_no_traceback(bundle_copy: Path, tmp_path: Path) -> None:
    dec = bundle_copy / "decoder.onnx"
    dec.write_bytes(dec.read_bytes()[:-10])
    out = tmp_path / "s.png"
    code, stdout, stderr = run("sample", "--model", str(bundle_copy), "-o", str(out))
    assert code == 1
    assert "sha256 mismatch" in stderr and stderr.count("\n") == 1
    assert "Traceback" not in stderr + stdout
    assert not out.exists()


def test_debug_shows_the_traceback(bundle_copy: Path) -> None:
    (bundle_copy / "encoder.onnx").unlink()
    result = runner.invoke(app, ["--debug", "info", "--model", str(bundle_copy)])
    assert result.exit_code != 0
    assert result.exception is not None and "missing encoder.onnx" in str(result.exception)


def test_an_unwritable_output_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/vaegen-test/s.png")  # even root cannot create directories in /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "s.png"
    code, _, stderr = run("sample", "--n", "4", "-o", str(target))
    assert code == 1 and stderr.startswith("error: cannot ")
    assert not target.exists()


def _python_with_scripts() -> tuple[str, Path]:
    bindir = Path(sys.executable).parent
    script = bindir / "vaegen-infer"
    if not script.exists():
        found = shutil.which("vaegen-infer")
        if found is None:
            pytest.skip("the vaegen-infer console script is not installed")
        script = Path(found)
    return sys.executable, script


def test_installed_console_script_samples_from_another_directory(tmp_path: Path) -> None:
    _, script = _python_with_scripts()
    proc = subprocess.run(
        [str(script), "sample", "--n", "64", "--seed", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "samples.png").size == (2 + 8 * 58, 2 + 8 * 58)


def test_a_full_cli_run_never_imports_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from vaegen_infer.cli import main
        for argv in (["sample", "--n", "16", "-o", {str(tmp_path / "s.png")!r}], ["info"], ["models"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code == 0, (argv, exc.code)
        heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "train")))
        print("HEAVY", heavy)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_per_file_notes_are_grouped_by_kind_with_a_count(tmp_path: Path) -> None:
    # 10 grey squares at 56x56: each is resized, and the 4 lightest have a light background
    for i in range(10):
        Image.fromarray(np.full((56, 56), 25 * i, np.uint8)).save(tmp_path / f"d{i}.png")
    code, _, err = run("reconstruct", str(tmp_path), "-o", str(tmp_path / "r.png"))
    assert code == 0, err
    light = "light background; this model expects light strokes on dark, pass --invert if needed"
    assert [line for line in err.splitlines() if line.startswith("note: ")] == [
        *(f"note: d{i}.png: resized 56x56 -> 28x28" for i in range(3)),
        "note: ... and 7 more images like that",
        *(f"note: d{i}.png: {light}" for i in range(6, 9)),
        "note: ... and 1 more image like that",
    ]
    # a few files: every note, no count
    code, _, err = run("reconstruct", str(tmp_path / "d0.png"), str(tmp_path / "d1.png"), "-o", str(tmp_path / "s.png"))
    assert code == 0 and err.count("note: ") == 2 and "more image" not in err


def test_a_mistyped_name_gets_the_closest_valid_one() -> None:
    from vaegen_infer.errors import did_you_mean

    assert did_you_mean("smiling", ["Smiling", "Big"]) == " (did you mean 'Smiling'?)"  # case first
    assert did_you_mean("mnist-vea", ["mnist-vae", "mnist-aae"]) == " (did you mean 'mnist-vae'?)"
    assert did_you_mean("zzz", ["mnist-vae", "mnist-aae"]) == ""
    assert did_you_mean("x", []) == ""
    code, _, err = run("sample", "--model", "mnist-vea")
    assert code == 2 and "unknown model 'mnist-vea' (did you mean 'mnist-vae'?); available models:" in err
    examples = str(Path(__file__).resolve().parents[1] / "docs" / "examples")
    code, _, err = run("shift", examples, "--model", "mnist-vae", "--attribute", "thicknes")
    assert code == 2 and "unknown attribute 'thicknes' for model 'mnist-vae' (did you mean 'thickness'?)" in err
