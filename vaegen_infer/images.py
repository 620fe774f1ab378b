"""Turning model outputs into pictures: uint8 conversion, grids, and PNG/GIF files (Pillow only)."""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import preprocess as preprocess_mod
from .errors import InputError, UsageError
from .io import write_bytes
from .preprocess import Preprocess


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> (N, H, W, C) uint8, rounded."""
    if images.ndim != 4:
        raise UsageError(f"expected an image batch (N, C, H, W), got shape {images.shape}")
    x = np.clip(images, 0.0, 1.0) * 255.0 + 0.5
    return x.astype(np.uint8).transpose(0, 2, 3, 1)


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) for n tiles: near-square (cols = ceil(sqrt(n))) unless cols is given."""
    if n < 1:
        raise UsageError(f"a grid needs at least one image, got {n}")
    if cols is None:
        cols = math.ceil(math.sqrt(n))
    if cols < 1:
        raise UsageError(f"columns must be >= 1, got {cols}")
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def make_grid(
    images: np.ndarray, cols: int | None = None, pad: int = 2, scale: int = 1, background: int = 64
) -> Image.Image:
    """Tile (N, C, H, W) images in [0, 1] row by row, `pad` pixels apart, each upscaled `scale` times."""
    if scale < 1:
        raise UsageError(f"scale must be >= 1, got {scale}")
    n, c, h, w = images.shape
    rows, cols = grid_shape(n, cols)
    canvas = np.full(grid_canvas_shape(rows, cols, (c, h, w), pad, scale), background, dtype=np.uint8)
    paste_rows(canvas, images, cols, pad, scale)
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")


def grid_canvas_shape(rows: int, cols: int, tile: tuple[int, int, int], pad: int, scale: int) -> tuple[int, int, int]:
    """(height, width, C) of a grid of rows x cols tiles (C, H, W), each upscaled `scale` times."""
    c, h, w = tile
    return pad + rows * (h * scale + pad), pad + cols * (w * scale + pad), c


def paste_rows(canvas: np.ndarray, images: np.ndarray, cols: int, pad: int, scale: int, first_row: int = 0) -> None:
    """Write (N, C, H, W) images in [0, 1] into a uint8 canvas (height, width, C) as grid rows from
    `first_row` on, `cols` per row: rounded to uint8 and upscaled (nearest neighbour, which keeps
    small digits crisp) straight into the canvas, with no intermediate tile arrays.

    The canvas is viewed as (rows, H, scale, cols, W, scale, C) blocks: a whole grid row of tiles is
    one broadcast assignment, so the cost does not grow with Python loops over tiles."""
    n, c, h, w = images.shape
    sh, sw = h * scale + pad, w * scale + pad  # one tile and its gap
    full, rest = divmod(n, cols)
    # (N, C, H, W) float -> (N, H, W, C) uint8, the same rounding as to_uint8
    tiles = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    y0 = pad + first_row * sh
    if full:
        band = canvas[y0 : y0 + full * sh, pad : pad + cols * sw]  # (full*sh, cols*sw, C)
        blocks = band.reshape(full, sh, cols, sw, c)[:, : h * scale, :, : w * scale]  # (R, H*s, K, W*s, C)
        blocks = blocks.reshape(full, h, scale, cols, w, scale, c)
        blocks[...] = tiles[: full * cols].reshape(full, cols, h, 1, w, 1, c).transpose(0, 2, 3, 1, 4, 5, 6)
    if rest:
        y = y0 + full * sh
        band = canvas[y : y + sh, pad : pad + rest * sw]
        blocks = band.reshape(1, sh, rest, sw, c)[:, : h * scale, :, : w * scale]
        blocks = blocks.reshape(1, h, scale, rest, w, scale, c)
        blocks[...] = tiles[full * cols :].reshape(1, rest, h, 1, w, 1, c).transpose(0, 2, 3, 1, 4, 5, 6)


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def labelled_grid(
    tiles: np.ndarray,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    scale: int = 2,
    pad: int = 2,
    gap_after_rows: Sequence[int] = (),
    background: int = 64,
) -> Image.Image:
    """Tiles (R, K, C, H, W) in [0, 1] as R rows of K, with optional labels left of each row and
    above each column (amounts, dimensions, steps). `gap_after_rows` widens the gap below those rows."""
    if tiles.ndim != 5:
        raise UsageError(f"expected tiles (rows, cols, C, H, W), got shape {tiles.shape}")
    rows, cols = tiles.shape[:2]
    flat = to_uint8(tiles.reshape(rows * cols, *tiles.shape[2:]))  # (R*K, H, W, C)
    flat = flat.repeat(scale, axis=1).repeat(scale, axis=2)
    th, tw, ch = flat.shape[1:]
    font = load_font(max(10, min(16, th // 3)))
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))

    def text_width(text: str) -> int:
        box = measure.textbbox((0, 0), text, font=font)
        return int(box[2] - box[0])

    left = max((text_width(t) + 8 for t in row_labels or []), default=0)
    top = 18 if col_labels else 0
    gaps = [6 if r in gap_after_rows else 0 for r in range(rows)]
    ys = [top + pad + r * (th + pad) + sum(gaps[:r]) for r in range(rows)]
    xs = [left + pad + k * (tw + pad) for k in range(cols)]
    canvas = np.full((ys[-1] + th + pad, xs[-1] + tw + pad, ch), background, dtype=np.uint8)
    for i in range(rows * cols):
        r, k = divmod(i, cols)
        canvas[ys[r] : ys[r] + th, xs[k] : xs[k] + tw] = flat[i]
    image = Image.fromarray(canvas[..., 0] if ch == 1 else canvas)
    draw = ImageDraw.Draw(image)
    ink = 235 if ch == 1 else (235, 235, 235)
    for r, text in enumerate(row_labels or []):
        draw.text((left - 4, ys[r] + th // 2), text, fill=ink, font=font, anchor="rm")
    for k, text in enumerate(col_labels or []):
        draw.text((xs[k] + tw // 2, top - 2), text, fill=ink, font=font, anchor="mb")
    return image


GIF_LOOPS = ("bounce", "forward")


def save_gif(
    path: str | os.PathLike[str], frames: np.ndarray, scale: int = 4, ms_per_frame: int = 120, loop: str = "bounce"
) -> int:
    """An animation, one frame per image (N, C, H, W), looping forever: `bounce` plays the N
    images forth and back (2N - 2 frames, so the loop has no jump), `forward` plays them once per
    loop (N frames). Returns the number of frames written."""
    if loop not in GIF_LOOPS:
        raise UsageError(f"unknown GIF loop '{loop}'; choose {' or '.join(GIF_LOOPS)}")
    tiles = to_uint8(frames)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    pictures = [Image.fromarray(t[..., 0] if t.shape[2] == 1 else t) for t in tiles]
    if loop == "bounce":
        pictures = pictures + pictures[-2:0:-1]
    write_bytes(
        path,
        lambda fh: pictures[0].save(
            fh, format="GIF", save_all=True, append_images=pictures[1:], duration=ms_per_frame, loop=0
        ),
    )
    return len(pictures)


# File extension -> Pillow format, for every format that suits a grid of images.
_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
    ".gif": "GIF",
}  # fmt: skip
IMAGE_FORMATS = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif")


def image_format(path: str | os.PathLike[str]) -> str:
    """The image format an output path names by its extension ('png', 'jpg', ...); a UsageError that
    says what to do when the path is a directory or has no known extension."""
    p = Path(path)
    text = os.fspath(path)
    if p.is_dir() or text.endswith(("/", os.sep)):
        raise UsageError(f"output '{text}' is a directory: give a file name such as {p / 'samples.png'}")
    ext = p.suffix.lower()
    if not ext:
        raise UsageError(
            f"cannot tell the image format of '{p.name}' (no extension): for a directory, give a file name such as "
            f"{p / 'samples.png'}; image names end in one of {', '.join(IMAGE_FORMATS)}"
        )
    if ext not in _FORMATS:
        raise UsageError(
            f"cannot tell the image format of '{p.name}' (extension '{ext}'): "
            f"end it in one of {', '.join(IMAGE_FORMATS)}"
        )
    return ext[1:]


def save_image(path: str | os.PathLike[str], image: Image.Image) -> Path:
    """Save atomically; the format follows the extension (see IMAGE_FORMATS)."""
    fmt = _FORMATS["." + image_format(path)]
    if fmt == "JPEG" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return write_bytes(path, lambda fh: image.save(fh, format=fmt))


def save_images(directory: str | os.PathLike[str], images: np.ndarray, prefix: str = "image") -> list[Path]:
    """One PNG per image (N, C, H, W) in [0, 1], at its own size: DIR/image-0000.png, ... (numbered
    from 0, zero-padded to the width of N - 1). Each file is written atomically."""
    out = Path(directory).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out-dir {out} is a file, not a directory")
    tiles = to_uint8(images)  # (N, H, W, C)
    width = max(4, len(str(len(tiles) - 1)))
    paths = []
    for i, t in enumerate(tiles):
        picture = Image.fromarray(t[..., 0] if t.shape[2] == 1 else t)
        paths.append(write_bytes(out / f"{prefix}-{i:0{width}d}.png", lambda fh, p=picture: p.save(fh, format="PNG")))
    return paths


# -- reading images ---------------------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}


def expand_inputs(items: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files, directories (their image files, sorted) and glob patterns -> a list of files.

    Raises InputError for a missing file, an empty directory or a pattern that matches nothing.
    """
    out: list[Path] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"no images in directory {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        elif any(c in text for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise InputError(f"no files match '{text}'")
            out.extend(files)
        else:
            raise InputError(f"no such file or directory: {path}")
    if not out:
        raise InputError("no input images given")
    return out


def _pixels(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 1 or 3) float32 in [0, 1]; transparency composited over black."""
    return preprocess_mod.pixels(img)


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) float -> (height, width, C), area-averaging when shrinking (Pillow, mode F)."""
    return preprocess_mod.resize(pixels, height, width, "auto")


def load_image(
    path: Path, shape: tuple[int, int, int], strict: bool = False, invert: bool = False,
    note: Callable[[str], None] | None = None, preprocess: Preprocess | None = None,
) -> np.ndarray:  # fmt: skip
    """One image file -> (C, H, W) float32 in [0, 1], converted to the model's channels and size
    by `preprocess` (default: no crop, "auto" resize), exactly as training converted its images:
    the result is Preprocess.load(path) / 255, the uint8 array that training stores."""
    pre = preprocess or Preprocess(*shape)
    if pre.shape != tuple(shape):
        raise UsageError(f"preprocessing makes {pre.shape} images but the model takes {tuple(shape)}")
    path = Path(path)
    pixels = pre.load(path, strict, note).astype(np.float32) / np.float32(255.0)  # (H, W, C)
    if invert:
        pixels = 1.0 - pixels
    elif pre.channels == 1 and _border_mean(pixels) > 0.5 and note is not None:
        note(f"{path.name}: light background; this model expects light strokes on dark, pass --invert if needed")
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _border_mean(pixels: np.ndarray) -> float:
    edge = np.concatenate([pixels[0].ravel(), pixels[-1].ravel(), pixels[:, 0].ravel(), pixels[:, -1].ravel()])
    return float(edge.mean())


def load_images(
    items: Sequence[str | os.PathLike[str]], shape: tuple[int, int, int], strict: bool = False,
    invert: bool = False, note: Callable[[str], None] | None = None, preprocess: Preprocess | None = None,
) -> tuple[np.ndarray, list[Path]]:  # fmt: skip
    """Expand `items` and load every image -> ((N, C, H, W) float32 in [0, 1], the N paths)."""
    paths = expand_inputs(items)
    return np.stack([load_image(p, shape, strict, invert, note, preprocess) for p in paths]), paths
