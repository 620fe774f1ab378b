"""Prior draws for the NAME-sample model, with numpy and the prior code copied beside this file.

Written into the model folder by `vaegen-infer export-triton`. It must run in the stock Triton
container, whose Python has numpy but not vaegen-infer: it imports only numpy and the package
`vaegen_prior_copy/` (a verbatim copy of vaegen_infer's priors module and the two modules it
imports, made at export time). `draw` follows `vaegen_infer.Model.iter_latents` step for step,
so a seed gives the codes, and so the images, of `vaegen-infer sample --seed`; the exporter's
tests compare the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from vaegen_prior_copy.manifest import Manifest
from vaegen_prior_copy.priors import Prior, make_prior

HERE = Path(__file__).resolve().parent


class SampleError(ValueError):
    """A request the sampler refuses: the message goes back to the client as a Triton error."""


class Sampler:
    """The bundle's sampler (its fitted density of the training codes, else the prior), its labels
    and the draw rule of the runtime that exported it."""

    def __init__(self, manifest_path: Path, draw_chunk: int, max_n: int) -> None:
        data: Any = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.manifest = Manifest.from_dict(data, source=str(manifest_path))
        # as vaegen_infer.Model: `sample` draws from the fitted sampler where the bundle has one
        spec = self.manifest.sampler if self.manifest.sampler is not None else self.manifest.prior
        self.prior: Prior = make_prior(spec, self.manifest.latent_dim)
        self.draw_chunk = int(draw_chunk)  # vaegen_infer.model.DRAW_CHUNK at export time
        self.max_n = int(max_n)

    def draw(self, n: int, seed: int, label: int | None = None) -> np.ndarray:
        """n codes (n, D) float32 from the sampler, from label's region if given."""
        m = self.manifest
        if not 1 <= n <= self.max_n:
            raise SampleError(f"n must lie in 1..{self.max_n}, got {n}; split larger requests")
        if seed < 0:
            raise SampleError(f"seed must be a non-negative integer, got {seed}")
        if label is not None:
            if not m.conditional or m.labels is None:
                raise SampleError(f"model '{m.name}' is not label-conditioned: send no 'label' input")
            if not 0 <= label < len(m.labels):
                valid = f"0..{len(m.labels) - 1} ({', '.join(m.labels)})"
                raise SampleError(f"label must be an index in {valid}, got {label}")
        rng = np.random.default_rng(seed)
        parts = []
        # Blocks of draw_chunk rows, as the runtime draws them: the stream depends on the seed only.
        for start in range(0, n, self.draw_chunk):
            rows = min(self.draw_chunk, n - start)
            labels = None if label is None else np.full(rows, label, dtype=np.int64)
            parts.append(self.prior.sample(rows, rng, labels))  # (rows, D)
        return np.concatenate(parts)
