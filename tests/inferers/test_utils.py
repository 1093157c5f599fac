from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference
from monai.utils import ensure_tuple_rep
from torch import nn

from medst import inferers
from medst.inferers import (
    FastPredictor,
    autocast_dtype,
    cpu_has_native_bf16,
    resolve_precision,
    sliding_window_volume,
)

TWICE = [
    # (roi_size, input shape, sw_batch_size, mode)
    ((8, 8, 8), (1, 1, 20, 18, 16), 1, "constant"),
    ((8, 8, 8), (2, 2, 20, 18, 16), 3, "gaussian"),
    ((4, 8, 8), (1, 3, 9, 20, 18), 2, "gaussian"),  # video (C, T, H, W), time tiled as an axis
    ((8, 8), (1, 3, 9, 20, 18), 4, "constant"),  # video frame by frame (2D network)
    ((3, 6, 6, 6), (1, 1, 5, 10, 9, 8), 2, "gaussian"),  # 4D scan, N-D windows
    ((6, 6, 6), (2, 1, 5, 10, 9, 8), 5, "gaussian"),  # 4D scan frame by frame (3D network)
    ((8, 8, 8), (1, 1, 5, 6, 7), 1, "gaussian"),  # window larger than the input: padded, then cropped
]


@pytest.mark.parametrize("roi, shape, bs, mode", TWICE)
@pytest.mark.parametrize("output", ["logits", "probs"])
def test_known_predictor(roi, shape, bs, mode, output):
    x = torch.rand(shape)
    y = sliding_window_volume(x, roi, bs, lambda a: 2 * a, overlap=0.5, mode=mode, precision="fp32", output=output)
    expected = 2 * x if output == "logits" else torch.softmax(2 * x, 1)
    assert y.shape == x.shape and y.dtype == torch.float32
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


class _Net(nn.Module):
    def __init__(self, spatial_dims=3, k=4):
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.body = nn.Sequential(conv(1, 6, 3, padding=1), nn.ReLU(), conv(6, k, 3, padding=1))
        self.out_channels = k

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
@pytest.mark.parametrize(
    "roi, shape, bs, slab_dim",
    [
        ((8, 8, 8), (2, 1, 21, 17, 15), 3, 0),
        ((8, 8, 8), (1, 1, 21, 17, 15), 2, 2),
        ((10, 10, 10), (1, 1, 6, 17, 9), 1, 0),  # padding
        ((6, 6), (1, 1, 4, 13, 11), 2, 0),  # frame by frame
    ],
)
def test_labels_equal_argmax_of_float32_map(mode, roi, shape, bs, slab_dim):
    torch.manual_seed(0)
    net = _Net(spatial_dims=len(roi)).eval()
    x = torch.rand(shape)
    framewise = len(roi) == len(shape) - 3
    with torch.no_grad():
        xin = x.movedim(2, 1).flatten(0, 1) if framewise else x
        ref = sliding_window_inference(xin, roi, bs, net, overlap=0.5, mode=mode).argmax(1, keepdim=True)
        if framewise:
            ref = ref.reshape(shape[0], shape[2], 1, *shape[3:]).movedim(1, 2)
    lab = sliding_window_volume(
        x, roi, bs, net, overlap=0.5, mode=mode, precision="fp32", output="labels", slab_dim=slab_dim
    )
    assert lab.dtype == torch.uint8 and lab.shape == (shape[0], 1, *shape[2:])
    assert torch.equal(lab.long(), ref)


def test_logits_match_monai_and_meta_kept():
    torch.manual_seed(0)
    net = _Net().eval()
    x = MetaTensor(torch.rand(1, 1, 16, 14, 12), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    with torch.no_grad():
        ref = sliding_window_inference(x.as_tensor(), (8, 8, 8), 2, net, overlap=0.25)
    y = sliding_window_volume(x, (8, 8, 8), 2, net, overlap=0.25, precision="fp32", sw_device="cpu", device="cpu")
    assert isinstance(y, MetaTensor) and torch.equal(y.affine, x.affine)
    torch.testing.assert_close(y.as_tensor(), ref, atol=1e-6, rtol=1e-5)
    y.add_(1)  # the output is an ordinary tensor, not an inference-mode one


def test_precision_choices():
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("fp16", "cuda") is torch.float16
    assert autocast_dtype("auto", "cpu") is (torch.bfloat16 if cpu_has_native_bf16() else None)
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("int8", "cpu")


def test_one_precision_vocabulary():
    """medst.inferers and medst.networks share one table and one resolve_precision (a name, not a dtype)."""
    import medst.networks as networks

    assert inferers.PRECISIONS is networks.PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    assert inferers.resolve_precision is networks.resolve_precision
    assert inferers.autocast_dtype is networks.autocast_dtype
    for name in networks.PRECISIONS:
        resolved = resolve_precision(name, "cpu")
        assert resolved in ("fp32", "bf16", "fp16")
        assert autocast_dtype(name, "cpu") == {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[resolved]


def test_window_positions_are_monais():
    """medst steps its windows by MONAI's rule: the windows seen equal those of sliding_window_inference."""
    from medst.inferers.utils import _scan_interval

    def starts_seen(image, roi, overlap):
        seen = []

        def record(patch):  # voxel values are their own flat index: the first one names the window
            seen.extend(int(v) for v in patch[:, 0].reshape(patch.shape[0], -1)[:, 0])
            return patch

        sliding_window_inference(image, roi, 3, record, overlap=overlap)
        return sorted(seen)

    for shape, roi, overlap in [((17, 12, 9), (8, 12, 4), 0.25), ((10, 10), (3, 7), (0.5, 0.9)), ((9,), (9,), 0.6)]:
        image = torch.arange(float(torch.Size(shape).numel())).reshape(1, 1, *shape)
        ov = ensure_tuple_rep(overlap, len(shape))
        slices = dense_patch_slices(shape, roi, _scan_interval(shape, roi, ov))
        ours = sorted(int(image[(0, 0, *(slice(s.start, s.start + 1) for s in sl))]) for sl in slices)
        assert ours == starts_seen(image, roi, overlap)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_close_and_float32_out(precision):
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.rand(1, 1, 12, 12, 12)
    ref = sliding_window_volume(x, (8, 8, 8), 2, net, overlap=0.5, precision="fp32")
    y = sliding_window_volume(x, (8, 8, 8), 2, net, overlap=0.5, precision=precision)
    assert y.dtype == torch.float32
    diff = (y - ref).abs().max().item()
    assert 0 < diff < 0.05  # autocast really ran (not bit-equal), and stayed close
    assert net.body[0].weight.is_contiguous()  # channels-last weights are restored after the run


def test_flips_average():
    x = torch.rand(1, 1, 6, 7, 8)
    ramp = torch.arange(8.0).view(1, 1, 1, 1, 8)

    def f(a):
        return a * ramp + a.flip(2)

    flips = ((2,), (4,), (3, 4))
    y = sliding_window_volume(x, (6, 7, 8), 1, f, precision="fp32", flips=flips)
    expected = (f(x) + sum(f(x.flip(ax)).flip(ax) for ax in flips)) / 4
    torch.testing.assert_close(y, expected)
    # 2 * x is flip-equivariant: flips change nothing
    y2 = sliding_window_volume(x, (4, 4, 4), 2, lambda a: 2 * a, overlap=0.5, flips=flips)
    torch.testing.assert_close(y2, 2 * x)


def test_oom_fallback_to_cpu_and_single_windows():
    calls = []

    def flaky(a):
        calls.append(a.shape[0])
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        return 2 * a

    x = torch.rand(1, 1, 12, 12, 12)
    y = sliding_window_volume(x, (8, 8, 8), 4, flaky, overlap=0.5, precision="fp32")
    torch.testing.assert_close(y, 2 * x)
    assert calls[0] == 4 and set(calls[1:]) == {1}  # retried one window at a time

    def broken(a):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        sliding_window_volume(x, (8, 8, 8), 2, broken, precision="fp32")


def test_fast_predictor_is_inference_only():
    net = _Net().eval()
    fp = FastPredictor(net, dtype=None)
    y = fp(torch.rand(2, 1, 8, 8, 8))
    assert not y.requires_grad and y.shape == (2, 4, 8, 8, 8)


@pytest.mark.parametrize(
    "kwargs, shape, match",
    [
        (dict(roi_size=(8, 8)), (1, 1, 8, 8, 8, 8, 8), "roi_size"),  # two entries too few
        (dict(roi_size=(8, 8, 8, 8)), (1, 1, 8, 8, 8), "roi_size"),  # one too many
        (dict(roi_size=(8, 8, 8)), (8, 8), "inputs"),
        (dict(roi_size=(8, 8, 8), precision="fp8"), (1, 1, 8, 8, 8), "precision"),
        (dict(roi_size=(8, 8, 8), output="onehot"), (1, 1, 8, 8, 8), "output"),
        (dict(roi_size=(8, 8, 8), overlap=1.0), (1, 1, 8, 8, 8), "overlap"),
        (dict(roi_size=(8, 8, 8), flips=((1,),)), (1, 1, 8, 8, 8), "flip"),
        (dict(roi_size=(8, 8, 8), flips=((7,),)), (1, 1, 8, 8, 8), "flip"),
        (dict(roi_size=(8, 8, 8), sw_batch_size=0), (1, 1, 8, 8, 8), "sw_batch_size"),
    ],
)
def test_errors(kwargs, shape, match):
    kwargs = dict(kwargs)
    roi = kwargs.pop("roi_size")
    bs = kwargs.pop("sw_batch_size", 1)
    with pytest.raises(ValueError, match=match):
        sliding_window_volume(torch.rand(shape), roi, bs, lambda a: 2 * a, **kwargs)


@pytest.mark.slow
def test_compile_with_freezing_matches_eager():
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.rand(1, 1, 12, 12, 12)
    ref = sliding_window_volume(x, (8, 8, 8), 3, net, overlap=0.5, precision="fp32")
    y = sliding_window_volume(x, (8, 8, 8), 3, net, overlap=0.5, precision="fp32", compile=True)
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)


def test_output_device_plan():
    from medst.inferers.utils import _guess_out_channels, _output_device

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _output_device(cuda, 10**10, free_bytes=10**9) == cpu  # too big for the GPU: stitch on the CPU
    assert _output_device(cuda, 10**8, free_bytes=10**9) == cuda
    assert _output_device(cpu, 10**12, free_bytes=1) == cpu
    assert _guess_out_channels(_Net(k=7)) == 7
    assert _guess_out_channels(nn.Sequential(nn.Conv3d(1, 3, 1), nn.ReLU(), nn.Conv3d(3, 5, 1))) == 5
    assert _guess_out_channels(lambda a: a) is None


def test_progress_off_without_terminal_and_logging(caplog, monkeypatch):
    import logging

    from medst.inferers import utils

    monkeypatch.setattr(utils.sys.stderr, "isatty", lambda: False, raising=False)
    r = range(3)
    assert utils._progress(r, True) is r  # no bar when stderr is not a terminal
    with caplog.at_level(logging.INFO, logger="medst.inferers.utils"):
        sliding_window_volume(torch.rand(1, 1, 8, 8, 8), (4, 4, 4), 1, lambda a: a, precision="fp32")
    assert any("sliding window" in m for m in caplog.messages)


@pytest.mark.parametrize("k", [1, 2, 5, 300])
def test_channel_argmax_equals_torch_argmax(k):
    from medst.inferers import channel_argmax

    torch.manual_seed(0)
    x = torch.randn(2, k, 3, 7, 5)
    x[:, -1, 0] = x[:, 0, 0]  # exact ties: the first of equal maxima wins, as in torch.argmax
    labels = channel_argmax(x)
    assert labels.dtype == (torch.uint8 if k <= 256 else torch.int32)
    assert labels.shape == (2, 1, 3, 7, 5)
    assert torch.equal(labels.long(), x.argmax(1, keepdim=True))
    assert channel_argmax(x, torch.int64).dtype == torch.int64


def test_medst_imports_no_private_monai_names():
    """MONAI's private helpers change without notice: medst uses its public API only (the whole package)."""
    import ast
    from pathlib import Path

    import medst

    bad = []
    for path in Path(medst.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "monai":
                private = [a.name for a in node.names if a.name.startswith("_")]
                bad += [f"{path.name}: from {node.module} import {name}" for name in private]
                if any(part.startswith("_") for part in node.module.split(".")):
                    bad.append(f"{path.name}: from {node.module}")
            elif isinstance(node, ast.Import):
                bad += [f"{path.name}: import {a.name}" for a in node.names
                        if a.name.split(".")[0] == "monai" and any(p.startswith("_") for p in a.name.split("."))]
    assert not bad, bad


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
@pytest.mark.parametrize("output", ["logits", "labels"])
def test_frame_by_frame_equals_monai_slice_inferer(mode, output):
    """A 2D window over (B, C, T, H, W) is MONAI's SliceInferer along axis 2 (which medst does not call: it runs
    3D volumes only, and medst's frame-wise tiling also feeds 3D networks 4D scans and stitches label maps)."""
    from monai.inferers import SliceInferer

    torch.manual_seed(0)
    net = _Net(spatial_dims=2, k=3).eval()
    x = torch.rand(2, 1, 5, 19, 14)
    with torch.no_grad():
        ref = SliceInferer(roi_size=(8, 8), sw_batch_size=3, overlap=0.5, mode=mode, spatial_dim=0)(x, net)
    y = sliding_window_volume(x, (8, 8), 3, net, overlap=0.5, mode=mode, precision="fp32", output=output)
    if output == "logits":
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    else:
        assert torch.equal(y[:, 0].long(), ref.argmax(1))
