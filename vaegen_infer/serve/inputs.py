"""From an HTTP request to the library's arguments: JSON or multipart fields, uploads, the
response format, and images loaded by the library under the server's limits."""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InputError
from ..model import Model
from .bodies import MEDIA, Operation
from .problems import Problem
from .settings import Settings

_BY_MEDIA = {v: k for k, v in MEDIA.items()}


# -- parsing requests -----------------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


@dataclass
class Upload:
    """An uploaded (or base64-posted) image file."""

    name: str
    data: bytes


async def read_params(request: Request, settings: Settings) -> tuple[dict[str, Any], list[Upload]]:
    """A JSON object, or multipart/form-data (`files` plus fields), -> (fields, uploads)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("", "application/json"):
        raw = await request.body()
        if not raw.strip():
            return {}, []
        try:
            data = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise Problem(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise Problem(400, "the JSON body must be an object whose keys are the operation's parameters")
        return data, []
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=settings.max_images, max_fields=200)
        except BodyTooLarge:
            raise
        except StarletteHTTPException as exc:  # starlette's own form limits
            if "files" in str(exc.detail):
                raise Problem(413, f"at most {settings.max_images} images per request") from None
            raise Problem(400, f"cannot parse the form: {exc.detail}") from None
        except Exception as exc:  # python-multipart parse errors
            raise Problem(400, f"cannot parse the form: {exc}") from None
        fields: dict[str, Any] = {}
        uploads: list[Upload] = []
        try:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    v = _form_value(key, value)
                    if key in fields:  # a repeated field is a list (dims=0&dims=1)
                        prev = fields[key]
                        fields[key] = ([*prev, v] if isinstance(prev, list) else [prev, v])
                    else:
                        fields[key] = v
                elif key == "files":
                    uploads.append(Upload(value.filename or f"files[{len(uploads)}]", await value.read()))
                else:
                    raise Problem(400, f"uploads go in fields named 'files', got a file in '{key}'")
        finally:
            await form.close()
        return fields, uploads
    raise Problem(415, f"send application/json or multipart/form-data, not '{ctype}'")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _form_value(key: str, text: str) -> Any:
    """Form values are text: JSON where it parses (numbers, lists, true), a comma list for lists."""
    t = text.strip()
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        pass
    if key in ("amounts", "dims", "labels") and "," in t:
        try:
            return json.loads(f"[{t}]")
        except json.JSONDecodeError:
            pass
    return text


def negotiate(op: Operation, explicit: str | None, accept: str | None) -> str:
    """The response format: `format` if given, else the first acceptable type in Accept, else the default."""
    if explicit is not None:
        if explicit not in op.formats:
            raise Problem(400, f"'{op.name}' answers in {', '.join(op.formats)}, not {explicit}")
        return explicit
    if not accept:
        return op.formats[0]
    wanted: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        bits = [b.strip() for b in part.split(";")]
        q = 1.0
        for b in bits[1:]:
            if b.startswith("q="):
                with contextlib.suppress(ValueError):
                    q = float(b[2:])
        if q > 0:
            wanted.append((-q, i, bits[0].lower()))
    for _, _, media in sorted(wanted):
        if media in ("*/*", "image/*", "application/*"):
            prefix = media.split("/")[0]
            for f in op.formats:
                if prefix == "*" or MEDIA[f].startswith(prefix + "/"):
                    return f
        fmt = _BY_MEDIA.get(media)
        if fmt in op.formats:
            return fmt
    choices = ", ".join(MEDIA[f] for f in op.formats)
    raise Problem(406, f"'{op.name}' answers in {choices}; the Accept header allows none of them")


def validate(op: Operation, fields: dict[str, Any]) -> Any:
    try:
        return op.body.model_validate(fields)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]} for e in exc.errors()
        ]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Problem(422, f"{first['field']}: {first['message']}{more}", errors=errors) from None


def decode_images(model: Model, items: list[Any], uploads: list[Upload], settings: Settings,
                  strict: bool, invert: bool) -> np.ndarray:  # fmt: skip
    """JSON image fields and uploads -> (N, C, H, W) float32: numbers are taken as they are, files
    go through the library's `Model.load_images` (the CLI's conversion, the bundle's preprocessing)."""
    out: list[np.ndarray] = []
    files = [*(_upload_of(item, f"images[{i}]") for i, item in enumerate(items) if isinstance(item, str)), *uploads]
    arrays = [item for item in items if not isinstance(item, str)]
    if len(files) + len(arrays) > settings.max_images:
        raise Problem(413, f"at most {settings.max_images} images per request, got {len(files) + len(arrays)}")
    for a in arrays:
        x = np.asarray(a, dtype=np.float32) if _numeric(a) else None
        if x is None or x.shape != model.image_shape:
            raise Problem(400, f"an image given as numbers must have shape {list(model.image_shape)}")
        out.append(x)
    if files:
        for up in files:
            _check_pixels(up, settings.max_image_pixels)
        out.extend(_load_files(model, files, strict, invert))
    if not out:
        raise Problem(400, "no images given: post them as `files` (multipart) or in the JSON field `images`")
    return np.stack(out)


def _load_files(model: Model, files: list[Upload], strict: bool, invert: bool) -> np.ndarray:
    """Uploads -> images, through files in a private temporary directory named by position only
    (an upload's own name never becomes a path)."""
    with tempfile.TemporaryDirectory(prefix="vaegen-upload-") as tmp:
        paths = []
        for i, up in enumerate(files):
            path = Path(tmp) / f"{i:05d}"
            path.write_bytes(up.data)
            paths.append(path)
        try:
            x, _ = model.load_images([str(p) for p in paths], strict=strict, invert=invert)
        except InputError as exc:  # name the upload, not the temporary file
            message = str(exc)
            for path, up in zip(paths, files):
                message = message.replace(str(path), up.name)
            raise InputError(message) from None
    return x


def _numeric(a: Any) -> bool:
    try:
        arr = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError):
        return False
    return arr.dtype == np.float32


def _upload_of(item: str, name: str) -> Upload:
    text = item.split(",", 1)[1] if item.startswith("data:") else item
    try:
        return Upload(name, base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise Problem(400, f"{name} is not base64 image data (or a data: URL)") from None


def _check_pixels(up: Upload, limit: int) -> None:
    """Read the header only and refuse huge images before Pillow decodes a single pixel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(up.data)) as img:
                w, h = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Problem(413, f"{up.name}: refused, too many pixels for safe decoding") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise Problem(400, f"{up.name} is not an image Pillow can read") from None
    if w * h > limit:
        raise Problem(413, f"{up.name} is {w}x{h} = {w * h:,} pixels; this server takes at most {limit:,}")


def codes_or_images(model: Model, items: list[Any], uploads: list[Upload], settings: Settings,
                     strict: bool, invert: bool) -> list[np.ndarray]:  # fmt: skip
    """Interpolation anchors: codes (D numbers) stay codes; images are loaded; order kept (files last)."""
    d = model.latent_dim
    out: list[np.ndarray] = []
    for i, item in enumerate(items):
        if isinstance(item, list) and len(item) == d and all(isinstance(v, (int, float)) for v in item):
            out.append(np.asarray(item, np.float32))
        elif isinstance(item, str):
            out.append(decode_images(model, [], [_upload_of(item, f"anchors[{i}]")], settings, strict, invert)[0])
        elif isinstance(item, list):
            out.append(decode_images(model, [item], [], settings, strict, invert)[0])
        else:
            raise Problem(400, f"anchors[{i}] must be a code of {d} numbers or an image")
    if uploads:
        out.extend(decode_images(model, [], uploads, settings, strict, invert))
    return out
