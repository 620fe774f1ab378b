"""Experiment for issue 13's missing colour (not product code): does the encoder fail to *see* the
sprite's colour? This gives the conv encoder's dense layer each input channel's maximum over the image,
(N, C), beside the flattened features: a direct global path for a per-image colour. It patches
train.models.ConvEncoder in this process only, then runs `python -m train fit` or the colour probe.

    python benchmarks/colour_encoder_path.py fit --model vae --data color-dsprites --image-size 32 \\
        --likelihood gaussian --latent-dim 10 --batch-size 64 --epochs 6 --epoch-images 20000 \\
        --val-fraction 0.003 --max-minutes 5 --threads 1 --quiet --out runs/cdiag32pool
    python benchmarks/colour_encoder_path.py probe runs/cdiag32pool
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


def main() -> None:
    tm.ConvEncoder.__init__ = _init  # type: ignore[method-assign]
    tm.ConvEncoder.forward = _forward  # type: ignore[method-assign]
    if sys.argv[1:2] == ["fit"]:
        from train.cli import app

        sys.argv = ["train", *sys.argv[1:]]
        app()
    elif sys.argv[1:2] == ["probe"] and len(sys.argv) == 3:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from colour_probe import probe

        print(" ".join(f"{k}={v:.3f}" for k, v in probe(Path(sys.argv[2])).items()))
    else:
        raise SystemExit("usage: colour_encoder_path.py fit ARGS... | probe RUN")


if __name__ == "__main__":
    main()
