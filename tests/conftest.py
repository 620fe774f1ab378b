from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The MNIST test set beside the checkout; VAEGEN_INFER_TEST_MNIST points elsewhere (a worktree, or the copy
# of the checkout that mutation testing runs in, `mutants/`).
MNIST_DIR = Path(os.environ.get("VAEGEN_INFER_TEST_MNIST") or ROOT.parent / "shared" / "data" / "mnist")
# Latent size of the shipped mnist-vae, read from its manifest so tests follow a retrained bundle.
VAE_DIM: int = json.loads((ROOT / "exported" / "mnist-vae" / "model.json").read_text())["latent_dim"]
if str(ROOT) not in sys.path:  # `train` runs from the checkout, it is not installed
    sys.path.insert(0, str(ROOT))


def _shipped_model(name: str) -> Any:
    """A session-wide fixture loading the shipped bundle `name` on the CPU (a module may define its own)."""

    @pytest.fixture(scope="session")
    def fixture() -> Any:
        import vaegen_infer as vi

        return vi.load(name, providers="cpu")

    return fixture


vae = _shipped_model("mnist-vae")
vae2d = _shipped_model("mnist-vae-2d")
aae = _shipped_model("mnist-aae")
saae = _shipped_model("mnist-saae")
rgb = _shipped_model("color-dsprites")


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real user's bundles from tests."""
    monkeypatch.setenv("VAEGEN_INFER_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped mnist-vae bundle that a test may damage."""
    dst = tmp_path / "mnist-vae"
    shutil.copytree(ROOT / "exported" / "mnist-vae", dst)
    return dst


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch VAE on synthetic data (needs torch)."""
    pytest.importorskip("torch")
    from train import data
    from train.config import ModelConfig, TrainConfig
    from train.fit import fit_vae

    out = tmp_path_factory.mktemp("run")
    split = data.synthetic(n=160)
    mcfg = ModelConfig(latent_dim=4, channels=(8, 16), hidden=32)
    tcfg = TrainConfig(data="synthetic", epochs=1, batch_size=32, seed=0)
    fit_vae(mcfg, tcfg, split, out, quiet=True)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from train.export import export_run

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    path, _ = export_run(tiny_run, out, description="test bundle")
    return path


def _mutmut_durations() -> dict[str, float] | None:
    """Seconds per test id from mutmut's stats run, when this process tests a mutant; else None.

    mutmut runs the suite in its copy of the checkout (`mutants/`), so its stats file lies at ROOT.
    """
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return None
    try:
        return json.loads((ROOT / "mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return None  # no stats yet: keep pytest's order


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under mutmut, run the fastest tests first (benchmarks/mutation.py).

    mutmut runs each mutant's tests with `-x` and passes them as a set, so their order is arbitrary; a
    killed mutant costs only as much as the tests before the first failing one, and the cheap tests
    (known answers, unit checks) are the ones most likely to fail. Outside mutmut this does nothing.
    """
    durations = _mutmut_durations()
    if durations is None:
        return
    # Stable: tests with equal (or unknown, +inf) durations keep pytest's fixture-friendly order.
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
