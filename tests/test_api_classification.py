"""Classification bundles through the API and the CLI: a class and its probabilities per input, a CSV row per input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from _tiny_bundle import CLASS_NAMES, make_tiny_classification_bundle
from monai.transforms import LoadImage

from medst.api import ClassPrediction, load_bundle, load_weights
from medst.cli import main
from medst.inferers import multi_clip_inference
from medst.networks.nets import DilatedClassifier
from medst.transforms import read_classification_csv


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls_bundles")
    return {kind: make_tiny_classification_bundle(root, name=f"tiny_{kind}_cls", kind=kind)
            for kind in ("video", "volume")}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from medst.data import write_video

    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    return [write_video(rng.integers(0, 256, (7, 16, 16), dtype=np.uint8), folder / f"clip{i}.mkv", fps=10.0)
            for i in range(2)]


def _expected(bundle, image: torch.Tensor, axis: int) -> np.ndarray:
    """The bundle's answer computed by hand: its network, its weights, two clips of 4 averaged."""
    net = DilatedClassifier(3, 1, len(CLASS_NAMES), channels=(4, 8), dilations=(1, 2), dropout=0.0).eval()
    net.load_state_dict(load_weights(bundle / "models" / "model.pt"))
    x = (image - image.min()) / (image.max() - image.min())  # ScaleIntensityd
    with torch.no_grad():
        return multi_clip_inference(x[None].float(), net, clip_frames=4, num_clips=2, axis=axis)[0].numpy()


def test_video_classification_returns_classes_and_writes_one_csv_row_per_input(bundles, clips, tmp_path):
    cls = load_bundle(bundles["video"], device="cpu")
    assert cls.is_classifier and cls.class_names == CLASS_NAMES
    out = tmp_path / "out"
    preds = cls.predict([str(c) for c in clips], output_dir=out)
    assert len(preds) == 2 and all(isinstance(p, ClassPrediction) for p in preds)
    rows = read_classification_csv(out / "predictions.csv")
    assert [r["file"] for r in rows] == [str(c) for c in clips]
    for pred, row, clip in zip(preds, rows, clips):
        probs = np.array([pred.probabilities[n] for n in CLASS_NAMES])
        expected = _expected(bundles["video"], LoadImage(image_only=True, ensure_channel_first=True)(str(clip)), 0)
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        assert pred.index == int(expected.argmax()) and pred.name == CLASS_NAMES[pred.index]
        assert pred.probability == max(pred.probabilities.values())
        assert pred.csv == str(out / "predictions.csv") and pred.input == str(clip)
        assert row["class"] == pred.name and row["index"] == pred.index
        np.testing.assert_allclose(list(row["probabilities"].values()), probs, atol=1e-6)

    # finished inputs are skipped and read back from the CSV; a redo replaces the rows, it never adds any
    again = cls.predict([str(c) for c in clips], output_dir=out)
    assert cls.last_skipped == [str(c) for c in clips]
    for a, b in zip(again, preds):
        assert a.name == b.name
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-6)
    cls.predict(str(clips[0]), output_dir=out, overwrite=True)
    assert len(read_classification_csv(out / "predictions.csv")) == 2


def test_array_input_has_its_own_row_name(bundles, tmp_path):
    cls = load_bundle(bundles["video"], device="cpu")
    frames = np.random.default_rng(1).integers(0, 256, (1, 6, 16, 16)).astype(np.uint8)
    pred = cls.predict(frames, output_dir=tmp_path)
    assert pred.input == "array_0"
    assert [r["file"] for r in read_classification_csv(tmp_path / "predictions.csv")] == ["array_0"]
    np.testing.assert_allclose(list(pred.probabilities.values()),
                               _expected(bundles["video"], torch.as_tensor(frames).float(), 0), atol=1e-5)


def test_volume_classification(bundles, tmp_path):
    vol = np.random.default_rng(2).normal(size=(16, 16, 10)).astype(np.float32)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    pred = load_bundle(bundles["volume"], device="cpu").predict(path)  # no output_dir: a temporary CSV
    assert isinstance(pred, ClassPrediction) and pred.csv is None
    np.testing.assert_allclose(sum(pred.probabilities.values()), 1.0, atol=1e-5)
    np.testing.assert_allclose(list(pred.probabilities.values()),
                               _expected(bundles["volume"], torch.as_tensor(vol)[None], 2), atol=1e-5)


def test_cli_prints_a_line_per_input_then_the_csv(bundles, clips, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["predict", "-b", str(bundles["video"]), *map(str, clips), "-o", str(out), "--device", "cpu",
            "--no-progress"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = read_classification_csv(out / "predictions.csv")
    assert lines[-1] == str(out / "predictions.csv")
    assert len(lines) == len(clips) + 1
    for line, row in zip(lines, rows):
        file, name, probability = line.split("\t")
        assert (file, name) == (row["file"], row["class"])
        assert abs(float(probability) - row["probabilities"][name]) < 1e-4
