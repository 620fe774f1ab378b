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


# -- known answers found missing by mutation testing (benchmarks/mutation.py) ---------------------------


def test_shipped_manifests_are_exactly_what_the_exporter_writes() -> None:
    # Manifest.to_dict is what `train export` writes: reading a shipped model.json and writing it again
    # must give the same JSON, optional fields (label_input, latent_factors) included
    for path in sorted(SHIPPED.glob("*/model.json")):
        data = json.loads(path.read_text())
        assert Manifest.from_dict(data).to_dict() == data, path


def test_a_variant_round_trips_and_names_its_graphs() -> None:
    d = copy.deepcopy(_vae())
    int8 = {"encoder": copy.deepcopy(d["graphs"]["encoder"]), "decoder": copy.deepcopy(d["graphs"]["decoder"]),
            "parity": {"max_abs": 0.01}, "quality": {"test_nll": 90.5}}  # fmt: skip
    int8["encoder"]["file"], int8["decoder"]["file"] = "encoder.int8.onnx", "decoder.int8.onnx"
    d["variants"] = {"int8": int8}
    m = Manifest.from_dict(d)
    assert m.to_dict() == d
    assert m.graph("encoder", "int8").file == "encoder.int8.onnx"
    assert m.graph("decoder", "int8").file == "decoder.int8.onnx"
    assert m.variants["int8"].graph("decoder") is m.variants["int8"].decoder


def test_graph_specs_known_answer() -> None:
    from vaegen_infer.manifest import ImageSpec, graph_specs

    image = ImageSpec(channels=3, height=32, width=24)
    hashes = {"encoder.onnx": "e" * 64, "decoder.onnx": "d" * 64}
    enc, dec = graph_specs(image, 6, hashes)
    assert (enc.file, enc.sha256, dec.file, dec.sha256) == ("encoder.onnx", "e" * 64, "decoder.onnx", "d" * 64)
    assert enc.inputs == {"x": [None, 3, 32, 24]} and enc.outputs == {"mu": [None, 6], "logvar": [None, 6]}
    assert dec.inputs == {"z": [None, 6]} and dec.outputs == {"x": [None, 3, 32, 24], "logits": [None, 3, 32, 24]}
    _, labelled = graph_specs(image, 6, hashes, n_labels=10)
    assert labelled.inputs == {"z": [None, 6], "y": [None, 10]}


ONE = {"factor": "x", "mi": 0.1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(latent_factors={"factors": ["x"]}),
         "missing key 'latent_factors.per_dim' (a list with one entry per latent dimension)"),
        (lambda d: d.update(latent_factors={"per_dim": []}),
         "'latent_factors.per_dim' must be a list of 32 entries (one per latent dimension), got []"),
        (lambda d: d.update(latent_factors={"per_dim": "all"}),
         "'latent_factors.per_dim' must be a list of 32 entries (one per latent dimension), got 'all'"),
        (lambda d: d.update(latent_factors={"per_dim": [{"factor": "x"}] * 32}),
         "missing key 'latent_factors.per_dim.0.mi' (a number)"),
        (lambda d: d.update(latent_factors={"per_dim": [ONE] * 31 + [{"factor": "y", "mi": "?"}]}),
         "'latent_factors.per_dim.31.mi' must be a finite number, got '?'"),
        (lambda d: d.update(latent_factors={"per_dim": [{"factor": "", "mi": 0.1}] * 32}),
         "'latent_factors.per_dim.0.factor' must be a non-empty string, got ''"),
        (lambda d: d.update(latent_factors={"per_dim": [{"mi": 0.1}] * 32}),
         "missing key 'latent_factors.per_dim.0.factor' (a string)"),
        (lambda d: d.update(image=None), "'image' must be an object, got null"),
        (lambda d: d.update(image=[1]), "'image' must be an object, got a list"),
        (lambda d: d.update(image="x"), "'image' must be an object, got a string"),
        (lambda d: d.update(image=5), "'image' must be an object, got int"),
        (lambda d: d.update(latent_dim="a" * 58), f"'latent_dim' must be an integer >= 1, got {'a' * 58!r}"),
        (lambda d: d.update(latent_dim="a" * 59), f"'latent_dim' must be an integer >= 1, got '{'a' * 56}..."),
    ],
)  # fmt: skip
def test_refusals_say_exactly_what_was_found(change, message: str) -> None:  # type: ignore[no-untyped-def]
    d = copy.deepcopy(_vae())
    change(d)
    with pytest.raises(BundleError) as info:
        Manifest.from_dict(d)
    assert str(info.value) == f"model.json: {message}"


def test_preprocess_defaults_field_by_field() -> None:
    for given, want in (({}, (None, "auto")), ({"crop": 20}, (20, "auto")), ({"resize": "box"}, (None, "box"))):
        d = copy.deepcopy(_vae())
        d["image"]["preprocess"] = given
        p = Manifest.from_dict(d).image.preprocess
        assert (p.crop, p.resize) == want, given


def test_attribute_to_dict_rounds_to_seven_digits_and_omits_the_default_kind() -> None:
    import numpy as np

    from vaegen_infer.manifest import Attribute

    a = Attribute(np.array([0.123456789, -1.0]), "d", source="user")
    assert a.to_dict() == {"vector": [0.1234568, -1.0], "description": "d", "source": "user"}
    assert Attribute(np.zeros(1), kind="binary").to_dict()["kind"] == "binary"
