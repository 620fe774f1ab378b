"""A PNG written band by band while the rest of the picture is still being made.

Pillow encodes a picture only once it is whole. For a large sample grid (thousands of tiles) the
model's decoding and the PNG's compression can instead overlap: each band of grid rows is
compressed on a worker thread (zlib releases the GIL) while the model decodes the next band. The
file is an ordinary 8-bit greyscale or RGB PNG, every scanline with filter type 0 (None), one zlib
stream split over IDAT chunks; for a given picture, level and zlib build the bytes are always the
same.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type: greyscale, truecolour


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class StreamedPNG:
    """Write a (height, width, C) uint8 picture to `fh` as bands of rows arrive, in order.

    `add(rows)` takes the next (r, width, C) rows and returns at once: their compression runs on one
    worker thread, so bands stay in order. `close()` waits for every band, checks that exactly
    `height` rows came, and writes the end of the file."""

    def __init__(self, fh: IO[bytes], width: int, height: int, channels: int, level: int = 6) -> None:
        if channels not in COLOUR_TYPES:
            raise ValueError(f"a PNG band writer takes 1 or 3 channels, got {channels}")
        if not 0 <= level <= 9:
            raise ValueError(f"zlib levels are 0-9, got {level}")
        self._fh = fh
        self.width, self.height, self.channels = width, height, channels
        self._rows = 0
        self._zlib = zlib.compressobj(level)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaegen-infer-png")
        self._pending: list[Future[None]] = []
        ihdr = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
        fh.write(SIGNATURE + _chunk(b"IHDR", ihdr))

    def _encode(self, rows: np.ndarray) -> None:
        r = rows.shape[0]
        raw = np.empty((r, 1 + self.width * self.channels), dtype=np.uint8)  # (r, filter byte + scanline)
        raw[:, 0] = 0  # filter type None: the cheapest, and what zlib gets is the picture itself
        raw[:, 1:] = rows.reshape(r, -1)
        data = self._zlib.compress(raw.tobytes())
        if data:
            self._fh.write(_chunk(b"IDAT", data))

    def add(self, rows: np.ndarray) -> None:
        if rows.dtype != np.uint8 or rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"rows must be uint8 (r, {self.width}, {self.channels}), got {rows.dtype} {rows.shape}")
        self._rows += rows.shape[0]
        if self._rows > self.height:
            raise ValueError(f"more than {self.height} rows given")
        for done in [f for f in self._pending if f.done()]:
            done.result()  # re-raises a failed band's error now
            self._pending.remove(done)
        self._pending.append(self._worker.submit(self._encode, rows))

    def close(self) -> None:
        try:
            for f in self._pending:
                f.result()
        finally:
            self._worker.shutdown(wait=True)
        if self._rows != self.height:
            raise ValueError(f"{self._rows} rows given for a picture of {self.height}")
        self._fh.write(_chunk(b"IDAT", self._zlib.flush()) + _chunk(b"IEND", b""))
