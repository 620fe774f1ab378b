"""Releasing: one place for the version, a changelog that names it, and the dist check CI runs on the
built wheel and sdist (.ci/check_dist.py) catching what it is there to catch."""

from __future__ import annotations

import importlib.util
import io
import re
import tarfile
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

import vaegen_infer

from .conftest import ROOT

BUNDLES = sorted(p.parent.name for p in ROOT.glob("exported/*/model.json"))
VERSION = vaegen_infer.__version__


def _check_dist() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / ".ci" / "check_dist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_is_set_once_and_hatch_reads_it() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "vaegen_infer/__init__.py"
    setters = [p for p in (ROOT / "vaegen_infer").rglob("*.py") if re.search(r"^__version__ =", p.read_text(), re.M)]
    assert setters == [ROOT / "vaegen_infer" / "__init__.py"]
    assert _check_dist().version() == VERSION
    dev = " ".join(project["project"]["optional-dependencies"]["dev"])
    assert "jsonschema" in dev and "twine" in dev and "build" in dev


def test_changelog_has_unreleased_then_the_current_version() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert headings[0] == "Unreleased"
    versions = [h for h in headings[1:] if re.match(r"\d+\.\d+\.\d+ \(\d{4}-\d{2}-\d{2}\)$", h)]
    assert versions == headings[1:], "each released section is '## X.Y.Z (YYYY-MM-DD)'"
    assert versions[0].split()[0] == VERSION


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


def _good_wheel_members() -> dict[str, bytes]:
    members = {
        f"vaegen_infer/{n}": _read(ROOT / "vaegen_infer" / n)
        for n in ("__init__.py", "cli.py", "schema/model.schema.json")
    }
    for b in BUNDLES:
        for f in ("model.json", "encoder.onnx", "decoder.onnx"):
            members[f"vaegen_infer/_bundles/{b}/{f}"] = _read(ROOT / "exported" / b / f)
    info = f"vaegen_infer-{VERSION}.dist-info"
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.4\nName: vaegen-infer\nVersion: {VERSION}\n"
        "Requires-Dist: numpy>=1.24\nRequires-Dist: torch>=2.5; extra == 'train'\n"
    ).encode()
    members[f"{info}/entry_points.txt"] = b"[console_scripts]\nvaegen-infer = vaegen_infer.cli:main\n"
    return members


def _good_sdist_members() -> dict[str, bytes]:
    members = {n: b"x" for n in _check_dist().SDIST_NEEDS}
    for b in BUNDLES:
        for f in ("model.json", "encoder.onnx", "decoder.onnx"):
            members[f"exported/{b}/{f}"] = b"x"
    return {f"vaegen_infer-{VERSION}/{n}": data for n, data in members.items()}


def _write(dist: Path, wheel: dict[str, bytes], sdist: dict[str, bytes]) -> None:
    dist.mkdir()
    with zipfile.ZipFile(dist / f"vaegen_infer-{VERSION}-py3-none-any.whl", "w") as zf:
        for name, data in wheel.items():
            zf.writestr(name, data)
    with tarfile.open(dist / f"vaegen_infer-{VERSION}.tar.gz", "w:gz") as tf:
        for name, data in sdist.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def test_dist_check_passes_a_good_dist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "dist", _good_wheel_members(), _good_sdist_members())
    assert _check_dist().main([str(tmp_path / "dist")]) == 0
    assert "ok (version" in capsys.readouterr().out


_META = f"vaegen_infer-{VERSION}.dist-info/METADATA"
# case -> (what it does to a good wheel's members, the line the check must print)
_BAD_WHEELS: dict[str, tuple[Callable[[dict[str, bytes]], object], str]] = {
    "tests-inside": (lambda m: m.update({"tests/test_cli.py": b""}), "must not contain tests/test_cli.py"),
    "train-inside": (lambda m: m.update({"train/fit.py": b""}), "must not contain train/fit.py"),
    "benchmarks-inside": (lambda m: m.update({"benchmarks/latency.py": b""}), "must not contain benchmarks/"),
    "bytecode": (lambda m: m.update({"vaegen_infer/__pycache__/cli.pyc": b""}), "must not contain"),
    "no-schema": (lambda m: m.pop("vaegen_infer/schema/model.schema.json"), "missing vaegen_infer/schema"),
    "no-bundle": (lambda m: m.pop("vaegen_infer/_bundles/mnist-vae/model.json"), "missing vaegen_infer/_bundles/"),
    "swapped-graph": (
        lambda m: m.update({"vaegen_infer/_bundles/mnist-vae/decoder.onnx": b"not the graph"}),
        "does not match the sha256",
    ),
    "old-version": (lambda m: m.update({_META: b"Name: vaegen-infer\nVersion: 0.0.1\n"}), "METADATA version '0.0.1'"),
    "torch-dependency": (
        lambda m: m.update({_META: f"Version: {VERSION}\nRequires-Dist: torch>=2.5\n".encode()}),
        "torch is a plain dependency",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_WHEELS))
def test_dist_check_fails_loudly_on_a_bad_wheel(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, message = _BAD_WHEELS[case]
    members = _good_wheel_members()
    edit(members)
    _write(tmp_path / "dist", members, _good_sdist_members())
    assert _check_dist().main([str(tmp_path / "dist")]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "drop", "message"),
    [
        ({"tests/test_cli.py": b""}, None, "must not contain tests/test_cli.py"),
        ({"train/fit.py": b""}, None, "must not contain train/fit.py"),
        ({}, "CHANGELOG.md", "missing CHANGELOG.md"),
        ({}, "vaegen_infer/schema/model.schema.json", "missing vaegen_infer/schema/model.schema.json"),
    ],
)
def test_dist_check_fails_loudly_on_a_bad_sdist(
    extra: dict[str, bytes], drop: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist = _good_sdist_members()
    sdist.update({f"vaegen_infer-{VERSION}/{n}": d for n, d in extra.items()})
    if drop:
        del sdist[f"vaegen_infer-{VERSION}/{drop}"]
    _write(tmp_path / "dist", _good_wheel_members(), sdist)
    assert _check_dist().main([str(tmp_path / "dist")]) == 1
    assert message in capsys.readouterr().err
