"""The bundle manifest (`model.json`): its schema, validation with field-level messages, and writing.

This module is the single definition of the bundle format. The exporter in `train/` builds a
`Manifest` with these classes and calls `to_dict()`, and the runtime reads it back with
`Manifest.from_dict()`, so the writer and the reader cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BundleError

FORMAT = "vaegen-bundle"
FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
KINDS = ("vae", "aae")
LIKELIHOODS = ("bernoulli", "gaussian")
# What the pixel values are: "binary" data (binarised MNIST) is scored in nats per image,
# "8bit" data (photos) in bits per dimension with the likelihood discretised to 256 levels.
DATA_KINDS = ("binary", "8bit")
# Resampling filters of the preprocessing; "auto" is area-averaging (box) when shrinking and
# bicubic when enlarging, the behaviour of bundles that predate `image.preprocess`.
RESIZE_FILTERS = ("auto", "box", "bilinear", "bicubic", "lanczos", "nearest")
# stretch: resize whatever the aspect ratio (what bundles without the field meant); keep: first
# centre-crop to the largest region with the model's aspect ratio, so nothing is stretched
ASPECTS = ("stretch", "keep")
ATTRIBUTE_KINDS = ("direction", "binary", "continuous")
# Reduced-precision copies of the graphs a bundle may carry (`variants`), chosen by
# `load(..., precision=...)`; "float32" is the bundle's own `graphs`.
PRECISIONS = ("float32", "int8", "fp16")

# Tensor names of the two graphs. A leading None in a shape is the dynamic batch axis.
ENCODER_INPUT = "x"
ENCODER_OUTPUTS = ("mu", "logvar")
DECODER_INPUT = "z"
# The second decoder input of a label-conditioned decoder (supervised AAE): the label one-hot
# (N, K) float32, K = len(labels). Bundles name it in `label_input`; absent: z alone.
DECODER_LABEL_INPUT = "y"
# `x` holds Bernoulli means in [0, 1]; `logits` the same before the sigmoid, so that likelihoods
# can be computed without log(0) in float32.
DECODER_OUTPUTS = ("x", "logits")

# What a deterministic encoder (the AAE's default) reports as logvar: a point mass at mu. Its std,
# exp(-10) = 4.5e-5, is negligible next to code scales of 1-10, so sampling z from (mu, logvar)
# returns mu to five digits, and every runtime operation works unchanged.
DETERMINISTIC_LOGVAR = -20.0

Shape = list[int | None]


class _Fields:
    """Reads typed values out of one JSON object, naming the full key path in every error."""

    def __init__(self, obj: Any, where: str, source: str) -> None:
        if not isinstance(obj, dict):
            raise BundleError(f"{source}: '{where or '(top level)'}' must be an object, got {_kind(obj)}")
        self.obj = obj
        self.where = where
        self.source = source

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str, got: Any) -> BundleError:
        return BundleError(f"{self.source}: '{self._path(key)}' must be {expected}, got {_show(got)}")

    def has(self, key: str) -> bool:
        return key in self.obj and self.obj[key] is not None

    def raw(self, key: str, expected: str) -> Any:
        if key not in self.obj:
            raise BundleError(f"{self.source}: missing key '{self._path(key)}' ({expected})")
        return self.obj[key]

    def str(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(key, "a string")
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string", value)
        if choices is not None and value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices), value)
        return value

    def int(self, key: str, minimum: int = 1) -> int:
        value = self.raw(key, "an integer")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"an integer >= {minimum}", value)
        return value

    def bool(self, key: str) -> bool:
        value = self.raw(key, "true or false")
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def number_list(self, key: str, length: int | None = None) -> list[float]:
        value = self.raw(key, "a list of numbers")
        ok = isinstance(value, list) and all(_is_finite_number(v) for v in value)
        if not ok or (length is not None and len(value) != length):
            size = f"{length} " if length is not None else ""
            raise self.fail(key, f"a list of {size}finite numbers", value)
        return [float(v) for v in value]

    def sub(self, key: str) -> _Fields:
        return _Fields(self.raw(key, "an object"), self._path(key), self.source)

    def dict(self, key: str) -> dict[str, Any]:
        value = self.obj.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "an object", value)
        return value


def _is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class PreprocessSpec:
    """How a user's image file becomes the encoder's input, applied after channel conversion:
    an optional centre crop to a `crop` x `crop` square (source pixels), then, with `aspect`
    "keep", a centre crop to the model's aspect ratio, then a resize to the model's size with the
    named filter. The defaults are what bundles without the field meant."""

    crop: int | None = None
    resize: str = "auto"
    aspect: str = "stretch"

    @property
    def is_default(self) -> bool:
        return self.crop is None and self.resize == "auto" and self.aspect == "stretch"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"crop": self.crop, "resize": self.resize}
        if self.aspect != "stretch":  # absent = stretch, so earlier bundles are written as they were
            out["aspect"] = self.aspect
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> PreprocessSpec:
        crop = f.int("crop") if f.has("crop") else None
        resize = f.str("resize", RESIZE_FILTERS) if f.has("resize") else "auto"
        aspect = f.str("aspect", ASPECTS) if f.has("aspect") else "stretch"
        return cls(crop, resize, aspect)


@dataclass(frozen=True)
class ImageSpec:
    """What the graphs take and give: (channels, height, width) float32 in `value_range`.

    `likelihood` says what the decoder's output means: Bernoulli means, or the means of a
    Gaussian with one shared standard deviation `exp(likelihood_params["log_sigma"])` in pixel
    units (sigma-VAE). `data` says how scores are reported (see DATA_KINDS)."""

    channels: int
    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)
    likelihood: str = "bernoulli"
    likelihood_params: dict[str, float] = field(default_factory=dict)
    data: str | None = None  # None: "binary" for bernoulli, "8bit" for gaussian
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def data_kind(self) -> str:
        if self.data is not None:
            return self.data
        return "binary" if self.likelihood == "bernoulli" else "8bit"

    @property
    def log_sigma(self) -> float:
        """The Gaussian decoder's shared log standard deviation (gaussian likelihood only)."""
        if self.likelihood != "gaussian":
            raise BundleError(f"a {self.likelihood} likelihood has no log_sigma")
        return float(self.likelihood_params["log_sigma"])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "range": list(self.value_range),
            "likelihood": self.likelihood,
        }
        # Optional fields are written only when they say something, so that manifests made before
        # they existed round-trip unchanged.
        if self.likelihood_params:
            out["likelihood_params"] = dict(self.likelihood_params)
        if self.data is not None:
            out["data"] = self.data
        if not self.preprocess.is_default:
            out["preprocess"] = self.preprocess.to_dict()
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> ImageSpec:
        channels = f.int("channels")
        if channels not in (1, 3):
            raise f.fail("channels", "1 (grey) or 3 (RGB)", channels)
        lo, hi = f.number_list("range", length=2)
        if not lo < hi:
            raise f.fail("range", "[low, high] with low < high", [lo, hi])
        likelihood = f.str("likelihood", LIKELIHOODS)
        params: dict[str, float] = {}
        if f.has("likelihood_params"):
            pf = f.sub("likelihood_params")
            for key, value in pf.obj.items():
                if not _is_finite_number(value):
                    raise pf.fail(key, "a finite number", value)
                params[key] = float(value)
        if likelihood == "gaussian" and "log_sigma" not in params:
            raise BundleError(f"{f.source}: missing key 'image.likelihood_params.log_sigma' (a gaussian likelihood's "
                              "shared log standard deviation)")  # fmt: skip
        data = f.str("data", DATA_KINDS) if f.has("data") else None
        preprocess = PreprocessSpec.from_fields(f.sub("preprocess")) if f.has("preprocess") else PreprocessSpec()
        return cls(channels, f.int("height"), f.int("width"), (lo, hi), likelihood, params, data, preprocess)


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file of the bundle, its hash, and the names and shapes of its tensors."""

    file: str
    sha256: str
    inputs: dict[str, Shape]
    outputs: dict[str, Shape]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "inputs": self.inputs, "outputs": self.outputs}

    @classmethod
    def from_fields(cls, f: _Fields, want_inputs: tuple[str, ...], want_outputs: tuple[str, ...]) -> GraphSpec:
        file = f.str("file")
        # A manifest may only name files inside its own bundle directory.
        if "/" in file or "\\" in file or file in (".", "..") or file.startswith("."):
            raise f.fail("file", "a plain file name inside the bundle directory", file)
        sha = f.str("sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise f.fail("sha256", "64 lowercase hex digits", sha)
        return cls(file, sha, _shapes(f, "inputs", want_inputs), _shapes(f, "outputs", want_outputs))


def _shapes(f: _Fields, key: str, names: tuple[str, ...]) -> dict[str, Shape]:
    sub = f.sub(key)
    out: dict[str, Shape] = {}
    for name in names:
        shape = sub.raw(name, "a shape list")
        ok = isinstance(shape, list) and len(shape) >= 1 and shape[0] is None
        ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape[1:])
        if not ok:
            raise sub.fail(name, "a shape like [null, 16] (null = dynamic batch axis)", shape)
        out[name] = shape
    return out


@dataclass(frozen=True)
class Variant:
    """A reduced-precision copy of both graphs (same tensor names and shapes, float32 inputs and
    outputs), with its measured agreement with float32 (`parity`) and its quality figures."""

    encoder: GraphSpec
    decoder: GraphSpec
    parity: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)

    def graph(self, role: str) -> GraphSpec:
        return {"encoder": self.encoder, "decoder": self.decoder}[role]

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.to_dict(),
            "decoder": self.decoder.to_dict(),
            "parity": self.parity,
            "quality": self.quality,
        }


def _variants(f: _Fields, source: str, decoder_inputs: tuple[str, ...] = (DECODER_INPUT,)) -> dict[str, Variant]:
    out: dict[str, Variant] = {}
    vf = _Fields(f.dict("variants"), "variants", source)
    for key in vf.obj:
        if key not in PRECISIONS[1:]:
            raise vf.fail(key, "a variant named " + " or ".join(PRECISIONS[1:]), key)
        one = vf.sub(key)
        encoder = GraphSpec.from_fields(one.sub("encoder"), (ENCODER_INPUT,), ENCODER_OUTPUTS)
        decoder = GraphSpec.from_fields(one.sub("decoder"), decoder_inputs, DECODER_OUTPUTS)
        out[key] = Variant(encoder, decoder, one.dict("parity"), one.dict("quality"))
    return out


@dataclass(frozen=True)
class PriorSpec:
    """Which prior the latent codes follow, by registry name, with its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}


@dataclass(frozen=True)
class Attribute:
    """A named latent direction `v` (D,): shifting a code by `amount * v` adds the attribute.

    `kind` says how `v` was made: "direction" (given, or from two image sets), "binary"
    (mean(z | attribute) - mean(z | not attribute)) or "continuous" (regression: amount 1 is one
    standard deviation of the attribute); `amount` says in words what amount 1 means."""

    vector: np.ndarray
    description: str = ""
    source: str = "builtin"
    kind: str = "direction"
    amount: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vector": [round(float(v), 7) for v in self.vector],
            "description": self.description,
            "source": self.source,
        }
        if self.kind != "direction":
            out["kind"] = self.kind
        if self.amount:
            out["amount"] = self.amount
        return out


@dataclass
class Manifest:
    """Everything the runtime needs to use a bundle; nothing model-specific lives in runtime code."""

    name: str
    kind: str
    image: ImageSpec
    latent_dim: int
    prior: PriorSpec
    encoder: GraphSpec
    decoder: GraphSpec
    description: str = ""
    # What `sample` draws codes from when it is not the prior: a density fitted after training to
    # the training images' codes (the aggregate posterior; ex-post density estimation, Ghosh et al.
    # 2020), for models whose codes fill the prior unevenly. None: samples come from the prior. The
    # prior stays what the model was trained with: scores, traversals and maps use it.
    sampler: PriorSpec | None = None
    labels: list[str] | None = None
    conditional: bool = False
    # The decoder's label input (supervised AAE): its tensor name, taking the one-hot (N, K) with
    # K = len(labels); None: the decoder takes the code alone (every bundle before it).
    label_input: str | None = None
    attributes: dict[str, Attribute] = field(default_factory=dict)
    latent_stats: dict[str, Any] = field(default_factory=dict)
    # Ground-truth factors (dSprites-like data): per latent dimension, the factor it shares most
    # information with ("-" for none) and that mutual information, {"per_dim": [...], "factors": [...]}.
    latent_factors: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    # Reduced-precision graphs by precision ("int8", "fp16"); absent: float32 only.
    variants: dict[str, Variant] = field(default_factory=dict)

    def graph(self, role: str, precision: str = "float32") -> GraphSpec:
        """The spec of a graph; of a variant's copy for precision "int8" / "fp16" (KeyError if absent)."""
        if precision != "float32":
            return self.variants[precision].graph(role)
        return {"encoder": self.encoder, "decoder": self.decoder}[role]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "image": self.image.to_dict(),
            "latent_dim": self.latent_dim,
            "prior": self.prior.to_dict(),
            **({"sampler": self.sampler.to_dict()} if self.sampler else {}),
            "labels": self.labels,
            "conditional": self.conditional,
            **({"label_input": self.label_input} if self.label_input else {}),
            "graphs": {"encoder": self.encoder.to_dict(), "decoder": self.decoder.to_dict()},
            "attributes": {k: a.to_dict() for k, a in self.attributes.items()},
            "latent_stats": self.latent_stats,
            **({"latent_factors": self.latent_factors} if self.latent_factors else {}),
            "metrics": self.metrics,
            "training": self.training,
            "producer": self.producer,
            **({"variants": {k: v.to_dict() for k, v in self.variants.items()}} if self.variants else {}),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_FILE) -> Manifest:
        """Validate a parsed `model.json`; raise `BundleError` naming the first bad field."""
        f = _Fields(data, "", source)
        fmt = f.str("format")
        if fmt != FORMAT:
            raise f.fail("format", f"'{FORMAT}'", fmt)
        version = f.int("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{source}: unknown format_version {version}; this vaegen-infer reads version "
                f"{FORMAT_VERSION}: upgrade vaegen-infer or re-export the bundle"
            )
        name = f.str("name")
        kind = f.str("kind", KINDS)
        image = ImageSpec.from_fields(f.sub("image"))
        dim = f.int("latent_dim")

        pf = f.sub("prior")
        prior = PriorSpec(pf.str("name"), pf.dict("params"))
        sampler = None
        if f.has("sampler"):
            sf = f.sub("sampler")
            sampler = PriorSpec(sf.str("name"), sf.dict("params"))

        labels = None
        if f.has("labels"):
            raw = f.raw("labels", "a list of class names")
            if not (isinstance(raw, list) and raw and all(isinstance(s, str) and s for s in raw)):
                raise f.fail("labels", "a non-empty list of class names or null", raw)
            if len(set(raw)) != len(raw):
                raise f.fail("labels", "a list of distinct class names", raw)
            labels = list(raw)
        conditional = f.bool("conditional") if "conditional" in f.obj else False
        if conditional and labels is None:
            raise f.fail("labels", "a list of class names when 'conditional' is true", None)
        if conditional and sampler is not None:
            # the sampler has no label regions: sampling by label needs the prior's
            raise f.fail("sampler", "absent when 'conditional' is true (it cannot draw by label)", sampler.name)
        label_input = f.str("label_input") if f.has("label_input") else None
        if label_input is not None:
            if labels is None:
                raise f.fail("labels", "a list of class names when 'label_input' is set", None)
            if label_input == DECODER_INPUT:
                raise f.fail("label_input", f"a tensor name other than '{DECODER_INPUT}'", label_input)
        decoder_inputs = (DECODER_INPUT,) if label_input is None else (DECODER_INPUT, label_input)
        n_labels = len(labels) if label_input is not None and labels is not None else 0

        gf = f.sub("graphs")
        encoder = GraphSpec.from_fields(gf.sub("encoder"), (ENCODER_INPUT,), ENCODER_OUTPUTS)
        decoder = GraphSpec.from_fields(gf.sub("decoder"), decoder_inputs, DECODER_OUTPUTS)
        extra = sorted(set(gf.sub("decoder").sub("inputs").obj) - set(decoder_inputs))
        if extra:
            raise BundleError(
                f"{source}: 'graphs.decoder.inputs' lists {extra} besides {list(decoder_inputs)}; a label input "
                "must be named in 'label_input' (with 'labels')"
            )
        _check_graph_shapes(source, image, dim, encoder, decoder, label_input, n_labels)
        variants = _variants(f, source, decoder_inputs)
        for key, v in variants.items():
            _check_graph_shapes(f"{source} (variants.{key})", image, dim, v.encoder, v.decoder, label_input, n_labels)

        attributes: dict[str, Attribute] = {}
        af = _Fields(f.dict("attributes"), "attributes", source)
        for key in af.obj:
            one = af.sub(key)
            vec = np.asarray(one.number_list("vector", length=dim), dtype=np.float32)
            desc = one.obj.get("description", "")
            src = one.obj.get("source", "builtin")
            attr_kind = one.str("kind", ATTRIBUTE_KINDS) if one.has("kind") else "direction"
            amount = one.obj.get("amount", "")
            amount = amount if isinstance(amount, str) else ""
            attributes[key] = Attribute(vec, desc if isinstance(desc, str) else "", str(src), attr_kind, amount)

        latent_stats = f.dict("latent_stats")
        stats = _Fields(latent_stats, "latent_stats", source)
        if "kl_per_dim" in latent_stats:  # traversals order dimensions by these two
            stats.number_list("kl_per_dim", length=dim)
        if latent_stats.get("mu_variance_per_dim") is not None:
            stats.number_list("mu_variance_per_dim", length=dim)
        latent_factors = f.dict("latent_factors")
        if latent_factors:
            _check_latent_factors(_Fields(latent_factors, "latent_factors", source), dim)

        return cls(
            name=name,
            kind=kind,
            image=image,
            latent_dim=dim,
            prior=prior,
            sampler=sampler,
            encoder=encoder,
            decoder=decoder,
            description=f.obj.get("description", "") or "",
            labels=labels,
            conditional=conditional,
            label_input=label_input,
            attributes=attributes,
            latent_stats=latent_stats,
            latent_factors=latent_factors,
            metrics=f.dict("metrics"),
            training=f.dict("training"),
            producer=f.dict("producer"),
            variants=variants,
        )


def _check_latent_factors(f: _Fields, dim: int) -> None:
    per_dim = f.raw("per_dim", "a list with one entry per latent dimension")
    if not isinstance(per_dim, list) or len(per_dim) != dim:
        raise f.fail("per_dim", f"a list of {dim} entries (one per latent dimension)", per_dim)
    for i, entry in enumerate(per_dim):
        one = _Fields(entry, f"{f.where}.per_dim.{i}", f.source)
        one.str("factor")
        if not _is_finite_number(one.raw("mi", "a number")):
            raise one.fail("mi", "a finite number", one.obj["mi"])


def graph_specs(
    image: ImageSpec, latent_dim: int, hashes: dict[str, str], n_labels: int = 0
) -> tuple[GraphSpec, GraphSpec]:
    """The encoder and decoder specs every bundle uses, given the sha256 of each file; with
    `n_labels` > 0 the decoder also takes the label one-hot `y` (N, n_labels)."""
    img: Shape = [None, *image.shape]
    lat: Shape = [None, latent_dim]
    dec_inputs: dict[str, Shape] = {DECODER_INPUT: lat}
    if n_labels:
        dec_inputs[DECODER_LABEL_INPUT] = [None, n_labels]
    encoder = GraphSpec("encoder.onnx", hashes["encoder.onnx"], {ENCODER_INPUT: img}, {k: lat for k in ENCODER_OUTPUTS})
    decoder = GraphSpec("decoder.onnx", hashes["decoder.onnx"], dec_inputs, {k: img for k in DECODER_OUTPUTS})
    return encoder, decoder


def _check_graph_shapes(
    source: str,
    image: ImageSpec,
    dim: int,
    enc: GraphSpec,
    dec: GraphSpec,
    label_input: str | None = None,
    n_labels: int = 0,
) -> None:
    img: Shape = [None, *image.shape]
    lat: Shape = [None, dim]
    expected = [
        ("graphs.encoder.inputs.x", enc.inputs[ENCODER_INPUT], img),
        ("graphs.decoder.inputs.z", dec.inputs[DECODER_INPUT], lat),
        *([(f"graphs.decoder.inputs.{label_input}", dec.inputs[label_input], [None, n_labels])] if label_input else []),
        *[(f"graphs.encoder.outputs.{k}", enc.outputs[k], lat) for k in ENCODER_OUTPUTS],
        *[(f"graphs.decoder.outputs.{k}", dec.outputs[k], img) for k in DECODER_OUTPUTS],
    ]
    for where, got, want in expected:
        if got != want:
            says = "labels say" if label_input and where.endswith(f".{label_input}") else "image and latent_dim say"
            raise BundleError(f"{source}: '{where}' is {got} but {says} {want}; the manifest is inconsistent")
