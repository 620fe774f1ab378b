"""Networks. Every family exposes the same methods, `encode(x) -> (mu, logvar)` and
`decode(z) -> logits`, so the exporter, the evaluator and the tests treat them alike."""

from __future__ import annotations

import math

import torch
from torch import nn

from train.config import LEARNED_PRIORS, ModelConfig
from vaegen_infer.errors import UsageError
from vaegen_infer.manifest import DETERMINISTIC_LOGVAR, PriorSpec
from vaegen_infer.priors import _LOG_2PI as LOG_2PI  # one copy of log(2 pi), the runtime's
from vaegen_infer.priors import GaussianPrior

DEFAULT_VAMP_COMPONENTS = 500

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "gelu": nn.GELU}

# The conv stack halves H and W per stage until each side is 4 to 7 pixels: 28 -> 14 -> 7 (2 stages),
# 32 -> 4 (3), 64 -> 4 (4), 128 -> 4 (5). A side m * 2^k with m in 4..7 gets there in k stages.
FINAL_SIDES = (4, 5, 6, 7)


def conv_sizes(limit: int = 256) -> list[int]:
    """Every side length up to `limit` the conv architecture takes: m * 2^k, m in 4..7, k >= 1."""
    return sorted({m << k for m in FINAL_SIDES for k in range(1, 12) if m << k <= limit})


def _stages_of(side: int) -> int | None:
    for k in range(1, 12):
        if side % (1 << k) == 0 and (side >> k) in FINAL_SIDES:
            return k
    return None


def conv_stages(height: int, width: int) -> int:
    """How many halving stages an image of this size takes; UsageError listing the sizes otherwise."""
    kh, kw = _stages_of(height), _stages_of(width)
    if kh is None or kw is None or kh != kw:
        sizes = ", ".join(str(s) for s in conv_sizes())
        raise UsageError(
            f"the conv architecture cannot take {height}x{width} images: each side must be m * 2^k with m in 4..7 "
            f"and the same k for both ({sizes}, ...); resize with --image-size or use --arch mlp"
        )
    return kh


def default_widths(stages: int) -> tuple[int, ...]:
    """Conv widths for `stages` stages: 32, doubling once halfway (28x28: 32, 64; 64x64: 32, 32, 64, 64)."""
    return tuple(32 << (2 * i // stages) for i in range(stages))


def _act(cfg: ModelConfig) -> nn.Module:
    """The hidden activation, followed by dropout when the config asks for it (a regulariser against
    the decoder memorising a small training set; eval mode, and so the exported graph, skips it)."""
    act = _ACTIVATIONS[cfg.activation]()
    return nn.Sequential(act, nn.Dropout(cfg.dropout)) if cfg.dropout > 0 else act


def encoder_width(cfg: ModelConfig) -> int:
    """D for a deterministic encoder (mu only), 2D for a Gaussian one (mu and logvar)."""
    return cfg.latent_dim if cfg.posterior == "deterministic" else 2 * cfg.latent_dim


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> (N, 2D): strided 4x4 convolutions, each halving H and W, then two dense layers."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, h, w = cfg.image_shape
        layers: list[nn.Module] = []
        for width in cfg.channels:
            layers += [nn.Conv2d(c, width, 4, stride=2, padding=1), _act(cfg)]
            for _ in range(cfg.blocks):
                layers += [nn.Conv2d(width, width, 3, padding=1), _act(cfg)]
            c, h, w = width, h // 2, w // 2
        self.conv = nn.Sequential(*layers)
        self.pooled = cfg.pooled_input
        pooled = 2 * cfg.image_shape[0] if self.pooled else 0
        # (Flatten stays first, a no-op on the flat input, so checkpoints keep their parameter names.)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w + pooled, cfg.hidden), _act(cfg))
        self.out = nn.Linear(cfg.hidden, encoder_width(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).flatten(1)  # (N, C_last * H_last * W_last)
        if self.pooled:  # + (N, 2C): each input channel's mean and maximum over the image
            h = torch.cat([h, x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.out(self.fc(h))


class ConvDecoder(nn.Module):
    """(N, D) -> logits (N, C, H, W): the encoder mirrored with transposed convolutions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, h, w = cfg.image_shape
        stages = len(cfg.channels)
        self.start = (cfg.channels[-1], h >> stages, w >> stages)
        self.fc = nn.Sequential(
            nn.Linear(cfg.latent_dim + cfg.decoder_labels, cfg.hidden),
            _act(cfg),
            nn.Linear(cfg.hidden, math.prod(self.start)),
            _act(cfg),
        )
        layers: list[nn.Module] = []
        widths = list(reversed(cfg.channels))
        for i, width in enumerate(widths):
            out = widths[i + 1] if i + 1 < len(widths) else c
            layers.append(nn.ConvTranspose2d(width, out, 4, stride=2, padding=1))
            if i + 1 < len(widths):
                layers.append(_act(cfg))
                for _ in range(cfg.blocks):
                    layers += [nn.Conv2d(out, out, 3, padding=1), _act(cfg)]
        self.deconv = nn.Sequential(*layers)
        # FiLM: a linear map of the decoder's input gives each transposed convolution's input a
        # per-channel (gamma, beta), 2 * width numbers (widths in the order the stages run).
        code = cfg.latent_dim + cfg.decoder_labels
        self.film = nn.ModuleList(nn.Linear(code, 2 * width) for width in widths) if cfg.film else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, *self.start)  # (N, C_last, H / 2^s, W / 2^s)
        if self.film is None:
            return self.deconv(h)
        stage = 0
        for layer in self.deconv:
            if isinstance(layer, nn.ConvTranspose2d):
                gamma, beta = self.film[stage](z).chunk(2, dim=1)  # (N, width) each
                h = h * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
                stage += 1
            h = layer(h)
        return h


def _extra_hidden(cfg: ModelConfig) -> list[nn.Module]:
    """`cfg.blocks` more hidden layers of width `cfg.hidden` (MLP depth). With blocks 0 the layer
    indices are those of the one-hidden-layer recipe, so older checkpoints load unchanged."""
    return [m for _ in range(cfg.blocks) for m in (nn.Linear(cfg.hidden, cfg.hidden), _act(cfg))]


class MLPEncoder(nn.Module):
    """The pytorch/examples recipe: 784 -> hidden -> (mu, logvar); `blocks` adds hidden layers
    (Chen et al. 2018's reference code, rtqichen/beta-tcvae, encodes dSprites with 4096 -> 1200 -> 1200 -> 2D
    and decodes with three hidden layers of 1,200: blocks 1 and 2)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(cfg.image_shape), cfg.hidden), _act(cfg), *_extra_hidden(cfg),
            nn.Linear(cfg.hidden, encoder_width(cfg)),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.shape = cfg.image_shape
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim + cfg.decoder_labels, cfg.hidden),
            _act(cfg),
            *_extra_hidden(cfg),
            nn.Linear(cfg.hidden, math.prod(cfg.image_shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)


ARCHS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "conv": (ConvEncoder, ConvDecoder),
    "mlp": (MLPEncoder, MLPDecoder),
}


class Autoencoder(nn.Module):
    """Encoder + decoder. For a VAE the encoder's two halves are mu and logvar; an AAE adds a
    discriminator alongside (see train/aae.py) but keeps this interface."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        _, h, w = cfg.image_shape
        if cfg.arch == "conv":
            stages = conv_stages(h, w)
            if len(cfg.channels) != stages:
                raise UsageError(
                    f"{h}x{w} images take {stages} conv stages ({h} -> {h >> stages}), so channels (--widths) needs "
                    f"{stages} widths, e.g. {','.join(map(str, default_widths(stages)))}; got {len(cfg.channels)}"
                )
        self.cfg = cfg
        enc, dec = ARCHS[cfg.arch]
        self.encoder = enc(cfg)
        self.decoder = dec(cfg)
        # VampPrior pseudo-inputs as logits (K, C, H, W); sigmoid keeps them valid images in [0, 1].
        # Training starts them from real images (train/fit.py); zeros here are only a placeholder.
        self.pseudo_logits: nn.Parameter | None = None
        if cfg.prior in LEARNED_PRIORS:
            k = int(cfg.prior_params.get("components", DEFAULT_VAMP_COMPONENTS))
            self.pseudo_logits = nn.Parameter(torch.zeros(k, *cfg.image_shape))
        # A learned prior frozen into its components (mu_k, logvar_k), (K, D) each: what a bundle
        # stores instead of the pseudo-inputs, which are not in the graphs (see fix_prior).
        self.fixed_components: tuple[torch.Tensor, torch.Tensor] | None = None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        if self.cfg.posterior == "deterministic":
            # A point mass at mu: logvar is a constant so tiny that z = mu + sigma * eps equals mu
            # to float32 precision at the code scales of our priors (see DETERMINISTIC_LOGVAR).
            return h, torch.full_like(h, DETERMINISTIC_LOGVAR)
        mu, logvar = h.chunk(2, dim=1)  # (N, D) each
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes z (N, D) -> logits (N, C, H, W). A label-conditioned decoder (supervised AAE) also
        takes the label one-hot y (N, K), fed beside z into the first dense layer."""
        if self.cfg.decoder_labels:
            if y is None:
                raise ValueError(f"this decoder takes the labels y (N, {self.cfg.decoder_labels}) one-hot beside z")
            z = torch.cat([z, y.to(z.dtype)], dim=1)  # (N, D + K)
        return self.decoder(z)  # logits (N, C, H, W)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.code(mu, logvar)
        return self.decode(z, y), mu, logvar

    def code(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """A draw of z from the posterior, (N, D): mu itself when the posterior is deterministic."""
        return mu if self.cfg.posterior == "deterministic" else reparameterize(mu, logvar)

    @property
    def has_learned_prior(self) -> bool:
        return self.pseudo_logits is not None or self.fixed_components is not None

    def fix_prior(self, mu_k: torch.Tensor, logvar_k: torch.Tensor) -> None:
        """Replace the VampPrior's pseudo-inputs by the components they gave, (K, D) each.

        A bundle keeps the prior as those components (an equal-weight Gaussian mixture in model.json),
        not as pseudo-inputs; a model rebuilt from a bundle uses them for log_prior and sample_prior.
        """
        if self.cfg.prior not in LEARNED_PRIORS:
            raise ValueError(f"prior '{self.cfg.prior}' is not learned; it has no components to fix")
        self.pseudo_logits = None  # unregisters the parameter: the state dict no longer expects it
        self.fixed_components = (mu_k.detach(), logvar_k.detach())

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The VampPrior's components: the encoder's (mu, logvar) at the pseudo-inputs, (K, D) each."""
        if self.fixed_components is not None:
            return self.fixed_components
        if self.pseudo_logits is None:
            raise ValueError("this model's prior has no learned components")
        return self.encode(torch.sigmoid(self.pseudo_logits))

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws of z, (n, D), in PyTorch: N(0, scale^2 I), or the learned equal-weight mixture.

        For the PyTorch baselines of the benchmarks; the runtime samples every prior in numpy.
        """
        d = self.cfg.latent_dim
        if self.has_learned_prior:
            mu_k, logvar_k = self.prior_components()  # (K, D)
            pick = torch.randint(len(mu_k), (n,), generator=generator)  # (n,) equal weights
            return mu_k[pick] + torch.exp(0.5 * logvar_k[pick]) * torch.randn(n, d, generator=generator)
        if self.cfg.prior != "gaussian":
            raise ValueError(f"PyTorch sampling covers gaussian and learned priors, not '{self.cfg.prior}'")
        scale = GaussianPrior(d, **self.cfg.prior_params).scale  # the runtime's reading, default included
        return scale * torch.randn(n, d, generator=generator)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats, (..., D) -> (...): N(0, I), or the VampPrior's equal-weight mixture."""
        if not self.has_learned_prior:
            return log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        mu_k, logvar_k = self.prior_components()  # (K, D)
        # (..., 1, D) against (K, D) -> (..., K): log N(z | mu_k, diag exp(logvar_k))
        log_comp = log_normal(z.unsqueeze(-2), mu_k, logvar_k)
        return torch.logsumexp(log_comp, -1) - math.log(len(mu_k))

    @torch.no_grad()
    def prior_spec(self) -> PriorSpec:
        """The prior as the runtime names it: learned priors become their closed-form equivalent."""
        if not self.has_learned_prior:
            return PriorSpec(self.cfg.prior, dict(self.cfg.prior_params))
        mu_k, logvar_k = self.prior_components()
        k = len(mu_k)
        return PriorSpec(
            "gaussian-mixture",
            {"weights": [1.0 / k] * k, "means": mu_k.double().tolist(), "logvars": logvar_k.double().tolist()},
        )


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last axis, (..., D) -> (...), in nats."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def log_normal_at_draw(eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) at its own draw z = mu + exp(logvar / 2) * eps, from eps:
    (..., D) -> (...). The same value as `log_normal(z, mu, logvar)`, without (z - mu) / sigma."""
    return -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(0.5 * logvar): the standard deviation, not the variance."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class EncoderGraph(nn.Module):
    """What encoder.onnx computes: x (N, C, H, W) -> mu (N, D), logvar (N, D)."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x)


class DecoderGraph(nn.Module):
    """What decoder.onnx computes: z (N, D) -> x (N, C, H, W) Bernoulli means, and their logits."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model.decode(z)
        return torch.sigmoid(logits), logits


class LabelDecoderGraph(nn.Module):
    """What a supervised AAE's decoder.onnx computes: z (N, D), y (N, K) one-hot -> x, logits."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model.decode(z, y)
        return torch.sigmoid(logits), logits


class Discriminator(nn.Module):
    """AAE discriminator on codes z (N, D) -> one logit (N,) for "drawn from the prior".

    When conditional it is a projection discriminator (Miyato & Koyama 2018): logit = w . h(z) +
    e_y . h(z), with e_y a learned embedding of the label (K + 1 rows, the last meaning "no label").
    Concatenating a one-hot to a 2-D code, as first tried, let the discriminator ignore the label
    and the encoder collapse every class onto one spot; the projection term makes the label part of
    every decision.
    """

    def __init__(self, cfg: ModelConfig, n_labels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.disc_hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.disc_hidden, cfg.disc_hidden), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.out = nn.Linear(cfg.disc_hidden, 1)
        self.embed = nn.Embedding(n_labels + 1, cfg.disc_hidden) if cfg.conditional else None
        self.n_labels = n_labels

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z (N, D); labels (N,) ints with -1 for "no label", or None when unconditional."""
        h = self.features(z)  # (N, H)
        logit = self.out(h).squeeze(1)
        if self.embed is not None and labels is not None:
            idx = torch.where(labels < 0, torch.full_like(labels, self.n_labels), labels)
            logit = logit + (self.embed(idx) * h).sum(1)
        return logit


class LabelCritic(nn.Module):
    """Supervised AAE lever: a classifier that guesses the label from the code, z (N, D) -> logits
    (N, K). It learns to guess; the encoder learns to make its guesses uniform, so that the label
    leaves the code (an adversarial classifier on the latent, as in Lample et al. 2017, Fader Networks)."""

    def __init__(self, latent_dim: int, n_labels: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, n_labels),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
