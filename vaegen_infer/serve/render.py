"""The one place the server gets its pictures from: the library's own layouts (`vaegen_infer.grids`),
so a request's PNG is byte for byte the CLI's for the same arguments."""

from __future__ import annotations

import io

from PIL import Image

from .. import grids

__all__ = ["grids", "png_bytes"]


def png_bytes(image: Image.Image) -> bytes:
    """A picture that is not a Grid (the latent map) as PNG bytes, saved as the CLI saves it."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
