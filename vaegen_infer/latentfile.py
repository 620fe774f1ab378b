"""Reading latent codes from .npy (never with pickle) and .json files, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import InputError


def read_latents(path: Path) -> np.ndarray:
    """A file of codes -> (N, D) float32. JSON may be `encode`'s output (its "mu"), an object with
    "z", or a bare list of lists. Width and finiteness are checked by the model that decodes them."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):  # object arrays need pickle, which we never allow
                raise InputError(f"{path} holds Python objects, not numbers; save a float array") from None
            raise InputError(f"{path} is not a readable .npy file: {exc}") from None
        except (OSError, EOFError) as exc:
            raise InputError(f"{path} is not a readable .npy file: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            key = next((k for k in ("mu", "z") if k in data), None)
            if key is None:
                raise InputError(f"{path}: expected a list of codes or an object with 'mu' or 'z'")
            data = data[key]
        try:
            arr = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{path}: codes must be a list of equally long lists of numbers") from None
    else:
        raise InputError(f"{path}: latent codes must be a .npy or .json file")
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{path}: codes must be numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{path}: codes must be a 2-D array (N, D), got shape {arr.shape}")
    return arr.astype(np.float32)
