"""RandSimulatedPrior(d) and AtlasPriorInferer: a registered atlas mask as a second input channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medst.inferers import AtlasPriorInferer
from medst.transforms import AtlasMaskPrior, RandSimulatedPrior, RandSimulatedPriord

from .test_atlas_prior import _affine, _atlas, _ellipsoid, _head


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_simulated_prior_is_a_binary_mask_a_few_voxels_off_the_truth():
    brain = _ellipsoid((48, 52, 48), (24, 26, 24), (14, 16, 13))
    label = MetaTensor(torch.as_tensor(brain.astype(np.uint8))[None], affine=torch.as_tensor(_affine()),
                       meta={"filename_or_obj": "head.nii.gz"})
    sim = RandSimulatedPrior(prob_unknown=0.0).set_random_state(0)
    dices = []
    for _ in range(6):
        prior = sim(label)
        assert isinstance(prior, MetaTensor) and prior.shape == label.shape and prior.dtype == torch.float32
        assert prior.meta["filename_or_obj"] == "head.nii.gz"
        values = set(torch.unique(prior).tolist())
        assert values <= {0.0, 1.0}
        dices.append(_dice(prior[0].numpy() > 0.5, brain))
    # registration-like: close to the truth, never exactly it, and different every draw
    assert 0.75 < min(dices) and max(dices) < 0.995 and len(set(np.round(dices, 6))) == 6
    # no deformation at all: the mask itself on the full grid, nearly itself through the coarse grid
    still = dict(rotate_deg=0, scale=0, translate_vox=0, elastic_magnitude=(0, 0), prob_unknown=0.0)
    assert torch.equal(RandSimulatedPrior(grid_factor=1, **still)(label)[0] > 0.5, torch.as_tensor(brain))
    assert _dice(RandSimulatedPrior(grid_factor=2, **still)(label)[0].numpy() > 0.5, brain) > 0.97


def test_simulated_prior_unknown_channel_and_reproducibility():
    label = torch.as_tensor(_ellipsoid((24, 24, 24), (12, 12, 12), (7, 8, 6)))[None]
    unknown = RandSimulatedPrior(prob_unknown=1.0, unknown_value=0.5)(label)
    assert torch.all(unknown == 0.5)
    a = RandSimulatedPriord("label", prob_unknown=0.3).set_random_state(7)
    b = RandSimulatedPriord("label", prob_unknown=0.3).set_random_state(7)
    for _ in range(4):
        da, db = a({"label": label}), b({"label": label})
        assert torch.equal(da["prior"], db["prior"]) and torch.equal(da["label"], label)
    with pytest.raises(ValueError, match=r"\(1, X, Y, Z\)"):
        RandSimulatedPrior()(label[0])
    with pytest.raises(ValueError, match="prob_unknown"):
        RandSimulatedPrior(prob_unknown=2.0)
    with pytest.raises(ValueError, match="one label key"):
        RandSimulatedPriord(["a", "b"])


class _Recorder(torch.nn.Module):
    """A 'network' that records its inputs and answers brain where the image channel is above 0.3."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        brain = (x[:, :1] > 0.3) & (x[:, :1] < 0.7)
        return torch.cat([(~brain).float(), brain.float()], 1)


def test_atlas_prior_inferer_appends_the_warped_atlas_mask():
    atlas_img, atlas_mask = _atlas()
    img, brain = _head((44, 48, 44), (23, 24, 21), (12.1, 14.3, 11.0))
    affine = torch.as_tensor(_affine((-46.0, -50.0, -42.0)))
    batch = MetaTensor(torch.as_tensor(img)[None, None], affine=affine[None])
    batch.is_batch = True
    prior = AtlasMaskPrior(atlas_img, atlas_mask)
    net = _Recorder()
    out = AtlasPriorInferer(lambda x, n: n(x), prior)(batch, net)
    assert out.shape == (1, 2, 44, 48, 44)
    assert len(net.seen) == 2  # two atlases: a first pass without a prior chooses the atlas
    assert torch.all(net.seen[0][:, 1] == 0.5) and torch.equal(net.seen[0][:, :1], batch.as_tensor())
    second = net.seen[1][0, 1].numpy() > 0.5
    expected = prior.warped_mask(MetaTensor(torch.as_tensor(img)[None], affine=affine), reference=brain)
    assert np.array_equal(second, expected) and _dice(second, brain) > 0.9
    # one atlas: no first pass, and the prior is asked without a reference
    class OneAtlas:
        def atlases(self):
            return ["head"]

        def warped_mask(self, image, reference=None):
            assert reference is None and torch.equal(image.affine, affine.to(image.affine.dtype))
            return brain

    net1 = _Recorder()
    AtlasPriorInferer(lambda x, n: n(x), OneAtlas())(batch, net1)
    assert len(net1.seen) == 1 and np.array_equal(net1.seen[0][0, 1].numpy() > 0.5, brain)
    with pytest.raises(TypeError, match="MetaTensor"):
        AtlasPriorInferer(lambda x, n: n(x), prior)(batch.as_tensor(), net)
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\)"):
        AtlasPriorInferer(lambda x, n: n(x), prior)(batch[0], net)


def test_each_scan_is_registered_once(monkeypatch):
    import medst.transforms.prior.array as prior_array

    atlas_img, atlas_mask = _atlas()
    img, brain = _head((40, 44, 40), (20, 22, 20), (11, 13, 10))
    image = MetaTensor(torch.as_tensor(img)[None], affine=torch.as_tensor(_affine((-40.0, -44.0, -40.0))))
    calls = []
    real = prior_array.register_atlas_mask
    monkeypatch.setattr(prior_array, "register_atlas_mask", lambda *a, **k: calls.append(1) or real(*a, **k))
    prior = AtlasMaskPrior(atlas_img, atlas_mask)
    first = prior.warped_mask(image, reference=brain)
    first[:] = False  # the caller's copy: the cache is not changed through it
    again = AtlasMaskPrior(atlas_img, atlas_mask).warped_mask(image.clone(), reference=brain)
    assert len(calls) == 2 and _dice(again, brain) > 0.9  # two atlases, registered for the first call only
    moved = MetaTensor(image.as_tensor(), affine=torch.as_tensor(_affine((-38.0, -44.0, -40.0))))
    prior.warped_mask(moved, reference=brain)
    assert len(calls) == 4  # another grid: registered again
