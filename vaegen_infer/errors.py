"""Exceptions the runtime raises on purpose.

Every message is one line that says what was wrong and what to do about it; the CLI prints it
as-is and exits with the error's ``exit_code`` (2 for a bad request, 1 for a failure).
"""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """" (did you mean 'X'?)" for the choice closest to a mistyped `name` (case first, then
    difflib's similarity), or "" when none is close: to end an "unknown ..." message."""
    import difflib

    options = list(choices)
    same_case = [c for c in options if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, options, n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


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
