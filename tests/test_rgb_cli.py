"""Every picture-making command on a 64x64 RGB bundle with a Gaussian likelihood, trained here on
a tiny folder of photos with a CSV attribute table: outputs keep their colour and size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer.cli import app

runner = CliRunner()
TILE = 64 * 2  # the default --scale 2


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 photos, 80x80 RGB, in two class folders: red or blue squares on black, of two sizes;
    attributes.csv says which are big (binary) and how bright (continuous)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    rows = ["file,big,brightness"]
    for i in range(32):
        cls = "red" if i % 2 == 0 else "blue"
        (root / cls).mkdir(exist_ok=True)
        big = i % 4 < 2
        side = 40 if big else 20
        bright = float(rng.uniform(0.5, 1.0))
        img = np.zeros((80, 80, 3), np.uint8)
        x0, y0 = rng.integers(0, 80 - side, 2)
        img[y0 : y0 + side, x0 : x0 + side, 0 if cls == "red" else 2] = int(255 * bright)
        name = f"{cls}/p{i:02d}.jpg"
        Image.fromarray(img).save(root / name, quality=95)
        rows.append(f"{name},{1 if big else -1},{bright:.3f}")
    (root / "attributes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def rgb_bundle(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from train.config import ModelConfig, TrainConfig
    from train.export import export_run
    from train.fit import fit_vae, load_data

    out = tmp_path_factory.mktemp("rgb")
    tcfg = TrainConfig(data=f"folder:{photos}", epochs=2, batch_size=8, image_size=(64, 64), val_fraction=0.25,
                       attributes=str(photos / "attributes.csv"), threads=1)  # fmt: skip
    split = load_data(tcfg)
    mcfg = ModelConfig(image_shape=split.image_shape, channels=(8, 8, 16, 16), hidden=16, latent_dim=4,
                       likelihood="gaussian")  # fmt: skip
    fit_vae(mcfg, tcfg, split, out / "run", quiet=True)
    path, _ = export_run(out / "run", out / "bundle")
    return path


def _rgb(path: Path) -> Image.Image:
    img = Image.open(path)
    assert img.mode == "RGB", (path, img.mode)
    return img


def test_the_bundle_carries_what_the_data_said(rgb_bundle: Path) -> None:
    g = vi.load(rgb_bundle, providers="cpu")
    m = g.manifest
    assert g.image_shape == (3, 64, 64) and m.image.likelihood == "gaussian" and m.image.data_kind == "8bit"
    assert m.labels == ["blue", "red"]
    assert m.attributes["big"].kind == "binary" and m.attributes["brightness"].kind == "continuous"


def test_every_picture_command_keeps_colour_and_size(rgb_bundle: Path, photos: Path, tmp_path: Path) -> None:
    red = sorted((photos / "red").glob("*.jpg"))[:3]
    b = str(rgb_bundle)
    cases = {
        "sample": ["sample", "--n", "9", "--seed", "0", "-o", tmp_path / "s.png"],
        "sample-jpg": ["sample", "--n", "4", "-o", tmp_path / "s.jpg"],
        "reconstruct": ["reconstruct", *red, "-o", tmp_path / "r.png"],
        "interpolate": ["interpolate", red[0], red[1], "--steps", "5", "-o", tmp_path / "i.png"],
        "shift": ["shift", *red[:2], "--attribute", "big", "--amounts", "-1,0,1", "-o", tmp_path / "sh.png"],
        "traverse": ["traverse", red[0], "--steps", "5", "-o", tmp_path / "t.png"],
        "manifold": ["manifold", "--n", "4", "-o", tmp_path / "m.png"],
        "latent-map": ["latent-map", "--data", photos, "-o", tmp_path / "lm.png"],
    }
    for name, args in cases.items():
        code, _, err = run(*args, "--model", b)
        assert code == 0, (name, err)
    assert _rgb(tmp_path / "s.png").size == (2 + 3 * (TILE + 2),) * 2
    assert _rgb(tmp_path / "s.jpg").format == "JPEG"
    w, h = _rgb(tmp_path / "sh.png").size
    assert w > 3 * TILE and h > 2 * TILE  # 2 rows of 3 amounts, plus labels
    assert _rgb(tmp_path / "i.png").size[0] == 2 + 5 * (TILE + 2)
    assert _rgb(tmp_path / "t.png").size[1] > 4 * TILE  # a row per latent dimension (4)
    assert _rgb(tmp_path / "m.png").size == (4 * 64, 4 * 64)
    assert _rgb(tmp_path / "lm.png").size[0] > 600
    _rgb(tmp_path / "r.png")
    code, _, err = run("interpolate", red[0], red[1], "--steps", "4", "-o", tmp_path / "i.gif", "--model", b)
    assert code == 0, err
    gif = Image.open(tmp_path / "i.gif")  # Pillow merges identical frames, so count only the size
    assert gif.size == (3 * 64, 3 * 64) and gif.convert("RGB").mode == "RGB"


def test_out_dir_codes_scores_and_user_attributes_on_rgb(rgb_bundle: Path, photos: Path, tmp_path: Path) -> None:
    b = str(rgb_bundle)
    code, _, err = run("sample", "--n", "5", "--seed", "1", "--out-dir", tmp_path / "each", "--model", b)
    assert code == 0, err
    files = sorted((tmp_path / "each").glob("*.png"))
    assert [f.name for f in files] == [f"image-000{i}.png" for i in range(5)]
    g = vi.load(rgb_bundle, providers="cpu")
    first = np.asarray(_rgb(files[0]), np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(first, g.sample(5, seed=1)[0], atol=0.5 / 255 + 1e-6)
    assert not (tmp_path / "samples.png").exists()  # --out-dir alone writes no grid
    code, _, err = run("encode", photos / "red", "-o", tmp_path / "z.npy", "--model", b)
    assert code == 0, err
    assert np.load(tmp_path / "z.npy").shape == (16, 4)
    code, _, err = run("decode", tmp_path / "z.npy", "-o", tmp_path / "d.png", "--model", b)
    assert code == 0, err
    _rgb(tmp_path / "d.png")
    code, out, err = run("score", photos / "red", "-k", "8", "-o", tmp_path / "s.csv", "--model", b)
    assert code == 0 and "bits/dim" in out, err
    bpd = np.array([float(r.split(",")[2]) for r in (tmp_path / "s.csv").read_text().splitlines()[1:]])
    assert bpd.shape == (16,) and np.all(bpd > 0) and np.all(bpd < 8)  # below the 8 bits of a uniform guess
    code, _, err = run("attributes", "add", "--model", b, "--name", "reddish", "--with", photos / "red",
                       "--without", photos / "blue")  # fmt: skip
    assert code == 0, err
    code, _, err = run("shift", photos / "blue" / "p01.jpg", "--attribute", "reddish", "--amounts", "0,1",
                       "-o", tmp_path / "rs.png", "--model", b)  # fmt: skip
    assert code == 0, err
    _rgb(tmp_path / "rs.png")


def test_a_run_that_keeps_the_aspect_ratio_exports_it_and_the_runtime_crops_alike(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from train.config import ModelConfig, TrainConfig
    from train.data import to_float
    from train.export import export_run
    from train.fit import fit_vae, load_data

    folder = tmp_path / "wide"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(8):  # 80 wide, 40 tall: a centre 40x40 square is what the model sees
        Image.fromarray(rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)).save(folder / f"w{i}.png")
    tcfg = TrainConfig(data=f"folder:{folder}", epochs=1, batch_size=4, image_size=(32, 32), val_fraction=0.25,
                       aspect="keep", threads=1)  # fmt: skip
    split = load_data(tcfg)
    mcfg = ModelConfig(image_shape=split.image_shape, channels=(8, 8, 8), hidden=8, latent_dim=2, likelihood="gaussian")
    fit_vae(mcfg, tcfg, split, tmp_path / "run", quiet=True)
    path, _ = export_run(tmp_path / "run", tmp_path / "bundle")
    g = vi.load(path, providers="cpu")
    assert g.manifest.image.preprocess.aspect == "keep"
    code, out, _ = run("info", "--model", path)
    assert code == 0 and "preprocess:  crop to the aspect ratio, resize auto" in out
    notes: list[str] = []
    x, _ = g.load_images([folder / "w0.png"], note=notes.append)
    assert notes[0] == "w0.png: cropped 80x40 -> 40x40 (the model's aspect ratio)"
    rows = to_float(np.concatenate([split.x_train[np.arange(len(split.x_train))],
                                    split.x_val[np.arange(len(split.x_val))]]))  # fmt: skip
    assert any(np.array_equal(r, x[0]) for r in rows)  # the training image of that file, exactly
