"""Exceptions the runtime raises on purpose.

Every message is one line that says what was wrong and what to do about it; the CLI prints it
as-is and exits with the error's ``exit_code`` (2 for a bad request, 1 for a failure).
"""

from __future__ import annotations


class VaegenError(Exception):
    """Base class: an expected failure with a one-line message for the user."""

    exit_code = 1


class UsageError(VaegenError, ValueError):
    """The caller asked for something invalid: an unknown model, a bad count, a bad label."""

    exit_code = 2


class BundleError(VaegenError):
    """A bundle is missing, damaged, tampered with, or of an unknown format."""


class InputError(VaegenError, ValueError):
    """An input file or array cannot be used (unreadable image, wrong shape, NaN)."""


class ProviderError(VaegenError):
    """An execution provider that was demanded is not active (CUDA asked for, CPU running)."""
