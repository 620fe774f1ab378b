"""Every picture an operation makes, as data: the tiles, their layout and their labels.

Each function here calls one `Model` operation and lays its images out as a `Grid`; the CLI, the
HTTP server and any application render the same `Grid` the same way (`Grid.image()`), so a
request gives the same picture through every front door. Nothing here draws random numbers of
its own: seeds go to the model's operations.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image

from .errors import InputError, UsageError
from .images import grid_canvas_shape, grid_shape, labelled_grid, make_grid, paste_rows
from .model import Model

# Images decoded per band of a streamed sample grid (whole grid rows): big enough that each
# decode call keeps both cores busy, small enough that the PNG of one band compresses while the
# next is decoded.
STREAM_BAND_IMAGES = 512


@dataclass(frozen=True)
class Grid:
    """Tiles (R, K, C, H, W) float32 in [0, 1], laid out as R rows of K.

    `count` is the number of real tiles in row-major order (a near-square grid of n images leaves
    the end of its last row empty); labels, when given, go left of each row and above each column.
    """

    tiles: np.ndarray
    row_labels: list[str] | None = None
    col_labels: list[str] | None = None
    gap_after_rows: tuple[int, ...] = ()
    count: int | None = None
    pad: int = 2
    scale: int = 2  # the default upscaling of each tile when rendered

    def __post_init__(self) -> None:
        if self.tiles.ndim != 5:
            raise UsageError(f"grid tiles must be (rows, cols, C, H, W), got shape {self.tiles.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return int(self.tiles.shape[0]), int(self.tiles.shape[1])

    @property
    def n(self) -> int:
        rows, cols = self.shape
        return rows * cols if self.count is None else self.count

    @property
    def images(self) -> np.ndarray:
        """The real tiles in reading order, (n, C, H, W)."""
        return self.tiles.reshape(-1, *self.tiles.shape[2:])[: self.n]

    def image(self, scale: int | None = None) -> Image.Image:
        """The picture: grey ('L') or RGB, each tile upscaled `scale` times (nearest neighbour)."""
        s = self.scale if scale is None else scale
        if self.row_labels is None and self.col_labels is None and not self.gap_after_rows:
            return make_grid(self.images, cols=self.shape[1], pad=self.pad, scale=s)
        return labelled_grid(
            self.tiles, row_labels=self.row_labels, col_labels=self.col_labels, scale=s, pad=self.pad,
            gap_after_rows=self.gap_after_rows,
        )  # fmt: skip

    def png(self, scale: int | None = None, compress_level: int = 6) -> bytes:
        """The picture as PNG bytes (Pillow's default compression)."""
        buf = io.BytesIO()
        self.image(scale).save(buf, format="PNG", compress_level=compress_level)
        return buf.getvalue()


def _rows_of(images: np.ndarray, cols: int) -> tuple[np.ndarray, int]:
    """(N, C, H, W) -> (ceil(N / cols), cols, C, H, W) with blank tiles at the end, and N."""
    n = len(images)
    rows = -(-n // cols)
    blank = np.zeros((rows * cols - n, *images.shape[1:]), np.float32)
    return np.concatenate([images, blank]).reshape(rows, cols, *images.shape[1:]), n


def _near_square(images: np.ndarray, cols: int | None) -> Grid:
    _, c = grid_shape(len(images), cols)
    tiles, n = _rows_of(images, c)
    return Grid(tiles, count=n)


def signed(v: float) -> str:
    """A column label for an amount or offset: +1, -0.5, 0."""
    return f"{v:+g}" if v else "0"


def short_name(name: str, limit: int = 14) -> str:
    """A row label from a file name: at most `limit` characters."""
    return name if len(name) <= limit else name[: limit - 1] + "~"


def sample_grid(
    g: Model,
    n: int,
    seed: int | None,
    label: int | str | None = None,
    cols: int | None = None,
    from_prior: bool = False,
) -> Grid:
    """n samples (of one class with `label`; from the prior, not the sampler, with `from_prior`),
    near-square unless `cols` is given."""
    return _near_square(g.sample(n, seed=seed, label=label, from_prior=from_prior), cols)


def sample_png(
    g: Model,
    n: int,
    seed: int | None,
    fh: BinaryIO,
    label: int | str | None = None,
    cols: int | None = None,
    scale: int = 2,
    compress_level: int = 6,
    from_prior: bool = False,
) -> tuple[int, int]:
    """Write `sample_grid(g, n, seed, label, cols, from_prior).png(scale)`'s picture as a PNG to `fh`, decoding
    and compressing at once: each band of grid rows is compressed (vaegen_infer.png) while the model
    decodes the next. The pixels equal the Grid's; the bytes differ from Pillow's encoder (filter
    None, one zlib stream) and are the same for a given seed and level. Returns (width, height)."""
    from .png import StreamedPNG

    rows, c = grid_shape(n, cols)
    pad = Grid.pad
    canvas = np.full(grid_canvas_shape(rows, c, g.image_shape, pad, scale), 64, dtype=np.uint8)  # (H, W, C)
    height, width, channels = canvas.shape
    band = max(1, STREAM_BAND_IMAGES // c) * c  # whole grid rows per band
    sh = g.image_shape[1] * scale + pad  # canvas rows per grid row
    writer = StreamedPNG(fh, width, height, channels, compress_level)
    y = 0
    try:
        for i, block in enumerate(g.iter_samples(n, seed=seed, label=label, chunk=band, from_prior=from_prior)):
            first = i * band // c
            paste_rows(canvas, block, c, pad, scale, first_row=first)
            done = first + -(-len(block) // c)  # grid rows filled so far
            end = height if done >= rows else pad + done * sh  # the last band takes the bottom margin
            writer.add(canvas[y:end])
            y = end
    finally:
        writer.close()
    return width, height


def per_label_grid(g: Model, per_label: int, seed: int | None) -> Grid:
    """A row of `per_label` samples for each class, labelled by class name (label i: seed + i)."""
    rows = g.sample_per_label(per_label, seed)
    return Grid(rows, row_labels=list(g.label_names()))


def decode_grid(g: Model, z: np.ndarray, cols: int | None = None, label: int | str | None = None) -> Grid:
    """Decoded codes (N, D), near-square unless `cols` is given; `label` for label-conditioned
    decoders (supervised AAE): every code drawn as that label."""
    return _near_square(g.decode(z, label), cols)


def reconstruct_grid(
    g: Model,
    images: np.ndarray,
    cols: int = 10,
    sample: bool = False,
    seed: int | None = 0,
    label: int | str | None = None,
) -> Grid:
    """Inputs above their reconstructions: pairs of rows labelled input / output, `cols` per row."""
    x = g.check_images(images)
    rec = g.reconstruct(x, sample=sample, seed=seed, labels=label)
    cols = max(1, min(cols, len(x)))
    top, _ = _rows_of(x, cols)
    bottom, _ = _rows_of(rec, cols)
    rows = top.shape[0]
    tiles = np.stack([top, bottom], axis=1).reshape(2 * rows, cols, *g.image_shape)
    return Grid(tiles, row_labels=["input", "output"] * rows, gap_after_rows=tuple(range(1, 2 * rows, 2)))


def interpolate_grid(
    g: Model,
    anchors: Sequence[np.ndarray],
    steps: int = 10,
    method: str = "slerp",
    names: Sequence[str] | None = None,
    label: int | str | None = None,
) -> Grid:
    """A row per segment of the path through the anchors (images or codes), `steps` tiles each, both
    ends included, so an inner anchor ends one row and starts the next. Rows are labelled A>B when
    there are several segments."""
    frames = g.interpolate(*anchors, steps=steps, method=method, label=label)  # ((K-1)(steps-1)+1, C, H, W)
    segs = len(anchors) - 1
    tiles = np.stack([frames[i * (steps - 1) : i * (steps - 1) + steps] for i in range(segs)])
    labels = None
    if segs > 1:
        shown = list(names) if names is not None else [f"z{i}" for i in range(len(anchors))]
        labels = [f"{shown[i]}>{shown[i + 1]}" for i in range(segs)]
    return Grid(tiles, row_labels=labels)


def shift_grid(
    g: Model,
    images: np.ndarray,
    attribute: str,
    amounts: Sequence[float] | float,
    names: Sequence[str] | None = None,
    label: int | str | None = None,
) -> Grid:
    """A row per image, a column per amount of the attribute, columns labelled by amount."""
    values = g.amounts(amounts)
    tiles = g.shift(images, attribute, values, label=label)  # (N, A, C, H, W)
    labels = list(names) if names is not None and len(names) > 1 else None
    return Grid(tiles, row_labels=labels, col_labels=[signed(v) for v in values])


def traverse_grid(
    g: Model,
    image: np.ndarray | None = None,
    dims: Sequence[int] | None = None,
    span: float = 3.0,
    steps: int = 9,
    label: int | str | None = None,
) -> Grid:
    """A row per dimension (labelled z<d>, and its factor, e.g. `z3 scale`, when the bundle has
    `latent_factors`), a column per offset in prior standard deviations."""
    order = g.traversal_dims(dims)
    tiles = g.traverse(image, dims=order, span=span, steps=steps, label=label)
    cols = [signed(round(float(v), 2)) for v in g.traversal_offsets(span, steps)]
    per_dim = g.manifest.latent_factors.get("per_dim")
    rows = [f"z{d} {per_dim[d]['factor']}" if per_dim else f"z{d}" for d in order]
    return Grid(tiles, row_labels=rows, col_labels=cols)


def manifold_grid(g: Model, n: int = 20, dims: Sequence[int] | None = None, label: int | str | None = None) -> Grid:
    """The n x n manifold, tiles touching (no padding), shown at its natural size."""
    tiles = g.manifold(n, g.latent_pair(dims), label=label)
    return Grid(tiles, pad=0, scale=1)


def restyle_grid(
    g: Model,
    images: np.ndarray,
    labels: Sequence[int | str] | None = None,
    names: Sequence[str] | None = None,
    show_input: bool = False,
) -> Grid:
    """A row per image, a column per label: each image's style drawn as each label (supervised
    AAE, `Model.restyle`), columns labelled by label name; with `show_input`, the input first."""
    x = g.check_images(images)
    tiles = g.restyle(x, labels)  # (N, L, C, H, W)
    chosen = g.label_names() if labels is None else [g.label_names()[g.label_index(v)] for v in labels]
    cols = list(chosen)
    if show_input:
        tiles = np.concatenate([x[:, None], tiles], axis=1)
        cols = ["input", *cols]
    rows = list(names) if names is not None and len(names) > 1 else None
    return Grid(tiles, row_labels=rows, col_labels=cols)


def latent_map(
    g: Model,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    dims: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
) -> Image.Image:
    """The prior's density over two latent dimensions, with the codes of `images` (if any) coloured
    by `labels` (indices into `label_names`, by default the model's labels)."""
    from .plots import latent_map as draw

    pair = g.latent_pair(dims)
    if images is None:
        codes = np.zeros((0, g.latent_dim), np.float32)
    else:
        codes, _ = g.encode(images)
    if labels is not None and len(labels) != len(codes):
        raise InputError(f"{len(labels)} labels for {len(codes)} images")
    title = f"{g.name}: {len(codes):,} codes over the {g.prior.name} prior"
    if g.latent_dim > 2:
        title += f" (dimensions {pair[0]} and {pair[1]} of {g.latent_dim})"
    names = list(label_names) if label_names is not None else g.label_names()
    return draw(codes, labels, g.prior, names, dims=pair, title=title)
