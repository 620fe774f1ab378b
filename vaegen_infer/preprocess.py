"""The one preprocessing of image files, shared by training (`train.sources`) and the runtime
(`vaegen_infer.images.load_image`): decode any Pillow mode, convert channels, centre-crop,
resize with a named filter, quantise to 8 bits.

Training stores `Preprocess.apply(img)` (uint8) and feeds it / 255; the runtime's float path,
`apply_float`, is by definition `apply(img) / 255` in float32, so a file gives bit-for-bit the
same encoder input in both (16-bit and float sources are quantised to 8 bits as well: the model
never saw finer steps). The parameters travel in model.json as `image.channels`, `height`,
`width` and `image.preprocess` (`{"crop": ..., "resize": ...}`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, UsageError
from .manifest import ASPECTS, RESIZE_FILTERS, ImageSpec, PreprocessSpec

_FILTERS = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
# ITU-R 601 luma, the weights of Pillow's own RGB -> "L" conversion
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def pixels(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 1 or 3) float32 in [0, 1]; transparency composited over black."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return np.clip(a / top, 0, 1).astype(np.float32)[..., None]
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        a = a / 255.0 if a.max(initial=0) > 1.0 else a
        return np.clip(np.nan_to_num(a), 0, 1)[..., None]
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:4]  # over a black background, where MNIST strokes live
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.float32)[..., None] / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # P, CMYK, YCbCr, LAB, HSV...


def convert_channels(px: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 1 or 3) -> (H, W, channels): grey by ITU-R 601 luma, RGB from grey by replication."""
    if px.shape[2] == channels:
        return px
    if channels == 1:
        return (px @ LUMA)[..., None]
    return np.repeat(px, 3, axis=2)


def resize(px: np.ndarray, height: int, width: int, method: str = "auto") -> np.ndarray:
    """(H, W, C) float -> (height, width, C) float32 in [0, 1], channel by channel in Pillow's
    float mode. "auto": box (area averaging) when shrinking both sides, bicubic otherwise."""
    if method == "auto":
        shrinking = px.shape[0] >= height and px.shape[1] >= width
        resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    else:
        resample = _FILTERS[method]
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(px[..., c], dtype=np.float32)).resize(
        (width, height), resample)) for c in range(px.shape[2])]  # fmt: skip
    return np.clip(np.stack(chans, axis=-1), 0, 1).astype(np.float32)


def open_image(path: Path, note: Callable[[str], None] | None = None) -> np.ndarray:
    """Decode one file -> (H, W, 1 or 3) float32 in [0, 1] (the first frame of an animation).
    Raises InputError, one line, for anything that is not a readable, safely sized image."""
    say = note or (lambda _msg: None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    say(f"{path.name}: animated image with {frames} frames, using the first")
                    img.seek(0)
                img.load()
                return pixels(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: refused, too many pixels for safe decoding ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path} cannot be read as an image: {exc}") from None


@dataclass(frozen=True)
class Preprocess:
    """Decoded pixels -> the model's (height, width, channels): channel conversion, then an
    optional centre crop to `crop` x `crop` source pixels, then (aspect "keep") a centre crop to
    the largest region with the model's aspect ratio, then a resize with `resize`."""

    channels: int
    height: int
    width: int
    crop: int | None = None
    resize: str = "auto"
    aspect: str = "stretch"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise UsageError(f"preprocess channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise UsageError(f"preprocess {name} must be a positive integer, got {value!r}")
        if self.crop is not None and (not isinstance(self.crop, (int, np.integer)) or self.crop < 1):
            raise UsageError(f"preprocess crop must be a positive number of pixels or none, got {self.crop!r}")
        if self.resize not in RESIZE_FILTERS:
            raise UsageError(f"preprocess resize must be one of {', '.join(RESIZE_FILTERS)}, got {self.resize!r}")
        if self.aspect not in ASPECTS:
            raise UsageError(f"preprocess aspect must be one of {', '.join(ASPECTS)}, got {self.aspect!r}")

    @classmethod
    def from_image_spec(cls, image: ImageSpec) -> Preprocess:
        """From a manifest's `image` entry (channels, height, width and `image.preprocess`)."""
        spec = getattr(image, "preprocess", None) or PreprocessSpec()
        return cls(image.channels, image.height, image.width, spec.crop, spec.resize, spec.aspect)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `image.preprocess` field."""
        return self.spec().to_dict()

    def spec(self) -> PreprocessSpec:
        return PreprocessSpec(self.crop, self.resize, self.aspect)

    def key(self) -> str:
        """A stable text naming every parameter (cache keys; stretch keeps the key it always had)."""
        keep = "-keep" if self.aspect == "keep" else ""
        return f"c{self.channels}-h{self.height}-w{self.width}-crop{self.crop}-{self.resize}{keep}"

    def floats(
        self, px: np.ndarray, name: str = "image", strict: bool = False, note: Callable[[str], None] | None = None
    ) -> np.ndarray:
        """Decoded (H, W, 1 or 3) float pixels -> (height, width, channels) float32, before quantising.
        `strict` refuses a size that needs resizing; `note` hears about crops and resizes."""
        say = note or (lambda _msg: None)
        px = convert_channels(px, self.channels)
        if self.crop is not None:
            h, w = px.shape[:2]
            side = min(self.crop, h, w)
            if side < self.crop:
                if strict:
                    raise InputError(f"{name} is {w}x{h}, smaller than the {self.crop}-pixel centre crop (--strict)")
                say(f"{name}: {w}x{h} is smaller than the {self.crop}-pixel crop, cropping {side}x{side}")
            top, left = (h - side) // 2, (w - side) // 2
            px = px[top : top + side, left : left + side]
        if self.aspect == "keep":
            px = self._to_aspect(px, name, say)
        if px.shape[:2] != (self.height, self.width):
            if strict:
                raise InputError(
                    f"{name} is {px.shape[1]}x{px.shape[0]}, the model takes {self.width}x{self.height} (--strict)"
                )
            say(f"{name}: resized {px.shape[1]}x{px.shape[0]} -> {self.width}x{self.height}")
            px = resize(px, self.height, self.width, self.resize)
        return px

    def _to_aspect(self, px: np.ndarray, name: str, say: Callable[[str], None]) -> np.ndarray:
        """(H, W, C) -> the largest centred (h', W) or (H, w') region whose w' : h' is the model's
        width : height (rounded to whole pixels), so the resize that follows stretches nothing."""
        h, w = px.shape[:2]
        if w * self.height == h * self.width:
            return px
        if w * self.height > h * self.width:  # too wide: keep every row
            new_h, new_w = h, max(1, min(w, round(h * self.width / self.height)))
        else:  # too tall: keep every column
            new_h, new_w = max(1, min(h, round(w * self.height / self.width))), w
        if (new_h, new_w) == (h, w):  # within a pixel of the ratio already
            return px
        top, left = (h - new_h) // 2, (w - new_w) // 2
        say(f"{name}: cropped {w}x{h} -> {new_w}x{new_h} (the model's aspect ratio)")
        return px[top : top + new_h, left : left + new_w]

    def quantise(self, px: np.ndarray) -> np.ndarray:
        """(H, W, C) float in [0, 1] -> uint8, rounded to the nearest level."""
        return (np.clip(px, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def apply(self, img: Image.Image, name: str = "image") -> np.ndarray:
        """A Pillow image -> (height, width, channels) uint8: what training stores."""
        return self.quantise(self.floats(pixels(img), name))

    def apply_float(self, img: Image.Image, name: str = "image") -> np.ndarray:
        """A Pillow image -> (height, width, channels) float32 in [0, 1], exactly apply(img) / 255."""
        return self.apply(img, name).astype(np.float32) / np.float32(255.0)

    def load(
        self, path: str | os.PathLike[str], strict: bool = False, note: Callable[[str], None] | None = None
    ) -> np.ndarray:
        """One file -> (height, width, channels) uint8. Raises InputError for unreadable files."""
        p = Path(path)
        return self.quantise(self.floats(open_image(p, note), p.name, strict, note))
