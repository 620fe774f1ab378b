"""Every `--data` source: the Split interface, options checking, splits, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train import dsprites as ds
from train.data import DataOptions, Split, batches, load, to_float
from vaegen_infer.errors import InputError, UsageError

# -- the Split interface and options -------------------------------------------------------------


def test_to_float_scales_uint8_and_keeps_float32() -> None:
    u = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    f = to_float(u)
    assert f.dtype == np.float32 and f.ravel().tolist() == pytest.approx([0, 128 / 255, 1])
    x = np.random.default_rng(0).random((2, 1, 3, 3), dtype=np.float32)
    assert to_float(x) is x or np.shares_memory(to_float(x), x)
    assert Split.to_float(u).tolist() == f.tolist()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("val_fraction", 0.0, "val_fraction"),
        ("val_fraction", 1.5, "val_fraction"),
        ("val_fraction", "0.1", "val_fraction"),
        ("channels", 2, "channels"),
        ("image_size", (0, 28), "image_size"),
        ("image_size", (28, 28, 3), "image_size"),
        ("crop", 0, "crop"),
        ("resize", "cubic", "resize"),
        ("seed", -1, "seed"),
        ("n_images", 1, "n_images"),
        ("strict", "yes", "strict"),
        ("attributes", 3, "attributes"),
    ],
)
def test_options_refuse_bad_fields_naming_them(field: str, value: object, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        DataOptions(**{field: value})  # type: ignore[arg-type]


def test_options_normalise_sizes_and_paths() -> None:
    o = DataOptions(image_size=64, attributes="~/a.txt", cache_dir="/tmp/c")  # type: ignore[arg-type]
    assert o.image_size == (64, 64)
    assert isinstance(o.attributes, Path) and o.attributes.name == "a.txt"
    assert o.cache_dir == Path("/tmp/c")


def test_unknown_and_malformed_specs_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown --data 'cifar'"):
        load("cifar")
    with pytest.raises(UsageError, match="give a path"):
        load("folder:")
    with pytest.raises(InputError, match="no such directory"):
        load(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(InputError, match="no such file"):
        load(f"npz:{tmp_path / 'nope.npz'}")


def test_mnist_idx_without_train_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load(f"mnist-idx:{tmp_path}")
    msg = str(info.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte[.gz]" in msg and "train-labels-idx1-ubyte[.gz]" in msg


def test_mnist_idx_reads_a_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in imgs.shape) + imgs.tobytes()
    )
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (30).to_bytes(4, "big") + labels.tobytes())
    s = load(f"mnist-idx:{tmp_path}")
    assert len(s.x_train) == 27 and len(s.x_val) == 3 and s.x_train.dtype == np.float32
    # every image lands in exactly one half, with its label
    both = np.concatenate([s.x_train, s.x_val])[:, 0]
    order = [int(np.nonzero((imgs == np.rint(b * 255)).all(axis=(1, 2)))[0][0]) for b in both]
    assert sorted(order) == list(range(30))
    assert np.concatenate([s.y_train, s.y_val]).tolist() == [o % 10 for o in order]


def test_synthetic_split_is_the_historic_one() -> None:
    s = load("synthetic")
    assert s.x_train.shape == (288, 1, 28, 28) and s.x_val.shape == (32, 1, 28, 28)
    assert s.x_train.dtype == np.float32 and s.labels == [str(i) for i in range(10)]
    # the permutation of default_rng(0), last 10% held out: known first labels
    order = np.random.default_rng(0).permutation(320)
    assert s.y_train[:8].tolist() == (order[:8] % 10).tolist()
    assert s.y_val.tolist() == (order[-32:] % 10).tolist()
    assert s.attributes_train == {} and s.factors is None
    assert s.preprocess is not None and s.preprocess.shape == (1, 28, 28)


def test_in_memory_sources_follow_channels_and_size() -> None:
    s = load("synthetic", DataOptions(channels=3, image_size=(32, 40)))
    assert s.x_train.shape == (288, 3, 32, 40) and s.x_train.dtype == np.uint8
    x = to_float(s.x_val[:4])
    assert np.array_equal(x[:, 0], x[:, 2])  # grey replicated
    with pytest.raises(UsageError, match="--attributes applies to folder"):
        load("synthetic", DataOptions(attributes=Path("a.csv")))


# -- dSprites through load -------------------------------------------------------------------------


def test_dsprites_split_holds_out_validation_and_renders_lazily() -> None:
    s = load("dsprites")
    assert len(s.x_train) + len(s.x_val) == ds.N_COMBINATIONS
    assert len(s.x_val) == round(0.1 * ds.N_COMBINATIONS)
    assert s.image_shape == (1, 64, 64) and s.x_train.dtype == np.uint8
    assert not np.intersect1d(s.x_train.indices, s.x_val.indices).size  # never trained on
    assert s.labels == ["square", "ellipse", "heart"] and s.factors == ["shape", "scale", "orientation", "x", "y"]
    assert set(s.attribute_kinds) == {"x", "y", "scale", "orientation_cos", "orientation_sin", "square", "ellipse",
                                      "heart"}  # fmt: skip
    assert s.attribute_kinds["square"] == "binary" and s.attribute_kinds["scale"] == "continuous"
    for name, col in s.attributes_train.items():
        assert col.shape == (len(s.x_train),) and col.dtype == np.float32, name
    batch = to_float(s.x_train[np.arange(10)])
    assert batch.shape == (10, 1, 64, 64) and set(np.unique(batch)) == {0.0, 1.0}
    # labels and one-hot columns agree
    assert np.array_equal(s.y_train, np.argmax(np.stack([s.attributes_train[k] for k in ds.SHAPES], 1), 1))
    # the same seed, the same split
    assert np.array_equal(load("dsprites").x_val.indices, s.x_val.indices)
    assert not np.array_equal(load("dsprites", DataOptions(seed=1)).x_val.indices[:50], s.x_val.indices[:50])


def test_color_dsprites_colour_attributes_match_pixels() -> None:
    s = load("color-dsprites", DataOptions(n_images=2000, seed=7))
    assert len(s.x_train) == 1800 and len(s.x_val) == 200 and s.image_shape == (3, 64, 64)
    x = to_float(s.x_val[np.arange(50)])
    got = ds.mean_colour(x)
    want = np.stack([s.attributes_val[c][:50] for c in ("red", "green", "blue")], axis=1)
    assert np.abs(got - want).max() < 1e-6
    assert want.min() >= 0.5 and want.max() <= 1.0
    # the same index gives the same colour across loads (n_images only picks a subset)
    again = load("color-dsprites", DataOptions(n_images=2000, seed=7))
    assert np.array_equal(again.x_val[np.arange(5)], s.x_val[np.arange(5)])


def test_dsprites_options_are_checked() -> None:
    with pytest.raises(UsageError, match="at most 737,280"):
        load("dsprites", DataOptions(n_images=800_000))
    with pytest.raises(UsageError, match="square"):
        load("dsprites", DataOptions(image_size=(64, 32)))
    with pytest.raises(UsageError, match="--crop does not apply"):
        load("dsprites", DataOptions(crop=40))
    grey = load("color-dsprites", DataOptions(n_images=100, channels=1))
    assert grey.image_shape == (1, 64, 64) and grey.x_train[np.arange(3)].shape == (3, 1, 64, 64)
    small = load("dsprites", DataOptions(n_images=100, image_size=32))
    assert small.x_train[np.arange(2)].shape == (2, 1, 32, 32)


def test_batches_cover_the_order_as_float() -> None:
    x = np.arange(10 * 4, dtype=np.uint8).reshape(10, 1, 2, 2)
    got = list(batches(x, 4, order=np.array([9, 0, 1, 2, 3, 4, 5, 6, 7, 8])))
    assert [b.shape[0] for b in got] == [4, 4, 2]
    assert np.array_equal(np.concatenate(got), x[[9, 0, 1, 2, 3, 4, 5, 6, 7, 8]] / np.float32(255))


# -- folder: ---------------------------------------------------------------------------------------


def _save(path: Path, value: int, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((size[1], size[0], 3), value, np.uint8)
    a[0, 0] = (value * 7) % 256, 1, 2  # a marker pixel: images differ
    Image.fromarray(a).convert(mode).save(path)


def test_class_folders_become_labels(tmp_path: Path) -> None:
    for cls, n in (("cats", 6), ("dogs", 4)):
        for i in range(n):
            _save(tmp_path / cls / f"{i}.png", 10 * i + (100 if cls == "dogs" else 0))
    _save(tmp_path / "dogs" / "deep" / "x.jpg", 250)  # recursive, any format
    notes: list[str] = []
    s = load(f"folder:{tmp_path}", DataOptions(val_fraction=0.2), note=notes.append)
    assert s.labels == ["cats", "dogs"]
    assert len(s.x_train) + len(s.x_val) == 11 and len(s.x_val) == 2
    assert sorted(np.concatenate([s.y_train, s.y_val]).tolist()) == [0] * 6 + [1] * 5
    assert s.image_shape == (3, 10, 12) and s.x_train.dtype == np.uint8
    assert any("2 classes from sub-folders (cats, dogs)" in n for n in notes)
    assert any("images/s" in n for n in notes)  # decoded once, with its rate
    # the labels follow the pixels: dog images are brighter than 95
    x = to_float(s.x_train[np.arange(len(s.x_train))])
    assert ((x[:, 1, 5, 5] * 255 > 95) == (s.y_train == 1)).all()
    # the second load reads the cache
    notes.clear()
    again = load(f"folder:{tmp_path}", DataOptions(val_fraction=0.2), note=notes.append)
    assert any("using the decoded cache" in n for n in notes)
    assert np.array_equal(again.x_val[np.arange(2)], s.x_val[np.arange(2)])
    assert (tmp_path / ".vaegen-cache").is_dir()


def test_flat_folder_is_unlabelled_and_cache_key_follows_changes(tmp_path: Path) -> None:
    for i in range(5):
        _save(tmp_path / f"{i}.png", 40 * i, mode="L")
    _save(tmp_path / "sub" / "a.png", 7, mode="L")  # one image not in a class folder: unlabelled set
    s = load(f"folder:{tmp_path}", DataOptions(val_fraction=0.2, image_size=8))
    assert s.labels is None and (s.y_train == -1).all() and (s.y_val == -1).all()
    assert s.image_shape == (1, 8, 8)  # grey follows the data; the size was asked for
    _save(tmp_path / "5.png", 99, mode="L")  # a new file: a new cache
    notes: list[str] = []
    s2 = load(f"folder:{tmp_path}", DataOptions(val_fraction=0.2, image_size=8), note=notes.append)
    assert len(s2.x_train) + len(s2.x_val) == 7 and not any("using the decoded cache" in n for n in notes)


def test_corrupt_files_are_skipped_with_a_count_or_refused(tmp_path: Path) -> None:
    for i in range(6):
        _save(tmp_path / f"{i}.png", 30 * i)
    (tmp_path / "bad1.png").write_bytes(b"not a png")
    (tmp_path / "bad2.jpg").write_bytes(b"")
    notes: list[str] = []
    s = load(f"folder:{tmp_path}", DataOptions(val_fraction=0.2, cache_dir=tmp_path / "c1"), note=notes.append)
    assert len(s.x_train) + len(s.x_val) == 6
    skipped = [n for n in notes if n.startswith("skipped")]
    assert len(skipped) == 1 and "skipped 2 unreadable image files" in skipped[0]
    assert "bad1.png" in skipped[0] and "bad2.jpg" in skipped[0] and "\n" not in skipped[0]
    with pytest.raises(InputError, match=r"bad1\.png.*--strict"):
        load(f"folder:{tmp_path}", DataOptions(strict=True, cache_dir=tmp_path / "c2"))
    # a cache made while skipping still refuses under --strict
    with pytest.raises(InputError, match="2 unreadable files"):
        load(f"folder:{tmp_path}", DataOptions(val_fraction=0.2, strict=True, cache_dir=tmp_path / "c1"))


def test_empty_folder_names_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match=r"no images under .*\.png"):
        load(f"folder:{tmp_path}")


def test_read_only_folder_caches_in_the_home_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from train import sources

    data = tmp_path / "ro"
    for i in range(4):
        _save(data / f"{i}.png", 50 * i)
    real = sources._writable
    # as if DIR were read-only (chmod does not stop root, who runs this in containers)
    monkeypatch.setattr(sources, "_writable", lambda d: not str(d).startswith(str(data)) and real(d))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    load(f"folder:{data}", DataOptions(val_fraction=0.25))
    assert list((tmp_path / "home-cache" / "vaegen-infer").glob("*.u8"))
    assert not (data / ".vaegen-cache").exists()
    with pytest.raises(InputError, match="is not writable"):
        load(f"folder:{data}", DataOptions(cache_dir=data / "c"))


def test_cache_array_reads_rows_and_pickles(tmp_path: Path) -> None:
    import pickle

    from train.sources import CacheArray

    a = np.random.default_rng(0).integers(0, 256, (20, 3, 4, 4), dtype=np.uint8)
    (tmp_path / "c.u8").write_bytes(a.tobytes())
    c = CacheArray(tmp_path / "c.u8", a.shape)
    assert np.array_equal(c[np.array([5, 1, 19])], a[[5, 1, 19]]) and np.array_equal(c[3:7], a[3:7])
    assert np.array_equal(c[2], a[2]) and np.array_equal(c[-1], a[-1])
    assert np.array_equal(c[np.array([3, 4, 5, 9, 10, 2])], a[[3, 4, 5, 9, 10, 2]])  # runs and jumps
    with pytest.raises(IndexError):
        c[np.array([20])]
    c2 = pickle.loads(pickle.dumps(c))
    assert np.array_equal(c2[np.arange(20)], a)
    (tmp_path / "d.u8").write_bytes(a.tobytes()[:-1])
    with pytest.raises(InputError, match="delete it"):
        CacheArray(tmp_path / "d.u8", a.shape)


# -- attribute files -------------------------------------------------------------------------------


def _faces(root: Path, n: int = 6) -> list[str]:
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for i, name in enumerate(names):
        _save(root / name, 20 + 30 * i)
    return names


def test_celeba_attribute_file(tmp_path: Path) -> None:
    names = _faces(tmp_path / "img")
    smiling = [1, -1, 1, 1, -1, -1]
    lines = [str(len(names)), "Smiling Male"] + [f"{n}  {s:2d} {-s:2d}" for n, s in zip(names, smiling)]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    s = load(f"folder:{tmp_path / 'img'}", DataOptions(attributes=tmp_path / "list_attr_celeba.txt", val_fraction=0.34))
    assert s.attribute_kinds == {"Smiling": "binary", "Male": "binary"}
    both = np.concatenate([s.attributes_train["Smiling"], s.attributes_val["Smiling"]])
    assert sorted(both.tolist()) == [0, 0, 0, 1, 1, 1] and both.dtype == np.float32
    # the attributes follow their images: Smiling of each row matches its file's brightness
    x = to_float(np.concatenate([s.x_train[np.arange(len(s.x_train))], s.x_val[np.arange(len(s.x_val))]]))
    idx = np.rint((x[:, 1, 5, 5] * 255 - 20) / 30).astype(int)
    assert both.tolist() == [float(smiling[i] > 0) for i in idx]
    assert np.array_equal(np.concatenate([s.attributes_train["Male"], s.attributes_val["Male"]]), 1 - both)


def test_csv_attribute_file_kinds(tmp_path: Path) -> None:
    names = _faces(tmp_path / "img")
    rows = ["file,glasses,age,hat"] + [f"{n},{i % 2},{20 + 3.5 * i},{1 if i < 3 else -1}" for i, n in enumerate(names)]
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    s = load(f"folder:{tmp_path / 'img'}", DataOptions(attributes=tmp_path / "a.csv"))
    assert s.attribute_kinds == {"glasses": "binary", "age": "continuous", "hat": "binary"}
    ages = np.sort(np.concatenate([s.attributes_train["age"], s.attributes_val["age"]]))
    assert ages.tolist() == pytest.approx([20 + 3.5 * i for i in range(6)])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,a\n000001.jpg,1\n000002.jpg\n", r"a\.csv line 3: 1 fields, the header has 2"),
        ("file,a\n000001.jpg,1\n000002.jpg,yes\n", r"a\.csv line 3: a = 'yes' is not a number"),
        ("file,a,b\n000001.jpg,1,\n", r"a\.csv line 2: no value for b"),
        ("file,a\n000001.jpg,1\nmissing.jpg,0\n", r"missing\.jpg is not an image under"),
        ("file,a\n000001.jpg,1\n000001.jpg,0\n", r"a\.csv line 3: 000001\.jpg is listed twice \(first on line 2\)"),
        ("file,a\n000001.jpg,1\n", r"5 images under .* have no attribute row"),
        ("name;a\n", r"a\.csv line 1: expected a header"),
        ("3\nSmiling\n000001.jpg 1\n000002.jpg 1 -1\n", r"a\.csv line 4: 2 values for 1 attributes"),
        ("3\nSmiling\n000001.jpg 1\n000002.jpg -1\n", r"a\.csv line 1: says 3 images but the file lists 2"),
        ("2\nSmiling\n000001.jpg 1\n000002.jpg nan\n", r"a\.csv line 4: Smiling = 'nan' is not a finite number"),
    ],
)
def test_attribute_file_errors_give_the_line(tmp_path: Path, text: str, match: str) -> None:
    _faces(tmp_path / "img")
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(InputError, match=match):
        load(f"folder:{tmp_path / 'img'}", DataOptions(attributes=tmp_path / "a.csv"))


def test_attributes_match_relative_paths_in_class_folders(tmp_path: Path) -> None:
    _save(tmp_path / "img" / "a" / "x.png", 10)
    _save(tmp_path / "img" / "b" / "x.png", 200)
    _save(tmp_path / "img" / "b" / "y.png", 100)
    (tmp_path / "bad.csv").write_text("file,v\nx.png,1\na/x.png,2\n")
    with pytest.raises(InputError, match=r"x\.png matches several files"):
        load(f"folder:{tmp_path / 'img'}", DataOptions(attributes=tmp_path / "bad.csv", val_fraction=0.34))
    (tmp_path / "ok.csv").write_text("file,v\na/x.png,2.5\nb/x.png,7.5\ny.png,5.0\n")
    s = load(f"folder:{tmp_path / 'img'}", DataOptions(attributes=tmp_path / "ok.csv", val_fraction=0.34))
    x = to_float(np.concatenate([s.x_train[np.arange(len(s.x_train))], s.x_val[np.arange(len(s.x_val))]]))
    v = np.concatenate([s.attributes_train["v"], s.attributes_val["v"]])
    assert dict(zip(np.rint(x[:, 1, 5, 5] * 255).astype(int).tolist(), v.tolist())) == {10: 2.5, 200: 7.5, 100: 5.0}


# -- npz: ------------------------------------------------------------------------------------------


def test_npz_with_labels_and_attribute_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y, bright=x.mean(axis=(1, 2, 3)), odd=(np.arange(40) % 2).astype(np.int8))
    s = load(f"npz:{tmp_path / 'd.npz'}")
    assert s.image_shape == (3, 16, 16) and s.x_train.dtype == np.uint8 and len(s.x_val) == 4
    assert s.labels == ["0", "1", "2", "3"]
    assert s.attribute_kinds == {"bright": "continuous", "odd": "binary"}
    got = s.x_val[np.arange(4)]
    # each validation row is the original image with its label and columns
    for row, label, bright in zip(got, s.y_val, s.attributes_val["bright"]):
        i = int(np.nonzero((x.transpose(0, 3, 1, 2) == row).all(axis=(1, 2, 3)))[0][0])
        assert label == y[i] and bright == pytest.approx(x[i].mean())
    grey = load(f"npz:{tmp_path / 'd.npz'}", DataOptions(channels=1, image_size=8))
    assert grey.image_shape == (1, 8, 8)


def test_npz_unlabelled_grey_and_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", x=np.zeros((10, 8, 8), np.uint8))
    s = load(f"npz:{tmp_path / 'g.npz'}")
    assert s.labels is None and (s.y_train == -1).all() and s.image_shape == (1, 8, 8)
    np.savez(tmp_path / "f.npz", x=np.zeros((10, 8, 8), np.float32))
    with pytest.raises(InputError, match="x must be uint8"):
        load(f"npz:{tmp_path / 'f.npz'}")
    np.savez(tmp_path / "n.npz", images=np.zeros((10, 8, 8), np.uint8))
    with pytest.raises(InputError, match="no array named 'x' \\(found images\\)"):
        load(f"npz:{tmp_path / 'n.npz'}")
    np.savez(tmp_path / "c.npz", x=np.zeros((10, 8, 8), np.uint8), w=np.zeros(9))
    with pytest.raises(InputError, match="attribute column 'w' must be"):
        load(f"npz:{tmp_path / 'c.npz'}")
    (tmp_path / "t.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"not a readable \.npz"):
        load(f"npz:{tmp_path / 't.npz'}")


def test_options_round_trip_through_a_checkpoint_dict() -> None:
    import json

    o = DataOptions(attributes=Path("/a/list.txt"), val_fraction=0.2, channels=3, image_size=(64, 48), crop=148,
                    resize="bicubic", cache_dir=Path("/c"), seed=3, n_images=1000)  # fmt: skip
    d = json.loads(json.dumps(o.to_dict()))
    assert DataOptions.from_dict(d) == o
    assert DataOptions.from_dict({}) == DataOptions()
    with pytest.raises(UsageError, match="unknown data option"):
        DataOptions.from_dict({"val_frac": 0.1})
