"""vaegen-infer: run Variational and Adversarial Autoencoders exported to ONNX, without PyTorch.

import vaegen_infer as vi
g = vi.load("mnist-vae")
images = g.sample(64, seed=0)          # (64, 1, 28, 28) float32 in [0, 1]
"""

from __future__ import annotations

from .bundle import DEFAULT_MODEL, available
from .errors import BundleError, InputError, ProviderError, UsageError, VaegenError
from .model import Model, load

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
    "load",
    "models",
]
