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


def test_registry_imports_no_networks_and_is_full_from_a_fresh_import():
    """The registry module does not import the networks (no import cycle); the package fills it on import."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import medst.networks.registry as registry

    tree = ast.parse(Path(registry.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if "nets" in m or m.startswith("medst")], imported
    code = "from medst.networks.registry import list_networks; print(len(list_networks()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert int(out.stdout.strip().splitlines()[-1]) == len(list_networks())
