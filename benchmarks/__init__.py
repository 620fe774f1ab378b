"""Measurements of the runtime and its models (latency, export choices, sample quality).

A package so evaluation code and tests can `from benchmarks.classifier import load_classifier`
when the repository root is on sys.path; each module also runs as a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_results(out: Path, stem: str, report: dict[str, Any], text: str) -> None:
    """OUT/STEM.json (the figures) and OUT/STEM.md (`text`), each written whole (never half a
    file), then the text printed."""
    from vaegen_infer.io import save_json, write_bytes

    out.mkdir(parents=True, exist_ok=True)
    save_json(out / f"{stem}.json", report)
    write_bytes(out / f"{stem}.md", lambda fh: fh.write(text.encode()))
    print(text)
