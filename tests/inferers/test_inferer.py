from __future__ import annotations

import pytest
import torch
from monai.inferers import Inferer, SlidingWindowInferer, sliding_window_inference

from medst.inferers import AutocastInferer, StreamingInferer, VolumeInferer, cpu_has_native_bf16, stream_sequence

from .recurrent_helpers import TinyConvRNN


def test_volume_inferer_is_a_monai_inferer():
    """In place of MONAI's SlidingWindowInferer, with the same settings, it gives MONAI's output."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, 3, 3)).eval()
    x = torch.rand(1, 2, 12, 10, 7)  # smaller than the window along the last axis: padded
    settings = dict(sw_batch_size=2, overlap=0.5, mode="gaussian", sigma_scale=0.2, padding_mode="replicate", cval=0.0)
    inf = VolumeInferer((8, 8, 8), precision="fp32", progress=False, **settings)
    assert isinstance(inf, Inferer)
    with torch.no_grad():
        ref = SlidingWindowInferer((8, 8, 8), **settings)(x, torch.nn.Sequential(torch.nn.ReplicationPad3d(1), net))
        y = inf(x, torch.nn.Sequential(torch.nn.ReplicationPad3d(1), net))
    assert y.shape == (1, 3, 12, 10, 7)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(y, torch.zeros_like(y))


def test_volume_inferer_forwards_every_setting_by_name(monkeypatch):
    import inspect

    import medst.inferers.inferer as mod
    from medst.inferers import sliding_window_volume

    seen = {}

    def fake(inputs, roi_size, sw_batch_size, predictor, *args, **kwargs):
        seen.update(kwargs, roi_size=roi_size, sw_batch_size=sw_batch_size, args=args)
        return "out"

    monkeypatch.setattr(mod, "sliding_window_volume", fake)
    given = dict(overlap=0.4, mode="gaussian", sigma_scale=0.2, padding_mode="reflect", cval=1.5, precision="bf16",
                 output="labels", flips=((2,),), channels_last=False, compile=True, sw_device="cpu", device="meta",
                 progress=False, buffer_steps=7, buffer_dim=1, slab_dim=2)
    params = [p.name for p in inspect.signature(sliding_window_volume).parameters.values()
              if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert sorted(given) == sorted(params[4:])  # a new setting of the function must be given here too
    assert VolumeInferer((8, 8, 8), sw_batch_size=3, **given)(torch.zeros(1), None) == "out"
    assert seen == {**given, "roi_size": (8, 8, 8), "sw_batch_size": 3, "args": ()}
    with pytest.raises(TypeError, match="clash"):
        VolumeInferer((8, 8, 8))(torch.zeros(1), None, overlap=0.9)


def test_volume_inferer_positional_and_keyword_network_arguments():
    x = torch.rand(1, 1, 10, 9, 8)
    inf = VolumeInferer((8, 8, 8), overlap=0.5, precision="fp32", progress=False, sw_device="cpu")
    out = inf(x, lambda a, scale, shift=0.0: a * scale + shift, 3.0, shift=1.0)
    torch.testing.assert_close(out, 3 * x + 1, atol=1e-5, rtol=1e-5)


def test_streaming_inferer_forwards_every_setting_by_name(monkeypatch):
    import inspect

    import medst.inferers.inferer as mod

    seen = {}

    def fake(inputs, roi_size, time_chunk, network, **kwargs):
        seen.update(kwargs, roi_size=roi_size, time_chunk=time_chunk)

    monkeypatch.setattr(mod, "stream_sequence", fake)
    cb = print
    given = dict(overlap=0.4, mode="gaussian", sigma_scale=0.2, padding_mode="reflect", cval=1.5, sw_batch_size=5,
                 precision="bf16", output="labels", sw_device="cpu", device="meta", callback=cb, progress=False)
    params = [p.name for p in inspect.signature(stream_sequence).parameters.values()]
    assert sorted(given) == sorted(params[4:])
    StreamingInferer((8, 8), time_chunk=6, **given)(torch.zeros(1), None)
    assert seen == {**given, "roi_size": (8, 8), "time_chunk": 6}


@pytest.mark.parametrize("kwargs", [dict(precision="half"), dict(output="mask"), dict(sw_batch_size=0)])
def test_volume_inferer_errors(kwargs):
    with pytest.raises(ValueError):
        VolumeInferer((8, 8, 8), **kwargs)


def test_autocast_inferer_trains_in_bf16_with_float32_outputs_and_grads():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    x = torch.rand(2, 1, 8, 8)
    inf = AutocastInferer("bf16")
    assert isinstance(inf, Inferer) and inf.dtype("cpu") is torch.bfloat16
    seen = []
    hook = net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    y = inf(x, net)
    hook.remove()
    assert seen == [torch.bfloat16] and y.dtype == torch.float32  # computed in bf16, handed back in float32
    ref = net(x)
    torch.testing.assert_close(y, ref, atol=5e-2, rtol=5e-2)
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters())
    # fp32 is the plain network call, and "auto" is bf16 exactly where the CPU computes it natively
    torch.testing.assert_close(AutocastInferer("fp32")(x, net), ref)
    assert AutocastInferer("auto").dtype("cpu") is (torch.bfloat16 if cpu_has_native_bf16() else None)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_autocast_inferer_passes_network_kwargs(precision):
    seen = []

    def net(x, scale=1.0, shift=0.0):
        seen.append((scale, shift))
        return x * scale + shift

    inf = AutocastInferer(precision, network_kwargs={"scale": 2.0, "shift": 1.0})
    y = inf(torch.ones(2), net, shift=3.0)  # a keyword given with the call wins
    assert seen == [(2.0, 3.0)] and torch.equal(y, torch.full((2,), 5.0))


@pytest.mark.parametrize("precision", ["fp16", "half", "auto16"])
def test_autocast_inferer_refuses_fp16_and_unknown(precision):
    with pytest.raises(ValueError, match="amp=True"):
        AutocastInferer(precision)


STREAM = [
    # (spatial_dims, input shape, roi, time_chunk, sw_batch_size, mode)
    (2, (2, 1, 9, 20, 18), (8, 8), 4, 3, "gaussian"),
    (2, (1, 2, 7, 12, 10), (12, 10), 3, 1, "constant"),
    (3, (1, 1, 5, 10, 9, 8), (6, 6, 6), 2, 2, "constant"),
    (3, (2, 1, 4, 6, 7, 5), (8, 8, 8), 3, 1, "gaussian"),  # tile larger than the frame: padded
]


@pytest.mark.parametrize("spatial_dims, shape, roi, chunk, bs, mode", STREAM)
def test_streaming_equals_whole_sequence(spatial_dims, shape, roi, chunk, bs, mode):
    torch.manual_seed(0)
    net = TinyConvRNN(spatial_dims, shape[1], 3).eval()
    x = torch.rand(shape)
    t = shape[2]
    # reference: each tile sees the whole clip at once (MONAI's N-D sliding window with a full-length time axis)
    with torch.no_grad():
        ref = sliding_window_inference(
            x, (t, *roi), 1, net, overlap=0.5, mode=mode, sigma_scale=(1e6,) + (0.125,) * spatial_dims
        )
    y = StreamingInferer(roi, time_chunk=chunk, overlap=0.5, mode=mode, sw_batch_size=bs, precision="fp32")(x, net)
    assert y.shape == (shape[0], 3, *shape[2:])
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


def test_streaming_single_tile_equals_network():
    torch.manual_seed(0)
    net = TinyConvRNN(2, 1, 2).eval()
    x = torch.rand(1, 1, 11, 16, 16)
    with torch.no_grad():
        ref = net(x)
    y = stream_sequence(x, (16, 16), 4, net, precision="fp32")
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=1e-6)
    # bf16: close, with float32 output
    yb = stream_sequence(x, (16, 16), 4, net, precision="bf16")
    assert yb.dtype == torch.float32 and (yb - ref).abs().max() < 0.05


def test_streaming_iterable_callback_and_labels():
    torch.manual_seed(0)
    net = TinyConvRNN(2, 1, 3).eval()
    x = torch.rand(1, 1, 10, 12, 12)
    with torch.no_grad():
        ref = net(x).argmax(1, keepdim=True)
    got = {}
    blocks = (x[:, :, i : i + 3] for i in range(0, 10, 3))  # e.g. frames decoded from a file
    res = stream_sequence(
        blocks, (12, 12), 2, net, precision="fp32", output="labels", callback=lambda o, t0: got.__setitem__(t0, o)
    )
    assert res is None and sorted(got) == [0, 2, 3, 5, 6, 8, 9]
    lab = torch.cat([got[k] for k in sorted(got)], 2)
    assert lab.dtype == torch.uint8 and torch.equal(lab.long(), ref)


def test_streaming_errors():
    x = torch.rand(1, 1, 4, 8, 8)
    with pytest.raises(ValueError, match="stream"):
        stream_sequence(x, (8, 8), 2, TinyConvRNN(2, 1, 2, supports_streaming=False))
    with pytest.raises(ValueError, match="stream"):
        stream_sequence(x, (8, 8), 2, torch.nn.Conv3d(1, 1, 1))
    net = TinyConvRNN(2, 1, 2)
    with pytest.raises(ValueError, match="roi_size"):
        stream_sequence(x, (8, 8, 8), 2, net)
    with pytest.raises(ValueError, match="time_chunk"):
        stream_sequence(x, (8, 8), 0, net)
    with pytest.raises(ValueError, match=r"\(B, C, T"):
        stream_sequence(torch.rand(1, 4, 8), (8,), 2, net)
    with pytest.raises(ValueError, match="time_chunk"):
        StreamingInferer((8, 8), time_chunk=0)


def _recurrent_segnet():
    from medst.networks.nets import RecurrentSegNet

    return RecurrentSegNet


@pytest.mark.parametrize(
    "spatial_dims, shape, roi, chunk",
    [(2, (2, 1, 7, 16, 16), (16, 16), 3), (2, (1, 1, 6, 24, 20), (16, 16), 4), (3, (1, 1, 4, 8, 8, 8), (8, 8, 8), 2)],
)
def test_streaming_recurrent_segnet(spatial_dims, shape, roi, chunk):
    net_cls = _recurrent_segnet()
    torch.manual_seed(0)
    net = net_cls(spatial_dims, 1, 2, channels=(4, 8), cell="lstm").eval()
    x = torch.rand(shape)
    with torch.no_grad():
        ref = sliding_window_inference(x, (shape[2], *roi), 1, net, overlap=0.5)
    y = StreamingInferer(roi, time_chunk=chunk, overlap=0.5, sw_batch_size=2, precision="fp32")(x, net)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


def test_streaming_through_a_data_parallel_wrapper():
    """DDP / DataParallel hide ``supports_streaming``; a multi-GPU validation must still stream."""
    torch.manual_seed(0)
    net = _recurrent_segnet()(2, 1, 2, channels=(4, 8), cell="gru").eval()
    x = torch.rand(1, 1, 6, 16, 16)
    inferer = StreamingInferer((16, 16), time_chunk=2, precision="fp32")
    torch.testing.assert_close(inferer(x, torch.nn.DataParallel(net)), inferer(x, net))


def test_streaming_refuses_bidirectional_segnet():
    net = _recurrent_segnet()(2, 1, 2, channels=(4, 8), bidirectional=True)
    with pytest.raises(ValueError, match="stream"):
        StreamingInferer((16, 16), time_chunk=2)(torch.rand(1, 1, 4, 16, 16), net)
