"""One dataclass per concern, saved beside the weights and rebuilt from them (`ModelConfig(**d)`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Priors learned with the model (VAE only). Each exports as a runtime prior with a closed-form
# density: `vamp` (Tomczak & Welling 2018, p(z) = 1/K sum_k q(z | u_k) over K learned pseudo-inputs
# u_k) becomes the runtime's `gaussian-mixture` with the encoder's posteriors at the u_k.
LEARNED_PRIORS = ("vamp",)


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
    blocks: int = 0  # extra 3x3 convolutions after each resolution change (depth without many weights)
    posterior: str = "gaussian"  # gaussian: encoder gives (mu, logvar); deterministic: z = mu (AAE)
    prior: str = "gaussian"  # a name in vaegen_infer.priors.PRIORS; the AAE matches its codes to it
    prior_params: dict[str, Any] = field(default_factory=dict)
    conditional: bool = False  # AAE: the discriminator sees the label, class k maps to region k
    disc_hidden: int = 512  # AAE discriminator width (two hidden layers)
    dropout: float = 0.0  # VAE/AAE: dropout after every hidden activation while training (identity when exported)

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
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine
    beta: float = 1.0  # weight of the KL term (the lecture's lambda)
    warmup_epochs: int = 0  # KL warm-up: beta rises linearly from 0 over this many epochs
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised
    binarize: str = "none"  # none: BCE on grey levels; dynamic: fresh Bernoulli draw every batch
    shift: float = 0.0  # augmentation: random shifts of up to this many pixels
    rotate: float = 0.0  # augmentation: random rotations of up to this many degrees
    weight_decay: float = 0.0  # decoupled weight decay (AdamW); 0 = plain Adam
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
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
    label_fraction: float = 1.0  # AAE, conditional: share of training images whose label is used

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


def to_dict(cfg: ModelConfig | TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
