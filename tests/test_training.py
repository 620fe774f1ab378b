"""Training objectives against answers computed by hand: the IWAE bound and its DReG gradient."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from train.config import ModelConfig  # noqa: E402
from train.fit import iwae_loss  # noqa: E402
from train.models import LOG_2PI, Autoencoder  # noqa: E402

K = 6


def _model(prior: str = "gaussian") -> Autoencoder:
    torch.manual_seed(0)
    params = {"components": 4} if prior == "vamp" else {}
    model = Autoencoder(ModelConfig(latent_dim=3, channels=(4, 8), hidden=8, prior=prior, prior_params=params))
    if model.pseudo_logits is not None:
        with torch.no_grad():
            model.pseudo_logits.normal_()
    return model


def _batch() -> torch.Tensor:
    return torch.bernoulli(torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3)))


def _grads(model: Autoencoder, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("prior", ["gaussian", "vamp"])
def test_dreg_gradient_is_the_hand_written_estimator(prior: str) -> None:
    model, x = _model(prior), _batch()
    torch.manual_seed(7)
    loss_dreg, _, _ = iwae_loss(model, x, K, beta=1.0, estimator="dreg")
    got = _grads(model, loss_dreg)
    torch.manual_seed(7)
    loss_iwae, _, _ = iwae_loss(model, x, K, beta=1.0, estimator="iwae")
    iwae = _grads(model, loss_iwae)
    assert abs(loss_dreg.item() - loss_iwae.item()) < 1e-4  # same bound, only the gradient differs

    # By hand (Tucker et al. 2018, eq. 7): the encoder's path gradient weighted by w~^2, the
    # decoder's and the prior's IWAE gradient weighted by w~, from one set of draws.
    torch.manual_seed(7)
    mu, logvar = model.encode(x)
    eps = torch.randn((K, *mu.shape))
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decode(z.reshape(-1, 3))
    log_px = (
        -torch.nn.functional.binary_cross_entropy_with_logits(logits, x.repeat(K, 1, 1, 1), reduction="none")
        .flatten(1)
        .sum(1)
        .view(K, -1)
    )
    log_q = -0.5 * (LOG_2PI + logvar.detach() + (z - mu.detach()) ** 2 / logvar.detach().exp()).sum(-1)
    log_w = log_px + model.log_prior(z) - log_q
    w = torch.softmax(log_w.detach(), 0)
    named = dict(model.named_parameters())
    enc = [n for n in named if n.startswith("encoder")]
    dec = [n for n in named if n.startswith("decoder")]
    want_dec = torch.autograd.grad(-(w * log_w).sum(0).mean(), [named[n] for n in dec], retain_graph=True)
    for name, g in zip(dec, want_dec):
        assert torch.allclose(got[name], g, rtol=1e-4, atol=1e-5), name
        assert torch.allclose(iwae[name], g, rtol=1e-3, atol=1e-5), name  # decoder: both estimators agree
    # The encoder's path gradient, through z only, weighted by w~^2. With a VampPrior the encoder also
    # shapes the prior's components: that part is an IWAE term, weighted by w~, and comes on top.
    path = torch.autograd.grad(-(w**2 * log_w).sum(0).mean(), z, retain_graph=True)[0]
    want_enc = torch.autograd.grad(z, [named[n] for n in enc], grad_outputs=path, retain_graph=True)
    if prior == "vamp":
        mu_k, _ = model.prior_components()
        prior_part = torch.autograd.grad(
            -(w * model.log_prior(z.detach())).sum(0).mean(), [named[n] for n in enc], allow_unused=True
        )
        want_enc = tuple(a + (b if b is not None else 0) for a, b in zip(want_enc, prior_part))
        assert mu_k.shape == (4, 3)
    for name, g in zip(enc, want_enc):
        assert torch.allclose(got[name], g, rtol=1e-4, atol=1e-5), name
    assert any(not torch.allclose(got[n], iwae[n], rtol=1e-3) for n in enc)  # and it is not IWAE's


def test_iwae_loss_with_one_sample_is_the_negative_elbo() -> None:
    model, x = _model(), _batch()
    torch.manual_seed(1)
    loss, rec, _ = iwae_loss(model, x, 1, beta=1.0)
    torch.manual_seed(1)
    mu, logvar = model.encode(x)
    eps = torch.randn((1, *mu.shape))
    z = mu + torch.exp(0.5 * logvar) * eps
    # log p(z) - log q(z | x) at one draw, by hand, for N(0, I) and the diagonal Gaussian q
    log_ratio = (-0.5 * z**2 + 0.5 * eps**2 + 0.5 * logvar).sum(-1)
    assert math.isclose(loss.item(), (rec - log_ratio.mean()).item(), rel_tol=1e-5)


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        ("model", "activation", "tanh"),
        ("model", "kind", "gan"),
        ("model", "likelihood", "poisson"),
        ("model", "dropout", 1.0),
        ("model", "latent_dim", 0),
        ("model", "image_shape", (2, 28, 28)),
        ("train", "lr_schedule", "linear"),
        ("train", "keep", "first"),
        ("train", "ema", 1.0),
        ("train", "batch_size", 0),
        ("train", "val_fraction", 1.0),
        ("train", "channels", 2),
        ("train", "resize", "fancy"),
    ],
)
def test_configs_validate_every_field(cls: str, field: str, value: object) -> None:
    from train.config import TrainConfig
    from vaegen_infer.errors import UsageError

    make = ModelConfig if cls == "model" else TrainConfig
    with pytest.raises(UsageError, match=field):
        make(**{field: value})


def test_fit_help_is_not_cut_and_errors_are_one_line() -> None:
    import subprocess
    import sys

    env = {**__import__("os").environ, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "train", "fit", "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0
    assert "mnist-idx:DIR (train-*-ubyte[.gz])" in done.stdout
    assert "--label-fraction" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "train", "fit", "-o", "/nonexistent/x", "--data", "synthetic", "--activation", "tanh"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: activation must be one of relu, elu, silu, gelu; got 'tanh'"]


@pytest.mark.parametrize(("n", "batch", "epoch_images"), [(270, 128, 0), (256, 128, 0), (1000, 64, 300), (5, 8, 0)])
def test_the_progress_total_is_the_images_batch_order_gives(n: int, batch: int, epoch_images: int) -> None:
    # the fit bar's total: a run of 270 images in batches of 128 sees 270 per epoch, not 384
    from train.config import TrainConfig
    from train.fit import BatchOrder, images_after, steps_per_epoch

    order = BatchOrder(n, batch, torch.Generator().manual_seed(0))
    per_epoch = steps_per_epoch(TrainConfig(epochs=3, batch_size=batch, epoch_images=epoch_images), n)
    seen = [0]
    for _ in range(3 * per_epoch):
        seen.append(seen[-1] + len(order.next()))
    assert [images_after(s, n, batch) for s in range(len(seen))] == seen
    if epoch_images == 0:
        assert images_after(3 * per_epoch, n, batch) == 3 * n


def test_auto_epochs_see_enough_images_of_a_small_set() -> None:
    from train.config import DEFAULT_EPOCHS, MIN_DEFAULT_IMAGES, auto_epochs
    from vaegen_infer.errors import UsageError

    assert auto_epochs(4500) == DEFAULT_EPOCHS == 30  # the 5k MNIST subset: as before
    assert auto_epochs(270) == 371 and 371 * 270 >= MIN_DEFAULT_IMAGES > 370 * 270
    assert auto_epochs(200_000) == 30
    assert auto_epochs(10, epoch_images=10_000) == 30  # an epoch of --epoch-images, not one pass
    with pytest.raises(UsageError, match="no training images"):
        auto_epochs(0)


def test_fit_without_epochs_runs_the_auto_number_and_says_so(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    import train.config
    from train.cli import app as train_app

    # scaled down: 2 epochs by default, at least 300 images, on 54 synthetic training images
    monkeypatch.setattr(train.config, "DEFAULT_EPOCHS", 2)
    monkeypatch.setattr(train.config, "MIN_DEFAULT_IMAGES", 300)
    args = ["fit", "--data", "synthetic", "--n-images", "60", "--batch-size", "32", "--quiet", "--threads", "1"]
    r = CliRunner().invoke(train_app, [*args, "--out", str(tmp_path / "auto")])
    assert r.exit_code == 0, r.output
    assert "6 epochs, to see 324 images of a small set (--epochs N to choose)" in r.output
    run = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert run["train_config"]["epochs"] == 6 and len(run["history"]) == 6
    r = CliRunner().invoke(train_app, [*args, "--epochs", "1", "--out", str(tmp_path / "one")])
    assert r.exit_code == 0 and "epochs, to see" not in r.output
    assert json.loads((tmp_path / "one" / "run.json").read_text())["train_config"]["epochs"] == 1
