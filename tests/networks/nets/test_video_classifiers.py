"""LRCN, two-stream fusion, R(2+1)D-BERT and STAM: shapes (video and volume frames), the papers' parameter counts
on the meta device, what each network's forward promises (averaging, fusion, order), and their ValueErrors."""

from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import LRCN, STAM, FrameCNN, R2Plus1DBERT, TwoStreamFusion
from medst.networks.nets.video_classifiers import CAFFENET_STAGES, VGG16_STAGES

TINY = [[("conv", 4, 3, 1, 1), ("pool", 2, 2)], [("conv", 8, 3, 1, 1), ("pool", 2, 2)]]


def _count(module, skip_unused=False):
    # MONAI's TransformerBlock always builds a cross-attention LayerNorm (norm_cross_attn) that runs only with
    # with_cross_attention=True; skip_unused leaves those parameters out
    return sum(p.numel() for n, p in module.named_parameters() if not (skip_unused and "norm_cross_attn" in n))


def _meta(name, **kwargs):
    with torch.device("meta"):
        return create_network(name, **kwargs)


# ---- parameter counts of the paper presets ------------------------------------------------------------------


def test_lrcn_caffenet_parameter_count():
    # Caffe's bvlc_reference_caffenet (the CaffeNet LRCN builds on): 60,965,224 parameters with fc7 and the
    # 1000-class fc8, the count of its published deploy.prototxt layers (conv1-5 with groups 1, 2, 1, 2, 2)
    with torch.device("meta"):
        caffenet = FrameCNN(2, 3, CAFFENET_STAGES, norm=None, pool_size=6, fc_channels=(4096, 4096))
    assert _count(caffenet) + 4096 * 1000 + 1000 == 60_965_224
    # LRCN (Donahue 2015, Sec. 4): CaffeNet to fc6, an LSTM of 256 units on fc6, a 101-class classifier (UCF101)
    net = _meta("lrcn_caffenet")
    to_fc6 = 60_965_224 - (4096 * 4096 + 4096) - (4096 * 1000 + 1000)
    lstm = 4 * 256 * (4096 + 256) + 2 * 4 * 256  # torch's LSTM keeps two bias vectors
    assert _count(net.encoder) == to_fc6 == 40_086_912
    assert _count(net) == to_fc6 + lstm + 256 * 101 + 101 == 44_571_365


def test_two_stream_vgg16_parameter_count():
    # VGG-16 (Simonyan & Zisserman 2015, configuration D, "138M" in their Table 2; torchvision's vgg16 has exactly
    # 138,357,544): one tower and a 1000-class head of ours are exactly VGG-16
    with torch.device("meta"):
        tower = FrameCNN(2, 3, VGG16_STAGES, norm=None)
    head = 512 * 7 * 7 * 4096 + 4096 + 4096 * 4096 + 4096
    assert _count(tower) + head + 4096 * 1000 + 1000 == 138_357_544
    # Feichtenhofer 2016's fusion: two VGG-16 towers (the motion one on 2L = 20 flow channels), a 3x3x3 conv fusion
    # of the stacked ReLU5_3 features (1024 -> 512), and the fc6-fc8 head on the fused and on the motion stream
    net = _meta("two_stream_fusion_vgg16")
    tower_rgb = _count(tower)
    tower_flow = tower_rgb + (20 - 3) * 64 * 9
    fusion = 1024 * 512 * 27 + 512
    heads = 2 * (head + 4096 * 101 + 101)
    assert _count(net) == tower_rgb + tower_flow + fusion + heads == 283_514_762


def test_r2plus1d_34_bert_parameter_count():
    # Kalfaoglu 2020's reference implementation (artest08/LateTemporalModeling3DCNN, rgb_r2plus1d_32f_34_bert10):
    # the IG-65M R(2+1)D-34 without its fc (layout checked key for key in tests/networks/test_pretrained.py),
    # BERT5(input 512, max_len 4, hidden 512, 1 layer, 8 heads, feed-forward 4 x 512): a [CLS] token, 4 + 1 learned
    # positions, one block (q, k, v, out projections with biases, two LayerNorms, the 512-2048-512 feed-forward)
    # and fc_action 512 -> K
    net = _meta("r2plus1d_34_bert", out_channels=101)
    backbone = _count(_meta("r2plus1d_34", out_channels=101)) - (512 * 101 + 101)
    block = 4 * (512 * 512 + 512) + (512 * 2048 + 2048) + (2048 * 512 + 512) + 2 * 2 * 512
    assert _count(net.backbone) == backbone == 63_491_975
    assert _count(net, skip_unused=True) == backbone + 512 + 5 * 512 + block + 512 * 101 + 101 == 66_699_244


def test_stam_vit_b16_parameter_count():
    # Sharir 2021's reference implementation (Alibaba-MIIL/STAM, src/models/transformer_model.py and
    # temporal_aggregation.py): ViT-B/16 without qkv biases at 224 (patch conv, [CLS], 197 positions, 12 blocks, a
    # LayerNorm), TAggregate (torch TransformerEncoderLayer(768, nhead=8): feed-forward 2048; 6 layers, a final
    # LayerNorm, [CLS], 16 + 1 positions) and a 400-class head: 119,177,872 parameters
    vit_block = 4 * 768 + 768 * 3 * 768 + 768 * 768 + 768 + 768 * 3072 + 3072 + 3072 * 768 + 768
    vit = 3 * 16 * 16 * 768 + 768 + 768 + 197 * 768 + 12 * vit_block + 2 * 768
    t_layer = (768 * 3 * 768 + 3 * 768) + (768 * 768 + 768) + (768 * 2048 + 2048) + (2048 * 768 + 768) + 4 * 768
    temporal = 6 * t_layer + 2 * 768 + 768 + 17 * 768
    reference = vit + temporal + 768 * 400 + 400
    assert reference == 119_177_872
    # MONAI's ViT has no position embedding for its [CLS] token (196 positions, not 197): 768 fewer
    assert _count(_meta("stam_vit_b16"), skip_unused=True) == reference - 768


# ---- shapes ---------------------------------------------------------------------------------------------------

CASES = [
    (LRCN, dict(in_channels=1, out_channels=4, hidden_size=8, encoder_kwargs=dict(stages=TINY)), (2, 1, 5, 16, 16)),
    (LRCN, dict(spatial_dims=3, in_channels=1, out_channels=4, hidden_size=8, encoder_kwargs=dict(stages=TINY)),
     (2, 1, 3, 8, 8, 8)),
    (TwoStreamFusion, dict(in_channels=3, flow_channels=2, out_channels=4, stages=TINY, fusion_layer=2, pool_size=1,
                           fc_channels=(8,)), (2, 5, 3, 16, 16)),
    (R2Plus1DBERT, dict(in_channels=1, out_channels=4, backbone="r3d_18", backbone_kwargs=dict(widths=(8, 8, 8, 8)),
                        hidden_size=16, num_heads=2), (2, 1, 16, 16, 16)),
    (STAM, dict(in_channels=1, out_channels=4, img_size=16, patch_size=8, hidden_size=16, mlp_dim=16, num_layers=1,
                num_heads=2, num_frames=4, temporal_layers=1, temporal_heads=2, temporal_mlp_dim=16), (2, 1, 4, 16, 16)),
    (STAM, dict(spatial_dims=3, in_channels=1, out_channels=4, img_size=8, patch_size=4, hidden_size=16, mlp_dim=16,
                num_layers=1, num_heads=2, num_frames=3, temporal_layers=1, temporal_heads=2, temporal_mlp_dim=16),
     (2, 1, 3, 8, 8, 8)),
]


@pytest.mark.parametrize("cls,kwargs,shape", CASES)
def test_shapes_and_time_order_matters(cls, kwargs, shape):
    torch.manual_seed(0)
    net = cls(**kwargs).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        y = net(x)
        y_rev = net(x.flip(2))
    assert y.shape == (shape[0], 4) and torch.isfinite(y).all()
    if cls is not TwoStreamFusion:  # the others model the order of the frames: reversing time changes the answer
        assert not torch.allclose(y, y_rev, atol=1e-6)


def test_lrcn_averages_the_per_frame_predictions():
    net = LRCN(in_channels=1, out_channels=3, hidden_size=8, encoder_kwargs=dict(stages=TINY)).eval()
    x = torch.randn(2, 1, 6, 16, 16)
    with torch.no_grad():
        frames = net.forward_frames(x)
        assert frames.shape == (2, 6, 3)
        torch.testing.assert_close(net(x), frames.mean(1))
        # the LSTM carries state: the last frame's prediction depends on the first frame
        x2 = x.clone()
        x2[:, :, 0] = 0
        assert not torch.allclose(net.forward_frames(x2)[:, -1], frames[:, -1])


def test_two_stream_heads_and_fusion_layer():
    kw = dict(in_channels=1, flow_channels=2, out_channels=3, stages=TINY, pool_size=1, fc_channels=(8,))
    net = TwoStreamFusion(fusion_layer=1, **kw).eval()
    x = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        heads = net.forward_heads(x)
        assert len(heads) == 2
        torch.testing.assert_close(net(x), (heads[0] + heads[1]) / 2)
        # the fused head sees the flow; the motion head does not see the frames
        x2 = x.clone()
        x2[:, :1] += 1.0
        h2 = net.forward_heads(x2)
        assert torch.equal(h2[1], heads[1]) and not torch.allclose(h2[0], heads[0])
    assert net.fusion[0].in_channels == 2 * 4 and len(net.fused_post) == 1  # fused after stage 1 of 2
    late = TwoStreamFusion(fusion_layer=2, keep_motion_stream=False, **kw)
    assert late.fusion[0].in_channels == 2 * 8 and len(late.fused_post) == 0 and len(late.forward_heads(x)) == 1


def test_bert_reads_the_temporal_tokens():
    net = R2Plus1DBERT(in_channels=1, out_channels=3, backbone="r3d_18", backbone_kwargs=dict(widths=(8, 8, 8, 16)),
                       hidden_size=8, num_heads=2, max_len=2).eval()
    assert isinstance(net.proj, torch.nn.Linear) and not hasattr(net.backbone.fc, "weight")  # 16 -> 8, no fc
    with torch.no_grad():
        assert net(torch.randn(1, 1, 16, 16, 16)).shape == (1, 3)  # T' = 16 / 8 = 2 tokens
        with pytest.raises(Exception, match="max_len"):
            net(torch.randn(1, 1, 32, 16, 16))  # 4 tokens > max_len 2


@pytest.mark.slow
def test_small_presets_learn_a_temporal_task():
    """The small LRCN, R(2+1)D-BERT and two-stream presets fit a task one frame cannot solve (a dot moving left or
    right: both classes show the same frames, in opposite orders) in 20 steps (about 30 s on two busy cores: slow)."""
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 8, 16, 16)
    y = torch.arange(8) % 2
    for i in range(8):
        for t in range(8):
            col = 4 + t if y[i] == 1 else 11 - t
            x[i, 0, t, 6 + i % 3, col] = 1.0
    # the two-stream input: the frames and, as a stand-in for the flow, the frame differences (x, y alike)
    diff = torch.cat([x[:, :, 1:] - x[:, :, :-1], torch.zeros(8, 1, 1, 16, 16)], 2)
    # stam_small is not in the list: from scratch it stays at chance on this task for 120 Adam steps (lr 1e-3 or
    # 3e-4): its frame embeddings carry the dot, but telling the order apart needs its small learned temporal
    # positions to grow, which these few steps do not do
    for name, kw, lr in [("lrcn_small", {}, 3e-3),
                         ("r2plus1d_bert_small", dict(backbone_kwargs=dict(widths=(8, 8, 8, 8))), 3e-3),
                         ("two_stream_fusion_small", dict(flow_channels=2), 3e-3)]:
        torch.manual_seed(0)
        net = create_network(name, in_channels=1, out_channels=2, **kw)
        inp = torch.cat([x, diff, diff], 1) if name.startswith("two") else x
        opt = torch.optim.Adam(net.parameters(), lr)
        losses = []
        for _ in range(20):
            loss = torch.nn.functional.cross_entropy(net(inp), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.5 * losses[0], (name, losses)


# ---- errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: LRCN(spatial_dims=1), "spatial_dims"),
        (lambda: LRCN(hidden_size=0), "hidden_size"),
        (lambda: LRCN(frame_encoder=torch.nn.Identity()), "out_features"),
        (lambda: FrameCNN(stages=[[("dense", 3)]]), "layer spec"),
        (lambda: FrameCNN(stages=[[("conv", 6, 3, 1, 4)]]), "groups"),
        (lambda: FrameCNN(stages=[]), "at least one stage"),
        (lambda: TwoStreamFusion(spatial_dims=3), "spatial_dims must be 2"),
        (lambda: TwoStreamFusion(stages=TINY, fusion_layer=3), "fusion_layer"),
        (lambda: R2Plus1DBERT(spatial_dims=2), "spatial_dims must be 3"),
        (lambda: R2Plus1DBERT(backbone=torch.nn.Identity()), "forward_features"),
        (lambda: R2Plus1DBERT(backbone="r3d_18", backbone_kwargs=dict(widths=(8, 8, 8, 8)), hidden_size=10,
                              num_heads=4), "divisible"),
        (lambda: STAM(spatial_dims=4), "spatial_dims"),
    ],
)
def test_value_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_input_errors():
    two = TwoStreamFusion(in_channels=1, flow_channels=2, out_channels=3, stages=TINY, fusion_layer=2, pool_size=1,
                          fc_channels=(8,))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        two(torch.randn(1, 4, 2, 16, 16))
    lrcn = LRCN(in_channels=1, out_channels=3, hidden_size=8, encoder_kwargs=dict(stages=TINY))
    with pytest.raises(ValueError, match="spatial_dims frame axes"):
        lrcn(torch.randn(1, 1, 16, 16))
