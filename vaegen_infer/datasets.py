"""Reading image datasets with numpy only: MNIST-format IDX files (gzipped or not).

Training (`train/`) and evaluation both read data through here, so there is one IDX parser.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .preprocess import Preprocess

# IDX type codes (the third byte of the magic number) -> numpy dtype, big-endian as the format says.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse one IDX file (optionally .gz) into an array of the shape its header gives."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise InputError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 0
    if len(data) - header != count * dtype.itemsize:
        raise InputError(
            f"{path}: header says {shape} ({count * dtype.itemsize} bytes) but the file holds "
            f"{len(data) - header} bytes: the file is truncated or damaged"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise InputError(f"no {stem}[.gz] in {directory}: expected MNIST-format IDX files")


def load_idx_dir(directory: str | os.PathLike[str], split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) float32 in [0, 1] and labels (N,) int64 from an MNIST-layout directory.

    `split` is "train" (train-images-idx3-ubyte) or "test" (t10k-images-idx3-ubyte).
    """
    directory = Path(directory).expanduser()
    if split not in IDX_SPLITS:
        raise InputError(f"unknown split '{split}': use one of {', '.join(IDX_SPLITS)}")
    if not directory.is_dir():
        raise InputError(f"no such directory: {directory}")
    prefix = IDX_SPLITS[split]
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InputError(f"{directory}: images {images.shape} and labels {labels.shape} do not pair up")
    x = images.astype(np.float32)[:, None] / np.float32(255.0)  # (N, 1, H, W)
    return x, labels.astype(np.int64)


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """Stochastic binarisation: pixel = 1 with probability equal to its intensity, fixed seed."""
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def load_labelled(
    directory: str | os.PathLike[str],
    shape: tuple[int, int, int],
    labels: list[str] | None = None,
    preprocess: Preprocess | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A labelled image set -> (images (N, C, H, W), labels (N,), class names).

    Either MNIST-format IDX files (the test split, t10k-*, when present, else train-*) or an image
    folder whose sub-folders are class names. With `labels` (a model's class names), sub-folders
    are mapped to those names and unknown ones are refused.
    """
    from .images import load_images  # images imports Pillow; keep IDX-only users light

    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InputError(f"no such directory: {root}")
    for split in ("test", "train"):
        prefix = IDX_SPLITS[split]
        if any((root / f"{prefix}-images-idx3-ubyte{gz}").is_file() for gz in ("", ".gz")):
            x, y = load_idx_dir(root, split)
            if tuple(x.shape[1:]) != tuple(shape):
                raise InputError(f"{root}: images are {x.shape[1:]}, the model takes {shape}")
            names = labels or [str(i) for i in range(int(y.max()) + 1)]
            return x, y, names
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))  # not caches
    if not classes:
        raise InputError(f"{root} holds neither MNIST IDX files nor one sub-folder per class")
    names = labels or [p.name for p in classes]
    xs, ys = [], []
    for folder in classes:
        if folder.name not in names:
            raise InputError(f"class folder '{folder.name}' is not a label of this model ({', '.join(names)})")
        x, _ = load_images([folder], shape, preprocess=preprocess)
        xs.append(x)
        ys.append(np.full(len(x), names.index(folder.name), dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys), names
