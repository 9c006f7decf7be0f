"""SIGNS data: the genuine file, the synthetic set, where data comes from, and bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from signs_testing import make_data_dir, small_split, write_split

from signs import DataError, convert_to_one_hot, flatten, load_dataset, load_from, read_split, resolve_data
from signs.data import GENUINE_SHA256, is_genuine, load_image
from signs.synthetic import ensure_synthetic, write_synthetic

# From SPEC.md ("sha256 of the genuine files"), not from the code under test.
SPEC_TEST_SHA256 = "539fb746ed9e947eb244cfca73f4d1b03f9bf5524d609eeed2cd76ddb1b179be"
SPEC_TRAIN_SHA256 = "47480709d99f2ea6ae428ecc491fc6f65ff1d05336736dd859d5565e0ad3cf74"
SPEC_TEST_SIZE = 1_477_712


# --------------------------------------------------------------------------- genuine file

def test_genuine_test_file_keys_shapes_dtypes(genuine_test_file):
    with h5py.File(genuine_test_file, "r") as handle:
        assert set(handle.keys()) == {"test_set_x", "test_set_y", "list_classes"}
        assert handle["test_set_x"].shape == (120, 64, 64, 3)
        assert handle["test_set_x"].dtype == np.uint8
        assert handle["test_set_y"].shape == (120,)
        assert handle["test_set_y"].dtype == np.int64
        assert handle["list_classes"].shape == (6,)
    images, labels, classes = read_split(genuine_test_file)
    assert images.shape == (120, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (120,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(6))
    assert classes.shape == (6,)


def test_genuine_test_file_checksum(genuine_test_file):
    assert genuine_test_file.stat().st_size == SPEC_TEST_SIZE
    digest = hashlib.sha256(genuine_test_file.read_bytes()).hexdigest()
    assert digest == SPEC_TEST_SHA256
    assert GENUINE_SHA256 == {"test_signs.h5": SPEC_TEST_SHA256, "train_signs.h5": SPEC_TRAIN_SHA256}
    assert is_genuine(genuine_test_file)


def test_genuine_test_file_without_train_file(genuine_test_file, tmp_path):
    """No genuine training file exists here: auto falls back to synthetic; signs refuses."""
    directory = tmp_path / "only-test"
    directory.mkdir()
    (directory / "test_signs.h5").symlink_to(genuine_test_file)
    notices = []
    source = resolve_data("auto", directory)
    assert source.kind == "synthetic"
    load_dataset(directory, notify=notices.append)
    assert len(notices) == 1 and "synthetic" in notices[0]
    with pytest.raises(DataError, match="train_signs.h5") as info:
        load_dataset(directory, data="signs")
    assert str(directory) in str(info.value)


# --------------------------------------------------------------------------- synthetic set

def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in ("train_signs.h5", "test_signs.h5")}


def test_synthetic_same_seed_same_bytes(tmp_path, monkeypatch, synthetic_dir):
    """Generated afresh in another cache directory, seed 0 gives byte-identical files."""
    monkeypatch.setenv("SIGNS_CACHE_DIR", str(tmp_path / "cache"))
    fresh = ensure_synthetic(0)
    assert fresh.parent == tmp_path / "cache"
    assert fresh != synthetic_dir
    assert _files(fresh) == _files(synthetic_dir)


def test_synthetic_different_seed_different_data(tmp_path, synthetic_dir):
    other = write_synthetic(tmp_path / "seed1", seed=1)
    a, b = load_from(synthetic_dir), load_from(other)
    for name, content in _files(other).items():
        assert content != _files(synthetic_dir)[name], name
    assert not np.array_equal(a[0], b[0]) and not np.array_equal(a[2], b[2])


def test_synthetic_layout_and_notice(synthetic_dir):
    notices = []
    train_x, train_y, test_x, test_y, classes = load_dataset(data="synthetic", notify=notices.append)
    assert train_x.shape == (1080, 64, 64, 3) and train_x.dtype == np.uint8
    assert test_x.shape == (120, 64, 64, 3) and test_x.dtype == np.uint8
    assert train_y.shape == (1, 1080) and train_y.dtype == np.int64
    assert test_y.shape == (1, 120) and test_y.dtype == np.int64
    assert classes.shape == (6,)
    assert np.array_equal(np.bincount(train_y[0]), [180] * 6)
    assert np.array_equal(np.bincount(test_y[0]), [20] * 6)
    # train and test are different images
    assert not any(np.array_equal(test_x[0], image) for image in train_x)
    # one line, saying it is synthetic and how to use the real data
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "synthetic" in notices[0] and "SIGNS_DIR" in notices[0] and "train_signs.h5" in notices[0]
    with h5py.File(synthetic_dir / "train_signs.h5", "r") as handle:
        assert set(handle.keys()) == {"train_set_x", "train_set_y", "list_classes"}


@pytest.mark.usefixtures("torch_one_thread")
def test_synthetic_is_learnable(synthetic_dir):
    """A quick classifier (logistic regression on 16x16 average-pooled pixels) trained on the
    synthetic train split beats chance (1/6) clearly on its test split: the labels are in the
    pixels. Under 2 s."""
    torch = pytest.importorskip("torch")
    train_x, train_y, test_x, test_y, _ = load_from(synthetic_dir)

    def features(images):
        x = torch.as_tensor(images).permute(0, 3, 1, 2).to(torch.float32) / 255
        return torch.nn.functional.avg_pool2d(x, 4).reshape(len(images), -1)

    x_train, x_test = features(train_x), features(test_x)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train, y_test = torch.as_tensor(train_y[0]), torch.as_tensor(test_y[0])
    torch.manual_seed(0)
    linear = torch.nn.Linear(x_train.shape[1], 6)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(linear(x_train), y_train).backward()
        optimizer.step()
    with torch.no_grad():
        train_accuracy = (linear(x_train).argmax(1) == y_train).float().mean().item()
        test_accuracy = (linear(x_test).argmax(1) == y_test).float().mean().item()
    # Chance is 1/6 = 0.167 (balanced classes); a binomial standard deviation on 120 examples
    # is 0.034, so 0.30 is four of them above chance.
    assert test_accuracy >= 0.30, (train_accuracy, test_accuracy)
    assert train_accuracy > test_accuracy  # learnable, but the test split is not a copy of train


# --------------------------------------------------------------------------- resolution order

def test_resolution_order(tmp_path, monkeypatch):
    explicit = make_data_dir(tmp_path / "explicit", m_train=7, m_test=6)
    from_env = make_data_dir(tmp_path / "env", m_train=8, m_test=6)
    work = tmp_path / "work"
    make_data_dir(work / "datasets", m_train=9, m_test=6)
    monkeypatch.chdir(work)
    monkeypatch.setenv("SIGNS_DIR", str(from_env))

    def train_count(data_dir=None):
        return load_dataset(data_dir, notify=None)[0].shape[0]

    assert train_count(explicit) == 7  # explicit directory first
    assert train_count() == 8  # then $SIGNS_DIR
    monkeypatch.delenv("SIGNS_DIR")
    assert train_count() == 9  # then ./datasets
    assert resolve_data("auto").directory == Path("datasets")


def test_auto_falls_back_to_synthetic_with_one_line_notice(tmp_path, monkeypatch, synthetic_dir):
    monkeypatch.chdir(tmp_path)  # no ./datasets here
    monkeypatch.delenv("SIGNS_DIR", raising=False)
    notices = []
    train_x, *_ = load_dataset(notify=notices.append)
    assert resolve_data("auto").kind == "synthetic"
    assert train_x.shape == (1080, 64, 64, 3)
    assert np.array_equal(train_x, load_from(synthetic_dir)[0])
    assert len(notices) == 1 and "\n" not in notices[0] and "synthetic" in notices[0]
    with pytest.raises(DataError, match="train_signs.h5 and test_signs.h5"):
        load_dataset(data="signs", notify=None)


def test_synthetic_request_ignores_real_files(tmp_path):
    directory = make_data_dir(tmp_path / "real", m_train=7, m_test=6)
    assert load_dataset(directory, data="synthetic", notify=None)[0].shape[0] == 1080


def test_non_genuine_files_load_with_notice(tmp_path):
    directory = make_data_dir(tmp_path / "other", m_train=12, m_test=6)
    source = resolve_data("signs", directory)
    assert source.kind == "other"
    notices = []
    train_x, train_y, test_x, test_y, classes = load_dataset(directory, data="signs",
                                                             notify=notices.append)
    assert train_x.shape == (12, 64, 64, 3) and train_y.shape == (1, 12)
    assert test_x.shape == (6, 64, 64, 3) and test_y.shape == (1, 6)
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "not the genuine" in notices[0] and str(directory / "train_signs.h5") in notices[0]


def test_unknown_data_choice():
    with pytest.raises(DataError, match="expected one of auto, signs, synthetic"):
        resolve_data("real")


# --------------------------------------------------------------------------- bad input

def _valid(tmp_path):
    return make_data_dir(tmp_path / "data", m_train=12, m_test=6)


def _write_train(directory, images=None, labels=None, **kwargs):
    good_images, good_labels = small_split(12, 0)
    write_split(directory / "train_signs.h5", "train",
                good_images if images is None else images,
                good_labels if labels is None else labels, **kwargs)


def _empty(directory):
    (directory / "train_signs.h5").write_bytes(b"")


def _text(directory):
    (directory / "train_signs.h5").write_text("train_set_x,train_set_y\n1,2\n")


def _truncated(directory):
    path = directory / "train_signs.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _missing_key(directory):
    _write_train(directory, keys=("train_set_x", "list_classes"))


def _wrong_shape(directory):
    _write_train(directory, images=np.zeros((12, 32, 32, 3), np.uint8))


def _wrong_dtype(directory):
    _write_train(directory, images=np.zeros((12, 64, 64, 3), np.float32))


def _label_too_big(directory):
    _write_train(directory, labels=np.array([0, 1, 2, 3, 4, 5] * 2)[:11].tolist() + [6])


def _label_negative(directory):
    _write_train(directory, labels=np.array([-1] + [0] * 11, np.int64))


def _empty_set(directory):
    _write_train(directory, images=np.zeros((0, 64, 64, 3), np.uint8), labels=np.zeros(0, np.int64))


def _length_mismatch(directory):
    _write_train(directory, labels=np.zeros(11, np.int64))


def _float_labels(directory):
    _write_train(directory, labels=np.zeros(12, np.float64))


def _directory_instead_of_file(directory):
    (directory / "train_signs.h5").unlink()
    (directory / "train_signs.h5").mkdir()


BAD_TRAIN_FILES = {
    "a directory": (_directory_instead_of_file, "is a directory"),
    "empty file": (_empty, "empty"),
    "text file": (_text, "not an HDF5 file"),
    "truncated HDF5": (_truncated, "truncated or corrupt"),
    "missing key": (_missing_key, "missing dataset 'train_set_y'"),
    "wrong image shape": (_wrong_shape, r"shape \(12, 32, 32, 3\)"),
    "wrong image dtype": (_wrong_dtype, "dtype float32"),
    "label 6": (_label_too_big, "outside 0..5"),
    "label -1": (_label_negative, "outside 0..5"),
    "float labels": (_float_labels, "integer labels"),
    "empty set": (_empty_set, "empty"),
    "length mismatch": (_length_mismatch, "12 images but 11 labels"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_FILES))
def test_bad_train_file(tmp_path, case):
    directory = _valid(tmp_path)
    damage, expected = BAD_TRAIN_FILES[case]
    damage(directory)
    with pytest.raises(DataError, match=expected) as info:
        load_dataset(directory, notify=None)
    message = str(info.value)
    assert message.startswith(str(directory / "train_signs.h5") + ":"), message
    assert "\n" not in message


def test_missing_train_file(tmp_path):
    directory = _valid(tmp_path)
    (directory / "train_signs.h5").unlink()
    with pytest.raises(DataError, match="missing train_signs.h5") as info:
        load_dataset(directory, data="signs", notify=None)
    assert str(info.value).startswith(str(directory) + ":")
    with pytest.raises(DataError, match="no such file") as info:
        load_from(directory)
    assert str(info.value).startswith(str(directory / "train_signs.h5") + ":")


def test_missing_data_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_dataset(tmp_path / "nowhere", notify=None)
    assert str(tmp_path / "nowhere") in str(info.value)


def test_data_dir_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        load_dataset(path, notify=None)


def test_bad_test_file_is_named(tmp_path):
    directory = _valid(tmp_path)
    (directory / "test_signs.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(DataError) as info:
        load_dataset(directory, notify=None)
    assert str(info.value).startswith(str(directory / "test_signs.h5") + ":")


def test_train_and_test_class_lists_differ(tmp_path):
    directory = _valid(tmp_path)
    images, labels = small_split(6, 1)
    write_split(directory / "test_signs.h5", "test", images, labels,
                classes=np.array([0, 1, 2, 3, 4, 9], np.int64))
    with pytest.raises(DataError, match="different classes") as info:
        load_dataset(directory, notify=None)
    assert str(directory) in str(info.value)


# --------------------------------------------------------------------------- pre-processing

def test_flatten_and_one_hot_follow_the_tutorial():
    images, labels = small_split(5, 3)
    X = flatten(images)
    assert X.shape == (12288, 5) and X.dtype == np.float64
    assert np.array_equal(X, images.reshape(5, -1).T / 255)
    # column j is image j, in (row, column, channel) order
    assert np.array_equal(X[:, 2], images[2].reshape(-1) / 255)
    X32 = flatten(images, np.float32)
    assert X32.dtype == np.float32 and np.array_equal(X32, X.astype(np.float32))
    Y = convert_to_one_hot(labels.reshape(1, -1), 6)
    assert Y.shape == (6, 5)
    assert np.array_equal(Y.argmax(axis=0), labels) and np.array_equal(Y.sum(axis=0), np.ones(5))


def test_load_image_resizes_any_photo(tmp_path):
    from PIL import Image

    Image.new("RGBA", (120, 90), (10, 200, 30, 255)).save(tmp_path / "colour.png")
    Image.new("L", (50, 70), 128).save(tmp_path / "grey.bmp")
    rgba = load_image(tmp_path / "colour.png")
    grey = load_image(tmp_path / "grey.bmp")
    assert rgba.shape == grey.shape == (64, 64, 3) and rgba.dtype == np.uint8
    assert np.all(rgba == [10, 200, 30]) and np.all(grey == 128)
    (tmp_path / "note.png").write_text("not an image")
    with pytest.raises(DataError, match="not a readable image") as info:
        load_image(tmp_path / "note.png")
    assert str(tmp_path / "note.png") in str(info.value)
