"""The data scripts: held-out splits that do not move when the training set grows; tissue maps that respect the mask."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    sys.path.insert(0, str(REPO / "data_scripts"))  # the script imports its sibling moving_digits.py
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "data_scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "data_scripts"))
    return module


def test_prediction_validation_and_test_do_not_depend_on_num_train(tmp_path, monkeypatch):
    script = _load("moving_digits_convlstm_prediction")
    monkeypatch.setattr(script, "BASE_TRAIN", 2)  # the first 2 (not 3000) training sequences come before the rest
    small, large = tmp_path / "small", tmp_path / "large"
    for out, num_train in ((small, 2), (large, 5)):
        script.main(["--output-dir", str(out), "--num-train", str(num_train), "--num-val", "2", "--num-test", "2"])
    lists = {out: json.loads((out / "dataset.json").read_text()) for out in (small, large)}
    assert len(lists[small]["training"]) == 2 and len(lists[large]["training"]) == 5
    assert lists[large]["training"][4] == {"image": "imagesTr/train_0004.npy", "label": "labelsTr/train_0004.npy"}
    for split in ("validation", "test"):
        assert lists[small][split] == lists[large][split]
    same = [d for split in ("validation", "test") for d in lists[small][split]] + lists[small]["training"]
    for item in same:
        for path in item.values():
            np.testing.assert_array_equal(np.load(small / path), np.load(large / path))
    # the added training sequences are new ones, not copies of the validation sequences
    extra = np.load(large / "imagesTr/train_0004.npy")
    assert not any(np.array_equal(extra, np.load(large / d["image"])) for d in lists[large]["validation"])


def test_brain_tissue_map_classes_stay_on_their_side_of_the_mask():
    tissue_map = _load("brain_extraction_unetr").tissue_map
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 5.0, (24, 24, 24)).astype(np.float32)
    brain = np.zeros(image.shape, bool)
    brain[6:18, 6:18, 6:18] = True
    image[brain] = rng.choice([300.0, 600.0, 900.0], size=int(brain.sum()))  # three "tissues" inside
    image[:, :, :4] = 0.0  # air outside
    image[:, :, 20:] = 700.0  # bright scalp outside, as bright as brain tissue
    labels = tissue_map(image, brain.astype(np.uint8))
    assert labels.dtype == np.uint8 and labels.shape == image.shape
    assert set(np.unique(labels[brain])) <= {4, 5, 6} and set(np.unique(labels[~brain])) <= {0, 1, 2, 3}
    assert len(np.unique(labels[brain])) == 3  # the three inside intensities are told apart
    assert labels[0, 0, 0] != labels[0, 0, 22]  # air and scalp are different classes
    with pytest.raises(ValueError, match="brain mask"):
        tissue_map(image, np.zeros(image.shape, np.uint8))


def test_sklearn_digits_are_28x28_uint8_of_the_8x8_originals():
    from sklearn.datasets import load_digits

    digits, labels = _load("moving_digits").load_sklearn_digits()
    originals = load_digits()
    assert digits.shape == (1797, 28, 28) and digits.dtype == np.uint8 and labels.shape == (1797,)
    np.testing.assert_array_equal(labels, originals.target)
    assert digits.max() == 255 and digits.min() == 0
    # bilinear upsampling keeps each digit's mean brightness (0..16 -> 0..255) and where its ink is
    mean_up = digits.reshape(1797, -1).mean(1) / 255.0
    mean_8 = originals.images.reshape(1797, -1).mean(1) / 16.0
    np.testing.assert_allclose(mean_up, mean_8, atol=0.02)
    coarse = digits.astype(np.float64).reshape(1797, 4, 7, 4, 7).mean((2, 4))  # 4x4 blocks of the 28x28
    ref = originals.images.reshape(1797, 4, 2, 4, 2).mean((2, 4)) * (255.0 / 16.0)
    assert np.corrcoef(coarse.ravel(), ref.ravel())[0, 1] > 0.98


def test_prediction_sklearn_test_is_deterministic_and_leaves_the_other_files_alone(tmp_path):
    script = _load("moving_digits_convlstm_prediction")
    plain, first, second = tmp_path / "plain", tmp_path / "a", tmp_path / "b"
    script.main(["--output-dir", str(plain), "--tiny"])
    for out in (first, second):
        script.main(["--output-dir", str(out), "--tiny", "--sklearn-test", "3"])
    lists = {out: json.loads((out / "dataset.json").read_text()) for out in (plain, first, second)}
    assert "test_sklearn" not in lists[plain]  # off by default
    items = lists[first]["test_sklearn"]
    assert items == lists[second]["test_sklearn"] and len(items) == 3
    for item in items:
        image, label = np.load(first / item["image"]), np.load(first / item["label"])
        assert image.shape == (10, 64, 64) and label.shape == (10, 64, 64) and image.dtype == np.uint8
        assert image.max() > 200 and label.max() > 200  # two bright digits in every frame
        np.testing.assert_array_equal(image, np.load(second / item["image"]))
        np.testing.assert_array_equal(label, np.load(second / item["label"]))
    for split in ("training", "validation", "test"):  # every other file is the default run's
        assert lists[first][split] == lists[plain][split]
        for item in lists[plain][split]:
            for path in item.values():
                np.testing.assert_array_equal(np.load(first / path), np.load(plain / path))
    # the unseen digits are not MNIST's: no sklearn frame equals a test frame
    assert not any(np.array_equal(np.load(first / a["image"]), np.load(first / b["image"]))
                   for a in items for b in lists[first]["test"])


def test_motion_clips_opposite_classes_are_time_reversals_and_splits_are_stable(tmp_path):
    script = _load("moving_digits_motion_classification")
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    digit[6:10, 12:22] = 255  # an asymmetric "7"-like stroke
    clips = [script.motion_clip(digit, k, np.random.default_rng(3)) for k in range(8)]
    for a, b in ((0, 1), (2, 3), (4, 5), (6, 7)):  # the same pose: one class's clip is the other's played backwards
        np.testing.assert_allclose(clips[a], clips[b][::-1], atol=1e-3)
        assert np.abs(clips[a][0] - clips[a][-1]).mean() > 5.0  # and it does move
    # translation keeps the digit's pixels, rotation and zoom change where they are
    assert abs(clips[0][0].sum() - clips[0][-1].sum()) / clips[0][0].sum() < 0.02
    with pytest.raises(ValueError, match="label must be in"):
        script.motion_clip(digit, 8, np.random.default_rng(0))

    small, large = tmp_path / "small", tmp_path / "large"
    for out, num_train in ((small, 2), (large, 3)):
        script.main(["--output-dir", str(out), "--num-train", str(num_train), "--num-val", "2", "--num-test", "3"])
    lists = {out: json.loads((out / "dataset.json").read_text()) for out in (small, large)}
    assert lists[small]["test"] == lists[large]["test"] == [
        {"image": f"imagesTs/test_{i:04d}.mp4", "label": i} for i in range(3)]
    from medst.data import read_video

    for item in lists[small]["test"]:  # the same test clips whatever the training set's size (up to the codec)
        a, b = (read_video(d / item["image"])[0].astype(np.float32) for d in (small, large))
        assert np.abs(a - b).mean() < 4.0
    assert lists[small]["labels"]["4"] == "rotate_cw"
