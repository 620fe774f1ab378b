"""The server's settings: one frozen dataclass that checks every field when it is built.

No fastapi import here, so the CLI can build and validate settings (and fail with a one-line
usage error) before the optional server dependencies are even imported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..errors import UsageError


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"{name} must be an integer in {lo}-{hi:,}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """How the server runs and what it accepts. Defaults suit one machine serving a few users."""

    host: str = "127.0.0.1"  # loopback unless told otherwise: the API has no auth by default
    port: int = 8000
    # Dynamic batching: gather requests for one graph for up to this long (0: no batching, each
    # request runs alone) or until this many rows are waiting.
    batch_window_ms: float = 2.0
    max_batch: int = 256
    max_queue: int = 1024  # requests waiting per graph; beyond it: 503 with Retry-After
    # Per-request limits.
    max_n: int = 4096  # images one request may ask for (sample n, manifold n * n, rows of z)
    max_steps: int = 64  # interpolation / traversal steps
    max_images: int = 64  # images uploaded in one request
    max_upload_bytes: int = 8 * 1024 * 1024  # whole request body
    max_image_pixels: int = 4096 * 4096  # per uploaded image, checked before decoding it
    api_key: str | None = field(default=None, repr=False)  # the key itself, never printed
    cors_origins: tuple[str, ...] = ()
    graceful_timeout_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    threads: int = 64  # worker threads that run library calls (requests in flight beyond sample)
    access_log: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise UsageError(f"host must be a host name or IP address, got {self.host!r}")
        if self.host != "localhost":
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise UsageError(f"host must be an IP address or 'localhost', got {self.host!r}") from None
        _int("port", self.port, 0, 65535)
        if isinstance(self.batch_window_ms, bool) or not isinstance(self.batch_window_ms, (int, float)):
            raise UsageError(f"batch_window_ms must be a number, got {self.batch_window_ms!r}")
        if not 0 <= self.batch_window_ms <= 1000:
            raise UsageError(f"batch_window_ms must lie in 0-1000 (0 turns batching off), got {self.batch_window_ms}")
        _int("max_batch", self.max_batch, 1, 65536)
        _int("max_queue", self.max_queue, 1, 1_000_000)
        _int("max_n", self.max_n, 1, 1_000_000)
        _int("max_steps", self.max_steps, 2, 10_000)
        _int("max_images", self.max_images, 1, 100_000)
        _int("max_upload_bytes", self.max_upload_bytes, 1024, 1 << 34)
        _int("max_image_pixels", self.max_image_pixels, 1, 1 << 32)
        _int("threads", self.threads, 1, 4096)
        if self.api_key is not None and (not isinstance(self.api_key, str) or len(self.api_key) < 8):
            raise UsageError("the API key must be a string of at least 8 characters")
        if not isinstance(self.cors_origins, tuple) or not all(
            isinstance(o, str) and (o == "*" or o.startswith(("http://", "https://"))) for o in self.cors_origins
        ):
            raise UsageError(f"CORS origins must be a tuple of http(s):// origins or '*', got {self.cors_origins!r}")
        if not isinstance(self.graceful_timeout_s, (int, float)) or not 0 <= self.graceful_timeout_s <= 3600:
            raise UsageError(f"graceful_timeout_s must lie in 0-3600, got {self.graceful_timeout_s!r}")

    @property
    def batching(self) -> bool:
        return self.batch_window_ms > 0
