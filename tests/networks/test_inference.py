from __future__ import annotations

import platform

import pytest
import torch

from medst.networks import cpu_has_native_bf16, create_network, optimize_for_inference, resolve_precision
from medst.networks.blocks.recurrent_cells import fast_tanh
from medst.networks.inference import AutocastInference


def test_resolve_precision():
    for name in ("fp32", "bf16", "fp16"):
        assert resolve_precision(name, "cpu") == name
    assert resolve_precision("auto", "cuda") in ("bf16", "fp16")  # never float32 on a GPU
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8")


def _cpu_flags() -> set[str]:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("cpu flags are checked on x86-64 only")
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("cpu flags are checked on x86-64 only (no /proc/cpuinfo here)")
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def test_auto_is_bf16_exactly_where_the_cpu_has_it():
    """Checked against the kernel's CPU flags, not against torch's own probe that the code calls."""
    native = bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert cpu_has_native_bf16() is native
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")


def test_fast_tanh():
    x = torch.linspace(-20, 20, 10001)
    torch.testing.assert_close(fast_tanh(x), torch.tanh(x), rtol=0, atol=2e-7)


@pytest.mark.parametrize("name", ["convlstm_seg_small", "convgru_seg_small"])
@pytest.mark.parametrize("batched", [True, False])
def test_bf16_path_close_and_streams(name, batched):
    torch.manual_seed(0)
    net = create_network(name, channels=(4, 8)).eval()
    for m in net.modules():
        if hasattr(m, "set_batched_input"):
            m.set_batched_input(batched)
    x = torch.randn(1, 1, 4, 16, 16)
    with torch.inference_mode():
        ref = net(x)
        fast = optimize_for_inference(net, precision="bf16", channels_last=True)
        assert isinstance(fast, AutocastInference) and fast.supports_streaming
        y, s = fast(x, return_state=True)
        assert y.dtype == torch.float32 and all(t.dtype == torch.float32 for t in s)
        # bf16 convolutions, float32 gate maths and state: logits (up to ~3 here) within a few hundredths
        # (measured 0.018 for the LSTM, 0.023 for the GRU)
        assert (y - ref).abs().max() < 0.03
        assert (y.argmax(1) == ref.argmax(1)).float().mean() > 0.99
        a, s1 = fast(x[:, :, :2], return_state=True)
        b = fast(x[:, :, 2:], state=s1)
        # bf16 convolutions may round differently for a different number of frames per call: close, not equal
        torch.testing.assert_close(torch.cat([a, b], 2), y, rtol=0, atol=0.03)


def test_fp32_path_is_the_network_itself():
    net = create_network("convlstm", in_channels=1, hidden_channels=4)
    x = torch.randn(1, 1, 3, 8, 8)
    ref = net(x)
    fast = optimize_for_inference(net, precision="fp32", channels_last=True)
    assert fast is net and not net.training
    torch.testing.assert_close(fast(x), ref)
