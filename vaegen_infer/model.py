"""`load()` and the `Model` it returns: one object per bundle, holding its ONNX Runtime sessions."""

from __future__ import annotations

import hashlib
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import latent
from .bundle import DEFAULT_MODEL, Bundle, open_bundle, verify_file
from .errors import BundleError, InputError, UsageError, did_you_mean
from .manifest import (
    DECODER_INPUT,
    DECODER_OUTPUTS,
    DETERMINISTIC_LOGVAR,
    ENCODER_INPUT,
    ENCODER_OUTPUTS,
    PRECISIONS,
    Attribute,
    GraphSpec,
    Manifest,
)
from .priors import Prior, make_prior
from .providers import ProviderRequest, create_session, session_threads
from .runners import Runner, build_runner

# Rows per session.run call when a request is large: bounds memory (a 4096 x 784 float32 chunk is
# 12.8 MB) while keeping each call big enough that per-call overhead is negligible.
DEFAULT_CHUNK = 4096
# Codes per prior draw. Fixed, so that the stream of random numbers, and so every image, depends
# on the seed alone and not on how the caller batches or streams the request.
DRAW_CHUNK = 65_536
MAX_SAMPLES = 10_000_000
# score(): rows decoded per run, at most SCORE_RUN_ROWS and at most SCORE_RUN_ELEMENTS / (C * H * W),
# so that the float64 (rows, C * H * W) likelihood terms of one run stay near 128 MB each: the
# discretised Gaussian of 64x64 RGB images at 8,192 rows made temporaries of 0.8 GB each (11.7 GB
# resident measured for 500 images at k = 100; 2.3 GB at most now). 28x28 images keep 8,192 rows.
# (train/evaluate.py's `iwae`, a second IWAE with its own draw layout, bounds its runs the same way
# with its own ELEMENTS_PER_RUN = 8192 * 784; unifying the two would change one side's draws.)
SCORE_RUN_ROWS = 8192
SCORE_RUN_ELEMENTS = 1 << 24
_F32 = np.dtype(np.float32)
_IMAGES = [DECODER_OUTPUTS[0]]  # the decoder output decode() asks for; ONNX Runtime does not modify it
_CODES = list(ENCODER_OUTPUTS)


def _range_bits(value_range: tuple[float, float]) -> np.uint32 | None:
    """For a value range [0, hi] (hi finite, > 0): the bit pattern of float32 hi as a uint32, else
    None. Non-negative float32 values order as their bit patterns do; every negative value (sign
    bit set), infinity and NaN has a pattern above that of any finite hi. So for a float32 array x,
    `x.view(np.uint32).max() <= bits` holds exactly when every value is in [+0.0, hi]: one
    reduction checks both the range and finiteness."""
    lo, hi = value_range
    if lo != 0 or not (np.isfinite(hi) and hi > 0):
        return None
    return np.array(hi, dtype=np.float32).view(np.uint32)[()]


class Model:
    """A loaded bundle. Sessions are created on first use, once, and reused by every call.

    Thread safety: a `Model` may be shared by many threads. Session creation is guarded by a lock
    and ONNX Runtime's `session.run` is safe to call concurrently; randomness comes from a
    per-call `numpy.random.Generator` seeded by the caller, so results do not depend on threads.
    """

    def __init__(self, bundle: Bundle, request: ProviderRequest, precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
        self.bundle = bundle
        self.request = request
        # The graphs' precision really used: a variant the bundle lacks falls back to float32.
        self.precision = precision
        if precision != "float32" and precision not in bundle.manifest.variants:
            have = ", ".join(bundle.manifest.variants) or "none"
            warnings.warn(
                f"model '{bundle.manifest.name}' has no {precision} variant (it has: {have}); running float32",
                RuntimeWarning,
                stacklevel=3,
            )
            self.precision = "float32"
        self.prior: Prior = make_prior(bundle.manifest.prior, bundle.manifest.latent_dim)
        # What `sample` draws from: the bundle's fitted sampler (a density of the training codes),
        # else the prior itself. Built here so a bad sampler fails at load, not at the first sample.
        spec = bundle.manifest.sampler
        self.sampler: Prior = self.prior if spec is None else make_prior(spec, bundle.manifest.latent_dim)
        # role -> how its session runs (SessionRunner on CPU; CudaRunner / CudaGraphRunner on CUDA).
        # Created on first use, so `sample` and `decode` never build the encoder's session.
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()
        self._range_bits = _range_bits(bundle.manifest.image.value_range)
        for role in ("encoder", "decoder"):
            verify_file(bundle, role, self.precision)

    # -- metadata -------------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def latent_dim(self) -> int:
        return self.manifest.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.manifest.image.shape

    @property
    def label_decoder(self) -> bool:
        """Whether the decoder takes the label one-hot beside the code (a supervised AAE): every
        decoding operation then needs a label, and `restyle` works."""
        return self.manifest.label_input is not None

    def provider(self, role: str = "decoder") -> str:
        """'cpu' or 'cuda': what really runs this graph (creates a session first when CUDA is to be
        tried, since only a session tells whether it came up)."""
        return self._runner(role).provider

    def threads(self) -> int:
        """Intra-op CPU threads this model's sessions run on (0: a shared pool made by other code)."""
        return session_threads(self.request)

    def __repr__(self) -> str:
        m = self.manifest
        return f"Model(name={m.name!r}, kind={m.kind!r}, latent_dim={m.latent_dim}, path={str(self.bundle.path)!r})"

    # -- sessions -------------------------------------------------------------------------------
    def _runner(self, role: str) -> Runner:
        runner = self._runners.get(role)
        if runner is not None:
            return runner
        with self._lock:
            if role not in self._runners:
                self._runners[role] = self._create(role)
            return self._runners[role]

    def _session(self, role: str) -> Any:
        """The ONNX Runtime session of a graph (under CUDA graphs: the one of the first batch size)."""
        return self._runner(role).session

    def session_for(self, role: str, rows: int) -> Any:
        """The ONNX Runtime session that runs a batch of `rows` through `role` ("encoder" or
        "decoder"), created if needed: for benchmarks that compare with a bare `session.run`."""
        if role not in ("encoder", "decoder"):
            raise UsageError(f"unknown graph '{role}'; choose encoder or decoder")
        return self._runner(role).session_for(rows)

    def graph_spec(self, role: str) -> GraphSpec:
        """The manifest entry of the graph this model runs for `role`, at its precision."""
        return self.manifest.graph(role, self.precision)

    def _file(self, role: str) -> Path:
        return self.bundle.file(role, self.precision)

    def _create(self, role: str) -> Runner:
        path = self._file(role)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from exc
        # Hash the very bytes handed to ONNX Runtime, so a file swapped after load() is still caught.
        if hashlib.sha256(data).hexdigest() != self.graph_spec(role).sha256:
            raise BundleError(f"{path}: sha256 mismatch; the file changed after loading: re-export or reinstall")

        def make(small_batch: bool) -> tuple[Any, str]:
            session, active = self._new_session(role, data, small_batch)
            self._check_io(role, session)
            return session, active

        spec = self.graph_spec(role)
        per_item = {name: tuple(int(d) for d in shape[1:]) for name, shape in spec.outputs.items()}
        return build_runner(make, self.request, next(iter(spec.inputs)), per_item)

    def _new_session(self, role: str, data: bytes, small_batch: bool = False) -> tuple[Any, str]:
        try:
            return create_session(data, self.request, small_batch)
        except BundleError:
            raise
        except Exception as exc:  # ONNX Runtime raises its own exception types for bad graphs
            if type(exc).__module__.startswith("onnxruntime"):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BundleError(f"{self._file(role)} is not a usable ONNX graph: {first}") from exc
            raise

    def _check_io(self, role: str, session: Any) -> None:
        spec = self.graph_spec(role)
        got_in = {i.name: i.shape for i in session.get_inputs()}
        got_out = {o.name: o.shape for o in session.get_outputs()}
        for kind, want, got in (("input", spec.inputs, got_in), ("output", spec.outputs, got_out)):
            for name, shape in want.items():
                if name not in got:
                    raise BundleError(
                        f"{self._file(role)}: graph has no {kind} '{name}' (it has {', '.join(got)}); "
                        "the graph does not match model.json"
                    )
                fixed = [d if isinstance(d, int) else None for d in got[name]]
                if fixed[1:] != shape[1:]:
                    raise BundleError(
                        f"{self._file(role)}: {kind} '{name}' has shape {got[name]}, model.json says "
                        f"{shape}; the graph does not match model.json"
                    )
                if isinstance(got[name][0], int):
                    raise BundleError(
                        f"{self._file(role)}: {kind} '{name}' has a fixed batch size {got[name][0]}; "
                        "bundles need a dynamic batch axis: re-export"
                    )

    # -- core operations ------------------------------------------------------------------------
    def decode(self, z: np.ndarray, labels: Any = None, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """Latent codes (N, D) -> images (N, C, H, W) float32 in [0, 1].

        `labels` is for a label-conditioned decoder (`label_decoder`, a supervised AAE), where it is
        required: one label for every code (a class name or index), N labels, or one-hot rows (N, K).
        Other models take none."""
        z = self._check_latents(z)
        feeds = self._decoder_feeds(z, labels)
        runner = self._runner("decoder")
        if z.shape[0] <= chunk:  # one call: hand back ONNX Runtime's own array, no copy
            return runner.run(_IMAGES, feeds)[0]
        out = np.empty((z.shape[0], *self.image_shape), dtype=np.float32)
        for start in range(0, z.shape[0], chunk):
            part = {name: a[start : start + chunk] for name, a in feeds.items()}
            (out[start : start + len(part[DECODER_INPUT])],) = runner.run([DECODER_OUTPUTS[0]], part)
        return out

    def decode_logits(self, z: np.ndarray, labels: Any = None) -> np.ndarray:
        """Latent codes (N, D) -> Bernoulli logits (N, C, H, W), for likelihoods without log(0)."""
        z = self._check_latents(z)
        (logits,) = self._runner("decoder").run([DECODER_OUTPUTS[1]], self._decoder_feeds(z, labels))
        return logits

    def _decoder_feeds(self, z: np.ndarray, labels: Any) -> dict[str, np.ndarray]:
        y = self.label_rows(labels, len(z))
        if y is None:
            return {DECODER_INPUT: z}
        return {DECODER_INPUT: z, self.manifest.label_input: y}  # type: ignore[dict-item]

    def label_rows(self, labels: Any, n: int) -> np.ndarray | None:
        """The decoder's label input for n codes: one-hot float32 (n, K), or None for a decoder of
        the code alone. `labels`: one label for all (name or index), a sequence of n labels, or rows
        (n, K) of class weights in [0, 1] summing to 1 (one-hot; mixtures are accepted as given)."""
        m = self.manifest
        if m.label_input is None:
            if labels is not None:
                raise UsageError(f"model '{m.name}' decodes the code alone and takes no labels; drop the labels")
            return None
        names = m.labels or []
        k = len(names)
        if labels is None:
            raise UsageError(
                f"model '{m.name}' decodes every code as a label (supervised AAE): give labels, one for all "
                f"or one per code, from {', '.join(names)}"
            )
        if isinstance(labels, (str, int, np.integer)) or (isinstance(labels, np.ndarray) and labels.ndim == 0):
            return np.repeat(np.eye(k, dtype=np.float32)[[self.label_index(labels)]], n, axis=0)
        if isinstance(labels, np.ndarray) and labels.ndim == 2:
            if labels.shape != (n, k):
                raise InputError(
                    f"label one-hots must have shape ({n}, {k}) for {n} codes of model '{m.name}' "
                    f"({k} labels: {', '.join(names)}), got {labels.shape}"
                )
            if not np.issubdtype(labels.dtype, np.number) or np.issubdtype(labels.dtype, np.complexfloating):
                raise InputError(f"label one-hots must be numbers, got dtype {labels.dtype}")
            y = np.ascontiguousarray(labels, dtype=np.float32)
            if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1 or np.abs(y.sum(1) - 1).max() > 1e-3:
                raise InputError("label one-hots must hold values in [0, 1] with each row summing to 1")
            return y
        try:
            items = list(labels)
        except TypeError:
            raise UsageError(f"labels must be a label, a list of labels or one-hot rows, got {labels!r}") from None
        if len(items) != n:
            raise InputError(f"{len(items)} labels for {n} codes: give one label per code, or one label for all")
        return np.eye(k, dtype=np.float32)[self._label_indices(items)]

    def encode(self, images: np.ndarray, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) in [0, 1] -> (mu, logvar), each (N, D) float32."""
        x = self._check_images(images)
        runner = self._runner("encoder")
        if x.shape[0] <= chunk:
            mu, logvar = runner.run(_CODES, {ENCODER_INPUT: x})
            return mu, logvar
        mu = np.empty((x.shape[0], self.latent_dim), dtype=np.float32)
        logvar = np.empty_like(mu)
        for start in range(0, x.shape[0], chunk):
            part = x[start : start + chunk]
            m, lv = runner.run(list(ENCODER_OUTPUTS), {ENCODER_INPUT: part})
            mu[start : start + len(part)] = m
            logvar[start : start + len(part)] = lv
        return mu, logvar

    # -- device-resident calls (CUDA) -----------------------------------------------------------
    def decode_on_device(self, z: Any) -> Any:
        """Codes already on the GPU -> images on the GPU, with no host copy either way.

        `z` is an `onnxruntime.OrtValue` (N, D) float32 on this model's CUDA device, e.g.
        `OrtValue.ortvalue_from_numpy(z, "cuda", 0)`; returns an OrtValue (N, C, H, W). Only on the
        CUDA provider, and not in CUDA-graph mode (its output buffers are reused by the next call).
        """
        if self.label_decoder:
            raise UsageError(f"model '{self.name}' has a label input; decode_on_device feeds z alone: use decode()")
        (x,) = self._runner("decoder").run_device([DECODER_OUTPUTS[0]], {DECODER_INPUT: z})
        return x

    def encode_on_device(self, images: Any) -> tuple[Any, Any]:
        """Images already on the GPU (an OrtValue (N, C, H, W)) -> (mu, logvar) OrtValues (N, D) on the GPU."""
        mu, logvar = self._runner("encoder").run_device(list(ENCODER_OUTPUTS), {ENCODER_INPUT: images})
        return mu, logvar

    def iter_latents(
        self, n: int, seed: int | None = None, label: int | str | None = None, from_prior: bool = False
    ) -> Iterator[np.ndarray]:
        """Draw n codes in blocks of up to DRAW_CHUNK rows, (m, D) each, from the bundle's sampler
        (its fitted density of the training codes, where it has one) or, with `from_prior` or
        without a sampler, from the prior; with `label`, from that class's region. Every sampling
        path draws through here, so a seed gives the same codes whether they are taken at once or
        streamed. A label-conditioned decoder (supervised AAE) has a label-free prior: the label is
        checked, the codes do not depend on it."""
        n = check_count(n)
        index = None if label is None else self.label_index(label)
        source = self.prior if from_prior else self.sampler
        rng = np.random.default_rng(seed)
        for start in range(0, n, DRAW_CHUNK):
            m = min(DRAW_CHUNK, n - start)
            labels = None if index is None or not self.manifest.conditional else np.full(m, index, dtype=np.int64)
            yield source.sample(m, rng, labels)

    def sample_latents(
        self, n: int, seed: int | None = None, label: int | str | None = None, from_prior: bool = False
    ) -> np.ndarray:
        """Draw n codes (n, D) as `sample` does; with `label`, from that class's region."""
        return np.concatenate(list(self.iter_latents(n, seed, label, from_prior)))

    def iter_samples(
        self,
        n: int,
        seed: int | None = None,
        label: int | str | None = None,
        chunk: int = DEFAULT_CHUNK,
        from_prior: bool = False,
    ) -> Iterator[np.ndarray]:
        """Generate n images as blocks of up to `chunk` images (m, C, H, W): memory stays bounded
        however large n is. Concatenated, the blocks equal `sample(n, seed, label)`."""
        self._need_label(label, "sample")
        for z in self.iter_latents(n, seed, label, from_prior):
            for start in range(0, len(z), chunk):
                yield self.decode(z[start : start + chunk], self._label_arg(label), chunk=chunk)

    def sample(
        self,
        n: int,
        seed: int | None = None,
        label: int | str | None = None,
        chunk: int = DEFAULT_CHUNK,
        from_prior: bool = False,
    ) -> np.ndarray:
        """Generate n images (n, C, H, W) in [0, 1]; the same seed gives the same images. Codes come
        from the bundle's sampler where it has one (a density fitted to the training codes, which
        some models fill unevenly), else from the prior; `from_prior` draws from the prior always.
        `label` draws that class: required by a label-conditioned decoder (supervised AAE), which
        draws the style from its label-free prior and decodes it as the label."""
        self._need_label(label, "sample")
        return self.decode(self.sample_latents(n, seed, label, from_prior), self._label_arg(label), chunk=chunk)

    def _need_label(self, label: Any, operation: str) -> None:
        if self.label_decoder and label is None:
            raise UsageError(
                f"model '{self.name}' decodes every code as a label (supervised AAE): {operation} needs a label, "
                f"one of {', '.join(self.label_names())} (`label=` in Python and HTTP, --label on the command line)"
            )

    def _label_arg(self, label: Any) -> Any:
        """What decode() takes for one label: the label for a label decoder, else nothing (the
        prior's region already carries it)."""
        return label if self.label_decoder else None

    def restyle(self, images: np.ndarray, labels: Sequence[int | str] | None = None) -> np.ndarray:
        """Each image's style drawn as each label (supervised AAE, Makhzani et al. 2015, Fig. 7):
        encode the images to their codes (the style, label-free), decode every code with every
        requested label -> (n_images, n_labels, C, H, W). `labels`: names or indices; default all."""
        if not self.label_decoder:
            raise UsageError(
                f"model '{self.name}' has no label input on its decoder, so it cannot restyle; "
                "use a supervised AAE such as mnist-saae"
            )
        chosen = self.label_names() if labels is None else labels
        if isinstance(chosen, (str, int, np.integer)):
            chosen = [chosen]
        index = self._label_indices(chosen)
        if not index:
            raise UsageError("restyle needs at least one label")
        mu, _ = self.encode(images)  # (N, D)
        n, k = len(mu), len(index)
        z = np.repeat(mu, k, axis=0)  # (N * L, D): image i's code once per label
        y = np.tile(np.eye(len(self.label_names()), dtype=np.float32)[index], (n, 1))  # (N * L, K)
        return self.decode(z, y).reshape(n, k, *self.image_shape)

    def _label_indices(self, items: Sequence[Any]) -> list[int]:
        """Class names or indices (numpy scalars too) -> region indices, each checked by label_index."""
        return [self.label_index(v.item() if isinstance(v, np.generic) else v) for v in items]

    def label_index(self, label: int | str) -> int:
        """Map a class name or index to the prior's region index; reject labels the model lacks."""
        m = self.manifest
        if not (m.conditional or m.label_input) or m.labels is None:
            raise UsageError(
                f"model '{m.name}' is not label-conditioned, so it cannot sample by label; "
                "sample without a label or pick a conditional model (see vaegen_infer.models())"
            )
        if isinstance(label, str) and label in m.labels:
            return m.labels.index(label)
        try:
            index = int(label)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(m.labels) or isinstance(label, bool):
            raise UsageError(f"unknown label {label!r} for model '{m.name}'; valid labels: {', '.join(m.labels)}")
        return index

    # -- likelihood -------------------------------------------------------------------------------
    @property
    def score_units(self) -> str:
        """How `score` results are best reported: "bits/dim" for 8-bit data, else "nats"."""
        return "bits/dim" if self.manifest.image.data_kind == "8bit" else "nats"

    def score(
        self, images: np.ndarray, k: int = 100, seed: int | None = 0, rows_per_run: int | None = None
    ) -> np.ndarray:
        """Per-image importance-weighted lower bound on log p(x) (IWAE, Burda et al. 2015), in nats, (N,).

        log p(x) >= log (1/k) sum_j p(x | z_j) p(z_j) / q(z_j | x), z_j ~ q(z | x), through the
        exported graphs. Higher means more like the training data: an anomaly scores low. The
        likelihood is the bundle's: Bernoulli on the pixels as given (exact for binary data), or for
        8-bit data the discretised Gaussian over the 256 levels (images are rounded to those levels
        first). `likelihoods.bits_per_dim(score, C * H * W)` converts to bits per dimension.
        Each image's k codes are decoded in runs of about `rows_per_run` rows; by default 8,192, fewer
        for large images, so that one run's (rows, C * H * W) float64 likelihood terms stay within
        SCORE_RUN_ELEMENTS (64x64 RGB: 1,365 rows). The runs fix how the codes are drawn, so the
        same `rows_per_run` and seed give the same scores."""
        from . import likelihoods as lk

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 100_000:
            raise UsageError(f"k (importance samples) must be an integer in 1-100000, got {k!r}")
        if self.label_decoder:
            raise UsageError(
                f"model '{self.name}' decodes p(x | label, z); score needs p(x | z) and is not supported for it"
            )
        x = self.check_images(images)
        spec = self.manifest.image
        eight_bit = spec.data_kind == "8bit"
        if eight_bit:
            x = lk.quantise_8bit(x).astype(np.float32)
        if not self.prior.has_density:
            raise UsageError(f"{self.name}: its {self.prior.name!r} prior has no density, so it cannot score")
        mu, logvar = self.encode(x)  # (N, D) each
        if bool((logvar <= DETERMINISTIC_LOGVAR).all()):
            # A point mass is still a valid proposal, so the bound holds, but every draw is mu and
            # log q(z | x) = -0.5 * (log 2 pi + logvar + eps^2) is +8.6 nats per dimension on
            # average: the bound is log p(x | mu) + log p(mu) - 8.6 D, below log p(x) by a constant.
            offset = -0.5 * (math.log(2 * math.pi) + DETERMINISTIC_LOGVAR + 1.0) * self.latent_dim
            warnings.warn(
                f"model '{self.name}' has a deterministic encoder (a point mass at mu): its bound is "
                f"log p(x | mu) + log p(mu) - {offset:.1f} nats, loose by construction; compare scores "
                "within this model only",
                RuntimeWarning,
                stacklevel=2,
            )
        rng = np.random.default_rng(seed)
        if rows_per_run is None:
            rows_per_run = max(1, min(SCORE_RUN_ROWS, SCORE_RUN_ELEMENTS // math.prod(self.image_shape)))
        per_run = max(1, rows_per_run // k)  # images per decoder run
        out = np.empty(len(x), np.float64)
        flat = x.reshape(len(x), -1)  # (N, P)
        for start in range(0, len(x), per_run):
            sl = slice(start, start + per_run)
            m = len(flat[sl])
            eps = rng.standard_normal((k, m, self.latent_dim), dtype=np.float32)
            z = mu[sl][None] + np.exp(0.5 * logvar[sl])[None] * eps  # (k, m, D)
            zz = np.ascontiguousarray(z.reshape(k * m, -1))
            target = np.broadcast_to(flat[sl][None], (k, m, flat.shape[1]))
            if spec.likelihood == "bernoulli":
                (logits,) = self._runner("decoder").run([DECODER_OUTPUTS[1]], {DECODER_INPUT: zz})
                log_px = lk.log_bernoulli(target, logits.reshape(k, m, -1).astype(np.float64))
            else:
                mean = self.decode(zz).reshape(k, m, -1)
                if eight_bit:
                    log_px = lk.log_gaussian_discretised(target, mean, spec.log_sigma)
                else:
                    log_px = lk.log_gaussian(target, mean, spec.log_sigma)
            log_pz = np.asarray(self.prior.log_density(zz), np.float64).reshape(k, m)
            log_qz = lk.log_normal_diag(z.astype(np.float64), mu[sl][None], logvar[sl][None])  # (k, m)
            log_w = log_px + log_pz - log_qz  # (k, m)
            top = log_w.max(0)
            out[sl] = top + np.log(np.exp(log_w - top).mean(0))
        return out

    def label_names(self) -> list[str]:
        """The model's class names ([] when it has none)."""
        return list(self.manifest.labels or [])

    def sample_per_label(self, per_label: int, seed: int | None = None) -> np.ndarray:
        """`per_label` samples of every class of a label-conditioned model -> (L, per_label, C, H, W).

        Class i is drawn with seed + i (a random seed is chosen when `seed` is None), so each row is
        what `sample(per_label, seed=seed + i, label=i)` gives: the one per-label rule, used by the
        CLI, the server and the evaluator alike."""
        names = self.label_names()
        self.label_index(names[0] if names else 0)  # refuses unconditional models
        per_label = check_count(per_label)
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        return np.stack([self.sample(per_label, seed=seed + i, label=i) for i in range(len(names))])

    def load_images(
        self,
        items: Sequence[str | os.PathLike[str]],
        strict: bool = False,
        invert: bool = False,
        note: Callable[[str], None] | None = None,
    ) -> tuple[np.ndarray, list[Path]]:
        """Image files, directories or glob patterns -> (this model's input (N, C, H, W) float32 in
        [0, 1], the N paths), each converted to the model's channels and size as the bundle says.
        `strict` refuses images of another size; `invert` flips grey levels; `note` receives one
        line per conversion worth knowing (resized, light background...)."""
        from .images import load_images
        from .preprocess import Preprocess

        pre = Preprocess.from_image_spec(self.manifest.image)  # crop and resize filter as in training
        return load_images(items, self.image_shape, strict=strict, invert=invert, note=note, preprocess=pre)

    # -- latent-space operations --------------------------------------------------------------
    def reconstruct(
        self, images: np.ndarray, sample: bool = False, seed: int | None = None, labels: Any = None
    ) -> np.ndarray:
        """Encode and decode (N, C, H, W): decodes mu by default, or z ~ q(z|x) with `sample=True`.
        A label-conditioned decoder needs `labels` (the images' classes; others restyle them)."""
        if self.label_decoder and labels is None:
            raise UsageError(
                f"model '{self.name}' decodes every code as a label (supervised AAE): reconstruct needs the images' "
                "labels (or use restyle to draw them as every label)"
            )
        mu, logvar = self.encode(images)
        if sample:
            eps = np.random.default_rng(seed).standard_normal(mu.shape, dtype=np.float32)
            mu = mu + np.exp(0.5 * logvar) * eps  # z = mu + sigma * eps, sigma = exp(logvar / 2)
        return self.decode(mu, labels)

    def as_latents(self, items: Sequence[np.ndarray]) -> np.ndarray:
        """Each item is an image (C, H, W) / (1, C, H, W), encoded to its mu, or a code (D,) -> (K, D)."""
        codes: list[np.ndarray] = []
        for item in items:
            a = np.asarray(item)
            if a.shape in ((self.latent_dim,), (1, self.latent_dim)):
                codes.append(self._check_latents(a)[0])
            elif a.shape in (self.image_shape, (1, *self.image_shape)):
                codes.append(self.encode(a)[0][0])
            else:
                raise InputError(
                    f"an anchor must be an image {self.image_shape} or a code ({self.latent_dim},), got {a.shape}"
                )
        return np.stack(codes)

    def interpolate(
        self,
        a: np.ndarray,
        b: np.ndarray,
        *more: np.ndarray,
        steps: int = 8,
        method: str = "slerp",
        label: int | str | None = None,
    ) -> np.ndarray:
        """Images along a path a -> b (-> more...): `steps` per segment, ends included. Each anchor is
        an image (encoded to its mu) or a code.

        Returns ((K - 1) * (steps - 1) + 1, C, H, W) for K anchors. `method` is lerp or slerp.
        `label`: the label every frame is drawn as (label-conditioned decoders only, and required).
        """
        self._need_label(label, "interpolate")
        return self.decode(self.interpolate_latents(a, b, *more, steps=steps, method=method), label)

    def interpolate_latents(
        self, a: np.ndarray, b: np.ndarray, *more: np.ndarray, steps: int = 8, method: str = "slerp"
    ) -> np.ndarray:
        """The codes `interpolate` decodes, ((K - 1) * (steps - 1) + 1, D)."""
        if method not in latent.METHODS:
            raise UsageError(f"unknown interpolation method '{method}'; choose {' or '.join(latent.METHODS)}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise UsageError(f"steps must be at least 2 (both ends included), got {steps!r}")
        return latent.path(self.as_latents([a, b, *more]), steps, method)

    def attribute(self, name: str) -> Attribute:
        """A named direction stored in the bundle; unknown names list the valid ones."""
        attrs = self.manifest.attributes
        if name not in attrs:
            valid = ", ".join(attrs) or "none (add one with `vaegen-infer attributes add`)"
            raise UsageError(
                f"unknown attribute '{name}' for model '{self.name}'{did_you_mean(name, attrs)}; "
                f"valid attributes: {valid}"
            )
        return attrs[name]

    @staticmethod
    def amounts(amounts: Sequence[float] | float) -> list[float]:
        """A scalar or a sequence of amounts -> a non-empty list of finite floats."""
        if isinstance(amounts, (int, float, np.integer, np.floating)) and not isinstance(amounts, bool):
            values = [float(amounts)]
        else:
            try:
                values = [float(a) for a in amounts]  # type: ignore[union-attr]
            except (TypeError, ValueError):
                raise UsageError(f"amounts must be a number or a list of numbers, got {amounts!r}") from None
        if not values or not all(np.isfinite(values)):
            raise UsageError(f"amounts must be a non-empty list of finite numbers, got {amounts!r}")
        return values

    def shift_latents(self, images: np.ndarray, attribute: str, amounts: Sequence[float] | float) -> np.ndarray:
        """The codes `shift` decodes: mu(x) + amount * v for each image and amount, (N, A, D)."""
        v = self.attribute(attribute).vector  # (D,)
        amounts_arr = np.asarray(self.amounts(amounts), dtype=np.float32)  # (A,)
        mu, _ = self.encode(images)  # (N, D)
        return mu[:, None, :] + amounts_arr[None, :, None] * v[None, None, :]  # (N, A, D)

    def shift(
        self,
        images: np.ndarray,
        attribute: str,
        amounts: Sequence[float] | float,
        label: int | str | None = None,
    ) -> np.ndarray:
        """Add `amount * v` to each image's mu and decode -> (N, len(amounts), C, H, W). `amounts` is
        a list of numbers or one number; `label` as for `interpolate`."""
        self._need_label(label, "shift")
        z = self.shift_latents(images, attribute, amounts)  # (N, A, D)
        n, k = z.shape[:2]
        return self.decode(z.reshape(n * k, -1), label).reshape(n, k, *self.image_shape)

    def dims_by_importance(self) -> list[int]:
        """Latent dimensions, most used first: by KL per dimension on validation data when the
        bundle records it (VAEs), else by the variance of mu across validation images (AAEs have
        no KL term), else in index order."""
        stats = self.manifest.latent_stats
        score = stats.get("kl_per_dim") or stats.get("mu_variance_per_dim")
        if score is None:
            return list(range(self.latent_dim))
        return [int(i) for i in np.argsort(-np.asarray(score), kind="stable")]

    def traversal_dims(self, dims: Sequence[int] | None = None) -> list[int]:
        """The dimensions a traversal shows: `dims` (checked), else the 8 most used."""
        order = [int(d) for d in dims] if dims is not None else self.dims_by_importance()[:8]
        bad = [d for d in order if not 0 <= d < self.latent_dim]
        if bad or not order:
            raise UsageError(f"dimensions must lie in 0-{self.latent_dim - 1}, got {list(order)}")
        return order

    @staticmethod
    def traversal_offsets(span: float, steps: int) -> np.ndarray:
        """The offsets of a traversal's columns, in prior standard deviations: (steps,) from -span to span."""
        number = isinstance(span, (int, float, np.number)) and not isinstance(span, bool)
        if not number or not np.isfinite(span) or span <= 0:
            raise UsageError(f"span must be a positive number of standard deviations, got {span!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise UsageError(f"steps must be at least 2, got {steps!r}")
        return np.linspace(-span, span, steps, dtype=np.float32)

    def traverse_latents(
        self, image: np.ndarray | None = None, dims: Sequence[int] | None = None, span: float = 3.0, steps: int = 9
    ) -> np.ndarray:
        """The codes `traverse` decodes, (len(dims), steps, D): row i, column j is the centre with
        dimension dims[i] set to prior_mean + offset_j * prior_std."""
        values = self.traversal_offsets(span, steps)
        order = self.traversal_dims(dims)
        base = self.prior.mean() if image is None else self.as_latents([image])[0]
        return latent.traversal(base, order, values, self.prior.mean(), self.prior.std())  # (R, steps, D)

    def traverse(
        self,
        image: np.ndarray | None = None,
        dims: Sequence[int] | None = None,
        span: float = 3.0,
        steps: int = 9,
        label: int | str | None = None,
    ) -> np.ndarray:
        """Vary one dimension at a time over the prior's mean +- span prior standard deviations, the
        others held at the image's mu (or at the prior's mean when no image is given)
        -> (len(dims), steps, C, H, W). Default dims: the 8 most used (`dims_by_importance`)."""
        self._need_label(label, "traverse")
        codes = self.traverse_latents(image, dims, span, steps)
        r = codes.shape[0]
        return self.decode(codes.reshape(r * steps, -1), label).reshape(r, steps, *self.image_shape)

    def latent_pair(self, dims: Sequence[int] | None = None) -> tuple[int, int]:
        """Two dimensions for a 2-D view (manifold, latent map): `dims` (checked), else the two most
        used, in index order (so a 2-D model shows dimension 0 across and 1 up)."""
        if self.latent_dim < 2:
            raise UsageError("a 2-D view needs a latent of at least 2 dimensions")
        if dims is None:
            a, b = sorted(self.dims_by_importance()[:2])
            return a, b
        pair = [int(d) for d in dims]
        if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= d < self.latent_dim for d in pair):
            raise UsageError(f"give two different dimensions in 0-{self.latent_dim - 1}, got {list(dims)}")
        return pair[0], pair[1]

    def manifold(self, n: int = 20, dims: Sequence[int] | None = None, label: int | str | None = None) -> np.ndarray:
        """Decode a grid over the prior's quantiles (i + 0.5) / n of two dimensions (default: the two
        most used, `latent_pair`; the rest held at the prior's mean) -> (n, n, C, H, W); columns go
        along the first dimension, rows down the second (highest value at the top)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= 100:
            raise UsageError(f"manifold size must be an integer in 2-100, got {n!r}")
        dx, dy = self.latent_pair(dims)
        q = (np.arange(n) + 0.5) / n
        values = self.prior.ppf(q)  # (n, D) marginal quantiles per dimension
        z = np.tile(self.prior.mean(), (n, n, 1))  # (n, n, D)
        z[:, :, dx] = values[None, :, dx]
        z[:, :, dy] = values[::-1, None, dy]  # top row = highest value, as on a plot's y axis
        self._need_label(label, "manifold")
        return self.decode(z.reshape(n * n, -1), label).reshape(n, n, *self.image_shape)

    # -- input checks ---------------------------------------------------------------------------
    def _check_latents(self, z: np.ndarray) -> np.ndarray:
        if (  # the common case, float32 (N, D) as sample_latents makes it: ~2 us instead of ~3.5
            type(z) is np.ndarray
            and z.dtype == _F32
            and z.ndim == 2
            and z.shape[0] > 0
            and z.shape[1] == self.latent_dim
            and z.flags.c_contiguous
        ):
            if not np.isfinite(z).all():
                raise InputError("latent codes contain NaN or infinity")
            return z
        z = np.asarray(z)
        if z.dtype == object or not np.issubdtype(z.dtype, np.number):
            raise InputError(f"latent codes must be numbers, got dtype {z.dtype}")
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InputError(
                f"latent codes must have shape (N, {self.latent_dim}) for model '{self.name}', got {z.shape}"
            )
        if z.shape[0] == 0:
            raise InputError("no latent codes given (N = 0)")
        z = np.ascontiguousarray(z, dtype=np.float32)
        if not np.isfinite(z).all():
            raise InputError("latent codes contain NaN or infinity")
        return z

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Validate an image batch for this model -> float32 (N, C, H, W), C-contiguous.

        Accepts (N, C, H, W) or one image (C, H, W), floats in the manifest's value range, or uint8
        0-255 (what `np.asarray(PIL.Image)` gives, in channel-first order), scaled by 1/255 once.
        Raises InputError naming the shape or values that are wrong."""
        shape = self.image_shape
        x = images
        if not (  # the common case, float32 (N, C, H, W) contiguous, skips the conversions
            type(x) is np.ndarray
            and x.dtype == _F32
            and x.ndim == 4
            and x.shape[0] > 0
            and x.shape[1:] == shape
            and x.flags.c_contiguous
        ):
            x = np.asarray(images)
            given = x.shape
            if x.dtype == object or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
                raise InputError(f"images must be real numbers, got dtype {x.dtype}")
            if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
                raise InputError(
                    f"images of dtype {x.dtype} are ambiguous: pass uint8 (0-255) or floats in "
                    f"[{self.manifest.image.value_range[0]:g}, {self.manifest.image.value_range[1]:g}]"
                )
            if x.ndim == 3 and x.shape == shape:
                x = x[None]
            if x.ndim != 4 or tuple(x.shape[1:]) != shape:
                c, h, w = shape
                raise InputError(
                    f"images must have shape (N, {c}, {h}, {w}) or ({c}, {h}, {w}) for model '{self.name}', "
                    f"got {given}" + (" (channels last? transpose to channels first)" if given[-1:] == (c,) else "")
                )
            if x.shape[0] == 0:
                raise InputError("no images given (N = 0)")
            if x.dtype == np.uint8:
                x = x.astype(np.float32) * np.float32(1 / 255)
            x = np.ascontiguousarray(x, dtype=np.float32)
        # One pass proves the common case, every value in [0, hi] and finite (see _range_bits):
        # 1.9 us of a batch-1 encode against 3.8 us for min and max. Anything else takes the
        # exact checks below, which also accept -0.0 and the 1e-6 tolerance, and name the problem.
        bits = self._range_bits
        if bits is not None and x.view(np.uint32).max() <= bits:
            return x
        # Two passes, not three: min and max propagate NaN and reach +-inf, so they also catch
        # non-finite pixels (an isfinite pass cost ~2 us of a ~130 us batch-1 encode).
        x_min, x_max = x.min(), x.max()
        if not (np.isfinite(x_min) and np.isfinite(x_max)):
            raise InputError("images contain NaN or infinity")
        lo, hi = self.manifest.image.value_range
        if x_min < lo - 1e-6 or x_max > hi + 1e-6:
            raise InputError(f"image values must lie in [{lo:g}, {hi:g}], got [{x_min:g}, {x_max:g}]")
        return x

    _check_images = check_images


def check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise UsageError(f"n must be an integer, got {n!r}")
    if n < 1:
        raise UsageError(f"n must be at least 1, got {n}")
    if n > MAX_SAMPLES:
        raise UsageError(f"n = {n} is more than {MAX_SAMPLES:,}; split the request into several runs")
    return int(n)


def load(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    providers: str = "auto",
    device_id: int = 0,
    threads: int | None = None,
    tf32: bool = False,
    cudnn_conv_algo_search: str = "HEURISTIC",
    cuda_graph: bool = False,
    parallel: str = "batch",
    precision: str = "float32",
    small_batch_threads: int | None = None,
) -> Model:
    """Load a bundle by name (see `vaegen_infer.models()`) or by directory path.

    The manifest is validated and every graph's sha256 checked now; ONNX Runtime sessions are
    created on first use. `providers`: "auto" (CUDA if it really runs, else CPU), "cpu" or "cuda".
    `threads`: CPU threads (default: physical cores). `parallel`: how the CPU uses them, "batch"
    (default: a batch of 64 rows or more is cut into chunks that the threads compute at once on
    one single-threaded session) or "intra-op" (ONNX Runtime's own thread pool). CUDA only:
    `device_id`, `tf32` (off by default: results then match the CPU's), `cudnn_conv_algo_search`
    (HEURISTIC, EXHAUSTIVE or DEFAULT), `cuda_graph` (capture one CUDA graph per batch size; for
    servers that use a few fixed batch sizes). `precision`: "float32" (the default), "int8" (statically
    quantised graphs, for CPUs) or "fp16" (half precision, for GPUs), where the bundle carries that
    variant (`model.json` `variants`); otherwise float32, with a one-line RuntimeWarning.
    `small_batch_threads`: CPU threads for batches under 64 rows (default: `threads`, on ONNX
    Runtime's spinning pool, fastest for one caller); 1 for a server, whose other threads need the
    cores that a spinning pool would take.
    """
    request = ProviderRequest(
        providers, device_id, threads, tf32, cudnn_conv_algo_search, cuda_graph, parallel, small_batch_threads
    )
    return Model(open_bundle(model), request, precision)
