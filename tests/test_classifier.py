"""The committed digit classifier (train/classifier.py), the instrument that scores samples.

Fast: one ONNX session, at most 2,000 MNIST test images. Never imports torch.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train import classifier as bc

from .conftest import MNIST_DIR, ROOT

needs_mnist = pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")


@pytest.fixture(scope="module")
def clf() -> bc.Classifier:
    return bc.load_classifier()


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    """The first 2,000 MNIST test images (N, 1, 28, 28) and labels (N,)."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"{MNIST_DIR} not present")
    from vaegen_infer.datasets import load_idx_dir

    x, y = load_idx_dir(MNIST_DIR, "test")
    return x[:2000], y[:2000]


@pytest.fixture(scope="module")
def test_features(clf: bc.Classifier, test_digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return clf.predict(test_digits[0])[1]  # (2000, F)


def test_outputs_shapes_and_dtypes(clf: bc.Classifier) -> None:
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    probs, feats = clf.predict(x)
    assert probs.shape == (5, 10) and probs.dtype == np.float64
    assert feats.shape == (5, clf.feature_dim) and feats.dtype == np.float32
    assert 64 <= clf.feature_dim <= 128
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    # batching is an implementation detail: one image per run gives the same numbers
    probs_1, feats_1 = clf.predict(x, batch_size=1)
    np.testing.assert_allclose(probs_1, probs, atol=1e-6)
    np.testing.assert_allclose(feats_1, feats, atol=1e-5)


def test_rejects_wrong_image_shape(clf: bc.Classifier) -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        clf.predict(np.zeros((2, 28, 28), dtype=np.float32))


@needs_mnist
def test_accuracy_on_first_1000_test_images(clf: bc.Classifier, test_digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = test_digits
    probs, _ = clf.predict(x[:1000])
    assert (probs.argmax(axis=1) == y[:1000]).mean() >= 0.97


def test_metadata_matches_file() -> None:
    meta = json.loads(bc.DEFAULT_MODEL.with_suffix(".json").read_text())
    assert meta["onnx_sha256"] == bc.sha256_file(bc.DEFAULT_MODEL)
    assert meta["test_accuracy"] >= 0.975 and len(meta["per_class_test_accuracy"]) == 10
    assert meta["n_train"] == 4500 and "test set" in meta["training_data"]
    assert bc.DEFAULT_MODEL.stat().st_size < 1 << 20


def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    """A changed instrument must not silently produce numbers that look comparable."""
    path = tmp_path / "digit-classifier.onnx"
    shutil.copyfile(bc.DEFAULT_MODEL, path)
    meta = json.loads(bc.DEFAULT_MODEL.with_suffix(".json").read_text())
    meta["onnx_sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="sha256"):
        bc.load_classifier(path)


@needs_mnist
def test_fid_of_a_set_with_itself_is_zero(test_features: np.ndarray) -> None:
    assert bc.frechet_distance(test_features, test_features) == pytest.approx(0.0, abs=1e-3)


@needs_mnist
def test_fid_between_digits_and_noise_is_large(clf: bc.Classifier, test_features: np.ndarray) -> None:
    noise = np.random.default_rng(0).random((1000, 1, 28, 28), dtype=np.float32)
    between_halves = bc.frechet_distance(test_features[:1000], test_features[1000:])
    to_noise = bc.frechet_distance(test_features[:1000], clf.predict(noise)[1])
    assert to_noise > 100.0
    assert to_noise > 10 * between_halves


def test_fid_of_a_shifted_set_is_the_squared_shift() -> None:
    """Known answer: same covariance, means apart by c, so FID = ||c||^2."""
    a = np.random.default_rng(1).normal(size=(500, 8))
    c = np.arange(8, dtype=np.float64) / 4
    assert bc.frechet_distance(a, a + c) == pytest.approx(float((c**2).sum()), rel=1e-6)


def test_trace_sqrt_known_answer_and_routes_agree() -> None:
    # diag(4, 9) @ diag(1, 4) = diag(4, 36): the square root has trace 2 + 6
    assert bc._trace_sqrt_product_eigh(np.diag([4.0, 9.0]), np.diag([1.0, 4.0])) == pytest.approx(8.0)
    pytest.importorskip("scipy")
    rng = np.random.default_rng(2)
    m, n = rng.normal(size=(6, 6)), rng.normal(size=(6, 3))
    ca, cb = m @ m.T, n @ n.T  # non-commuting; cb is singular (rank 3), as with dead ReLU features
    assert bc._trace_sqrt_product_scipy(ca, cb) == pytest.approx(bc._trace_sqrt_product_eigh(ca, cb), rel=1e-6)


@needs_mnist
def test_fid_without_scipy_uses_the_eigen_route(test_features: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = test_features[:1000], test_features[1000:]
    with_default = bc.frechet_distance(a, b)
    monkeypatch.setitem(sys.modules, "scipy", None)  # makes `import scipy.linalg` raise ImportError
    monkeypatch.setitem(sys.modules, "scipy.linalg", None)
    assert bc.frechet_distance(a, b) == pytest.approx(with_default, rel=1e-6)


@needs_mnist
def test_fid_routes_agree_on_real_features(test_features: np.ndarray) -> None:
    pytest.importorskip("scipy")
    ca = np.cov(test_features[:1000].astype(np.float64), rowvar=False)
    cb = np.cov(test_features[1000:].astype(np.float64), rowvar=False)
    assert bc._trace_sqrt_product_scipy(ca, cb) == pytest.approx(bc._trace_sqrt_product_eigh(ca, cb), rel=1e-6)


@needs_mnist
def test_sample_quality_on_real_digits(clf: bc.Classifier, test_digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = test_digits
    q = bc.sample_quality(x, y, clf)
    assert q["n"] == len(x)
    assert q["requested_share"] >= 0.97
    assert q["confidence"] > 0.95
    assert len(q["class_share"]) == 10 and sum(q["class_share"]) == pytest.approx(1.0)
    assert q["kl_from_uniform_nats"] < 0.02  # the test set is close to balanced
    assert q["class_entropy_nats"] + q["kl_from_uniform_nats"] == pytest.approx(math.log(10))
    json.dumps(q)  # plain Python numbers, ready for a results file


@needs_mnist
def test_sample_quality_sees_mode_collapse(clf: bc.Classifier, test_digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = test_digits
    ones = x[y == 1][:100]
    q = bc.sample_quality(ones, None, clf)
    assert "requested_share" not in q
    assert q["kl_from_uniform_nats"] > 0.9 * math.log(10)
    with pytest.raises(ValueError, match="requested_labels"):
        bc.sample_quality(ones, np.ones(3, dtype=np.int64), clf)


def test_runtime_side_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from train.classifier import load_classifier, frechet_distance, sample_quality\n"
        "x = np.zeros((4, 1, 28, 28), np.float32)\n"
        "p, f = load_classifier().predict(x)\n"
        "sample_quality(x)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_benchmarks_shim_runs_the_moved_classifier() -> None:
    # `python benchmarks/classifier.py ...` still works, and is the module in train/.
    done = subprocess.run(
        [sys.executable, "benchmarks/classifier.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "check" in done.stdout
    assert bc.DEFAULT_MODEL.parent == ROOT / "train" / "assets"


def test_train_never_imports_benchmarks() -> None:
    # Metrics stored in model.json must not depend on a benchmark script (issue 12).
    code = (
        "import sys\n"
        "import train.evaluate as ev\n"
        "ev._classifier().load_classifier()\n"
        "assert not any(m == 'benchmarks' or m.startswith('benchmarks.') for m in sys.modules), 'benchmarks imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    for path in (ROOT / "train").glob("*.py"):
        assert "import benchmarks" not in path.read_text() and "from benchmarks" not in path.read_text(), path
