"""The one place the server gets its pictures from: the library's grid layouts.

`vaegen_infer.grids` (the layouts the CLI draws) is used when the installed library has it; until
then a stand-in with the same functions, drawn the way the CLI draws them, keeps the server
working. Switching is the import below and nothing else.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

try:  # the library's own layouts (same bytes as the CLI)
    from .. import grids as grids  # type: ignore[attr-defined]
except ImportError:  # an older library: the stand-in below
    grids = None  # type: ignore[assignment]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class _Grid:
    tiles: np.ndarray  # (R, K, C, H, W) float32 in [0, 1]
    row_labels: Sequence[str] | None = None
    col_labels: Sequence[str] | None = None
    gap_after_rows: Sequence[int] = field(default_factory=tuple)
    flat: int | None = None  # n tiles laid row by row (make_grid), partial last row allowed

    def image(self, scale: int = 2) -> Image.Image:
        from ..images import labelled_grid, make_grid

        if self.flat is not None:
            r, k = self.tiles.shape[:2]
            flat = self.tiles.reshape(r * k, *self.tiles.shape[2:])[: self.flat]
            return make_grid(flat, cols=k, scale=scale)
        return labelled_grid(
            self.tiles, self.row_labels, self.col_labels, scale=scale, gap_after_rows=self.gap_after_rows
        )

    def png(self, scale: int = 2) -> bytes:
        return png_bytes(self.image(scale))


def _signed(v: float) -> str:
    return f"{v:+g}" if v else "0"


class _Fallback:
    """The grid functions of `vaegen_infer.grids`, drawn as the CLI of this version draws them."""

    Grid = _Grid

    @staticmethod
    def _rows(x: np.ndarray, cols: int | None) -> _Grid:
        from ..images import grid_shape

        rows, k = grid_shape(len(x), cols)
        pad = np.zeros((rows * k - len(x), *x.shape[1:]), np.float32)
        return _Grid(np.concatenate([x, pad]).reshape(rows, k, *x.shape[1:]), flat=len(x))

    @staticmethod
    def sample_grid(g: Any, n: int, seed: int | None, label: Any = None, cols: int | None = None) -> _Grid:
        return _Fallback._rows(g.sample(n, seed=seed, label=label), cols)

    @staticmethod
    def per_label_grid(g: Any, per_label: int, seed: int) -> _Grid:
        names = list(g.manifest.labels or [])
        g.label_index(names[0] if names else 0)
        rows = [g.sample(per_label, seed=seed + i, label=name) for i, name in enumerate(names)]
        return _Grid(np.stack(rows), row_labels=names)

    @staticmethod
    def decode_grid(g: Any, z: np.ndarray, cols: int | None = None) -> _Grid:
        return _Fallback._rows(g.decode(z), cols)

    @staticmethod
    def reconstruct_grid(g: Any, images: np.ndarray, cols: int = 10, sample: bool = False, seed: int = 0) -> _Grid:
        rec = g.reconstruct(images, sample=sample, seed=seed)
        n = len(images)
        cols = min(cols, n)
        rows = -(-n // cols)
        shape = images.shape[1:]
        blank = np.zeros((rows * cols - n, *shape), np.float32)
        top = np.concatenate([images, blank]).reshape(rows, 1, cols, *shape)
        bottom = np.concatenate([rec, blank]).reshape(rows, 1, cols, *shape)
        tiles = np.concatenate([top, bottom], axis=1).reshape(2 * rows, cols, *shape)
        return _Grid(tiles, ["input", "output"] * rows, gap_after_rows=range(1, 2 * rows, 2))

    @staticmethod
    def interpolate_grid(
        g: Any, anchors: Sequence[np.ndarray], steps: int = 10, method: str = "slerp", names: Any = None
    ) -> _Grid:
        frames = g.interpolate(*anchors, steps=steps, method=method)
        segs = len(anchors) - 1
        tiles = np.stack([frames[i * (steps - 1) : i * (steps - 1) + steps] for i in range(segs)])
        labels = None
        if segs > 1:
            nm = list(names) if names else [f"z{i}" for i in range(len(anchors))]
            labels = [f"{nm[i]}>{nm[i + 1]}" for i in range(segs)]
        return _Grid(tiles, labels)

    @staticmethod
    def shift_grid(g: Any, images: np.ndarray, attribute: str, amounts: Sequence[float], names: Any = None) -> _Grid:
        tiles = g.shift(images, attribute, amounts)
        labels = list(names) if names and len(names) > 1 else None
        return _Grid(tiles, labels, [_signed(v) for v in amounts])

    @staticmethod
    def traverse_grid(g: Any, image: Any = None, dims: Any = None, span: float = 3.0, steps: int = 9) -> _Grid:
        order = list(dims) if dims is not None else g.dims_by_importance()[:8]
        tiles = g.traverse(image, dims=order, span=span, steps=steps)
        cols = [_signed(round(float(v), 2)) for v in np.linspace(-span, span, steps)]
        return _Grid(tiles, [f"z{d}" for d in order], cols)

    @staticmethod
    def manifold_grid(g: Any, n: int = 20, dims: Any = None) -> _Grid:
        return _Grid(g.manifold(n, dims))

    @staticmethod
    def latent_map(g: Any, images: Any = None, labels: Any = None, dims: Any = None) -> Image.Image:
        from ..plots import latent_map

        pair = tuple(dims) if dims is not None else ((0, 1) if g.latent_dim == 2 else tuple(g.dims_by_importance()[:2]))
        codes = g.encode(images)[0] if images is not None else np.zeros((0, g.latent_dim), np.float32)
        lab = None if labels is None else np.asarray(labels)
        title = f"{g.name}: {len(codes):,} codes over the {g.prior.name} prior"
        return latent_map(codes, lab, g.prior, g.manifest.labels, dims=(int(pair[0]), int(pair[1])), title=title)


if grids is None:
    grids = _Fallback  # type: ignore[assignment]
