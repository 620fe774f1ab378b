"""A user's images as training data: `folder:DIR`, `npz:FILE` and `--attributes FILE`.

`folder:DIR` takes every image under DIR, recursively, in any Pillow format and mode. When every
image sits in a sub-folder directly under DIR, those sub-folders are the class labels (the
ImageFolder convention); otherwise the set is unlabelled. Files are decoded once, through
`vaegen_infer.preprocess.Preprocess` (the runtime's own preprocessing), into a uint8 cache file
(N, C, H, W), read back a batch at a time: memory grows with the batch, not the data set.
The cache lives in `cache_dir`, by default DIR/.vaegen-cache/ (or ~/.cache/vaegen-infer/ when DIR
is read-only), and is keyed by the file list, sizes, mtimes and the preprocessing.

Unreadable files are skipped with a one-line count and the first few names, or refused with
`strict`; never skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from train.data import DataOptions, ImageArray, Split, n_val_for, shuffle_split_indices
from vaegen_infer.errors import InputError, UsageError
from vaegen_infer.images import IMAGE_SUFFIXES
from vaegen_infer.io import write_bytes
from vaegen_infer.preprocess import Preprocess, open_image

CACHE_DIRNAME = ".vaegen-cache"
CACHE_VERSION = 1  # bump when the cache layout or the preprocessing arithmetic changes
SHOW_NAMES = 5  # unreadable files named in the one-line note


def _say(note: Callable[[str], None] | None) -> Callable[[str], None]:
    return note or (lambda _msg: None)


# -- listing a folder ------------------------------------------------------------------------------


@dataclass
class Listing:
    """The image files under a folder, relative paths sorted, and their class per file (or None)."""

    root: Path
    files: list[str]  # POSIX paths relative to root, sorted
    classes: list[str] | None  # sorted class names, or None when unlabelled
    y: np.ndarray  # (N,) int64 class index, -1 when unlabelled


def list_folder(root: Path) -> Listing:
    """Every image file under root (recursively, skipping hidden entries such as the cache)."""
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                files.append(Path(dirpath, name).relative_to(root).as_posix())
    files.sort()
    if not files:
        raise InputError(f"no images under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)")
    top = [f.split("/", 1)[0] if "/" in f else None for f in files]
    if all(t is not None for t in top):  # every image in a sub-folder: those are the classes
        classes = sorted({t for t in top if t is not None})
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[t] for t in top if t is not None], dtype=np.int64)
        return Listing(root, files, classes, y)
    return Listing(root, files, None, np.full(len(files), -1, dtype=np.int64))


# -- the uint8 cache -------------------------------------------------------------------------------


def _cache_key(listing: Listing, pre: Preprocess) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{pre.key()}|{listing.root.resolve()}\n".encode())
    for rel in listing.files:
        st = (listing.root / rel).stat()
        h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


def cache_directory(root: Path, cache_dir: Path | None) -> Path:
    """Where the cache goes: cache_dir, else DIR/.vaegen-cache, else ~/.cache/vaegen-infer."""
    if cache_dir is not None:
        if not _writable(cache_dir):
            raise InputError(f"cache directory {cache_dir} is not writable: pass another --cache-dir")
        return cache_dir
    here = root / CACHE_DIRNAME
    if _writable(here):
        return here
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vaegen-infer"
    if not _writable(home):
        raise InputError(f"neither {here} nor {home} is writable for the image cache: pass --cache-dir DIR")
    return home


def _decode_into(
    listing: Listing, pre: Preprocess, out: np.memmap, strict: bool, note: Callable[[str], None] | None
) -> tuple[np.ndarray, list[str]]:
    """Decode every file into out[i] -> (ok mask (N,), names of the unreadable files)."""
    from tqdm import tqdm

    ok = np.zeros(len(listing.files), dtype=bool)
    bad: list[str] = []
    bar = tqdm(listing.files, desc=f"decoding {listing.root.name}", unit="img", mininterval=1.0, leave=False)
    for i, rel in enumerate(bar):
        try:
            img = pre.quantise(pre.floats(open_image(listing.root / rel), rel))  # (H, W, C) uint8
        except InputError as exc:
            if strict:
                raise InputError(f"{exc} (--strict: fix or remove it, or drop --strict to skip such files)") from None
            bad.append(rel)
            continue
        out[i] = img.transpose(2, 0, 1)
        ok[i] = True
    bar.close()
    return ok, bad


def decode_folder(
    listing: Listing, pre: Preprocess, cache_dir: Path | None = None, strict: bool = False,
    note: Callable[[str], None] | None = None,
) -> tuple[CacheArray, np.ndarray]:  # fmt: skip
    """All images of a listing as a read-only cached (N_ok, C, H, W) uint8 array and the indices into
    listing.files of the images it holds. Decodes only when no cache with the same key exists."""
    say = _say(note)
    directory = cache_directory(listing.root, cache_dir)
    key = _cache_key(listing, pre)
    data_path, meta_path = directory / f"{key}.u8", directory / f"{key}.json"
    if data_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        kept = np.asarray(meta["kept"], dtype=np.int64)
        if meta.get("bad") and strict:
            bad = meta["bad"]
            raise InputError(f"{len(bad)} unreadable files under {listing.root}, e.g. {bad[0]} (--strict)")
        if meta.get("bad"):
            say(_bad_note(meta["bad"], listing.root))
        say(f"using the decoded cache {data_path} ({len(kept):,} images)")
        return CacheArray(data_path, (len(kept), *pre.shape)), kept
    n = len(listing.files)
    tmp = directory / f"{key}.u8.partial-{os.getpid()}"
    t0 = time.perf_counter()
    try:
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(n, *pre.shape))
        ok, bad = _decode_into(listing, pre, out, strict, note)
        kept = np.nonzero(ok)[0]
        if len(kept) < n:  # compact: the kept images, in order, at the front of the file
            for j, i in enumerate(kept):
                if i != j:
                    out[j] = out[i]
        out.flush()
        del out
        with open(tmp, "r+b") as fh:
            fh.truncate(len(kept) * int(np.prod(pre.shape)))
        os.replace(tmp, data_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    rate = n / max(time.perf_counter() - t0, 1e-9)
    write_bytes(meta_path, lambda fh: fh.write(json.dumps(
        {"version": CACHE_VERSION, "root": str(listing.root), "preprocess": pre.key(),
         "n_files": n, "kept": kept.tolist(), "bad": bad}).encode()))  # fmt: skip
    if bad:
        say(_bad_note(bad, listing.root))
    say(f"decoded {len(kept):,} images into {data_path} ({rate:,.0f} images/s)")
    if not len(kept):
        raise InputError(f"none of the {n} image files under {listing.root} could be read")
    return CacheArray(data_path, (len(kept), *pre.shape)), kept


class CacheArray:
    """A read-only (N, C, H, W) uint8 cache file whose rows are read per batch with positioned
    reads (preadv) straight into the batch's buffer: resident memory is the batch, whatever the
    file's size. (Reading through a memory mapping was measured to keep the touched pages
    resident: 2.4 GB RSS for one epoch over 2.46 GB, benchmarks/data_memory.py.) The OS page
    cache still keeps the file hot between epochs. Picklable: worker processes reopen the file."""

    def __init__(self, path: Path, shape: tuple[int, int, int, int]) -> None:
        self.path = Path(path)
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self.row_bytes = int(np.prod(self.shape[1:]))
        nbytes = self.shape[0] * self.row_bytes
        size = self.path.stat().st_size if self.path.is_file() else -1
        if size != nbytes:
            raise InputError(f"cache file {self.path} holds {size} bytes, expected {nbytes}: delete it")
        self._fh: BinaryIO | None = None
        self._pid = -1

    def __reduce__(self) -> tuple[type, tuple[Path, tuple[int, ...]]]:
        return (CacheArray, (self.path, self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def _file(self) -> BinaryIO:
        if self._fh is None or self._pid != os.getpid():  # a forked worker gets its own handle
            self._fh = open(self.path, "rb", buffering=0)  # noqa: SIM115 (kept open for the array's life)
            self._pid = os.getpid()
        return self._fh

    def __del__(self) -> None:
        if getattr(self, "_fh", None) is not None and self._pid == os.getpid():
            self._fh.close()

    def __getitem__(self, item: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(item, (int, np.integer)):
            return self[np.array([item])][0]
        rows = np.arange(self.shape[0])[item] if isinstance(item, slice) else np.asarray(item, dtype=np.int64)
        if rows.ndim != 1:
            raise IndexError(f"index rows with a 1-D array or a slice, got shape {rows.shape}")
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} cached images")
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(rows), self.row_bytes)
        fh = self._file()
        fd = fh.fileno()
        j = 0
        while j < len(rows):  # runs of consecutive rows are one read
            k = j + 1
            while k < len(rows) and rows[k] == rows[k - 1] + 1:
                k += 1
            buf = memoryview(flat[j:k]).cast("B")
            offset = int(rows[j]) * self.row_bytes
            got = 0
            while got < len(buf):
                if hasattr(os, "preadv"):
                    n = os.preadv(fd, [buf[got:]], offset + got)
                else:  # no positioned reads (Windows): seek and read, one process per handle
                    fh.seek(offset + got)
                    n = fh.readinto(buf[got:]) or 0
                if n <= 0:
                    raise InputError(f"cache file {self.path} ended early: delete it to decode again")
                got += n
            j = k
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _bad_note(bad: list[str], root: Path) -> str:
    shown = ", ".join(bad[:SHOW_NAMES]) + (", ..." if len(bad) > SHOW_NAMES else "")
    return f"skipped {len(bad)} unreadable image file{'s' if len(bad) != 1 else ''} under {root}: {shown}"


COLOUR_MODES = {"RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA"}
PEEK = 64  # files whose headers decide a folder's default channels


def _native_shape(listing: Listing) -> tuple[int, int, int]:
    """(C, H, W) a folder defaults to: RGB when any of the first PEEK readable headers is a colour
    mode (palette counts as colour), else grey; the size of the first readable file."""
    from PIL import Image, UnidentifiedImageError

    size: tuple[int, int] | None = None
    colour = False
    for rel in listing.files[:PEEK]:
        try:
            with Image.open(listing.root / rel) as img:  # header only: no pixels decoded
                mode, (w, h) = img.mode, img.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            continue
        size = size or (h, w)
        colour = colour or mode in COLOUR_MODES
    if size is None:
        n = min(PEEK, len(listing.files))
        raise InputError(f"none of the first {n} image files under {listing.root} could be read")
    return (3 if colour else 1), size[0], size[1]


# -- attribute files -------------------------------------------------------------------------------


@dataclass
class AttributeTable:
    """Per-file attribute columns read from a file: name -> (N,) float32 in `files` order."""

    files: list[str]
    columns: dict[str, np.ndarray]
    kinds: dict[str, str]


def _kind_and_values(name: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    """Binary when the column only holds two of {-1, 0, 1} values (-> 0/1), else continuous."""
    levels = set(np.unique(values).tolist())
    if levels <= {-1.0, 1.0} or levels <= {0.0, 1.0}:
        return "binary", (values > 0).astype(np.float32)
    return "continuous", values.astype(np.float32)


def read_attributes(path: Path) -> AttributeTable:
    """CelebA's list_attr_celeba.txt (a count line, a names line, `file v1 v2 ...`) or a CSV with a
    header `file,attr1,...`. Errors name the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read attribute file {path}: {exc}") from None
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{path}: empty attribute file")
    first = lines[0].strip()
    if first.isdigit():
        return _read_celeba(path, lines)
    return _read_csv(path, text)


def _number(path: Path, lineno: int, column: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{path} line {lineno}: {column} = {text!r} is not a number") from None
    if not np.isfinite(v):
        raise InputError(f"{path} line {lineno}: {column} = {text!r} is not a finite number")
    return v


def _finish(
    path: Path, files: list[str], rows: list[list[float]], names: list[str], lines: list[int]
) -> AttributeTable:
    seen: dict[str, int] = {}
    for f, ln in zip(files, lines):
        if f in seen:
            raise InputError(f"{path} line {ln}: {f} is listed twice (first on line {seen[f]})")
        seen[f] = ln
    if not files:
        raise InputError(f"{path}: no attribute rows")
    table = np.asarray(rows, dtype=np.float64)  # (N, A)
    columns, kinds = {}, {}
    for k, name in enumerate(names):
        kinds[name], columns[name] = _kind_and_values(name, table[:, k])
    return AttributeTable(files, columns, kinds)


def _read_celeba(path: Path, lines: list[str]) -> AttributeTable:
    count = int(lines[0].strip())
    if len(lines) < 2 or not lines[1].split():
        raise InputError(f"{path} line 2: expected the attribute names (CelebA format)")
    names = lines[1].split()
    files: list[str] = []
    rows: list[list[float]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise InputError(
                f"{path} line {lineno}: {len(parts) - 1} values for {len(names)} attributes "
                f"(expected `filename` then one value per name on line 2)"
            )
        files.append(parts[0])
        rows.append([_number(path, lineno, names[k], v) for k, v in enumerate(parts[1:])])
        linenos.append(lineno)
    if len(files) != count:
        raise InputError(f"{path} line 1: says {count} images but the file lists {len(files)}")
    return _finish(path, files, rows, names, linenos)


def _read_csv(path: Path, text: str) -> AttributeTable:
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader)]
    if len(header) < 2 or header[0].lower() not in ("file", "filename", "image", "path"):
        raise InputError(
            f"{path} line 1: expected a header `file,attr1,attr2,...` (CSV) or an image count (CelebA format)"
        )
    names = header[1:]
    if len(set(names)) != len(names) or any(not n for n in names):
        raise InputError(f"{path} line 1: attribute names must be distinct and non-empty, got {names}")
    files: list[str] = []
    rows: list[list[float]] = []
    linenos: list[int] = []
    for lineno, parts in enumerate(reader, start=2):
        if not parts or all(not p.strip() for p in parts):
            continue
        if len(parts) != len(header):
            raise InputError(f"{path} line {lineno}: {len(parts)} fields, the header has {len(header)}")
        values = [p.strip() for p in parts]
        if any(v == "" for v in values[1:]):
            missing = names[[v == "" for v in values[1:]].index(True)]
            raise InputError(f"{path} line {lineno}: no value for {missing}")
        files.append(values[0])
        rows.append([_number(path, lineno, names[k], v) for k, v in enumerate(values[1:])])
        linenos.append(lineno)
    return _finish(path, files, rows, names, linenos)


def _match_attributes(table: AttributeTable, path: Path, listing_files: list[str], root: Path) -> dict[str, np.ndarray]:
    """Attribute columns in the listing's order. Every file named must exist under root and every
    listed image must have a row (matched by relative path, or by file name when unique)."""
    by_rel = {f: i for i, f in enumerate(listing_files)}
    by_name: dict[str, int] = {}
    for i, f in enumerate(listing_files):
        by_name[Path(f).name] = -1 if Path(f).name in by_name else i  # -1: ambiguous
    row_of = np.full(len(listing_files), -1, dtype=np.int64)
    for r, f in enumerate(table.files):
        i = by_rel.get(Path(f).as_posix(), by_name.get(f, -2) if "/" not in f else -2)
        if i == -1:
            raise InputError(f"{path}: {f} matches several files under {root}: give its path relative to {root}")
        if i < 0:
            raise InputError(f"{path}: {f} is not an image under {root} (row {r + 1} of the attribute table)")
        row_of[i] = r
    if (row_of < 0).any():
        missing = [listing_files[i] for i in np.nonzero(row_of < 0)[0][:SHOW_NAMES]]
        raise InputError(
            f"{path}: {(row_of < 0).sum()} images under {root} have no attribute row, e.g. {', '.join(missing)}"
        )
    return {k: v[row_of] for k, v in table.columns.items()}


# -- the sources -----------------------------------------------------------------------------------


def _split(
    x: ImageArray, y: np.ndarray, labels: list[str] | None, source: str, attrs: dict[str, np.ndarray],
    kinds: dict[str, str], pre: Preprocess, options: DataOptions,
) -> Split:  # fmt: skip
    train, val = shuffle_split_indices(len(x), options.val_fraction, options.seed)
    # sorted indices keep reads from a memory-mapped cache in file order
    train, val = np.sort(train), np.sort(val)
    return Split(
        _Rows(x, train), y[train], _Rows(x, val), y[val], labels, source,
        attributes_train={k: v[train] for k, v in attrs.items()},
        attributes_val={k: v[val] for k, v in attrs.items()},
        attribute_kinds=kinds, preprocess=pre, split_seed=options.seed, val_fraction=options.val_fraction,
    )  # fmt: skip


class _Rows:
    """Rows `index` of a (memory-mapped) image array, read only when a batch is taken."""

    def __init__(self, base: ImageArray, index: np.ndarray) -> None:
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)
        self.dtype = np.dtype(base.dtype)
        self.shape = (len(self.index), *base.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int | slice | np.ndarray) -> np.ndarray:
        rows = self.index[item]
        if np.ndim(rows) == 0:
            return np.asarray(self.base[int(rows)])
        order = np.argsort(rows, kind="stable")  # read in file order, return in the order asked
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        out[order] = self.base[rows[order]]
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def load_folder(root: Path, options: DataOptions, note: Callable[[str], None] | None = None) -> Split:
    """`folder:DIR` -> a Split over a memory-mapped uint8 cache (decoded on first use)."""
    say = _say(note)
    listing = list_folder(root)
    c, h, w = _native_shape(listing)
    pre = options.preprocess_for(c, h, w)
    if options.image_size is None and options.crop is None:
        say(f"{root}: images taken at {w}x{h} (the first file's size); pass --image-size to choose")
    table = read_attributes(options.attributes) if options.attributes is not None else None
    x, kept = decode_folder(listing, pre, options.cache_dir, options.strict, note)
    files = [listing.files[i] for i in kept]
    attrs: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    if table is not None and options.attributes is not None:
        # every file named must exist: check against all files found, then keep the decoded ones
        full = _match_attributes(table, options.attributes, listing.files, root)
        attrs = {k: v[kept] for k, v in full.items()}
        kinds = table.kinds
    labels = listing.classes
    y = listing.y[kept]
    if labels is not None:
        more = ", ..." if len(labels) > 8 else ""
        say(f"{root}: {len(labels)} classes from sub-folders ({', '.join(labels[:8])}{more})")
    n_val = n_val_for(len(files), options.val_fraction)
    shape = f"{pre.channels}x{pre.height}x{pre.width}"
    say(f"{root}: {len(files) - n_val:,} training and {n_val:,} validation images, {shape}")
    return _split(x, y, labels, f"folder:{root}", attrs, kinds, pre, options)


def load_npz(path: Path, options: DataOptions, note: Callable[[str], None] | None = None) -> Split:
    """`npz:FILE`: `x` (N, H, W) or (N, H, W, C) uint8, optional `y` (N,) integers and any other
    (N,) numeric arrays as attribute columns (binary when their values are two of -1/0/1)."""
    from train.data import conform

    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable .npz file: {exc}") from None
    with archive:
        if "x" not in archive.files:
            raise InputError(f"{path}: no array named 'x' (found {', '.join(archive.files) or 'none'})")
        x = archive["x"]
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
            raise InputError(
                f"{path}: x must be uint8 (N, H, W) or (N, H, W, C) with C 1 or 3, got {x.dtype} {x.shape}"
            )
        n = len(x)
        extra = {k: archive[k] for k in archive.files if k != "x"}
    images = (x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)).copy()  # (N, C, H, W)
    y = np.full(n, -1, dtype=np.int64)
    labels: list[str] | None = None
    if "y" in extra:
        yy = extra.pop("y")
        if yy.shape != (n,) or not np.issubdtype(yy.dtype, np.integer) or (len(yy) and yy.min() < 0):
            raise InputError(f"{path}: y must be (N,) = ({n},) non-negative integers, got {yy.dtype} {yy.shape}")
        y = yy.astype(np.int64)
        labels = [str(i) for i in range(int(y.max()) + 1)] if n else []
    attrs: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for k, v in extra.items():
        if v.shape != (n,) or not np.issubdtype(v.dtype, np.number):
            raise InputError(f"{path}: attribute column '{k}' must be (N,) = ({n},) numbers, got {v.dtype} {v.shape}")
        if not np.isfinite(v.astype(np.float64)).all():
            raise InputError(f"{path}: attribute column '{k}' holds NaN or infinite values")
        kinds[k], attrs[k] = _kind_and_values(k, v.astype(np.float64))
    if options.attributes is not None:
        raise UsageError("--attributes applies to folder: data; put attribute columns into the .npz instead")
    _, c, h, w = images.shape
    pre = options.preprocess_for(c, h, w)
    images = conform(images, pre, note)
    return _split(images, y, labels, f"npz:{path}", attrs, kinds, pre, options)
