"""benchmarks/quality.py: the goal verdict, and model.json figures that a fresh run reproduces."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.quality import goal_lines
from tests.conftest import MNIST_DIR, ROOT


def _vae(full: float, anchor: float) -> dict[str, Any]:
    return {"full": {"test_nll": full}, "anchor": {"test_nll": anchor}}


def test_goal_met_needs_both_the_bound_and_the_margin() -> None:
    results = {
        "recipe, 10 epochs": _vae(120.0, 127.0),
        "recipe, 100 epochs": _vae(99.5, 100.2),
        "mnist-vae": _vae(89.4, 89.9),
    }
    lines = goal_lines(results)
    assert (
        "- NLL: 89.40 nats (met); 10.10 nats ahead of the best recipe run (recipe, 100 epochs, 99.50): **goal met**"
        in lines
    )
    assert lines[-1].endswith("**goal met**")


def test_goal_missed_says_by_how_much() -> None:
    results = {"recipe, 100 epochs": _vae(99.0, 100.0), "mnist-vae": _vae(91.25, 91.5)}
    text = "\n".join(goal_lines(results))
    assert "91.25 nats (missed by 1.25)" in text
    assert "7.75 nats ahead" in text
    assert "**goal met**" not in text


def test_no_verdict_without_both_sides() -> None:
    assert goal_lines({"mnist-vae": _vae(89.0, 89.0)}) == []
    assert goal_lines({"recipe, 10 epochs": _vae(120.0, 127.0)}) == []


@pytest.mark.slow
def test_manifest_nll_agrees_with_a_fresh_run() -> None:
    """The anchor-protocol NLL stored in the shipped model.json is what re-measuring gives."""
    if not MNIST_DIR.is_dir():
        pytest.skip("MNIST test set not found at ../shared/data/mnist")
    import vaegen_infer
    from train.evaluate import vae_metrics
    from vaegen_infer.datasets import load_idx_dir

    stored = json.loads((ROOT / "exported" / "mnist-vae" / "model.json").read_text())["metrics"]["anchor"]
    x_test, _ = load_idx_dir(MNIST_DIR, "test")
    g = vaegen_infer.load("mnist-vae", providers="cpu")
    fresh = vae_metrics(g, x_test, k=stored["protocol"]["k"], n_images=stored["protocol"]["images"], quiet=True)
    for key in ("test_nll", "test_elbo", "test_kl"):
        assert fresh[key] == pytest.approx(stored[key], abs=0.02), key
    assert fresh["active_units"] == stored["active_units"]
