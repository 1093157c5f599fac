"""RandTissueContrast paints each tissue label with one random intensity (SynthStrip-style synthetic contrasts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medst.data import MedstDataError
from medst.transforms import RandTissueContrast, RandTissueContrastd


def _tissue(shape=(1, 10, 12, 14)):
    t = torch.zeros(shape, dtype=torch.uint8)
    t[:, 3:7] = 1
    t[:, 7:] = 4  # labels need not be contiguous
    return t


def test_each_label_gets_one_intensity_without_noise():
    img = MetaTensor(torch.rand(1, 10, 12, 14), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])),
                     meta={"filename_or_obj": "head.nii.gz"})
    tissue = _tissue()
    out = RandTissueContrast(prob=1.0, intensity_range=(0.2, 0.9), noise_std_max=0.0).set_random_state(0)(img, tissue)
    assert isinstance(out, MetaTensor) and out.dtype == img.dtype and out.shape == img.shape
    assert torch.equal(out.affine, img.affine) and out.meta["filename_or_obj"] == "head.nii.gz"
    values = [out[tissue == k].unique() for k in (0, 1, 4)]
    assert all(v.numel() == 1 for v in values)  # one grey level per label
    assert all(0.2 <= float(v) <= 0.9 for v in values)
    assert len({float(v) for v in values}) == 3  # independent draws
    assert not torch.allclose(out, img)


def test_noise_per_label_and_new_draw_each_call():
    img, tissue = torch.zeros(1, 10, 12, 14), _tissue()
    t = RandTissueContrast(prob=1.0, noise_std_max=0.2).set_random_state(1)
    a, b = t(img, tissue), t(img, tissue)
    assert float(a[tissue == 4].std()) > 0.0 and not torch.allclose(a, b)
    # the same seed gives the same image
    c = RandTissueContrast(prob=1.0, noise_std_max=0.2).set_random_state(1)(img, tissue)
    assert torch.equal(a, c)


def test_prob_zero_returns_input_and_numpy_works():
    img = np.random.default_rng(0).random((1, 10, 12, 14)).astype(np.float32)
    assert RandTissueContrast(prob=0.0)(img, _tissue()) is img
    out = RandTissueContrast(prob=1.0).set_random_state(0)(img, _tissue().numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_one_channel_map_serves_every_channel():
    out = RandTissueContrast(prob=1.0, noise_std_max=0.0).set_random_state(0)(torch.zeros(2, 10, 12, 14), _tissue())
    assert out.shape == (2, 10, 12, 14) and torch.equal(out[0], out[1])


@pytest.mark.parametrize(
    "tissue, match",
    [
        (torch.zeros(1, 10, 12, 13, dtype=torch.uint8), "does not match image shape"),
        (torch.full((1, 10, 12, 14), 0.5), "integer labels"),
        (torch.full((1, 10, 12, 14), -1), ">= 0"),
    ],
)
def test_bad_tissue_maps_name_the_file(tissue, match):
    img = MetaTensor(torch.zeros(1, 10, 12, 14), meta={"filename_or_obj": "scan.nii.gz"})
    with pytest.raises(MedstDataError, match=match) as err:
        RandTissueContrast(prob=1.0)(img, tissue)
    assert "scan.nii.gz" in str(err.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="intensity_range"):
        RandTissueContrast(intensity_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="noise_std_max"):
        RandTissueContrast(noise_std_max=-0.1)


def test_dictionary_version():
    d = {"image": torch.zeros(1, 10, 12, 14), "label": torch.ones(1, 10, 12, 14), "tissue": _tissue()}
    out = RandTissueContrastd("image", prob=1.0, noise_std_max=0.0).set_random_state(0)(d)
    assert torch.equal(out["label"], d["label"]) and out["tissue"] is d["tissue"]
    assert {float(out["image"][d["tissue"] == k].unique()) for k in (0, 1, 4)} != {0.0}
    # a sample without a tissue map: an error naming the key, or unchanged when allowed
    plain = {"image": torch.zeros(1, 4, 4, 4)}
    with pytest.raises(KeyError, match="tissue"):
        RandTissueContrastd("image", prob=1.0)(plain)
    assert RandTissueContrastd("image", prob=1.0, allow_missing_keys=True)(plain)["image"] is plain["image"]
    # prob 0: nothing changes
    assert RandTissueContrastd("image", prob=0.0)(d)["image"] is d["image"]
