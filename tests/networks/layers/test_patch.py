from __future__ import annotations

import pytest
import torch
from monai.networks.utils import pixelunshuffle

from medst.networks.layers import depth_to_space, space_to_depth


@pytest.mark.parametrize("shape,factor", [((2, 3, 8, 12), 4), ((1, 2, 4, 6, 8), 2), ((1, 1, 5, 5), 1)])
def test_round_trip_and_monai_order(shape, factor):
    x = torch.randn(shape)
    y = space_to_depth(x, factor)
    assert y.shape[1] == shape[1] * factor ** (len(shape) - 2)
    torch.testing.assert_close(y, pixelunshuffle(x, len(shape) - 2, factor) if factor > 1 else x)
    assert torch.equal(depth_to_space(y, factor), x)


def test_indivisible():
    with pytest.raises(ValueError):
        space_to_depth(torch.randn(1, 1, 6, 7), 2)


def test_scripting_claims_of_the_docstring():
    # depth_to_space is MONAI's pixelshuffle because it scripts; space_to_depth is kept because pixelunshuffle does not
    from monai.networks.utils import pixelshuffle

    torch.jit.script(pixelshuffle)
    with pytest.raises(Exception):
        torch.jit.script(pixelunshuffle)
    scripted = torch.jit.script(depth_to_space)
    y = torch.randn(1, 16, 2, 3, 4)
    assert torch.equal(scripted(y, 2), depth_to_space(y, 2))
    assert scripted(y, 2).shape == (1, 2, 4, 6, 8)
    with pytest.raises(ValueError):
        depth_to_space(torch.randn(1, 7, 2, 2, 2), 2)
