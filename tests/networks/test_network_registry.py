from __future__ import annotations

import pytest
import torch.nn as nn

from medst.networks import create_network, list_networks, register_network
from medst.networks.nets import RecurrentSegNet


def test_list_and_filter():
    names = list_networks()
    assert names == sorted(names) and "unetr_paper" in names and "convlstm_seg_small" in names
    assert set(list_networks("unetr")) == {"unetr_small", "unetr_medium", "unetr_paper"}
    assert set(list_networks("unetr_*")) == {"unetr_small", "unetr_medium", "unetr_paper"}


def test_create_overrides_defaults():
    net = create_network("convlstm_seg_small", in_channels=3, out_channels=4, channels=(4, 8))
    assert isinstance(net, RecurrentSegNet) and net.in_channels == 3 and net.out_channels == 4


def test_unknown_name_lists_close_names():
    with pytest.raises(KeyError, match="convlstm_seg_small"):
        create_network("convlstm_seg_smal")


def test_duplicate_registration_fails():
    with pytest.raises(ValueError):

        @register_network(name="convlstm")
        def _dup(**kwargs):
            return nn.Identity()


def test_bundle_expression():
    from monai.bundle import ConfigParser

    parser = ConfigParser(
        {"net": "$medst.networks.create_network('convgru_seg_small', in_channels=1, out_channels=2)", "imports": ["$import medst"]}
    )
    assert isinstance(parser.get_parsed_content("net"), RecurrentSegNet)
    parser = ConfigParser(
        {"net": {"_target_": "medst.networks.nets.RecurrentSegNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2}}
    )
    assert isinstance(parser.get_parsed_content("net"), RecurrentSegNet)
