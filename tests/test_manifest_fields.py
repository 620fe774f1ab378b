"""The optional manifest fields of format version 1: absent means the old behaviour, present ones
round-trip, and bad values are refused naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from vaegen_infer.errors import BundleError
from vaegen_infer.manifest import Manifest

SHIPPED = Path(__file__).resolve().parents[1] / "exported"


def _vae() -> dict:
    return json.loads((SHIPPED / "mnist-vae" / "model.json").read_text())


def test_shipped_manifests_round_trip_unchanged() -> None:
    for path in sorted(SHIPPED.glob("*/model.json")):
        data = json.loads(path.read_text())
        m = Manifest.from_dict(data)
        if m.image.likelihood == "bernoulli":  # binary: MNIST (before the optional fields), dSprites
            assert m.image.preprocess.crop is None and m.image.preprocess.resize == "auto"
            assert m.image.data_kind == "binary"
            assert (m.latent_factors == {}) == (path.parent.name != "dsprites-tcvae"), path  # only dSprites has factors
        again = m.to_dict()
        assert again["image"] == data["image"], path  # no new keys appear in old manifests
        assert set(again) - set(data) == set(), path


def test_gaussian_likelihood_preprocess_and_attribute_kinds_round_trip() -> None:
    d = _vae()
    d["image"].update(
        likelihood="gaussian", likelihood_params={"log_sigma": -2.5}, preprocess={"crop": 148, "resize": "lanczos"}
    )
    d["attributes"]["thickness"].update(kind="continuous", amount="one standard deviation of ink")
    d["latent_factors"] = {"per_dim": [{"factor": "-", "mi": 0.0}] * 32, "factors": ["x"]}
    m = Manifest.from_dict(d)
    assert m.image.likelihood == "gaussian" and m.image.log_sigma == -2.5
    assert m.image.data_kind == "8bit"
    assert (m.image.preprocess.crop, m.image.preprocess.resize) == (148, "lanczos")
    assert m.attributes["thickness"].kind == "continuous"
    again = Manifest.from_dict(m.to_dict())
    assert again.to_dict() == m.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["image"].update(likelihood="gaussian"), "image.likelihood_params.log_sigma"),
        (lambda d: d["image"].update(likelihood="poisson"), "image.likelihood"),
        (lambda d: d["image"].update(likelihood_params={"log_sigma": "x"}), "image.likelihood_params.log_sigma"),
        (lambda d: d["image"].update(preprocess={"crop": 0}), "image.preprocess.crop"),
        (lambda d: d["image"].update(preprocess={"resize": "sharp"}), "image.preprocess.resize"),
        (lambda d: d["image"].update(data="12bit"), "image.data"),
        (lambda d: d["attributes"]["slant"].update(kind="sideways"), "attributes.slant.kind"),
        (lambda d: d.update(latent_factors={"per_dim": []}), "latent_factors.per_dim"),
        (lambda d: d.update(latent_factors={"per_dim": [{"factor": "x"}] * 32}), "latent_factors.per_dim.0"),
    ],
)
def test_bad_optional_fields_are_refused_by_name(change, message: str) -> None:
    d = copy.deepcopy(_vae())
    change(d)
    with pytest.raises(BundleError, match=message.replace(".", r"\.")):
        Manifest.from_dict(d)
