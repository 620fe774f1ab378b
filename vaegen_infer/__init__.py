"""vaegen-infer: run Variational and Adversarial Autoencoders exported to ONNX, without PyTorch.

import vaegen_infer as vi
g = vi.load("mnist-vae")
images = g.sample(64, seed=0)          # (64, 1, 28, 28) float32 in [0, 1]
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .attributes import add_attribute
from .bundle import DEFAULT_MODEL, available
from .errors import BundleError, InputError, ProviderError, UsageError, VaegenError
from .model import Model, load


def load_images(
    items: Sequence[str | os.PathLike[str]],
    model: Model | str | os.PathLike[str] = DEFAULT_MODEL,
    strict: bool = False,
    invert: bool = False,
) -> np.ndarray:
    """Image files (paths, directories or glob patterns; any format Pillow reads) -> the model's
    input (N, C, H, W) float32 in [0, 1], converted to its channels and size as its bundle says.

    `model` is a loaded `Model` or a bundle name or path. `strict` refuses images of another size
    instead of resizing them; `invert` flips grey levels (dark strokes on light paper)."""
    g = model if isinstance(model, Model) else load(model)
    x, _ = g.load_images(items, strict=strict, invert=invert)
    return x

__version__ = "0.1.0"


def models() -> list[str]:
    """Names of the bundles `load()` can find: shipped with the package, or made by the user."""
    return list(available())


__all__ = [
    "DEFAULT_MODEL",
    "BundleError",
    "InputError",
    "Model",
    "ProviderError",
    "UsageError",
    "VaegenError",
    "__version__",
    "add_attribute",
    "load",
    "load_images",
    "models",
]


def __dir__() -> list[str]:
    return sorted(__all__)
