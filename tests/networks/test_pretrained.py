"""Published video checkpoints: a state dict written here in torchvision's / VMZ's VideoResNet layout (key names
and shapes from torchvision.models.video.resnet and VMZ's pt/vmz/models, values random) is converted, loaded with
another input-channel count and class count, and checked against a reference computation. Nothing downloads."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from medst.networks import (
    PUBLISHED_CHECKPOINTS,
    adapt_input_conv,
    convert_checkpoint,
    convert_video_state_dict,
    create_network,
    load_pretrained,
)

ROOT = Path(__file__).resolve().parents[2]


def published_layout(block="basic", layers=(2, 2, 2, 2), conv="3d", stem="basic", widths=(64, 128, 256, 512),
                     in_channels=3, num_classes=400, midplanes="shared") -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's VideoResNet (and VMZ's, which builds on it), written out from its classes:
    BasicStem / R2Plus1dStem / BasicStem_Pool, BasicBlock / Bottleneck (conv1, conv2[, conv3] Sequentials, a
    ``downsample`` Sequential), Conv3DSimple / Conv3DNoTemporal / Conv2Plus1D / Conv3DDepthwise / IPConv3DDepthwise,
    and ``fc``. ``midplanes="per_conv"``: VMZ's Conv2Plus1D computes its mid-planes from its own in/out planes."""
    sd: dict[str, tuple[int, ...]] = {}

    def conv_w(key, o, i, k):
        sd[f"{key}.weight"] = (o, i, *k)

    def bn(key, c):
        for n in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{key}.{n}"] = (c,)
        sd[f"{key}.num_batches_tracked"] = ()

    def mid(i, o):
        return i * o * 27 // (i * 9 + 3 * o)

    def main_conv(key, cin, cout, m, kind):
        if kind == "3d":
            conv_w(key, cout, cin, (3, 3, 3))
        elif kind == "2d":
            conv_w(key, cout, cin, (1, 3, 3))
        elif kind == "2plus1d":
            conv_w(f"{key}.0", m, cin, (1, 3, 3))
            bn(f"{key}.1", m)
            conv_w(f"{key}.3", cout, m, (3, 1, 1))
        elif kind == "ir":
            conv_w(key, cout, 1, (3, 3, 3))
        elif kind == "ip":
            conv_w(f"{key}.0", cout, cin, (1, 1, 1))
            bn(f"{key}.1", cout)
            conv_w(f"{key}.2", cout, 1, (3, 3, 3))

    if stem == "r2plus1d":
        conv_w("stem.0", 45, in_channels, (1, 7, 7))
        bn("stem.1", 45)
        conv_w("stem.3", 64, 45, (3, 1, 1))
        bn("stem.4", 64)
    else:  # BasicStem, BasicStem_Pool (the pool has no parameters)
        conv_w("stem.0", 64, in_channels, (3, 7, 7))
        bn("stem.1", 64)
    kinds = (conv,) * 4 if isinstance(conv, str) else conv
    inplanes, exp = 64, 1 if block == "basic" else 4
    for i, (n, w, kind) in enumerate(zip(layers, widths, kinds)):
        for j in range(n):
            p, stride = f"layer{i + 1}.{j}", 2 if i > 0 and j == 0 else 1
            m = mid(inplanes, w)
            if block == "basic":
                main_conv(f"{p}.conv1.0", inplanes, w, m, kind)
                bn(f"{p}.conv1.1", w)
                main_conv(f"{p}.conv2.0", w, w, m if midplanes == "shared" else mid(w, w), kind)
                bn(f"{p}.conv2.1", w)
            else:
                conv_w(f"{p}.conv1.0", w, inplanes, (1, 1, 1))
                bn(f"{p}.conv1.1", w)
                main_conv(f"{p}.conv2.0", w, w, m, kind)
                bn(f"{p}.conv2.1", w)
                conv_w(f"{p}.conv3.0", w * exp, w, (1, 1, 1))
                bn(f"{p}.conv3.1", w * exp)
            if stride != 1 or inplanes != w * exp:
                conv_w(f"{p}.downsample.0", w * exp, inplanes, (1, 1, 1))
                bn(f"{p}.downsample.1", w * exp)
            inplanes = w * exp
    sd["fc.weight"], sd["fc.bias"] = (num_classes, inplanes), (num_classes,)
    return sd


def random_state_dict(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(100)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.1
    return out


def _medst_shapes(name, **kwargs):
    with torch.device("meta"):
        net = create_network(name, **kwargs)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


FULL = [
    ("r3d_18", dict(conv="3d")),
    ("mc3_18", dict(conv=("3d", "2d", "2d", "2d"))),
    ("r2plus1d_18", dict(conv="2plus1d", stem="r2plus1d")),
    ("r2plus1d_34", dict(layers=(3, 4, 6, 3), conv="2plus1d", stem="r2plus1d", midplanes="per_conv", num_classes=359)),
    ("ir_csn_152", dict(block="bottleneck", layers=(3, 8, 36, 3), conv="ir", stem="pool")),
    ("ip_csn_152", dict(block="bottleneck", layers=(3, 8, 36, 3), conv="ip", stem="pool", num_classes=487)),
]


@pytest.mark.parametrize("name,layout", FULL, ids=[n for n, _ in FULL])
def test_published_layouts_convert_key_for_key(name, layout):
    tv = published_layout(**layout)
    converted = convert_video_state_dict({k: torch.empty(s, device="meta") for k, s in tv.items()})
    assert {k: tuple(v.shape) for k, v in converted.items()} == _medst_shapes(name, out_channels=tv["fc.bias"][0])


def test_r2plus1d_34_needs_the_vmz_midplanes():
    vmz = published_layout(layers=(3, 4, 6, 3), conv="2plus1d", stem="r2plus1d", midplanes="per_conv")
    tv_rule = _medst_shapes("r2plus1d_34", out_channels=400, midplanes="shared")
    converted = {k: v for k, v in convert_video_state_dict({k: torch.empty(s, device="meta") for k, s in vmz.items()}).items()}
    differ = sorted(k for k in tv_rule if tuple(converted[k].shape) != tv_rule[k])
    # VMZ / Caffe2: the first block of stages 2-4 gives conv2 its own mid-planes (288, 576, 1152)
    assert {k.split(".conv2")[0] for k in differ} == {"stages.1.0", "stages.2.0", "stages.3.0"}
    assert converted["stages.1.0.conv2.0.0.weight"].shape[0] == 288


SMALL = dict(conv="2plus1d", stem="r2plus1d", widths=(8, 8, 16, 16), num_classes=400)
W = dict(widths=(8, 8, 16, 16))


@pytest.fixture
def converted_file(tmp_path):
    src, dst = tmp_path / "r2plus1d_18_tv.pth", tmp_path / "r2plus1d_18_medst.pt"
    torch.save(random_state_dict(published_layout(**SMALL)), src)
    return src, dst


def _net(in_channels, out_channels=400):
    torch.manual_seed(1)
    return create_network("r2plus1d_18", in_channels=in_channels, out_channels=out_channels, widths=(8, 8, 16, 16)).eval()


def test_grey_from_rgb_equals_the_rgb_net_on_a_third_of_the_grey(converted_file, tmp_path):
    src, dst = converted_file
    # the conversion builds the network and loads strictly (here at the small widths of the file)
    info = convert_checkpoint(src, dst, network="r2plus1d_18", network_kwargs=W)
    assert info["in_channels"] == 3 and info["num_classes"] == 400 and info["bn_eps"] == 1e-5
    rgb, grey = _net(3), _net(1)
    assert load_pretrained(rgb, dst) == {"adapted": [], "dropped": []}
    assert load_pretrained(grey, dst) == {"adapted": ["stem.0.weight"], "dropped": []}
    x = torch.randn(2, 1, 4, 32, 32)
    # the first conv: a conv with the RGB weights averaged over the input channels
    w = torch.load(src, weights_only=True)["stem.0.weight"]
    with torch.no_grad():
        torch.testing.assert_close(grey.stem[0](x), F.conv3d(x, w.mean(1, keepdim=True), stride=(1, 2, 2), padding=(0, 3, 3)))
        # the whole network: averaging the weights = the RGB network on the grey frame / 3 in every channel
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1, 1) / 3), rtol=1e-4, atol=1e-5)


def test_more_channels_repeat_and_rescale(converted_file):
    src, dst = converted_file
    convert_checkpoint(src, dst, network="r2plus1d_18", network_kwargs=W)
    rgb, five = _net(3), _net(5)
    load_pretrained(rgb, dst)
    load_pretrained(five, dst)
    x = torch.randn(1, 5, 4, 32, 32)
    # channels (0, 1, 2, 3, 4) take weights (w0, w1, w2, w0, w1) * 3/5
    folded = torch.stack([x[:, 0] + x[:, 3], x[:, 1] + x[:, 4], x[:, 2]], 1) * (3 / 5)
    with torch.no_grad():
        torch.testing.assert_close(five(x), rgb(folded), rtol=1e-4, atol=1e-5)


def test_other_class_count_keeps_the_new_classifier(converted_file):
    src, dst = converted_file
    net = _net(3, out_channels=7)
    fc_before = net.fc.weight.clone()
    report = load_pretrained(net, torch.load(src, weights_only=True))  # a raw torchvision-layout state dict works too
    assert report["dropped"] == ["fc.weight", "fc.bias"]
    assert torch.equal(net.fc.weight, fc_before)
    tv = torch.load(src, weights_only=True)
    assert torch.equal(net.stages[3][1].conv2[0][3].weight, tv["layer4.1.conv2.0.3.weight"])


def test_backbone_of_r2plus1d_bert_and_bn_eps(converted_file):
    src, dst = converted_file
    bert = create_network("r2plus1d_bert_small", in_channels=1, backbone_kwargs=dict(widths=(8, 8, 16, 16)))
    report = load_pretrained(bert.backbone, src, bn_eps=1e-3)  # the backbone has no fc: the classifier is left out
    assert report == {"adapted": ["stem.0.weight"], "dropped": ["fc.weight", "fc.bias"]}
    assert all(m.eps == 1e-3 for m in bert.backbone.modules() if isinstance(m, torch.nn.BatchNorm3d))


def test_mismatched_checkpoints_fail_clearly(converted_file, tmp_path):
    src, _ = converted_file
    with pytest.raises(ValueError, match="does not fit"):
        load_pretrained(create_network("r3d_18", widths=(8, 8, 16, 16)), src)
    with pytest.raises(ValueError, match="not in torchvision's"):
        convert_video_state_dict({"conv1_middle_w": torch.zeros(1)})  # a Caffe2 blob name
    with pytest.raises(ValueError, match="unknown checkpoint name"):
        convert_checkpoint(src, tmp_path / "x.pt", name="r2plus1d_18_imagenet")
    with pytest.raises(ValueError, match="in_channels"):
        adapt_input_conv(torch.zeros(4, 3, 1, 1, 1), 0)
    with pytest.raises(ValueError, match="extra"):
        adapt_input_conv(torch.zeros(4, 3, 1, 1, 1), 5, extra="copy")
    with pytest.raises(ValueError, match="does not fit medst"):
        convert_checkpoint(src, tmp_path / "x.pt", name="r2plus1d_18_kinetics400")  # full widths vs small file


def test_adapt_input_conv_policies_for_more_channels():
    w = torch.randn(4, 2, 3, 3, 3)
    x = torch.randn(1, 2, 5, 5, 5)
    conv = lambda weight, inp: torch.nn.functional.conv3d(inp, weight)  # noqa: E731
    rep = adapt_input_conv(w, 4)  # the same kind of input again: two copies give the original response
    torch.testing.assert_close(conv(rep, torch.cat([x, x], 1)), conv(w, x))
    zeros = adapt_input_conv(w, 3, extra="zeros")  # a new kind of input: ignored until trained
    assert zeros.shape == (4, 3, 3, 3, 3) and torch.equal(zeros[:, :2], w) and not zeros[:, 2].any()
    torch.testing.assert_close(conv(zeros, torch.cat([x, torch.randn(1, 1, 5, 5, 5)], 1)), conv(w, x))


def test_wrapped_and_prefixed_checkpoints():
    sd = random_state_dict(published_layout(**SMALL))
    wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    assert convert_video_state_dict(wrapped).keys() == convert_video_state_dict(sd).keys()


def test_script_lists_and_converts(converted_file, capsys):
    main = runpy.run_path(str(ROOT / "scripts" / "convert_video_weights.py"))["main"]  # in-process: no second start-up
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in PUBLISHED_CHECKPOINTS)
    src, dst = converted_file
    assert main([str(src), "--network", "r2plus1d_18", "--network-kwargs", '{"widths": [8, 8, 16, 16]}', "-o", str(dst)]) == 0
    assert torch.load(dst, weights_only=True)["medst"]["network"] == "r2plus1d_18"
    with pytest.raises(SystemExit):
        main([str(src)])  # no output, no network
