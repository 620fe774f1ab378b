"""Request bodies: one pydantic model per operation, whose field names are the library function's
parameter names (`n`, `seed`, `label`, `z`, `steps`, `method`, `dims`, `span`, `amounts` ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MEDIA = {"png": "image/png", "npy": "application/x-npy", "json": "application/json"}

# -- request bodies: field names are the library's parameter names ------------------------------

Format = Literal["png", "npy", "json"] | None
# An image in JSON: a base64 string of an image file (a data: URL is fine), or numbers (C, H, W).
ImageField = str | list[Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Format = Field(None, description="png, npy or json; wins over the Accept header")


class SampleBody(_Body):
    n: int = Field(16, ge=1, description="How many images (or, with per_label, how many per label).")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Same seed, same images; default: random.")
    label: int | str | None = Field(None, description="Class to draw from (label-conditioned models).")
    per_label: int | None = Field(None, ge=1, le=64, description="A row of this many per label (PNG).")
    from_prior: bool = Field(
        False, description="Draw from the trained prior even where the bundle has a fitted sampler."
    )
    cols: int | None = Field(None, ge=1, le=1000)
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class DecodeBody(_Body):
    z: list[list[float]] = Field(description="Latent codes, a list of rows of latent_dim numbers.")
    cols: int | None = Field(None, ge=1, le=1000)
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class _ImagesBody(_Body):
    images: list[ImageField] | None = Field(None, description="Images (or upload them as `files`).")
    strict: bool = Field(False, description="Refuse images of the wrong size instead of resizing.")
    invert: bool = Field(False, description="Invert grey levels (dark strokes on light paper).")


class EncodeBody(_ImagesBody):
    pass


class ReconstructBody(_ImagesBody):
    sample: bool = False
    seed: int | None = Field(None, ge=0, lt=2**63)
    cols: int = Field(10, ge=1, le=1000)
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class InterpolateBody(_ImagesBody):
    anchors: list[ImageField] | None = Field(
        None, description="Two or more anchors: codes (latent_dim numbers) or images; or upload `files`."
    )
    steps: int = Field(10, ge=2)
    method: Literal["slerp", "lerp"] = "slerp"
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class ShiftBody(_ImagesBody):
    attribute: str
    amounts: list[float] = Field(default_factory=lambda: [-2.0, -1.0, 0.0, 1.0, 2.0])
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class TraverseBody(_ImagesBody):
    image: ImageField | None = Field(None, description="The centre image (or one upload); default: the prior's centre.")
    dims: list[int] | None = Field(None, description="Dimensions to vary; default: the 8 most used.")
    span: float = Field(3.0, gt=0, le=100)
    steps: int = Field(9, ge=2)
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class ManifoldBody(_Body):
    n: int = Field(20, ge=2, le=100)
    dims: list[int] | None = Field(None, min_length=2, max_length=2)
    scale: int | None = Field(None, ge=1, le=16, description="Upscale each tile (default: as the CLI).")


class LatentMapBody(_ImagesBody):
    labels: list[int] | None = Field(None, description="A class index per posted image, for colours.")
    dims: list[int] | None = Field(None, min_length=2, max_length=2)


class ScoreBody(_ImagesBody):
    k: int = Field(100, ge=1, le=5000, description="Importance samples per image.")
    seed: int | None = Field(0, ge=0, lt=2**63)


@dataclass(frozen=True)
class Operation:
    name: str
    body: type[_Body]
    formats: tuple[str, ...]  # the first is the default
    summary: str


OPERATIONS = {
    op.name: op
    for op in (
        Operation("sample", SampleBody, ("png", "npy", "json"), "Draw images from the model's prior."),
        Operation("encode", EncodeBody, ("json", "npy"), "Images -> latent codes (mu, logvar)."),
        Operation("decode", DecodeBody, ("png", "npy", "json"), "Latent codes -> images."),
        Operation("reconstruct", ReconstructBody, ("png", "npy", "json"), "Encode and decode images."),
        Operation("interpolate", InterpolateBody, ("png", "npy", "json"), "Images along a path between anchors."),
        Operation("shift", ShiftBody, ("png", "npy", "json"), "Move images along an attribute direction."),
        Operation("traverse", TraverseBody, ("png", "npy", "json"), "Vary one latent dimension at a time."),
        Operation("manifold", ManifoldBody, ("png", "npy", "json"), "Decode a grid over two latent dimensions."),
        Operation("latent-map", LatentMapBody, ("png", "json"), "The prior's density and posted images' codes."),
        Operation("score", ScoreBody, ("json", "npy"), "Importance-weighted log-likelihood bound per image."),
    )
}
