"""Atomic output: write to a temporary file beside the target, then rename over it.

A failure or Ctrl-C part-way leaves either the old file or none, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import UsageError, VaegenError

# Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def prepare_output(path: str | os.PathLike[str]) -> Path:
    """Create the parent directory of an output path; refuse a path that is a directory."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise UsageError(f"output path {out} is a directory: give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VaegenError(f"cannot create directory {out.parent}: {exc.strerror or exc}") from exc
    return out


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file handle whose content replaces `path` only if the block completes."""
    out = prepare_output(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    except OSError as exc:
        raise VaegenError(f"cannot write {out}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the permissions a normal open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise VaegenError(f"cannot write {out}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def make_temp_dir(final: Path) -> Path:
    """A new empty directory beside `final` (to be renamed onto it when complete), with the
    permissions a normal mkdir gives under the user's umask (mkdtemp alone makes it 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


def write_bytes(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> Path:
    """Run `writer(fh)` into a temporary file and move it into place."""
    with atomic_open(path) as fh:
        writer(fh)
    return Path(path)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    return write_bytes(path, lambda fh: np.save(fh, array, allow_pickle=False))


def save_json(path: str | os.PathLike[str], data: Any) -> Path:
    text = json.dumps(data, indent=2) + "\n"
    return write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def save_npy_stream(
    path: str | os.PathLike[str],
    shape: tuple[int, ...],
    blocks: Iterator[np.ndarray],
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write a float32 .npy of `shape` from blocks along the first axis, never holding more than
    one block: the header first, then each block's bytes. Atomic like every other output."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
    with atomic_open(path) as fh:
        np.lib.format.write_array_header_2_0(fh, header)
        rows = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=np.float32)
            if block.shape[1:] != shape[1:]:
                raise VaegenError(f"internal error: block of shape {block.shape} in an array of shape {shape}")
            fh.write(block.tobytes())
            rows += len(block)
            if progress is not None:
                progress(len(block))
        if rows != shape[0]:
            raise VaegenError(f"internal error: wrote {rows} rows of {shape[0]}")
    return Path(path)
