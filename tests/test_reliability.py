"""Reliability: malformed bundles, arguments, images, arrays and outputs through the CLI, each with
its exit code, its one-line message and no output left behind; atomic writes; concurrency."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer.bundle import sha256_file
from vaegen_infer.cli import app
from vaegen_infer.errors import UsageError, VaegenError
from vaegen_infer.io import atomic_open, make_temp_dir, prepare_output, save_json, save_npy, save_npy_stream

from .conftest import VAE_DIM

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "exported" / "mnist-vae"
runner = CliRunner()


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "model.json").read_text())


def _save_manifest(bundle: Path, data: dict) -> None:
    (bundle / "model.json").write_text(json.dumps(data))


def _rehash(bundle: Path) -> None:
    data = _manifest(bundle)
    for role in ("encoder", "decoder"):
        spec = data["graphs"][role]
        if (bundle / spec["file"]).is_file():
            spec["sha256"] = sha256_file(bundle / spec["file"])
    _save_manifest(bundle, data)


# -- damaged bundles: each function damages a private copy ----------------------------------------


def _tamper(b: Path) -> None:
    data = bytearray((b / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0x55
    (b / "decoder.onnx").write_bytes(bytes(data))


def _truncate_rehashed(b: Path) -> None:
    (b / "decoder.onnx").write_bytes((b / "decoder.onnx").read_bytes()[:5000])
    _rehash(b)


def _not_onnx_rehashed(b: Path) -> None:
    (b / "decoder.onnx").write_text("definitely not onnx")
    _rehash(b)


def _swap_graphs(b: Path) -> None:
    enc, dec = (b / "encoder.onnx").read_bytes(), (b / "decoder.onnx").read_bytes()
    (b / "encoder.onnx").write_bytes(dec)
    (b / "decoder.onnx").write_bytes(enc)
    _rehash(b)


def _wrong_latent_dim(b: Path) -> None:
    data = _manifest(b)
    data["latent_dim"] = 8
    for role, key in (("encoder", "outputs"), ("decoder", "inputs")):
        for name in data["graphs"][role][key]:
            data["graphs"][role][key][name] = [None, 8]
    data["attributes"] = {}
    data["latent_stats"] = {}
    data["prior"] = {"name": "gaussian", "params": {}}  # a consistent manifest: only the graphs disagree
    _save_manifest(b, data)


def _edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(b: Path) -> None:
        data = _manifest(b)
        change(data)
        _save_manifest(b, data)

    return apply


BUNDLE_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "hash-mismatch": (_tamper, "sha256 mismatch"),
    "truncated-graph": (_truncate_rehashed, "not a usable ONNX graph"),
    "not-onnx": (_not_onnx_rehashed, "not a usable ONNX graph"),
    "graphs-swapped": (_swap_graphs, "the graph does not match model.json"),
    "latent-dim-mismatch": (_wrong_latent_dim, "the graph does not match model.json"),
    "missing-graph": (lambda b: (b / "decoder.onnx").unlink(), "missing decoder.onnx"),
    "missing-manifest": (lambda b: (b / "model.json").unlink(), "has no model.json"),
    "manifest-not-json": (lambda b: (b / "model.json").write_text("{]"), "not valid JSON"),
    "manifest-not-object": (lambda b: (b / "model.json").write_text("[1, 2]"), "must be an object"),
    "unknown-version": (_edit(lambda d: d.update(format_version=7)), "unknown format_version 7"),
    "wrong-format": (_edit(lambda d: d.update(format="tflite")), "'format' must be 'vaegen-bundle'"),
    "latent-dim-type": (_edit(lambda d: d.update(latent_dim="16")), "'latent_dim' must be an integer"),
    "path-escape": (_edit(lambda d: d["graphs"]["decoder"].update(file="../decoder.onnx")), "plain file name"),
    "absolute-path": (_edit(lambda d: d["graphs"]["decoder"].update(file="/etc/passwd")), "plain file name"),
    "unknown-prior": (_edit(lambda d: d["prior"].update(name="laplace")), "unknown prior 'laplace'"),
    "bad-attribute": (_edit(lambda d: d["attributes"]["slant"].update(vector=[1.0])), "attributes.slant.vector"),
    "missing-image": (_edit(lambda d: d.pop("image")), "missing key 'image'"),
}


@pytest.mark.parametrize("case", sorted(BUNDLE_CASES))
def test_damaged_bundles(case: str, tmp_path: Path) -> None:
    damage, message = BUNDLE_CASES[case]
    bundle = tmp_path / "bundle"
    shutil.copytree(SHIPPED, bundle)
    damage(bundle)
    out = tmp_path / "out" / "s.png"
    result = runner.invoke(app, ["sample", "--n", "4", "--seed", "0", "--model", str(bundle), "-o", str(out)])
    _assert_one_line_failure(result, 1, message)
    assert not out.parent.exists() or not any(out.parent.iterdir())


# -- bad arguments (exit 2) and bad inputs (exit 1) -------------------------------------------------


def _cases(tmp: Path) -> dict[str, tuple[list[str], int, str]]:
    d = tmp / "in"
    d.mkdir()
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(d / "ok.png")
    (d / "text.png").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8))
    big.save(d / "full.png")
    (d / "trunc.png").write_bytes((d / "full.png").read_bytes()[:2000])
    (d / "empty-dir").mkdir()
    (d / "adir.png").mkdir()  # a directory named like an output file
    np.save(d / "unicode.npy", np.array([["a"] * 16]))
    np.save(d / "three-d.npy", np.zeros((2, 4, 16), np.float32))
    np.save(d / "nan.npy", np.full((1, VAE_DIM), np.nan, np.float32))
    np.save(d / "inf.npy", np.full((1, VAE_DIM), -np.inf, np.float32))
    np.save(d / "object.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    np.save(d / "width.npy", np.zeros((3, 15), np.float32))
    (d / "trunc.npy").write_bytes((d / "width.npy").read_bytes()[:60])
    (d / "bad.json").write_text('{"mu": [1, 2')
    (d / "nomu.json").write_text('{"codes": [[0, 1]]}')
    (d / "ragged.json").write_text('{"mu": [[0, 1], [2]]}')
    (d / "strings.json").write_text('[["a", "b"]]')
    ok, out = str(d / "ok.png"), str(tmp / "out" / "r.png")
    return {
        # bad arguments -> 2
        "n-zero": (["sample", "--n", "0", "-o", out], 2, "n must be at least 1"),
        "n-negative": (["sample", "--n", "-5", "-o", out], 2, "n must be at least 1"),
        "n-absurd": (["sample", "--n", "100000000000", "-o", out], 2, "split the request"),
        "n-not-int": (["sample", "--n", "many", "-o", out], 2, "'--n'"),
        "unknown-model": (["sample", "--model", "gpt-5", "-o", out], 2, "unknown model 'gpt-5'"),
        "unknown-provider": (["sample", "--providers", "tpu", "-o", out], 2, "'tpu' is not one of"),
        "label-unconditional": (["sample", "--label", "3", "-o", out], 2, "not label-conditioned"),
        "label-and-per-label": (["sample", "--label", "3", "--per-label", "2", "-o", out], 2, "not both"),
        "threads-zero": (["sample", "--threads", "0", "-o", out], 2, "--threads"),
        "scale-zero": (["sample", "--scale", "0", "-o", out], 2, "--scale"),
        "bad-extension": (["sample", "-o", str(tmp / "out" / "s.tiffany")], 2, "cannot tell the image format"),
        "output-is-dir": (["sample", "-o", str(d / "adir.png")], 2, "is a directory"),
        "steps-one": (["interpolate", ok, ok, "--steps", "1", "-o", out], 2, "steps must be at least 2"),
        "method-unknown": (["interpolate", ok, ok, "--method", "cubic", "-o", out], 2, "'cubic' is not one of"),
        "one-anchor": (["interpolate", ok, "-o", out], 2, "at least two anchors"),
        "span-negative": (["traverse", "--span", "-1", "-o", out], 2, "span must be a positive"),
        "span-zero": (["traverse", "--span", "0", "-o", out], 2, "span must be a positive"),
        "dims-reversed": (["traverse", "--dims", "5-2", "-o", out], 2, "start is after the end"),
        "dims-out-of-range": (["traverse", "--dims", "0-99", "-o", out], 2, "out of range"),
        "dims-garbage": (["traverse", "--dims", "x", "-o", out], 2, "bad dimension range"),
        "unknown-attribute": (["shift", ok, "-a", "smiling", "-o", out], 2, "valid attributes: thickness"),
        "amounts-garbage": (["shift", ok, "-a", "slant", "--amounts", "1,,x", "-o", out], 2, "bad amounts"),
        "manifold-too-small": (["manifold", "--n", "1", "-o", out], 2, "--n"),
        "encode-extension": (["encode", ok, "-o", str(tmp / "out" / "z.csv")], 2, ".npy or .json"),
        "unknown-command": (["sampel"], 2, "sampel"),
        "missing-option-value": (["sample", "--n"], 2, "--n"),
        # bad inputs -> 1
        "image-text": (["reconstruct", str(d / "text.png"), "-o", out], 1, "text.png is not an image"),
        "image-empty": (["reconstruct", str(d / "empty.png"), "-o", out], 1, "empty.png is not an image"),
        "image-truncated": (["reconstruct", str(d / "trunc.png"), "-o", out], 1, "trunc.png cannot be read"),
        "image-missing": (["reconstruct", str(d / "nope.png"), "-o", out], 1, "no such file or directory"),
        "folder-empty": (["reconstruct", str(d / "empty-dir"), "-o", out], 1, "no images in directory"),
        "glob-no-match": (["reconstruct", str(d / "*.jpeg"), "-o", out], 1, "no files match"),
        "npy-strings": (["decode", str(d / "unicode.npy"), "-o", out], 1, "must be numbers"),
        "npy-3d": (["decode", str(d / "three-d.npy"), "-o", out], 1, "2-D array"),
        "npy-nan": (["decode", str(d / "nan.npy"), "-o", out], 1, "NaN or infinity"),
        "npy-inf": (["decode", str(d / "inf.npy"), "-o", out], 1, "NaN or infinity"),
        "npy-object": (["decode", str(d / "object.npy"), "-o", out], 1, "Python objects"),
        "npy-width": (["decode", str(d / "width.npy"), "-o", out], 1, f"shape (N, {VAE_DIM})"),
        "npy-truncated": (["decode", str(d / "trunc.npy"), "-o", out], 1, "not a readable .npy"),
        "json-malformed": (["decode", str(d / "bad.json"), "-o", out], 1, "not valid JSON"),
        "json-no-codes": (["decode", str(d / "nomu.json"), "-o", out], 1, "'mu' or 'z'"),
        "json-ragged": (["decode", str(d / "ragged.json"), "-o", out], 1, "equally long lists"),
        "json-strings": (["decode", str(d / "strings.json"), "-o", out], 1, "equally long lists"),
        "latents-missing": (["decode", str(d / "none.npy"), "-o", out], 1, "no such file"),
        "unwritable-output": (["sample", "--n", "2", "-o", "/proc/vaegen/s.png"], 1, "cannot "),
    }


def _case_names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return sorted(_cases(Path(tmp)))


@pytest.mark.parametrize("case", _case_names())
def test_bad_arguments_and_inputs(case: str, tmp_path: Path) -> None:
    args, code, message = _cases(tmp_path)[case]
    result = runner.invoke(app, args)
    _assert_one_line_failure(result, code, message)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def _assert_one_line_failure(result, code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_the_suite_covers_at_least_forty_malformed_inputs() -> None:
    assert len(_case_names()) + len(BUNDLE_CASES) >= 40


# -- atomic output ----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError, OSError])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, failure: type) -> None:
    target = tmp_path / "s.png"
    target.write_bytes(b"old content")
    with pytest.raises((failure, VaegenError)), atomic_open(target) as fh:
        fh.write(b"half of a new fi")
        raise failure("stop")
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]


def test_a_failed_first_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_open(tmp_path / "new.npy") as fh:
        fh.write(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# -- what each writer puts on disk (found unchecked by mutation testing, benchmarks/mutation.py:
# `sample --format npy` streams through save_npy_stream, which only a subprocess test reached) --------
UMASK = os.umask(0o022)
os.umask(UMASK)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_save_npy_stream_writes_the_blocks_as_one_float32_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(2, 3, 4)), np.arange(12).reshape(1, 3, 4)]  # float64, then int
    seen: list[int] = []
    out = save_npy_stream(tmp_path / "x.npy", (3, 3, 4), iter(blocks), seen.append)
    assert out == tmp_path / "x.npy"
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (3, 3, 4) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.concatenate(blocks).astype(np.float32))
    assert seen == [2, 1]  # progress: rows per block, as they are written
    assert _leftovers(tmp_path) == []
    save_npy_stream(tmp_path / "y.npy", (1, 2), iter([np.ones((1, 2))]))  # progress is optional
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), [[1, 1]])


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([np.zeros((2, 2)), np.zeros((1, 4))], "internal error: block of shape (1, 4) in an array of shape (3, 2)"),
        ([np.zeros((2, 2))], "internal error: wrote 2 rows of 3"),
        ([np.zeros((2, 2)), np.zeros((2, 2))], "internal error: wrote 4 rows of 3"),
    ],
)
def test_save_npy_stream_refuses_a_wrong_block_and_keeps_the_old_file(
    tmp_path: Path, blocks: list[np.ndarray], message: str
) -> None:
    target = tmp_path / "x.npy"
    target.write_bytes(b"old")
    with pytest.raises(VaegenError) as info:
        save_npy_stream(target, (3, 2), iter(blocks))  # 3 rows of 2: shape[0] != shape[1]
    assert str(info.value) == message
    assert target.read_bytes() == b"old"  # never a half-written array
    assert _leftovers(tmp_path) == []


def test_save_json_writes_indented_json_with_a_final_newline(tmp_path: Path) -> None:
    data = {"name": "m", "dims": [1, 2], "nested": {"a": 1.5}}
    save_json(tmp_path / "m.json", data)
    text = (tmp_path / "m.json").read_text(encoding="utf-8")
    assert text == json.dumps(data, indent=2) + "\n"  # model.json stays readable and diffable
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~UMASK


def test_save_npy_never_writes_a_pickle(tmp_path: Path) -> None:
    save_npy(tmp_path / "z.npy", np.eye(2, dtype=np.float32))
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), np.eye(2))
    with pytest.raises(ValueError, match="pickle"):
        save_npy(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "o.npy").exists() and _leftovers(tmp_path) == []


def test_make_temp_dir_is_a_hidden_sibling_with_normal_permissions(tmp_path: Path) -> None:
    final = tmp_path / "bundles" / "mnist-vae"
    final.parent.mkdir()
    made = make_temp_dir(final)
    assert made.parent == final.parent  # same directory, so the rename onto `final` is atomic
    assert made.name.startswith(".mnist-vae.") and made.is_dir() and not any(made.iterdir())
    assert stat.S_IMODE(made.stat().st_mode) == 0o777 & ~UMASK


def test_prepare_output_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        prepare_output(tmp_path)
    assert str(info.value) == f"output path {tmp_path} is a directory: give a file name"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(VaegenError) as info2:
        prepare_output(tmp_path / "afile" / "sub" / "x.png")
    assert str(info2.value) == f"cannot create directory {tmp_path / 'afile' / 'sub'}: Not a directory"
    assert prepare_output(tmp_path / "new" / "x.png") == tmp_path / "new" / "x.png"
    assert (tmp_path / "new").is_dir()


# -- concurrency --------------------------------------------------------------------------------------


def test_eight_threads_share_one_model_and_match_sequential_results() -> None:
    g = vi.load("mnist-vae", providers="cpu")
    x = g.sample(8, seed=99)
    expected = {i: (g.sample(16, seed=i), g.encode(x)[0], g.interpolate(x[0], x[1], steps=4)) for i in range(8)}
    results: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(5):
                results[i] = (g.sample(16, seed=i), g.encode(x)[0], g.interpolate(x[0], x[1], steps=4))
        except BaseException as exc:  # collected and re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(8):
        for got, want in zip(results[i], expected[i]):
            np.testing.assert_array_equal(got, want)


def test_first_use_from_many_threads_creates_each_session_once() -> None:
    g = vi.load("mnist-vae", providers="cpu")
    start = threading.Barrier(8)
    seen: list[int] = []

    def work() -> None:
        start.wait()
        seen.append(id(g._session("decoder")))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1


# -- large requests -----------------------------------------------------------------------------------


def test_a_hundred_thousand_samples_stream_to_npy_in_bounded_memory(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "big.npy"
    # VmHWM is this process's own peak; getrusage's ru_maxrss would carry over the peak of the
    # forking pytest process, which Linux keeps across exec.
    code = (
        "from vaegen_infer.cli import main\n"
        "try:\n"
        f"    main(['sample', '--n', '100000', '--format', 'npy', '--seed', '0', '-o', {str(out)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print('PEAK_KB', hwm)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.split("PEAK_KB")[1]) / 1024
    assert peak_mb < 400, peak_mb
    arr = np.load(out, mmap_mode="r")
    assert arr.shape == (100_000, 1, 28, 28) and arr.dtype == np.float32
    # The stream holds the very images an in-memory call gives for the same seed.
    np.testing.assert_array_equal(arr[:3000], vi.load("mnist-vae", providers="cpu").sample(3000, seed=0))
    assert float(arr[-1000:].max()) <= 1.0 and float(arr[-1000:].min()) >= 0.0


def test_streaming_matches_one_batch_for_a_mixture_prior() -> None:
    g = vi.load("mnist-aae", providers="cpu")
    streamed = np.concatenate(list(g.iter_samples(300, seed=5, label=4, chunk=64)))
    np.testing.assert_array_equal(streamed, g.sample(300, seed=5, label=4))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "--n", "20000"], "do not fit in one picture"),
        (["sample", "--format", "npy", "-o", "x.png"], "writes a .npy file"),
        (["sample", "-o", "x.npy", "--format", "png"], "needs --format npy"),
        (["sample", "--format", "psd"], "'psd' is not one of npy, png, jpg"),
        (["sample", "--format", "jpg", "-o", "x.png"], "--format jpg does not match the file name 'x.png'"),
    ],
)
def test_sample_format_errors(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    _assert_one_line_failure(result, 2, message)
    assert list(tmp_path.iterdir()) == []
