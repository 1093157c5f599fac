"""SaveClassification(d): a CSV row per input, replaced when the input is predicted again."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from medst.transforms import SaveClassification, SaveClassificationd, read_classification_csv, rename_rows

NAMES = ["a", "b", "c"]


def test_rows_replace_and_read_back(tmp_path):
    out = tmp_path / "sub" / "pred.csv"
    saver = SaveClassification(out, NAMES, precision=4)
    probs = torch.tensor([0.2, 0.5, 0.3])
    assert saver(probs, filename="x.mp4") is probs
    saver(torch.tensor([[0.7, 0.2, 0.1]]), filename="y.mp4")
    saver(torch.tensor([0.1, 0.1, 0.8]), filename="x.mp4")  # predicted again: its row is replaced
    assert out.read_text().splitlines() == [
        "file,class,index,a,b,c", "x.mp4,c,2,0.1000,0.1000,0.8000", "y.mp4,a,0,0.7000,0.2000,0.1000"]
    rows = read_classification_csv(out)
    assert rows[1] == {"file": "y.mp4", "class": "a", "index": 0, "probabilities": {"a": 0.7, "b": 0.2, "c": 0.1}}
    rename_rows(out, {"y.mp4": "array_0"})
    assert [r["file"] for r in read_classification_csv(out)] == ["x.mp4", "array_0"]


def test_dictionary_names_the_row_after_the_image(tmp_path):
    out = tmp_path / "pred.csv"
    image = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": "/data/clip.mp4"})
    d = SaveClassificationd("pred", out, NAMES)({"image": image, "pred": torch.tensor([0.0, 1.0, 0.0])})
    assert set(d) == {"image", "pred"}
    assert read_classification_csv(out)[0]["file"] == "/data/clip.mp4"
    assert read_classification_csv(out)[0]["class"] == "b"


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one class"):
        SaveClassification(tmp_path / "p.csv", [])
    with pytest.raises(ValueError, match="must not be 'file'"):
        SaveClassification(tmp_path / "p.csv", ["file", "x"])
    saver = SaveClassification(tmp_path / "p.csv", NAMES)
    with pytest.raises(ValueError, match="probs has 2 classes but class_names names 3"):
        saver(torch.tensor([0.5, 0.5]), filename="x")
    with pytest.raises(ValueError, match="needs the input's file name"):
        saver(torch.tensor([0.2, 0.3, 0.5]))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a classification CSV"):
        read_classification_csv(tmp_path / "other.csv")
