"""User-defined attribute directions: encode two folders of images, store `mean(with) - mean(without)`
in the user's copy of a bundle. Shipped bundles are never modified: the first user attribute on a
shipped model copies that bundle into the user directory (`bundle.user_dir()`), where it then takes
precedence when the model is loaded by name."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import latent
from .bundle import Bundle, open_bundle, read_manifest, shipped_dir, user_dir
from .errors import UsageError
from .io import make_temp_dir, save_json
from .manifest import MANIFEST_FILE, Attribute
from .model import Model
from .providers import ProviderRequest

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class AddedAttribute:
    bundle_path: Path
    attribute: Attribute
    copied_from: Path | None  # set when a shipped bundle was copied to make room for the attribute
    n_with: int
    n_without: int


def _is_shipped(path: Path) -> bool:
    root = shipped_dir().resolve()
    p = path.resolve()
    return p == root or root in p.parents


def writable_copy(bundle: Bundle) -> tuple[Path, Path | None]:
    """The directory to write user attributes into: the bundle itself when it is the user's own,
    else a copy of it in the user directory (made now, atomically). Returns (dir, copied_from)."""
    if bundle.origin == "user" or (bundle.origin == "path" and not _is_shipped(bundle.path)):
        return bundle.path, None
    dest = user_dir() / bundle.path.name
    if dest.exists():
        return dest, None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dest)
    try:
        shutil.copytree(bundle.path, tmp, dirs_exist_ok=True)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest, bundle.path


def add_attribute(
    model: str | os.PathLike[str],
    name: str,
    with_items: Sequence[str | os.PathLike[str]] | np.ndarray,
    without_items: Sequence[str | os.PathLike[str]] | np.ndarray,
    description: str = "",
    replace: bool = False,
    strict: bool = False,
    invert: bool = False,
    note: Callable[[str], None] | None = None,
) -> AddedAttribute:
    """Encode both image sets, compute v = mean(mu | with) - mean(mu | without), and store it in
    the user's copy of the bundle (a shipped bundle is copied first, never changed).

    Each set is image files (paths, directories, globs) or an image array (N, C, H, W) as
    `Model.encode` takes it."""
    if not _NAME.match(name):
        raise UsageError(f"bad attribute name '{name}': use lowercase letters, digits, '-', '_' or '.'")
    bundle = open_bundle(model)
    existing = bundle.manifest.attributes.get(name)
    if existing is not None and existing.source == "builtin":
        raise UsageError(f"'{name}' is a built-in attribute of '{bundle.manifest.name}'; choose another name")
    if existing is not None and not replace:
        raise UsageError(f"attribute '{name}' already exists; pass --replace to recompute it")
    g = Model(bundle, ProviderRequest("auto"))

    def images(items: Sequence[str | os.PathLike[str]] | np.ndarray) -> np.ndarray:
        if isinstance(items, np.ndarray):
            return g.check_images(items)
        return g.load_images(items, strict=strict, invert=invert, note=note)[0]

    x_with, x_without = images(with_items), images(without_items)
    v = latent.direction(g.encode(x_with)[0], g.encode(x_without)[0])
    desc = description or f"user direction from {len(x_with)} images with, {len(x_without)} without"
    attr = Attribute(v, desc, "user")

    target, copied_from = writable_copy(bundle)
    manifest = read_manifest(target)  # the copy's manifest (it may hold earlier user attributes)
    manifest.attributes[name] = attr
    save_json(target / MANIFEST_FILE, manifest.to_dict())
    return AddedAttribute(target, attr, copied_from, len(x_with), len(x_without))
