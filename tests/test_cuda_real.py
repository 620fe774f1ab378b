"""The CUDA path on a real GPU, no fakes: run by benchmarks/gpu_check.sh (VAEGEN_INFER_REAL_CUDA=1).

Skipped everywhere else. With the variable set, a missing CUDA provider fails instead of skipping,
so the GPU check cannot pass without having run these."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vaegen_infer

REAL = os.environ.get("VAEGEN_INFER_REAL_CUDA") == "1"
pytestmark = pytest.mark.skipif(not REAL, reason="needs a GPU: set VAEGEN_INFER_REAL_CUDA=1 (benchmarks/gpu_check.sh)")


@pytest.fixture(scope="module")
def cpu() -> vaegen_infer.Model:
    return vaegen_infer.load("mnist-vae", providers="cpu")


def test_cuda_is_really_active() -> None:
    g = vaegen_infer.load("mnist-vae", providers="cuda")
    assert g.provider("decoder") == "cuda" and g.provider("encoder") == "cuda"
    assert "CUDAExecutionProvider" in g.session_for("decoder", 1).get_providers()


@pytest.mark.parametrize("batch", [1, 64, 4096])
def test_cuda_matches_cpu_without_tf32(cpu: vaegen_infer.Model, batch: int) -> None:
    g = vaegen_infer.load("mnist-vae", providers="cuda")
    z = cpu.sample_latents(batch, seed=batch)
    np.testing.assert_allclose(g.decode(z), cpu.decode(z), atol=1e-4, rtol=0)
    x = cpu.decode(z)
    np.testing.assert_allclose(g.encode(x)[0], cpu.encode(x)[0], atol=1e-3, rtol=0)


def test_device_resident_decode_keeps_the_images_on_the_gpu(cpu: vaegen_infer.Model) -> None:
    import onnxruntime as ort

    g = vaegen_infer.load("mnist-vae", providers="cuda")
    z = cpu.sample_latents(32, seed=1)
    images = g.decode_on_device(ort.OrtValue.ortvalue_from_numpy(z, "cuda", 0))
    assert images.device_name().lower() == "cuda"
    np.testing.assert_allclose(images.numpy(), cpu.decode(z), atol=1e-4, rtol=0)
    mu, _ = g.encode_on_device(images)
    assert mu.device_name().lower() == "cuda" and mu.shape() == [32, g.latent_dim]


def test_cuda_graphs_replay_one_graph_per_batch_size(cpu: vaegen_infer.Model) -> None:
    g = vaegen_infer.load("mnist-vae", providers="cuda", cuda_graph=True)
    for batch in (8, 64, 8):
        z = cpu.sample_latents(batch, seed=batch)
        np.testing.assert_allclose(g.decode(z), cpu.decode(z), atol=1e-4, rtol=0)
    assert g._runner("decoder").batch_sizes == [8, 64]  # type: ignore[attr-defined]
