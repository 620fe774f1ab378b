"""A real Triton server on this machine, without Docker, for tests and benchmarks.

The `nvidia-pytriton` wheel (0.7.0) carries a `tritonserver` binary (Triton 2.51) with the Python
backend but no ONNX Runtime backend. `prepare()` installs it with `--no-deps` into a cache
directory (its numpy<2 pin would clash with ours), copies the backend directory out with the
Python backend stub for this Python, and builds a separate venv for the stub: the stub runs in the
first Python on PATH and needs numpy < 2 there (with numpy 2 every response fails with "output
tensor shape does not match size of output"). That venv holds numpy 1.26, onnxruntime (CPU),
pillow and typer; the vaegen_infer under test is put on its PYTHONPATH by `serve()`, so the
cache never holds a stale copy of the package.

Cache: $VAEGEN_INFER_TRITON_CACHE, else ~/.cache/vaegen-infer-triton. Each step is done once
and marked complete; a step cut short is redone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import VaegenError

PYTRITON = "nvidia-pytriton==0.7.0"
STUB_VENV_PACKAGES = ("numpy==1.26.4", "onnxruntime", "pillow", "typer")
CACHE_ENV = "VAEGEN_INFER_TRITON_CACHE"
PIP_TIMEOUT_S = 600


class TritonUnavailable(VaegenError):
    """The local Triton server could not be prepared or started; the message says why."""


@dataclass(frozen=True)
class LocalTriton:
    """What `serve()` needs: the binary, its libraries, the backend directory, the stub's venv."""

    server: Path
    libs: Path
    backends: Path
    venv: Path


@dataclass(frozen=True)
class Running:
    """A started server: its URLs (host:port, as tritonclient takes them) and its log file."""

    http: str
    grpc: str
    metrics: str
    log: Path
    process: subprocess.Popen[bytes]


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaegen-infer-triton"


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TritonUnavailable(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise TritonUnavailable(f"{what} failed (exit {done.returncode}): {tail}")


def _step(target: Path, build: Callable[[Path], None]) -> Path:
    """Build `target` once: into `target.part`, then renamed, so a cut-short build is redone."""
    if (target / ".complete").is_file():
        return target
    part = target.with_name(target.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    part.mkdir(parents=True)
    build(part)
    (part / ".complete").write_text("ok\n")
    os.replace(part, target)
    return target


def prepare(cache: Path | None = None) -> LocalTriton:
    """Install (once) the Triton server, its Python backend and the stub's venv under `cache`."""
    root = (cache or cache_dir()).expanduser()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"

    def wheel(part: Path) -> None:
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", PYTRITON, "--target", str(part)],
             f"pip install {PYTRITON}")  # fmt: skip

    pytriton = _step(root / "pytriton-0.7.0", wheel)
    server_dir = pytriton / "pytriton" / "tritonserver"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonUnavailable(f"{PYTRITON} has no Python backend stub for Python {version}")

    def backends(part: Path) -> None:
        shutil.copytree(server_dir / "backends" / "python", part / "python")
        shutil.copy2(stub, part / "python" / stub.name)

    backend_dir = _step(root / f"backends-py{version}", backends)

    def venv(part: Path) -> None:
        _run([sys.executable, "-m", "venv", str(part)], "python -m venv")
        pip = [str(part / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, *STUB_VENV_PACKAGES], f"pip install {' '.join(STUB_VENV_PACKAGES)} (the stub's venv)")

    # A venv's scripts name its absolute path, so it is built in place under its final name.
    venv_dir = root / f"stub-venv-py{version}"
    if not (venv_dir / ".complete").is_file():
        shutil.rmtree(venv_dir, ignore_errors=True)
        venv_dir.parent.mkdir(parents=True, exist_ok=True)
        venv(venv_dir)
        (venv_dir / ".complete").write_text("ok\n")
    return LocalTriton(server_dir / "bin" / "tritonserver", pytriton / "nvidia_pytriton.libs", backend_dir, venv_dir)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(http: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=1.0) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve(
    repository: Path, local: LocalTriton, timeout_s: float = 60.0, log: Path | None = None, exit_timeout_s: int = 20
) -> Iterator[Running]:
    """Start tritonserver on `repository` on free 127.0.0.1 ports; wait (at most `timeout_s`) until
    it is ready; stop it on exit (it waits up to `exit_timeout_s` for models to unload). The log
    goes to `log` (kept) or to a temporary file. The vaegen_infer that imported this module is the one the
    Python-backend models import (through PYTHONPATH, a directory holding only a link to it)."""
    import vaegen_infer

    work = Path(tempfile.mkdtemp(prefix="vaegen-triton-"))
    (work / "path").mkdir()
    (work / "path" / "vaegen_infer").symlink_to(Path(vaegen_infer.__file__).resolve().parent)
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = dict(os.environ)
    env["PATH"] = f"{local.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["LD_LIBRARY_PATH"] = f"{local.libs}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}".rstrip(os.pathsep)
    env["PYTHONPATH"] = str(work / "path")
    env.pop("VIRTUAL_ENV", None)
    cmd = [
        str(local.server), "--model-repository", str(repository), "--backend-directory", str(local.backends),
        "--http-address", "127.0.0.1", "--http-port", str(http),
        "--grpc-address", "127.0.0.1", "--grpc-port", str(grpc),
        "--metrics-address", "127.0.0.1", "--metrics-port", str(metrics),
        "--exit-timeout-secs", str(exit_timeout_s), "--log-verbose", "0",
    ]  # fmt: skip
    log = log or work / "tritonserver.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while not _ready(f"127.0.0.1:{http}"):
            if proc.poll() is not None:
                raise TritonUnavailable(f"tritonserver exited with {proc.returncode}: {_tail(log)}")
            if time.monotonic() > deadline:
                raise TritonUnavailable(f"tritonserver not ready after {timeout_s:.0f} s: {_tail(log)}")
            time.sleep(0.2)
        yield Running(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"127.0.0.1:{metrics}", log, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    errors = [t for t in text if t.startswith("E") or "error" in t.lower()]
    return " | ".join((errors or text)[-lines:])
