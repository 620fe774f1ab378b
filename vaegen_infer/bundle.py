"""Finding bundles (by name or path), reading their manifest, and checking their files.

A bundle is a directory holding `model.json`, `encoder.onnx` and `decoder.onnx`. Names are looked up
first among the user's bundles (copies the user made, e.g. with `attributes add`), then among the
bundles shipped inside the package.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleError, UsageError, did_you_mean
from .manifest import MANIFEST_FILE, Manifest

DEFAULT_MODEL = "mnist-vae"
_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir() -> Path:
    """Where the shipped bundles are: inside the wheel, or `exported/` in a checkout."""
    for candidate in (_PACKAGE_DIR / "_bundles", _PACKAGE_DIR.parent / "exported"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE_DIR / "_bundles"


def user_dir() -> Path:
    """Where user-made bundles live: $VAEGEN_INFER_HOME/bundles, else the XDG data directory."""
    home = os.environ.get("VAEGEN_INFER_HOME")
    if home:
        return Path(home).expanduser() / "bundles"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "vaegen-infer" / "bundles"


@dataclass(frozen=True)
class Bundle:
    """A bundle directory with its validated manifest."""

    path: Path
    manifest: Manifest
    origin: str  # "user", "shipped" or "path"

    def file(self, role: str, precision: str = "float32") -> Path:
        return self.path / self.manifest.graph(role, precision).file


def _bundle_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / MANIFEST_FILE).is_file())


def available() -> dict[str, tuple[Path, str]]:
    """Every bundle reachable by name: name -> (directory, origin). User bundles shadow shipped ones."""
    found: dict[str, tuple[Path, str]] = {}
    for root, origin in ((shipped_dir(), "shipped"), (user_dir(), "user")):
        for p in _bundle_dirs(root):
            found[p.name] = (p, origin)
    return dict(sorted(found.items()))


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or "/" in ref or ref.startswith(".") or Path(ref).is_dir()


def resolve(ref: str | os.PathLike[str]) -> tuple[Path, str]:
    """Turn a model name or a bundle path into (directory, origin); unknown names list the valid ones."""
    text = os.fspath(ref)
    if not text:
        raise UsageError("empty model name: give a bundle name (see `vaegen-infer models`) or a directory")
    if isinstance(ref, os.PathLike) or _looks_like_path(text):
        path = Path(text).expanduser()
        if not path.is_dir():
            raise UsageError(f"no bundle directory at {path}: give an existing directory or a model name")
        if not (path / MANIFEST_FILE).is_file():
            raise BundleError(f"{path} is not a bundle: it has no {MANIFEST_FILE}")
        return path, "path"
    known = available()
    if text not in known:
        names = ", ".join(known) or "(none installed)"
        raise UsageError(f"unknown model '{text}'{did_you_mean(text, known)}; available models: {names}")
    return known[text]


def read_manifest(path: Path) -> Manifest:
    """Parse and validate `model.json` in a bundle directory."""
    mpath = path / MANIFEST_FILE
    try:
        raw = mpath.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{path} is not a bundle: it has no {MANIFEST_FILE}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read {mpath}: {exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    return Manifest.from_dict(data, source=str(mpath))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(bundle: Bundle, role: str, precision: str = "float32") -> Path:
    """Check that a graph file exists, stays inside the bundle, and matches its recorded sha256."""
    spec = bundle.manifest.graph(role, precision)
    path = bundle.file(role, precision)
    root = bundle.path.resolve()
    if root not in path.resolve().parents:
        raise BundleError(f"{bundle.path}: graph file '{spec.file}' escapes the bundle directory")
    if not path.is_file():
        raise BundleError(f"{bundle.path}: missing {spec.file}; the bundle is incomplete, re-export or reinstall it")
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise BundleError(
            f"{path}: sha256 mismatch (file {actual[:12]}..., manifest {spec.sha256[:12]}...); "
            "the file was modified or damaged: re-export or reinstall the bundle"
        )
    return path


def open_bundle(ref: str | os.PathLike[str]) -> Bundle:
    """Resolve a name or path and validate its manifest (graph hashes are checked when loaded)."""
    path, origin = resolve(ref)
    return Bundle(path, read_manifest(path), origin)
