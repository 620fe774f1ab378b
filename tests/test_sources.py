"""Every `--data` source: the Split interface, options checking, splits, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
    assert set(s.attribute_kinds) == {"x", "y", "scale", "orientation", "square", "ellipse", "heart"}
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
