"""The one preprocessing: known answers, and the same array in training and at runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaegen_infer.errors import InputError, UsageError
from vaegen_infer.images import load_image, load_images
from vaegen_infer.manifest import ImageSpec, PreprocessSpec
from vaegen_infer.preprocess import Preprocess


def _photo(h: int = 218, w: int = 178, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture with some texture, CelebA-sized by default."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    img = np.stack([128 + 100 * np.sin(xx / 17.0), 128 + 100 * np.cos(yy / 23.0), (xx + yy) % 256], axis=-1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="channels"):
        Preprocess(2, 8, 8)
    with pytest.raises(UsageError, match="height"):
        Preprocess(1, 0, 8)
    with pytest.raises(UsageError, match="crop"):
        Preprocess(1, 8, 8, crop=0)
    with pytest.raises(UsageError, match="resize"):
        Preprocess(1, 8, 8, resize="cubic")
    with pytest.raises(UsageError, match="aspect must be one of stretch, keep"):
        Preprocess(1, 8, 8, aspect="fill")


def test_manifest_round_trip() -> None:
    image = ImageSpec(3, 64, 64, preprocess=PreprocessSpec(148, "bicubic"))
    pre = Preprocess.from_image_spec(image)
    assert pre == Preprocess(3, 64, 64, 148, "bicubic")
    assert pre.to_dict() == {"crop": 148, "resize": "bicubic"} == image.preprocess.to_dict()
    assert pre.spec() == image.preprocess
    assert Preprocess.from_image_spec(ImageSpec(1, 28, 28)).to_dict() == {"crop": None, "resize": "auto"}
    # aspect: written only when it is not the default, so earlier manifests are written as they were
    keep = ImageSpec(3, 64, 64, preprocess=PreprocessSpec(None, "auto", "keep"))
    assert not keep.preprocess.is_default and PreprocessSpec().aspect == "stretch"
    assert Preprocess.from_image_spec(keep) == Preprocess(3, 64, 64, aspect="keep")
    assert keep.to_dict()["preprocess"] == {"crop": None, "resize": "auto", "aspect": "keep"}
    assert "preprocess" not in ImageSpec(3, 64, 64).to_dict()
    assert Preprocess(3, 64, 64, aspect="keep").key() != Preprocess(3, 64, 64).key() == "c3-h64-w64-cropNone-auto"


def test_keeping_the_aspect_crops_the_middle_and_never_stretches() -> None:
    a = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10)  # rows 0..5, columns 0..9
    notes: list[str] = []
    wide = Preprocess(1, 6, 6, aspect="keep").floats(a[..., None] / 255.0, "wide", note=notes.append)
    assert np.array_equal(np.rint(wide[..., 0] * 255), a[:, 2:8])  # every row, columns (10-6)//2 = 2 on
    assert notes == ["wide: cropped 10x6 -> 6x6 (the model's aspect ratio)"]
    tall = Preprocess(1, 6, 6, aspect="keep").apply(Image.fromarray(a.T.copy()))
    assert np.array_equal(tall[..., 0], a.T[2:8, :])
    flat = Preprocess(1, 3, 6, aspect="keep").apply(Image.fromarray(a[:, :6].copy()))  # 6x6 -> 3 rows x 6
    assert np.array_equal(flat[..., 0], a[1:4, :6])  # top (6-3)//2 = 1
    # the model's aspect already: untouched, as stretch would give
    same = Image.fromarray(a[:3, :6].copy())
    assert np.array_equal(Preprocess(1, 3, 6, aspect="keep").apply(same), Preprocess(1, 3, 6).apply(same))
    # within a pixel of the ratio: nothing to crop, nothing said
    notes.clear()
    near = Preprocess(1, 100, 199, aspect="keep").floats(np.zeros((50, 100, 1)), "near", note=notes.append)
    assert near.shape == (100, 199, 1) and not any("cropped" in n for n in notes)
    # after a pixel crop: the 6x10 cropped to 5 is square already
    assert np.array_equal(Preprocess(1, 5, 5, crop=5, aspect="keep").apply(Image.fromarray(a)),
                          Preprocess(1, 5, 5, crop=5).apply(Image.fromarray(a)))  # fmt: skip
    # a disc in a wide picture stays round: its bounding box is square after the resize
    yy, xx = np.mgrid[0:60, 0:120]
    disc = (((xx - 60) ** 2 + (yy - 30) ** 2) <= 20**2).astype(np.uint8) * 255
    for aspect, ratio in (("keep", 1.0), ("stretch", 2.0)):
        out = Preprocess(1, 32, 32, aspect=aspect).apply(Image.fromarray(disc))[..., 0] > 127
        rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
        assert (rows[-1] - rows[0] + 1) / (cols[-1] - cols[0] + 1) == pytest.approx(ratio, rel=0.1)


def test_centre_crop_takes_the_middle() -> None:
    a = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10)  # rows 0..5, columns 0..9
    got = Preprocess(1, 4, 4, crop=4).apply(Image.fromarray(a))
    assert got.shape == (4, 4, 1)
    assert np.array_equal(got[..., 0], a[1:5, 3:7])  # top (6-4)//2 = 1, left (10-4)//2 = 3


def test_crop_larger_than_the_image_is_noted_or_refused(tmp_path: Path) -> None:
    Image.fromarray(_photo(20, 30)).save(tmp_path / "small.png")
    notes: list[str] = []
    x = Preprocess(3, 10, 10, crop=25).load(tmp_path / "small.png", note=notes.append)
    assert x.shape == (10, 10, 3)
    assert notes[0] == "small.png: 30x20 is smaller than the 25-pixel crop, cropping 20x20"
    with pytest.raises(InputError, match="smaller than the 25-pixel centre crop"):
        Preprocess(3, 10, 10, crop=25).load(tmp_path / "small.png", strict=True)


def test_filters_known_answers() -> None:
    a = np.array([[0, 40, 80, 120], [160, 200, 240, 255], [10, 20, 30, 40], [50, 60, 70, 80]], np.uint8)
    box = Preprocess(1, 2, 2, resize="box").apply(Image.fromarray(a))[..., 0]
    assert box.tolist() == [[100, 174], [35, 55]]  # 2x2 means, rounded half up: 100, 173.75, 35, 55
    auto = Preprocess(1, 2, 2).apply(Image.fromarray(a))[..., 0]
    assert np.array_equal(auto, box)  # auto shrinks with the box filter
    nearest = Preprocess(1, 2, 2, resize="nearest").apply(Image.fromarray(a))[..., 0]
    assert set(nearest.ravel().tolist()) <= set(a.ravel().tolist())
    # enlarging: "auto" is bicubic
    big = Preprocess(1, 8, 8).apply(Image.fromarray(a))
    assert np.array_equal(big, Preprocess(1, 8, 8, resize="bicubic").apply(Image.fromarray(a)))
    assert not np.array_equal(big, Preprocess(1, 8, 8, resize="bilinear").apply(Image.fromarray(a)))


def test_channel_conversion_known_answers() -> None:
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert Preprocess(1, 2, 2).apply(Image.fromarray(red)).ravel().tolist() == [76] * 4  # 0.299 * 255 = 76.2
    grey = np.full((2, 2), 200, np.uint8)
    assert Preprocess(3, 2, 2).apply(Image.fromarray(grey)).reshape(-1, 3).tolist() == [[200] * 3] * 4
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 128  # half-transparent over black
    assert Preprocess(3, 2, 2).apply(Image.fromarray(rgba, "RGBA")).reshape(-1, 3)[0].tolist() == [100] * 3


def test_float_path_is_exactly_the_uint8_path_over_255() -> None:
    img = Image.fromarray(_photo())
    for pre in (Preprocess(3, 64, 64, 148, "bicubic"), Preprocess(1, 28, 28), Preprocess(3, 300, 250, None, "lanczos")):
        u = pre.apply(img)
        f = pre.apply_float(img)
        assert u.dtype == np.uint8 and f.dtype == np.float32
        assert np.array_equal(f, u.astype(np.float32) / np.float32(255))


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("RGB", ".png"), ("RGB", ".jpg"), ("L", ".png"), ("RGBA", ".png"), ("P", ".gif"), ("I;16", ".tiff"),
     ("CMYK", ".jpg"), ("LA", ".png")],
)  # fmt: skip
def test_training_and_runtime_give_the_same_array(mode: str, suffix: str, tmp_path: Path) -> None:
    from train.data import DataOptions, load, to_float

    photo = _photo(90, 70)
    if mode == "I;16":
        img = Image.fromarray(photo[..., 0].astype(np.uint16) * 257)
    elif mode == "LA":
        img = Image.fromarray(photo[..., :2].copy(), "LA")
    else:
        img = Image.fromarray(photo).convert(mode)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        img.rotate(90 * i).save(folder / f"{i}{suffix}")
    settings = ((3, 60, "bicubic", "stretch"), (1, None, "auto", "stretch"), (3, None, "lanczos", "stretch"),
                (3, None, "auto", "keep"))  # fmt: skip
    for channels, crop, resize, aspect in settings:  # the rotated files are 90x70 and 70x90
        cache = tmp_path / f"cache-{channels}-{crop}-{resize}-{aspect}"
        options = DataOptions(channels=channels, image_size=(32, 32), crop=crop, resize=resize, aspect=aspect,
                              cache_dir=cache, val_fraction=0.25)  # fmt: skip
        split = load(f"folder:{folder}", options)
        pre = Preprocess(channels, 32, 32, crop, resize, aspect)
        assert split.preprocess == pre
        # every training / validation image equals what the runtime makes of its file
        names = sorted(folder.iterdir())
        train_rows = to_float(split.x_train[np.arange(len(split.x_train))])
        val_rows = to_float(split.x_val[np.arange(len(split.x_val))])
        rows = np.concatenate([train_rows, val_rows])
        runtime = np.stack([load_image(p, pre.shape, preprocess=pre) for p in names])
        for r in rows:  # the split shuffles: each row must equal one file's array exactly
            assert any(np.array_equal(r, x) for x in runtime)
        x, _ = load_images([folder], pre.shape, preprocess=pre)
        assert np.array_equal(x, runtime)


def test_load_image_checks_preprocess_matches_the_model(tmp_path: Path) -> None:
    Image.fromarray(_photo(40, 40)).save(tmp_path / "a.png")
    with pytest.raises(UsageError, match="preprocessing makes"):
        load_image(tmp_path / "a.png", (3, 28, 28), preprocess=Preprocess(3, 32, 32))
    notes: list[str] = []
    x = load_image(tmp_path / "a.png", (3, 20, 20), preprocess=Preprocess(3, 20, 20, crop=30), note=notes.append)
    assert x.shape == (3, 20, 20) and notes == ["a.png: resized 30x30 -> 20x20"]
