"""A `Model` whose two graphs run through `Batcher`s, with every operation still the library's code.

`BatchedModel(model, decoder, encoder)` forwards attribute reads to the model, but binds the
library's public methods (`Model.interpolate`, `Model.shift`, the grid functions' calls ...) to
itself, so the `self.decode(...)` / `self.encode(...)` inside them go through the batchers. The
result is what the library computes, to float32 rounding, with no operation copied here.
No HTTP in this module.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import numpy as np

from ..errors import InputError
from ..model import Model
from .batcher import Batcher

_F32 = np.dtype(np.float32)


class BatchedModel:
    """`model` with `decode` and `encode` routed through `decoder` and `encoder` batchers."""

    def __init__(self, model: Model, decoder: Batcher, encoder: Batcher) -> None:
        self.model = model
        self.decoder = decoder
        self.encoder = encoder

    def __getattr__(self, name: str) -> Any:
        # Public library methods run with this object as `self` (so their graph calls are batched);
        # properties, data and private helpers come from the model itself.
        attr = inspect.getattr_static(type(self.model), name, None)  # staticmethod objects stay wrapped
        if not name.startswith("_") and inspect.isfunction(attr):
            return types.MethodType(attr, self)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"BatchedModel({self.model!r})"

    def decode(self, z: np.ndarray, labels: Any = None, chunk: int = 0) -> np.ndarray:
        """Codes (N, D) -> images (N, C, H, W), as one request to the decoder's batcher. The same
        signature as Model.decode; the server refuses label-conditioned decoders when it loads them,
        so `labels` is always None here (the library passes it positionally)."""
        if labels is not None:
            raise InputError(f"model '{self.model.name}' takes no labels in the server")
        rows = latents_of(z, self.model.latent_dim)
        return self.decoder.submit(rows).result()

    def encode(self, images: np.ndarray, chunk: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) in the model's value range -> (mu, logvar), (N, D) each."""
        x = self.model.check_images(images)
        mu, logvar = self.encoder.submit(x).result()
        return mu, logvar


def latents_of(z: Any, dim: int) -> np.ndarray:
    """Check one request's codes before they join a batch (a bad request must not fail the others'
    batch): (N, D) or (D,) finite numbers -> contiguous float32 (N, D)."""
    a = np.asarray(z)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"latent codes must be numbers, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != dim:
        raise InputError(f"latent codes must have shape (N, {dim}), got {a.shape}")
    if a.shape[0] == 0:
        raise InputError("no latent codes given (N = 0)")
    a = np.ascontiguousarray(a, dtype=_F32)
    if not np.isfinite(a).all():
        raise InputError("latent codes contain NaN or infinity")
    return a
