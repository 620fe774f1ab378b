"""One dataclass per concern, saved beside the weights and rebuilt from them (`ModelConfig(**d)`).

Both validate themselves in `__post_init__` (as `vaegen_infer.providers.ProviderRequest` does): a
bad field raises `UsageError` naming the field and the values it takes, whether the config came
from the CLI, from Python or from an old checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vaegen_infer.errors import UsageError
from vaegen_infer.manifest import ASPECTS, RESIZE_FILTERS

# Priors learned with the model (VAE only). Each exports as a runtime prior with a closed-form
# density: `vamp` (Tomczak & Welling 2018, p(z) = 1/K sum_k q(z | u_k) over K learned pseudo-inputs
# u_k) becomes the runtime's `gaussian-mixture` with the encoder's posteriors at the u_k.
LEARNED_PRIORS = ("vamp",)
KINDS = ("vae", "aae")
ARCH_NAMES = ("conv", "mlp")
ACTIVATION_NAMES = ("relu", "elu", "silu", "gelu")
POSTERIORS = ("gaussian", "deterministic")
# bernoulli: BCE on grey levels (binarised MNIST); gaussian: N(x; mean, sigma^2) per pixel with one
# shared sigma calibrated as in the sigma-VAE (see train/fit.py, `gaussian_nll`).
LIKELIHOODS = ("bernoulli", "gaussian")
LR_SCHEDULES = ("constant", "cosine")
BINARIZE = ("none", "dynamic")
KEEP = ("best", "last")
IW_ESTIMATORS = ("iwae", "dreg")
# The VAE's objectives, computed by train/objectives.py's `objective_loss` (listed here so that the
# config does not import torch).
OBJECTIVES = ("elbo", "beta-vae", "beta-tcvae")
DEFAULT_EPOCHS = 30
# A VAE that sees fewer images than this collapses to the average image (measured: 300 made-up RGB
# disc pictures at 64x64, 30 epochs = 8,100 images, KL 1.0 nat and grey blurs; 300 epochs = 81,000
# images, KL 132 nats and sharp reconstructions), so `fit` without --epochs runs more passes over a
# small set.
MIN_DEFAULT_IMAGES = 100_000


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:  # also refuses NaN
        raise UsageError(f"{name} must be >= {low:g}; got {value!r}")


def _in_range(name: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        raise UsageError(f"{name} must lie in [{low:g}, {high:g}{')' if high_open else ']'}; got {value!r}")


@dataclass
class ModelConfig:
    """Architecture. Everything needed to rebuild the network from a checkpoint."""

    kind: str = "vae"  # vae | aae
    arch: str = "conv"  # conv | mlp
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 16
    channels: tuple[int, ...] = (32, 64)  # conv widths, each stage halves H and W
    hidden: int = 256  # width of the fully connected layer(s)
    activation: str = "relu"
    blocks: int = 0  # conv: extra 3x3 convolutions after each resolution change; mlp: extra hidden layers
    posterior: str = "gaussian"  # gaussian: encoder gives (mu, logvar); deterministic: z = mu (AAE)
    prior: str = "gaussian"  # a name in vaegen_infer.priors.PRIORS; the AAE matches its codes to it
    prior_params: dict[str, Any] = field(default_factory=dict)
    conditional: bool = False  # AAE: the discriminator sees the label, class k maps to region k
    # Supervised AAE (Makhzani et al. 2015, Figure 7): the decoder takes the label one-hot (N, K)
    # beside the code, and the code is pushed to a label-free prior, so it keeps only style.
    # K = the number of classes; 0 = the decoder takes the code alone.
    decoder_labels: int = 0
    disc_hidden: int = 512  # AAE discriminator width (two hidden layers)
    dropout: float = 0.0  # VAE/AAE: dropout after every hidden activation while training (identity when exported)
    likelihood: str = "bernoulli"  # decoder distribution p(x | z): bernoulli | gaussian
    # Conv decoder: before each transposed convolution, scale and shift every feature map by a linear
    # map of the code (FiLM, Perez et al. 2018): h * (1 + gamma(z)) + beta(z). A plain stack paints
    # colour onto a shape only through ReLU tricks; given the true colour, a plain decoder still painted
    # every Color-dSprites shape grey after 5,000 batches, FiLM within 1,000 (benchmarks/colour_painting.py).
    film: bool = False
    # Conv encoder: the input's per-channel mean and maximum over the image (2C numbers) join the
    # flattened features at the dense layer, a direct path for global colour that strided
    # convolutions over a small shape pass on only weakly.
    pooled_input: bool = False

    def __post_init__(self) -> None:
        from vaegen_infer.priors import PRIORS

        self.image_shape = tuple(int(v) for v in self.image_shape)  # type: ignore[assignment]
        self.channels = tuple(int(v) for v in self.channels)
        _choice("kind", self.kind, KINDS)
        _choice("arch", self.arch, ARCH_NAMES)
        if len(self.image_shape) != 3 or self.image_shape[0] not in (1, 3) or min(self.image_shape[1:]) < 1:
            raise UsageError(f"image_shape must be (C, H, W) with C 1 or 3 and H, W >= 1; got {self.image_shape}")
        _at_least("latent_dim", self.latent_dim, 1)
        if not self.channels or min(self.channels) < 1:
            raise UsageError(f"channels (conv widths) must be one or more positive integers; got {self.channels}")
        _at_least("hidden", self.hidden, 1)
        _choice("activation", self.activation, ACTIVATION_NAMES)
        _at_least("blocks", self.blocks, 0)
        _choice("posterior", self.posterior, POSTERIORS)
        _choice("prior", self.prior, (*PRIORS, *LEARNED_PRIORS))
        if not isinstance(self.prior_params, dict):
            raise UsageError(f"prior_params must be a dict of numbers; got {type(self.prior_params).__name__}")
        _at_least("disc_hidden", self.disc_hidden, 1)
        _in_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        _choice("likelihood", self.likelihood, LIKELIHOODS)
        if (self.film or self.pooled_input) and self.arch != "conv":
            raise UsageError("film and pooled_input are options of the conv architecture; use arch 'conv'")
        if self.kind == "vae" and (self.conditional or self.posterior == "deterministic"):
            raise UsageError("a VAE has a Gaussian posterior and no conditional prior; use kind 'aae' for those")
        _at_least("decoder_labels", self.decoder_labels, 0)
        if self.decoder_labels and (self.kind != "aae" or self.conditional):
            raise UsageError(
                "a label decoder (supervised AAE) needs kind 'aae' and a label-free prior (no conditional)"
            )
        if self.kind == "aae" and self.prior in LEARNED_PRIORS:
            raise UsageError(f"prior '{self.prior}' is learned with a VAE; an AAE needs a fixed prior")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        d["image_shape"] = tuple(d.get("image_shape", (1, 28, 28)))
        d["channels"] = tuple(d.get("channels", (32, 64)))
        return cls(**d)


@dataclass
class TrainConfig:
    """Optimisation and data. Saved in the checkpoint and in model.json's `training` entry."""

    data: str = "mnist-5k"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine
    beta: float = 1.0  # weight of the KL term (the lecture's lambda); beta-tcvae: of the total correlation
    objective: str = "elbo"  # elbo | beta-vae | beta-tcvae (train/objectives.py, OBJECTIVES)
    # VAE: KL warm-up, beta rises linearly from 0 over this many epochs. AAE: the encoder's step against
    # the discriminator starts after this many epochs (reconstruction first, so the code carries the
    # image before it is shaped; the discriminator trains from the start).
    warmup_epochs: int = 0
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised
    binarize: str = "none"  # none: BCE on grey levels; dynamic: fresh Bernoulli draw every batch
    shift: float = 0.0  # augmentation: random shifts of up to this many pixels
    rotate: float = 0.0  # augmentation: random rotations of up to this many degrees
    weight_decay: float = 0.0  # decoupled weight decay (AdamW); 0 = plain Adam
    ema: float = 0.0  # decay of an exponential moving average of the weights (VAE and AAE); 0 = off
    keep: str = "best"  # best: weights with the best validation ELBO (early stopping); last: final epoch
    iw_samples: int = 1  # importance samples per image: 1 = the ELBO, K > 1 = the IWAE bound
    # Encoder gradient of the IWAE bound: "iwae" (Burda et al.) or "dreg", the doubly reparameterised
    # estimator (Tucker et al. 2018), whose signal-to-noise ratio does not fall as K grows.
    iw_estimator: str = "iwae"
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = physical cores
    # AAE regularisation phase. A slow discriminator and an encoder step as large as the
    # reconstruction step keep the two phases balanced (measured: with 2e-4 / 2e-4 the
    # discriminator won from the first epoch and codes ignored their labels' regions).
    lr_disc: float = 1e-4  # discriminator step
    lr_gen: float = 1e-3  # encoder ("generator") step
    disc_noise: float = 0.0  # std of instance noise on the discriminator's inputs (codes and prior draws)
    # Conditional AAE: weight of a cross-entropy that asks each labelled code to be most likely under
    # its own label's prior component (the prior's own component densities as logits); 0 = off.
    region_weight: float = 0.0
    label_fraction: float = 1.0  # AAE, conditional: share of training images whose label is used
    # Supervised AAE: weight of the encoder's loss against a label critic (train/models.py LabelCritic),
    # which pushes the label out of the code; 0 = off, the paper's method (the prior alone).
    label_critic: float = 0.0
    # Wall-clock budget: 0 = none. When it runs out the loop stops after the current step, validates,
    # keeps the best (or EMA) weights and writes the checkpoint as after a last epoch.
    max_minutes: float = 0.0
    checkpoint_minutes: float = 5.0  # a resumable checkpoint (resume.pt) at least this often; 0 = never
    epoch_images: int = 0  # images per epoch (validation + best-weight choice after each); 0 = the whole set
    # Data options, passed to train.data.load (and recorded so export re-reads the same data).
    val_fraction: float = 0.1
    strict: bool = False  # refuse unreadable images instead of skipping them (with a count)
    attributes: str | None = None  # per-image attribute file (CelebA list_attr format or CSV)
    channels: int = 0  # 1 or 3 forces grey or RGB; 0 follows the data
    image_size: tuple[int, int] | None = None  # (H, W) to resize to; None keeps the data's size
    crop: int | None = None  # centre square crop in source pixels, before resizing
    resize: str = "auto"  # resize filter, see vaegen_infer's image.preprocess
    # keep: centre-crop to the model's aspect ratio before resizing. The default is what runs saved
    # before the field meant; `python -m train fit` asks for keep unless told --aspect stretch.
    aspect: str = "stretch"
    data_seed: int = 0  # the train / validation split (and Color-dSprites colours)
    n_images: int = 0  # generated sets (dsprites, synthetic): how many images in all; 0 = the default

    def __post_init__(self) -> None:
        if self.image_size is not None:
            self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]
        if not isinstance(self.data, str) or not self.data:
            raise UsageError(f"data must name a data set (e.g. mnist-5k); got {self.data!r}")
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("lr", self.lr, 0.0)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _at_least("beta", self.beta, 0.0)
        _choice("objective", self.objective, OBJECTIVES)
        if self.objective == "beta-tcvae" and (self.iw_samples > 1 or self.free_bits > 0):
            raise UsageError("objective beta-tcvae splits the one-sample KL: use it with iw_samples 1 and free_bits 0")
        _at_least("warmup_epochs", self.warmup_epochs, 0)
        _at_least("free_bits", self.free_bits, 0.0)
        _choice("binarize", self.binarize, BINARIZE)
        _at_least("shift", self.shift, 0.0)
        _at_least("rotate", self.rotate, 0.0)
        _at_least("weight_decay", self.weight_decay, 0.0)
        _in_range("ema", self.ema, 0.0, 1.0, high_open=True)
        _choice("keep", self.keep, KEEP)
        _at_least("iw_samples", self.iw_samples, 1)
        _choice("iw_estimator", self.iw_estimator, IW_ESTIMATORS)
        if not isinstance(self.seed, int):
            raise UsageError(f"seed must be an integer; got {self.seed!r}")
        _at_least("threads", self.threads, 0)
        _at_least("lr_disc", self.lr_disc, 0.0)
        _at_least("lr_gen", self.lr_gen, 0.0)
        _at_least("disc_noise", self.disc_noise, 0.0)
        _at_least("region_weight", self.region_weight, 0.0)
        _in_range("label_fraction", self.label_fraction, 0.0, 1.0)
        _at_least("label_critic", self.label_critic, 0.0)
        _at_least("max_minutes", self.max_minutes, 0.0)
        _at_least("checkpoint_minutes", self.checkpoint_minutes, 0.0)
        _at_least("epoch_images", self.epoch_images, 0)
        if not 0.0 < self.val_fraction < 1.0:
            raise UsageError(f"val_fraction must lie in (0, 1), e.g. 0.1; got {self.val_fraction!r}")
        _at_least("n_images", self.n_images, 0)
        if self.channels not in (0, 1, 3):
            raise UsageError(f"channels must be 1 (grey), 3 (RGB) or 0 (follow the data); got {self.channels!r}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise UsageError(f"image_size must be (H, W) with positive sides; got {self.image_size}")
        if self.crop is not None:
            _at_least("crop", self.crop, 1)
        _choice("resize", self.resize, RESIZE_FILTERS)
        _choice("aspect", self.aspect, ASPECTS)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        if d.get("image_size") is not None:
            d["image_size"] = tuple(d["image_size"])
        return cls(**d)


def auto_epochs(n_train: int, epoch_images: int = 0) -> int:
    """`fit`'s default number of epochs: DEFAULT_EPOCHS, or as many more as it takes to see at
    least MIN_DEFAULT_IMAGES training images (an epoch is `epoch_images` images, or one pass)."""
    per_epoch = epoch_images or n_train
    if per_epoch < 1:
        raise UsageError("there are no training images to fit on")
    return max(DEFAULT_EPOCHS, math.ceil(MIN_DEFAULT_IMAGES / per_epoch))


def to_dict(cfg: ModelConfig | TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
