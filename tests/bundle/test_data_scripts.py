"""The data scripts' held-out splits do not move when the training set grows."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

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
