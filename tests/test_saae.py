"""The supervised AAE (issue 19): a decoder that takes the label one-hot beside the code. Export
parity with two decoder inputs, label validation, restyle, and every front door's answer to it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer.cli import app
from vaegen_infer.errors import BundleError, InputError, UsageError
from vaegen_infer.manifest import Manifest

from .conftest import ROOT

runner = CliRunner()
DIGITS = [str(ROOT / "docs" / "examples" / f"digit-{d}.png") for d in (3, 7)]
K = 10  # the synthetic data's classes
D = 3


@pytest.fixture(scope="module")
def saae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch supervised AAE on synthetic data (needs torch)."""
    pytest.importorskip("torch")
    from train import data
    from train.aae import fit_aae
    from train.config import ModelConfig, TrainConfig

    out = tmp_path_factory.mktemp("saae") / "run"
    mcfg = ModelConfig(
        kind="aae", latent_dim=D, channels=(8, 16), hidden=32, posterior="deterministic", prior="gaussian",
        disc_hidden=32, decoder_labels=K,
    )  # fmt: skip
    tcfg = TrainConfig(data="synthetic", epochs=1, batch_size=64, threads=1, label_critic=1.0)
    summary = fit_aae(mcfg, tcfg, data.synthetic(n=160), out, True)
    assert "critic_acc" in summary["final"] and "val_code_std" in summary["final"]
    return out


@pytest.fixture(scope="module")
def saae(saae_run: Path) -> Path:
    from train.export import export_run

    path, parity = export_run(saae_run, saae_run.parent / "bundle")
    assert max(parity.values()) <= 1e-5
    return path


def test_manifest_names_the_label_input(saae: Path) -> None:
    m = json.loads((saae / "model.json").read_text())
    assert m["label_input"] == "y" and m["conditional"] is False and len(m["labels"]) == K
    assert m["graphs"]["decoder"]["inputs"] == {"z": [None, D], "y": [None, K]}
    assert vi.load(saae, providers="cpu").label_decoder
    assert not vi.load("mnist-vae", providers="cpu").label_decoder


@pytest.mark.parametrize("batch", [1, 5, 33])
def test_conditional_decoder_matches_pytorch(saae_run: Path, saae: Path, batch: int) -> None:
    import torch

    from train.fit import load_checkpoint

    model, _ = load_checkpoint(saae_run)
    rng = np.random.default_rng(batch)
    z = rng.standard_normal((batch, D), dtype=np.float32)
    labels = rng.integers(0, K, batch)
    with torch.no_grad():
        want = torch.sigmoid(model.decode(torch.from_numpy(z), torch.eye(K)[labels])).numpy()
    g = vi.load(saae, providers="cpu")
    np.testing.assert_allclose(g.decode(z, labels), want, atol=1e-5)
    np.testing.assert_allclose(g.decode(z, np.eye(K, dtype=np.float32)[labels]), want, atol=1e-5)  # one-hots
    np.testing.assert_allclose(g.decode(z, [str(v) for v in labels]), want, atol=1e-5)  # names


def test_check_graphs_at_more_batch_sizes(saae_run: Path) -> None:
    from train.export import check_graphs, export_graphs
    from train.fit import load_checkpoint

    model, _ = load_checkpoint(saae_run)
    worst = check_graphs(model, export_graphs(model), batches=(2, 9, 100))
    assert max(worst.values()) <= 1e-5


def test_label_validation(saae: Path) -> None:
    g = vi.load(saae, providers="cpu")
    z = np.zeros((4, D), np.float32)
    with pytest.raises(UsageError, match=r"decodes every code as a label.*give labels"):
        g.decode(z)  # missing
    with pytest.raises(InputError, match=r"shape \(4, 10\).*got \(4, 9\)"):
        g.decode(z, np.zeros((4, 9), np.float32))  # wrong width
    with pytest.raises(InputError, match=r"shape \(4, 10\).*got \(3, 10\)"):
        g.decode(z, np.eye(K, dtype=np.float32)[:3])  # wrong count of one-hots
    for bad in (10, -1, "eleven", [0, 1, 2, 12]):
        with pytest.raises(UsageError, match="valid labels: 0, 1"):
            g.decode(z, bad)  # out of range
    with pytest.raises(InputError, match="3 labels for 4 codes"):
        g.decode(z, [0, 1, 2])
    with pytest.raises(InputError, match="summing to 1"):
        g.decode(z, np.full((4, K), 0.5, np.float32))
    with pytest.raises(InputError, match="summing to 1"):
        g.decode(z, np.full((4, K), np.nan, np.float32))
    vae = vi.load("mnist-vae", providers="cpu")
    with pytest.raises(UsageError, match="takes no labels"):
        vae.decode(np.zeros((1, vae.latent_dim), np.float32), 3)


def test_sample_needs_a_label_and_draws_style_from_the_label_free_prior(saae: Path) -> None:
    g = vi.load(saae, providers="cpu")
    with pytest.raises(UsageError, match="sample needs a label"):
        g.sample(3, seed=0)
    with pytest.raises(UsageError, match="sample needs a label"):
        next(g.iter_samples(3, seed=0))
    z = g.sample_latents(5, seed=1)
    np.testing.assert_array_equal(z, g.sample_latents(5, seed=1, label=4))  # the prior ignores the label
    np.testing.assert_allclose(g.sample(5, seed=1, label=4), g.decode(z, 4), atol=1e-6)
    np.testing.assert_allclose(np.concatenate(list(g.iter_samples(5, seed=1, label="4", chunk=2))), g.decode(z, 4))
    rows = g.sample_per_label(2, seed=0)
    assert rows.shape == (K, 2, 1, 28, 28)
    with pytest.raises(UsageError, match="reconstruct needs"):
        g.reconstruct(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(UsageError, match="score needs p"):
        g.score(np.zeros((1, 1, 28, 28), np.float32))
    for op in (lambda: g.traverse(), lambda: g.manifold(3), lambda: g.interpolate(z[0], z[1])):
        with pytest.raises(UsageError, match="needs a label"):
            op()
    assert g.traverse(label=2, steps=3).shape == (D, 3, 1, 28, 28)
    assert g.manifold(3, label=2).shape == (3, 3, 1, 28, 28)
    assert g.interpolate(z[0], z[1], steps=4, label=2).shape == (4, 1, 28, 28)


def test_restyle_shapes_and_labels(saae: Path) -> None:
    g = vi.load(saae, providers="cpu")
    x = g.sample(3, seed=2, label=1)
    out = g.restyle(x, [7, "2", 2])
    assert out.shape == (3, 3, 1, 28, 28)
    mu, _ = g.encode(x)
    for j, label in enumerate((7, 2, 2)):
        np.testing.assert_allclose(out[:, j], g.decode(mu, label), atol=1e-6)
    assert g.restyle(x).shape == (3, K, 1, 28, 28)  # every label by default
    assert g.restyle(x[0], 5).shape == (1, 1, 1, 28, 28)
    with pytest.raises(UsageError, match="valid labels"):
        g.restyle(x, [3, 10])
    with pytest.raises(UsageError, match="at least one label"):
        g.restyle(x, [])
    with pytest.raises(UsageError, match="cannot restyle"):
        vi.load("mnist-vae", providers="cpu").restyle(x)


def test_two_inputs_split_across_threads(saae: Path) -> None:
    z = np.random.default_rng(0).standard_normal((300, D), dtype=np.float32)
    labels = np.arange(300) % K
    one = vi.load(saae, providers="cpu", threads=1).decode(z, labels)
    two = vi.load(saae, providers="cpu", threads=2).decode(z, labels)
    np.testing.assert_allclose(one, two, atol=1e-6)
    np.testing.assert_allclose(vi.load(saae, providers="cpu").decode(z, labels, chunk=64), one, atol=1e-6)


def test_cli_restyle_and_exit_codes(saae: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["restyle", *DIGITS, "--model", str(saae), "--labels", "0-9", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "2 images x 10 labels" in result.stdout
    result = runner.invoke(
        app, ["restyle", *DIGITS, "-m", str(saae), "--labels", "1,5", "--show-input", "--out-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d").glob("*.png"))) == 4  # restyled images only, not the inputs
    for args, message in (
        (["--labels", "0-12"], "must run upwards within 0-9"),
        (["--labels", "x"], "unknown label 'x'"),
        (["--labels", ","], "at least one label"),
    ):
        result = runner.invoke(app, ["restyle", *DIGITS, "-m", str(saae), *args, "-o", str(out)])
        assert result.exit_code == 2 and message in result.stderr, result.output
    result = runner.invoke(app, ["restyle", *DIGITS, "-m", "mnist-vae", "-o", str(out)])
    assert result.exit_code == 2 and "cannot restyle" in result.stderr
    result = runner.invoke(app, ["sample", "-m", str(saae), "-o", str(out)])
    assert result.exit_code == 2 and "sample needs a label" in result.stderr
    result = runner.invoke(app, ["sample", "-m", str(saae), "--label", "12", "-o", str(out)])
    assert result.exit_code == 2 and "unknown label '12'" in result.stderr
    result = runner.invoke(app, ["sample", "-m", str(saae), "--label", "3", "-n", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["reconstruct", DIGITS[0], "-m", str(saae), "-o", str(out)])
    assert result.exit_code == 2 and "reconstruct needs" in result.stderr
    result = runner.invoke(app, ["reconstruct", DIGITS[0], "-m", str(saae), "--label", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["traverse", "-m", str(saae), "--label", "3", "--steps", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["decode", str(_codes(tmp_path)), "-m", str(saae), "-o", str(out)])
    assert result.exit_code == 2 and "give labels" in result.stderr
    result = runner.invoke(app, ["decode", str(_codes(tmp_path)), "-m", str(saae), "--label", "9", "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", "-m", "mnist-vae", "--label", "3", "-o", str(out)])
    assert result.exit_code == 2 and "not label-conditioned" in result.stderr


def _codes(tmp_path: Path) -> Path:
    path = tmp_path / "codes.npy"
    np.save(path, np.zeros((2, D), np.float32))
    return path


def test_manifest_refuses_unnamed_or_inconsistent_label_inputs(saae: Path) -> None:
    good = json.loads((saae / "model.json").read_text())
    assert Manifest.from_dict(good).label_input == "y"
    assert Manifest.from_dict(good).to_dict() == {**good, "metrics": good["metrics"]}
    unnamed = json.loads(json.dumps(good))
    del unnamed["label_input"]
    with pytest.raises(BundleError, match=r"lists \['y'\] besides"):
        Manifest.from_dict(unnamed)
    no_labels = json.loads(json.dumps(good))
    no_labels["labels"] = None
    with pytest.raises(BundleError, match="'labels' must be a list of class names when 'label_input' is set"):
        Manifest.from_dict(no_labels)
    wrong_k = json.loads(json.dumps(good))
    wrong_k["graphs"]["decoder"]["inputs"]["y"] = [None, 9]
    with pytest.raises(BundleError, match=r"inputs.y' is \[None, 9\] but labels say \[None, 10\]"):
        Manifest.from_dict(wrong_k)


def test_schema_accepts_the_supervised_manifest(saae: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from importlib.resources import files

    schema = json.loads(files("vaegen_infer").joinpath("schema/model.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    good = json.loads((saae / "model.json").read_text())
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "labels": None})
    assert not validator.is_valid({**good, "label_input": "z"})


def test_server_and_triton_refuse_the_label_decoder(saae: Path, tmp_path: Path) -> None:
    pytest.importorskip("tritonclient")
    result = runner.invoke(app, ["export-triton", "-m", str(saae), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 2 and "besides 'z'" in result.stderr
    pytest.importorskip("fastapi")
    from vaegen_infer.serve import Settings, create_app

    with pytest.raises(UsageError, match=r"label-conditioned decoder.*does not serve"):
        create_app({"s": vi.load(saae, providers="cpu")}, Settings())


def test_training_options(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from train.cli import app as train_app
    from train.config import ModelConfig

    with pytest.raises(UsageError, match="label decoder"):
        ModelConfig(kind="aae", prior="mog", conditional=True, decoder_labels=10)
    with pytest.raises(UsageError, match="label decoder"):
        ModelConfig(kind="vae", decoder_labels=10)
    result = runner.invoke(train_app, ["fit", "--model", "vae", "--supervised", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--supervised" in result.output
    assert "--supervised" in runner.invoke(train_app, ["fit", "--help"]).output


def test_old_bundles_still_load_without_label_input(tmp_path: Path) -> None:
    dst = tmp_path / "aae"
    shutil.copytree(ROOT / "exported" / "mnist-aae", dst)
    g = vi.load(dst, providers="cpu")
    assert not g.label_decoder and g.sample(2, seed=0, label=3).shape == (2, 1, 28, 28)
    assert "label_input" not in g.manifest.to_dict()
