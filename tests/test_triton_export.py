"""`export-triton`: the repository's layout, its configs against Triton's schema, the copied prior code.

No server here (tests/test_triton_server.py runs one); these need only tritonclient's schema.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer import priors
from vaegen_infer.cli import app
from vaegen_infer.errors import UsageError, VaegenError
from vaegen_infer.model import DRAW_CHUNK

pytest.importorskip("tritonclient.grpc", reason="needs the triton extra: pip install 'vaegen-infer[triton]'")

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from vaegen_infer.triton import export as triton_export
from vaegen_infer.triton import export_repository, validate_config

MODELS = ["mnist-vae", "mnist-aae"]  # unconditional (VampPrior mixture) and label-conditioned (mog)


def _config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def onnx_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repos") / "onnx"
    export_repository(MODELS, out)
    return out


@pytest.fixture(scope="module")
def python_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repos") / "python"
    export_repository(MODELS, out, backend="python", kind="cpu", max_batch_size=64, dynamic_batching=False)
    return out


def test_repository_holds_three_models_per_bundle_and_a_readme(onnx_repo: Path) -> None:
    dirs = sorted(p.name for p in onnx_repo.iterdir() if p.is_dir())
    assert dirs == sorted(f"{m}-{part}" for m in MODELS for part in ("encoder", "decoder", "sample"))
    readme = (onnx_repo / "README.md").read_text()
    assert "tritonserver --model-repository=/models" in readme and "InferenceService" in readme
    assert "has not run it on a Triton server" in readme
    assert not list(onnx_repo.parent.glob(".*.part"))


@pytest.mark.parametrize("name", MODELS)
def test_onnx_configs_follow_the_manifest(onnx_repo: Path, name: str) -> None:
    m = vi.load(name).manifest
    c, h, w = m.image.shape
    enc = _config(onnx_repo / f"{name}-encoder" / "config.pbtxt")
    dec = _config(onnx_repo / f"{name}-decoder" / "config.pbtxt")
    for cfg, role in ((enc, "encoder"), (dec, "decoder")):
        assert cfg.name == f"{name}-{role}"
        assert cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 256
        assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        assert list(cfg.dynamic_batching.preferred_batch_size) == [16, 64, 256]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    # dims leave out the batch axis
    assert [(t.name, list(t.dims)) for t in enc.input] == [("x", [c, h, w])]
    assert [(t.name, list(t.dims)) for t in enc.output] == [("mu", [m.latent_dim]), ("logvar", [m.latent_dim])]
    assert [(t.name, list(t.dims)) for t in dec.input] == [("z", [m.latent_dim])]
    assert [(t.name, list(t.dims)) for t in dec.output] == [("x", [c, h, w]), ("logits", [c, h, w])]
    assert all(t.data_type == model_config_pb2.TYPE_FP32 for t in [*enc.input, *enc.output, *dec.input])


@pytest.mark.parametrize("name", MODELS)
def test_sampler_config(onnx_repo: Path, name: str) -> None:
    m = vi.load(name).manifest
    cfg = _config(onnx_repo / f"{name}-sample" / "config.pbtxt")
    assert cfg.backend == "python" and cfg.max_batch_size == 0
    inputs = {t.name: (list(t.dims), t.data_type, t.optional) for t in cfg.input}
    want = {"n": ([1], model_config_pb2.TYPE_INT64, False), "seed": ([1], model_config_pb2.TYPE_INT64, False)}
    if m.conditional:
        want["label"] = ([1], model_config_pb2.TYPE_INT64, True)
    assert inputs == want
    assert [(t.name, list(t.dims)) for t in cfg.output] == [("x", [-1, *m.image.shape])]
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(4, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params == {
        "decoder_model": f"{name}-decoder",
        "decoder_max_batch_size": "256",
        "draw_chunk": str(DRAW_CHUNK),
        "max_n": "4096",
    }


@pytest.mark.parametrize("repo_kind", ["onnx", "python"])
def test_every_named_file_exists_with_the_manifest_sha256(repo_kind: str, onnx_repo: Path, python_repo: Path) -> None:
    repo = onnx_repo if repo_kind == "onnx" else python_repo
    checked = 0
    for name in MODELS:
        m = vi.load(name).manifest
        for role in ("encoder", "decoder"):
            cfg = _config(repo / f"{name}-{role}" / "config.pbtxt")
            version = repo / f"{name}-{role}" / "1"
            if cfg.platform == "onnxruntime_onnx":
                # Triton's default file name for this platform (default_model_filename is left unset)
                assert cfg.default_model_filename == ""
                assert _sha(version / "model.onnx") == m.graph(role).sha256
                checked += 1
            else:
                assert cfg.backend == "python" and (version / "model.py").is_file()
                bundle = json.loads((version / "bundle" / "model.json").read_text())
                assert bundle == json.loads((vi.load(name).bundle.path / "model.json").read_text())
                for r in ("encoder", "decoder"):
                    assert _sha(version / "bundle" / m.graph(r).file) == m.graph(r).sha256
                    checked += 1
        sample = repo / f"{name}-sample" / "1"
        assert (sample / "model.py").is_file() and (sample / "sampling.py").is_file()
        assert json.loads((sample / "model.json").read_text())["name"] == name
    assert checked == (4 if repo_kind == "onnx" else 8)


def test_python_backend_configs(python_repo: Path) -> None:
    enc = _config(python_repo / "mnist-vae-encoder" / "config.pbtxt")
    dec = _config(python_repo / "mnist-vae-decoder" / "config.pbtxt")
    assert enc.backend == dec.backend == "python" and enc.platform == ""
    assert enc.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not enc.HasField("dynamic_batching") and enc.max_batch_size == 64
    assert enc.parameters["role"].string_value == "encoder" and dec.parameters["role"].string_value == "decoder"
    assert [t.name for t in dec.output] == ["x"]
    sample = _config(python_repo / "mnist-vae-sample" / "config.pbtxt")
    assert sample.parameters["decoder_max_batch_size"].string_value == "64"


def test_prior_code_is_a_verbatim_copy_of_the_runtimes(onnx_repo: Path) -> None:
    copy = onnx_repo / "mnist-vae-sample" / "1" / "vaegen_prior_copy"
    src = Path(priors.__file__).parent
    copied = {p.stem for p in copy.glob("*.py")} - {"__init__"}
    assert {"priors", "errors", "manifest"} <= copied
    for module in copied:
        assert (copy / f"{module}.py").read_bytes() == (src / f"{module}.py").read_bytes()
        # every module it imports from the package was copied too (imports inside functions included)
        tree = ast.parse((copy / f"{module}.py").read_text())
        siblings = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        assert siblings <= copied, (module, siblings - copied)


_DRAW = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path[:0] = [sys.argv[1]]
    from sampling import Sampler, SampleError
    s = Sampler(__import__("pathlib").Path(sys.argv[1]) / "model.json", int(sys.argv[2]), 100_000)
    label = None if sys.argv[5] == "-" else int(sys.argv[5])
    np.save(sys.argv[6], s.draw(int(sys.argv[3]), int(sys.argv[4]), label))
    assert not [m for m in sys.modules if m.startswith(("vaegen_infer", "onnxruntime", "PIL", "typer"))]
    """
)


@pytest.mark.parametrize(
    ("name", "n", "seed", "label"),
    [
        ("mnist-vae", DRAW_CHUNK + 5, 5, None),  # two draw blocks
        ("mnist-aae", 12, 1, 3),
        ("mnist-aae-swissroll", 9, 0, 7),
        ("mnist-aae", 7, 2, None),
        ("mnist-vae-2d", 9, 0, None),
        ("color-dsprites", 9, 0, None),  # draws from its fitted sampler, not its prior
    ],
)
def test_sampler_draws_the_codes_of_model_sample_latents_with_numpy_alone(
    tmp_path: Path, name: str, n: int, seed: int, label: int | None
) -> None:
    """The stock-container sampler, in a fresh Python that never imports vaegen_infer, draws
    exactly the codes of Model.sample_latents (so the images of `vaegen-infer sample --seed`)."""
    repo = tmp_path / "repo"
    export_repository([name], repo)
    out = tmp_path / "z.npy"
    args = [
        str(repo / f"{name}-sample" / "1"),
        str(DRAW_CHUNK),
        str(n),
        str(seed),
        "-" if label is None else str(label),
    ]
    subprocess.run([sys.executable, "-I", "-c", _DRAW, *args, str(out)], check=True, cwd=tmp_path, timeout=120)
    want = vi.load(name).sample_latents(n, seed=seed, label=label)
    np.testing.assert_array_equal(np.load(out), want)


def test_sampler_refuses_bad_requests(onnx_repo: Path) -> None:
    sys.path.insert(0, str(onnx_repo / "mnist-aae-sample" / "1"))
    try:
        import sampling

        s = sampling.Sampler(onnx_repo / "mnist-aae-sample" / "1" / "model.json", DRAW_CHUNK, 4096)
        for n, seed, label, message in [
            (0, 0, None, "n must lie in 1..4096, got 0"),
            (4097, 0, None, "n must lie in 1..4096"),
            (1, -1, None, "seed must be a non-negative integer"),
            (1, 0, 10, "label must be an index in 0..9"),
        ]:
            with pytest.raises(sampling.SampleError, match=message.replace(".", r"\.")):
                s.draw(n, seed, label)
        vae = sampling.Sampler(onnx_repo / "mnist-vae-sample" / "1" / "model.json", DRAW_CHUNK, 4096)
        with pytest.raises(sampling.SampleError, match="not label-conditioned"):
            vae.draw(1, 0, 0)
    finally:
        sys.path.remove(str(onnx_repo / "mnist-aae-sample" / "1"))
        for mod in [m for m in sys.modules if m == "sampling" or m.startswith("vaegen_prior_copy")]:
            del sys.modules[mod]


def test_a_config_typo_fails_validation() -> None:
    good = 'name: "m"\nbackend: "python"\nmax_batch_size: 0\n'
    assert validate_config(good).max_batch_size == 0
    with pytest.raises(VaegenError, match="does not match Triton's model_config schema"):
        validate_config(good.replace("max_batch_size", "max_batch_sise"))
    with pytest.raises(VaegenError, match="model_config schema"):
        validate_config(good + "instance_group [ { kind: KIND_TPU } ]\n")


def test_a_typo_in_a_generated_config_fails_the_export_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = triton_export.sample_config
    monkeypatch.setattr(triton_export, "sample_config", lambda *a: real(*a).replace("max_batch_size", "max_bach_size"))
    out = tmp_path / "repo"
    with pytest.raises(VaegenError, match=r"mnist-vae-sample/config\.pbtxt does not match"):
        export_repository(["mnist-vae"], out)
    assert list(tmp_path.iterdir()) == []


def test_prior_code_that_needs_more_than_numpy_fails_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "priors.py").write_text("import numpy as np\nfrom .helpers import f\n")
    (fake / "helpers.py").write_text("import scipy.special\n")
    monkeypatch.setattr(triton_export.inspect, "getsourcefile", lambda _: str(fake / "priors.py"))
    with pytest.raises(VaegenError, match=r"helpers\.py imports 'scipy'"):
        triton_export.copy_prior_code(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_refuses_bad_requests(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for kwargs, message in [
        ({"output": tmp_path / "full"}, "already exists and is not an empty directory"),
        ({"backend": "tensorrt"}, "unknown backend 'tensorrt'; choose one of: onnxruntime, python"),
        ({"kind": "tpu"}, "unknown kind 'tpu'"),
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1"),
        ({"sample_instances": 0}, "sample_instances must be an integer >= 1"),
        ({"models": ["mnist-vae", "mnist-vae"]}, "appears twice"),
        ({"models": []}, "at least one model"),
    ]:
        args = {"models": ["mnist-vae"], "output": tmp_path / "new", **kwargs}
        with pytest.raises(UsageError, match=message):
            export_repository(**args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_export_without_tritonclient_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    with pytest.raises(VaegenError, match=r"pip install 'vaegen-infer\[triton\]'"):
        export_repository(["mnist-vae"], tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_a_decoder_with_inputs_besides_z_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = vi.load("mnist-aae")
    g.manifest.decoder.inputs["y"] = [None, 10]  # a label-conditioned decoder, as issue 15 may bring
    monkeypatch.setattr(triton_export, "load", lambda ref, providers: g)
    with pytest.raises(UsageError, match=r"its decoder takes \['y'\] besides 'z'"):
        export_repository(["mnist-aae"], tmp_path / "repo")
    assert list(tmp_path.iterdir()) == []


def test_the_package_and_cli_import_without_tritonclient() -> None:
    code = (
        "import sys; sys.modules['tritonclient'] = None; "
        "import vaegen_infer.cli, vaegen_infer.triton, vaegen_infer.triton.local; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_cli_export_triton(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    runner = CliRunner()
    result = runner.invoke(
        app, ["export-triton", "-m", "mnist-vae", "-o", str(out), "--backend", "python", "--kind", "cpu"]
    )
    assert result.exit_code == 0, result.output
    # README; per graph model: config.pbtxt, model.py, bundle/ (3 files); sample: 4 files + the prior copy
    n_prior = len(list((out / "mnist-vae-sample" / "1" / "vaegen_prior_copy").glob("*.py")))
    assert n_prior >= 4
    want = (
        f"wrote {out}: {1 + 2 * 5 + 4 + n_prior} files, models mnist-vae-encoder, mnist-vae-decoder, mnist-vae-sample"
    )
    assert want in result.stdout
    assert _config(out / "mnist-vae-decoder" / "config.pbtxt").backend == "python"
    again = runner.invoke(app, ["export-triton", "-m", "mnist-vae", "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.stderr and "Traceback" not in again.output
    bad = runner.invoke(app, ["export-triton", "-o", str(tmp_path / "b"), "--kind", "tpu"])
    assert bad.exit_code == 2 and "unknown kind 'tpu'; choose one of: gpu, cpu" in bad.stderr
