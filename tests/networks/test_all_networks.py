"""One test over every registered network: build the small example, forward, backward, shape, no NaN, TorchScript."""

from __future__ import annotations

import pytest
import torch

from medst.networks import create_network, get_network_entry, list_networks

# Registered networks that torch.jit.script cannot compile, and why. Everything else must script.
NOT_SCRIPTABLE: dict[str, str] = {}

NAMES = list_networks()

# Every registered network is scripted (under 4 s for all of them on 2 cores).
SCRIPT_PARAMS = NAMES


def _forward(net, x):
    y = net(x)
    return y[0] if isinstance(y, (tuple, list)) else y


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name):
    entry = get_network_entry(name)
    assert entry.example_input_shape is not None, f"{name}: register an example_input_shape"
    torch.manual_seed(0)
    net = create_network(name, **entry.example_kwargs)
    x = torch.randn(entry.example_input_shape, requires_grad=True)
    y = _forward(net, x)
    assert torch.isfinite(y).all()
    if entry.example_output_shape is not None:
        assert tuple(y.shape) == entry.example_output_shape
    else:
        assert y.shape[0] == x.shape[0]
    y.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", SCRIPT_PARAMS)
def test_torchscript(name):
    if name in NOT_SCRIPTABLE:
        pytest.skip(f"{name} does not script: {NOT_SCRIPTABLE[name]}")
    entry = get_network_entry(name)
    torch.manual_seed(0)
    net = create_network(name, **entry.example_kwargs).eval()
    x = torch.randn(entry.example_input_shape)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        ref = _forward(net, x)
        out = _forward(scripted, x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_script_set_names_exist():
    assert set(NOT_SCRIPTABLE) <= set(NAMES)


def test_every_builder_has_a_docstring():
    for name in NAMES:
        assert get_network_entry(name).builder.__doc__, f"{name}: its builder needs a docstring"
