from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The MNIST test set beside the checkout; VAEGEN_INFER_TEST_MNIST points elsewhere (a worktree, or the copy
# of the checkout that mutation testing runs in, `mutants/`).
MNIST_DIR = Path(os.environ.get("VAEGEN_INFER_TEST_MNIST") or ROOT.parent / "shared" / "data" / "mnist")
# Latent size of the shipped mnist-vae, read from its manifest so tests follow a retrained bundle.
VAE_DIM: int = json.loads((ROOT / "exported" / "mnist-vae" / "model.json").read_text())["latent_dim"]
if str(ROOT) not in sys.path:  # `train` runs from the checkout, it is not installed
    sys.path.insert(0, str(ROOT))


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
