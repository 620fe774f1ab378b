"""The runtime library on the shipped bundle: loading, sampling, validation, integrity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vaegen_infer as vi
from vaegen_infer.errors import BundleError, InputError, UsageError

from .conftest import VAE_DIM

SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "mnist-vae"


@pytest.fixture(scope="module")
def vae() -> vi.Model:
    return vi.load("mnist-vae", providers="cpu")


def test_models_lists_shipped_bundle() -> None:
    assert "mnist-vae" in vi.models()


def test_load_by_name_and_by_path_give_the_same_images(vae: vi.Model) -> None:
    by_path = vi.load(SHIPPED, providers="cpu")
    np.testing.assert_array_equal(vae.sample(5, seed=3), by_path.sample(5, seed=3))


def test_sample_shape_range_and_determinism(vae: vi.Model) -> None:
    x = vae.sample(64, seed=0)
    assert x.shape == (64, 1, 28, 28)
    assert x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x, vae.sample(64, seed=0))
    assert np.abs(x - vae.sample(64, seed=1)).max() > 0.1


def test_sample_in_chunks_equals_one_batch(vae: vi.Model) -> None:
    np.testing.assert_allclose(vae.sample(50, seed=7, chunk=16), vae.sample(50, seed=7), atol=1e-6)


def test_samples_look_like_digits_not_noise(vae: vi.Model) -> None:
    x = vae.sample(256, seed=0)
    ink = x.reshape(256, -1).mean(1)
    # MNIST digits cover ~10-20% of the canvas; the border is blank.
    assert 0.05 < float(np.median(ink)) < 0.3
    assert float(x[:, :, :2, :].mean()) < 0.02


def test_encode_decode_round_trip_is_closer_than_a_random_code(vae: vi.Model) -> None:
    x = vae.sample(16, seed=5)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (16, vae.latent_dim)
    rec = vae.decode(mu)
    other = vae.decode(np.roll(mu, 1, axis=0))
    assert np.abs(rec - x).mean() < 0.5 * np.abs(other - x).mean()


def test_the_cpu_provider_is_reported(vae: vi.Model) -> None:
    assert vae.provider() == "cpu"


@pytest.mark.parametrize(
    ("z", "message"),
    [
        (np.zeros((2, 3), np.float32), "shape"),
        (np.full((1, VAE_DIM), np.nan, np.float32), "NaN"),
        (np.full((1, VAE_DIM), np.inf, np.float32), "NaN or infinity"),
        (np.array([["a"] * 16]), "numbers"),
        (np.zeros((0, VAE_DIM), np.float32), "N = 0"),
    ],
)
def test_decode_rejects_bad_latents(vae: vi.Model, z: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        vae.decode(z)


def test_encode_rejects_wrong_image_shape_and_range(vae: vi.Model) -> None:
    with pytest.raises(InputError, match="shape"):
        vae.encode(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        vae.encode(np.full((1, 1, 28, 28), 255.0, np.float32))


@pytest.mark.parametrize("n", [0, -1, 10**9, 2.5, True])
def test_sample_rejects_bad_counts(vae: vi.Model, n: object) -> None:
    with pytest.raises(UsageError):
        vae.sample(n)  # type: ignore[arg-type]


def test_label_on_an_unconditional_model_is_refused(vae: vi.Model) -> None:
    with pytest.raises(UsageError, match="not label-conditioned"):
        vae.sample(4, seed=0, label=3)


def test_unknown_model_lists_the_available_ones() -> None:
    with pytest.raises(UsageError, match=r"available models: .*mnist-vae"):
        vi.load("no-such-model")


def test_unknown_provider_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown provider 'tpu'"):
        vi.load("mnist-vae", providers="tpu")


def test_tampered_graph_fails_the_hash_check(bundle_copy: Path) -> None:
    dec = bundle_copy / "decoder.onnx"
    data = bytearray(dec.read_bytes())
    data[-100] ^= 0xFF
    dec.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        vi.load(bundle_copy)


def test_missing_graph_file(bundle_copy: Path) -> None:
    (bundle_copy / "encoder.onnx").unlink()
    with pytest.raises(BundleError, match=r"missing encoder\.onnx"):
        vi.load(bundle_copy)


def _edit_manifest(bundle: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = bundle / "model.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=99), "unknown format_version 99"),
        (lambda d: d.pop("latent_dim"), "missing key 'latent_dim'"),
        (lambda d: d.update(latent_dim=-3), "'latent_dim' must be an integer >= 1, got -3"),
        (lambda d: d.update(kind="gan"), "'kind' must be one of vae, aae"),
        (lambda d: d["graphs"]["decoder"].update(file="../decoder.onnx"), "plain file name"),
        (lambda d: d["graphs"]["encoder"].update(sha256="abc"), "64 lowercase hex"),
        (lambda d: d["image"].update(channels=2), "'image.channels' must be 1 \\(grey\\) or 3"),
        (lambda d: d["prior"].update(name="cauchy"), "unknown prior 'cauchy'"),
        (lambda d: d["graphs"]["decoder"]["inputs"].update(z=[None, 5]), "inconsistent"),
    ],
)
def test_bad_manifests_name_the_field(bundle_copy: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    _edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=message):
        vi.load(bundle_copy)


def test_manifest_that_is_not_json(bundle_copy: Path) -> None:
    (bundle_copy / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        vi.load(bundle_copy)


def test_a_non_onnx_graph_with_a_matching_hash_is_refused(bundle_copy: Path) -> None:
    from vaegen_infer.bundle import sha256_file

    (bundle_copy / "decoder.onnx").write_bytes(b"this is not a protobuf")
    _edit_manifest(
        bundle_copy, lambda d: d["graphs"]["decoder"].update(sha256=sha256_file(bundle_copy / "decoder.onnx"))
    )
    g = vi.load(bundle_copy, providers="cpu")
    with pytest.raises(BundleError, match="not a usable ONNX graph"):
        g.sample(1, seed=0)


def test_user_bundles_are_found_by_name(bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "bundles").mkdir(parents=True)
    bundle_copy.rename(home / "bundles" / "my-vae")
    monkeypatch.setenv("VAEGEN_INFER_HOME", str(home))
    assert "my-vae" in vi.models()
    assert vi.load("my-vae").bundle.origin == "user"
