"""Write a Triton Inference Server model repository for one or more bundles.

Per bundle NAME the repository holds three models:

- `NAME-encoder`: images (B, C, H, W) -> `mu`, `logvar` (B, D); `NAME-decoder`: `z` (B, D) -> `x`
  (B, C, H, W). On the ONNX Runtime backend (default) the bundle's graphs are the models; with
  `backend="python"` a Python-backend model runs them through vaegen_infer (for Triton builds
  without the ONNX Runtime backend).
- `NAME-sample` (Python backend, `max_batch_size: 0`): inputs `n`, `seed` and, for
  label-conditioned bundles, an optional `label`; output `x` (n, C, H, W). It draws the codes with
  a copy of `vaegen_infer.priors` taken now (the stock container's Python has numpy, not
  vaegen-infer) and decodes them by calling NAME-decoder from inside Triton.

Every config.pbtxt is parsed against Triton's `model_config` schema (from tritonclient) before the
repository appears, and every copied graph is checked against its manifest sha256. The repository
is written to a temporary directory beside the target and renamed into place, so a failed export
leaves nothing behind.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, priors
from ..errors import UsageError, VaegenError
from ..manifest import DECODER_INPUT, DECODER_OUTPUTS, ENCODER_INPUT, ENCODER_OUTPUTS, MANIFEST_FILE
from ..model import DRAW_CHUNK, Model, load

BACKENDS = ("onnxruntime", "python")
KINDS = ("gpu", "cpu")
TEMPLATES = Path(__file__).resolve().parent / "templates"
PRIOR_PACKAGE = "vaegen_prior_copy"  # the folder the prior code is copied into, in NAME-sample/1/
# Modules the copied prior code may import besides itself: what the stock container's Python has.
ALLOWED_IMPORTS = frozenset({"numpy"})
MAX_SAMPLE_N = 4096  # images per NAME-sample request: 4096 x 784 float32 = 12.8 MB per response


@dataclass(frozen=True)
class ExportResult:
    """What `export_repository` wrote: the repository, its model names and every file, relative."""

    path: Path
    models: list[str]
    files: list[Path]


def export_repository(
    models: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    backend: str = "onnxruntime",
    kind: str = "gpu",
    max_batch_size: int = 256,
    dynamic_batching: bool = True,
    queue_delay_us: int = 500,
    instances: int = 1,
    sample_instances: int = 4,
) -> ExportResult:
    """Write a Triton model repository for `models` (bundle names or paths) at `output`.

    `backend`: "onnxruntime" (the graphs run on Triton's ONNX Runtime backend) or "python"
    (vaegen_infer runs them inside the Python backend). `kind`: where encoder and decoder
    instances run, "gpu" or "cpu". `max_batch_size`, `dynamic_batching`, `queue_delay_us` and
    `instances` go into the encoder's and decoder's config.pbtxt. `sample_instances`: NAME-sample
    instances (CPU); each runs one request at a time and waits for its decoder calls, so several
    let the decoder's dynamic batcher merge concurrent samples (benchmarks/triton_load.py, 8 clients:
    358-484 requests/s with 1 instance, 570-782 with 4).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    if kind not in KINDS:
        raise UsageError(f"unknown kind '{kind}'; choose one of: {', '.join(KINDS)}")
    for label, value, low in (
        ("max_batch_size", max_batch_size, 1),
        ("instances", instances, 1),
        ("sample_instances", sample_instances, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{label} must be an integer >= {low}, got {value!r}")
    if isinstance(queue_delay_us, bool) or not isinstance(queue_delay_us, int) or queue_delay_us < 0:
        raise UsageError(f"queue_delay_us must be an integer >= 0, got {queue_delay_us!r}")
    if not models:
        raise UsageError("give at least one model to export")
    out = Path(output).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not an empty directory: choose a new path or remove it")
    schema = _schema()  # fail before any work if tritonclient is missing

    loaded: list[Model] = [load(ref, providers="cpu") for ref in models]
    names = [g.name for g in loaded]
    if len(set(names)) != len(names):
        raise UsageError(f"the same model name appears twice in {names}: each name must be exported once")
    for g in loaded:
        extra = set(g.manifest.decoder.inputs) - {DECODER_INPUT}
        if extra:
            raise UsageError(
                f"model '{g.name}': its decoder takes {sorted(extra)} besides '{DECODER_INPUT}'; this exporter "
                "knows only decoders of z alone (conditional decoders are not supported yet)"
            )

    settings = _Settings(backend, kind, max_batch_size, dynamic_batching, queue_delay_us, instances, sample_instances)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    except OSError as exc:
        raise VaegenError(f"cannot write {out}: {exc.strerror or exc}") from exc
    try:
        for g in loaded:
            _write_model(tmp, g, settings, schema)
        _write_text(tmp / "README.md", repository_readme(names, settings))
        files = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
        os.chmod(tmp, 0o755)
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise VaegenError(f"cannot write {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    models_out = [f"{n}-{part}" for n in names for part in ("encoder", "decoder", "sample")]
    return ExportResult(out, models_out, files)


@dataclass(frozen=True)
class _Settings:
    backend: str
    kind: str
    max_batch_size: int
    dynamic_batching: bool
    queue_delay_us: int
    instances: int
    sample_instances: int


# -- config.pbtxt ----------------------------------------------------------------------------------
def _tensor(name: str, dtype: str, dims: Sequence[int], optional: bool = False) -> str:
    opt = " optional: true" if optional else ""
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(str(d) for d in dims)} ]{opt} }}'


def _tensors(key: str, items: list[str]) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _parameters(params: dict[str, str]) -> str:
    return "".join(f'parameters: {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in params.items())


def preferred_batch_sizes(max_batch_size: int) -> list[int]:
    """Batch sizes the dynamic batcher aims for: max/16, max/4 and max, those >= 8, deduplicated."""
    sizes = {max_batch_size // 16, max_batch_size // 4, max_batch_size}
    return sorted(s for s in sizes if s >= 8) or [max_batch_size]


def graph_config(name: str, role: str, g: Model, s: _Settings) -> str:
    """config.pbtxt of NAME-encoder or NAME-decoder (batch axis left out of every dims)."""
    spec = g.manifest.graph(role)
    inputs = [_tensor(k, "TYPE_FP32", shape[1:]) for k, shape in spec.inputs.items()]
    # The Python-backend decoder returns the images only (vaegen_infer's decode); ONNX Runtime both.
    out_names = list(spec.outputs) if s.backend == "onnxruntime" or role == "encoder" else [DECODER_OUTPUTS[0]]
    outputs = [_tensor(k, "TYPE_FP32", spec.outputs[k][1:]) for k in out_names]
    head = f'name: "{name}"\n'
    head += 'platform: "onnxruntime_onnx"\n' if s.backend == "onnxruntime" else 'backend: "python"\n'
    head += f"max_batch_size: {s.max_batch_size}\n"
    text = head + _tensors("input", inputs) + _tensors("output", outputs)
    text += f"instance_group [ {{ count: {s.instances} kind: {'KIND_GPU' if s.kind == 'gpu' else 'KIND_CPU'} }} ]\n"
    if s.dynamic_batching:
        sizes = ", ".join(str(b) for b in preferred_batch_sizes(s.max_batch_size))
        delay = f"max_queue_delay_microseconds: {s.queue_delay_us}"
        text += f"dynamic_batching {{ preferred_batch_size: [ {sizes} ] {delay} }}\n"
    if s.backend == "python":
        text += _parameters({"role": role})
    return text


def sample_config(name: str, g: Model, s: _Settings) -> str:
    """config.pbtxt of NAME-sample: one request = one (n, seed[, label]) call, no batching."""
    m = g.manifest
    inputs = [_tensor("n", "TYPE_INT64", [1]), _tensor("seed", "TYPE_INT64", [1])]
    if m.conditional:
        inputs.append(_tensor("label", "TYPE_INT64", [1], optional=True))
    outputs = [_tensor("x", "TYPE_FP32", [-1, *m.image.shape])]
    text = f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
    text += _tensors("input", inputs) + _tensors("output", outputs)
    # The sampler's own work is a numpy draw; the decoder it calls runs where --kind says.
    text += f"instance_group [ {{ count: {s.sample_instances} kind: KIND_CPU }} ]\n"
    text += _parameters(
        {
            "decoder_model": f"{m.name}-decoder",
            "decoder_max_batch_size": str(s.max_batch_size),
            "draw_chunk": str(DRAW_CHUNK),
            "max_n": str(MAX_SAMPLE_N),
        }
    )
    return text


def _schema() -> Any:
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise VaegenError(
            f"export-triton checks every config.pbtxt with tritonclient's schema, which is not installed ({exc}): "
            "pip install 'vaegen-infer[triton]'"
        ) from exc
    return text_format, model_config_pb2


def validate_config(text: str, where: str = "config.pbtxt", schema: Any = None) -> Any:
    """Parse config.pbtxt text with Triton's ModelConfig protocol buffer; a typo raises VaegenError."""
    text_format, model_config_pb2 = schema or _schema()
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise VaegenError(f"{where} does not match Triton's model_config schema: {exc}") from exc


# -- files -----------------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _copy_checked(src: Path, dst: Path, sha256: str) -> None:
    """Copy a graph and check the copy's bytes against the manifest's sha256."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if hashlib.sha256(dst.read_bytes()).hexdigest() != sha256:
        raise VaegenError(f"{dst}: the copy of {src} does not match the manifest's sha256; re-export the bundle")


def _write_config(model_dir: Path, text: str, schema: Any) -> None:
    where = f"{model_dir.name}/config.pbtxt"
    parsed = validate_config(text, where, schema)
    if parsed.name != model_dir.name:
        raise VaegenError(f"{where}: name '{parsed.name}' differs from its folder '{model_dir.name}'")
    _write_text(model_dir / "config.pbtxt", text)


def _write_model(root: Path, g: Model, s: _Settings, schema: Any) -> None:
    m = g.manifest
    manifest_src = g.bundle.path / MANIFEST_FILE
    for role in ("encoder", "decoder"):
        model_dir = root / f"{m.name}-{role}"
        version = model_dir / "1"
        spec = m.graph(role)
        if s.backend == "onnxruntime":
            _copy_checked(g.bundle.file(role), version / "model.onnx", spec.sha256)
        else:
            # vaegen_infer.load() checks both graphs of a bundle, so each model folder holds the whole bundle.
            for r in ("encoder", "decoder"):
                _copy_checked(g.bundle.file(r), version / "bundle" / m.graph(r).file, m.graph(r).sha256)
            shutil.copyfile(manifest_src, version / "bundle" / MANIFEST_FILE)
            shutil.copyfile(TEMPLATES / "vaegen_model.py", version / "model.py")
        _write_config(model_dir, graph_config(model_dir.name, role, g, s), schema)
    model_dir = root / f"{m.name}-sample"
    version = model_dir / "1"
    version.mkdir(parents=True)
    shutil.copyfile(TEMPLATES / "sample_model.py", version / "model.py")
    shutil.copyfile(TEMPLATES / "sampling.py", version / "sampling.py")
    shutil.copyfile(manifest_src, version / MANIFEST_FILE)
    copy_prior_code(version / PRIOR_PACKAGE)
    _write_config(model_dir, sample_config(model_dir.name, g, s), schema)


def copy_prior_code(dest: Path) -> list[Path]:
    """Copy `vaegen_infer.priors` and the package modules it imports, verbatim, into package `dest`.

    The copy must run where only numpy is installed: an import of anything else (besides the
    standard library and the copied modules) fails the export."""
    package_dir = Path(inspect.getsourcefile(priors) or "").resolve().parent
    todo, done = ["priors"], {}
    while todo:
        module = todo.pop()
        if module in done:
            continue
        source = (package_dir / f"{module}.py").read_text(encoding="utf-8")
        done[module] = source
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level:
                if node.level != 1 or not node.module:
                    raise VaegenError(f"vaegen_infer/{module}.py imports from outside its package; it cannot be copied")
                todo.append(node.module.split(".")[0])  # a sibling module: copy it too
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                tops = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for top in (t.split(".")[0] for t in tops):
                    if top not in ALLOWED_IMPORTS and top not in sys.stdlib_module_names:
                        raise VaegenError(
                            f"vaegen_infer/{module}.py imports '{top}', which the stock Triton container's Python "
                            "lacks; the sampler's prior code must need numpy only"
                        )
    dest.mkdir(parents=True)
    written = []
    for module, source in sorted(done.items()):
        (dest / f"{module}.py").write_text(source, encoding="utf-8")
        written.append(dest / f"{module}.py")
    digests = ", ".join(f"{k}.py {hashlib.sha256(v.encode()).hexdigest()[:12]}" for k, v in sorted(done.items()))
    (dest / "__init__.py").write_text(
        f'"""A verbatim copy of vaegen_infer {__version__}\'s {", ".join(sorted(done))} modules, made by\n'
        f"`vaegen-infer export-triton` so that NAME-sample runs with numpy alone. Do not edit: re-export.\n"
        f'sha256: {digests}"""\n',
        encoding="utf-8",
    )
    return [dest / "__init__.py", *written]


def repository_readme(names: list[str], s: _Settings) -> str:
    """The README written into the repository: how to start Triton on it and call it."""
    from .readme import render

    return render(names, s.backend, s.kind, s.max_batch_size, ENCODER_INPUT, ENCODER_OUTPUTS, DECODER_INPUT)
