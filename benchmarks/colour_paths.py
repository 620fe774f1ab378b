"""Experiments for issue 13's missing colour (not product code): a direct path for a per-image colour.

`encoder`: the conv encoder's dense layer also gets each input channel's maximum over the image,
(N, C), beside the flattened features (does the encoder fail to *see* the colour?). `decoder`: the
decoder's output logits get a per-channel bias from z, Linear(D -> C) (does the decoder fail to
*paint* one colour over a shape drawn anywhere?). The patch holds in this process only; then it runs
`python -m train fit` or the colour probe (benchmarks/colour_probe.py) with the same patch.

    python benchmarks/colour_paths.py encoder fit --model vae --data color-dsprites \\
        --image-size 32 --likelihood gaussian --latent-dim 10 --batch-size 64 --epochs 6 \\
        --epoch-images 20000 --val-fraction 0.003 --max-minutes 5 --threads 1 --quiet --out runs/cdiag32pool
    python benchmarks/colour_paths.py encoder probe runs/cdiag32pool
    (the same with `decoder` and --out runs/cdiag32dec)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import train.models as tm

_base_init = tm.ConvEncoder.__init__


def _init(self: tm.ConvEncoder, cfg: tm.ModelConfig) -> None:
    _base_init(self, cfg)
    dense = self.fc[1]  # fc = Flatten, Linear, activation
    self.fc[1] = nn.Linear(dense.in_features + cfg.image_shape[0], dense.out_features)


def _forward(self: tm.ConvEncoder, x: torch.Tensor) -> torch.Tensor:
    h = self.conv(x).flatten(1)  # (N, C_last * h * w)
    return self.out(self.fc[1:](torch.cat([h, x.amax((2, 3))], 1)))  # + (N, C) channel maxima


_base_decoder_init = tm.ConvDecoder.__init__


def _decoder_init(self: tm.ConvDecoder, cfg: tm.ModelConfig) -> None:
    _base_decoder_init(self, cfg)
    self.colour = nn.Linear(cfg.latent_dim, cfg.image_shape[0])


def _decoder_forward(self: tm.ConvDecoder, z: torch.Tensor) -> torch.Tensor:
    h = self.fc(z).view(-1, *self.start)
    return self.deconv(h) + self.colour(z)[:, :, None, None]  # (N, C, H, W) + per-channel (N, C, 1, 1)


def main() -> None:
    side = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if side == "encoder":
        tm.ConvEncoder.__init__ = _init  # type: ignore[method-assign]
        tm.ConvEncoder.forward = _forward  # type: ignore[method-assign]
    elif side == "decoder":
        tm.ConvDecoder.__init__ = _decoder_init  # type: ignore[method-assign]
        tm.ConvDecoder.forward = _decoder_forward  # type: ignore[method-assign]
    else:
        raise SystemExit("usage: colour_paths.py encoder|decoder fit ARGS... | probe RUN")
    if sys.argv[1:2] == ["fit"]:
        from train.cli import app

        sys.argv = ["train", *sys.argv[1:]]
        app()
    elif sys.argv[1:2] == ["probe"] and len(sys.argv) == 3:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from colour_probe import probe

        print(" ".join(f"{k}={v:.3f}" for k, v in probe(Path(sys.argv[2])).items()))
    else:
        raise SystemExit("usage: colour_paths.py encoder|decoder fit ARGS... | probe RUN")


if __name__ == "__main__":
    main()
