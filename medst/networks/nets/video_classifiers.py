"""Clip classifiers of the seed reading list: LRCN, two-stream fusion, R(2+1)D-BERT and STAM.

A clip is channel-first with time on axis 2 of the batch, as everywhere in medst: a video (B, C, T, H, W) or a
4D series (B, C, T, X, Y, Z). ``spatial_dims`` is the number of axes of one *frame*: 2 for video frames, 3 when the
frames are volumes (a 4D series). Every network returns logits (B, K).

- :class:`FrameCNN`: a plain conv trunk for one frame (any ``spatial_dims``), written as a small layer list so that
  the papers' trunks (CaffeNet, VGG-16) and a small CPU trunk are the same class.
- :class:`LRCN` (Donahue et al. 2015, https://arxiv.org/abs/1411.4389): a 2D (or 3D) CNN per frame, an LSTM over
  the frame features, per-frame predictions averaged over time.
- :class:`TwoStreamFusion` (Feichtenhofer et al. 2016, https://arxiv.org/abs/1604.06573): an appearance stream on
  frames and a motion stream on stacked optical flow, fused by a 3D conv at ``fusion_layer`` and 3D-pooled over time.
- :class:`R2Plus1DBERT` (Kalfaoglu et al. 2020, https://arxiv.org/abs/2008.01232): a VideoResNet backbone whose
  temporal global pooling is replaced by a BERT-style transformer with a [CLS] token.
- :class:`STAM` (Sharir et al. 2021, https://arxiv.org/abs/2103.13915): MONAI's ViT on every frame, then a temporal
  transformer over the frame [CLS] embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from monai.networks.blocks import TransformerBlock
from monai.networks.layers import Conv, Pool, get_norm_layer
from monai.networks.nets import ViT

from medst.networks.registry import register_network

__all__ = [
    "FrameCNN",
    "LRCN",
    "TwoStreamFusion",
    "R2Plus1DBERT",
    "STAM",
    "CAFFENET_STAGES",
    "VGG16_STAGES",
    "SMALL_STAGES",
    "lrcn_small",
    "lrcn_caffenet",
    "two_stream_fusion_small",
    "two_stream_fusion_vgg16",
    "r2plus1d_bert_small",
    "r2plus1d_34_bert",
    "stam_small",
    "stam_vit_b16",
]

LayerSpec = Sequence[Any]

# Layer lists, one list per stage. ("conv", out, kernel, stride, groups): a conv with padding kernel // 2, the
# trunk's norm (if any) and ReLU; ("pool", kernel, stride): max pool; ("lrn", size): local response normalisation.
# CaffeNet (Caffe's bvlc_reference_caffenet, the AlexNet variant LRCN builds on): 96-11/4, pool, LRN,
# 256-5 (2 groups), pool, LRN, 384-3, 384-3 (2 groups), 256-3 (2 groups), pool; fc6/fc7 4096 on 256 x 6 x 6.
CAFFENET_STAGES: list[list[LayerSpec]] = [
    [("conv", 96, 11, 4, 1), ("pool", 3, 2), ("lrn", 5)],
    [("conv", 256, 5, 1, 2), ("pool", 3, 2), ("lrn", 5)],
    [("conv", 384, 3, 1, 1)],
    [("conv", 384, 3, 1, 2)],
    [("conv", 256, 3, 1, 2), ("pool", 3, 2)],
]
# VGG-16 (Simonyan & Zisserman 2015, configuration D): 13 3x3 convs in five blocks; each block after the first
# starts with its 2 x 2 max pool, so a block's output is the paper's ReLU layer (conv5_3 -> "ReLU5_3") and the pool
# after the last block belongs to the head.
VGG16_STAGES: list[list[LayerSpec]] = [
    [("conv", 64, 3, 1, 1), ("conv", 64, 3, 1, 1)],
    [("pool", 2, 2), ("conv", 128, 3, 1, 1), ("conv", 128, 3, 1, 1)],
    [("pool", 2, 2)] + [("conv", 256, 3, 1, 1)] * 3,
    [("pool", 2, 2)] + [("conv", 512, 3, 1, 1)] * 3,
    [("pool", 2, 2)] + [("conv", 512, 3, 1, 1)] * 3,
]
# a small trunk that trains on a CPU: three stages of one 3x3 conv (16, 32, 64), each halving the frame
SMALL_STAGES: list[list[LayerSpec]] = [
    [("conv", 16, 3, 1, 1), ("pool", 2, 2)],
    [("conv", 32, 3, 1, 1), ("pool", 2, 2)],
    [("conv", 64, 3, 1, 1), ("pool", 2, 2)],
]


def _check_dims(spatial_dims: int, allowed: Sequence[int], name: str) -> None:
    if spatial_dims not in allowed:
        raise ValueError(
            f"{name}: spatial_dims is the number of axes of one frame and must be one of {tuple(allowed)}, got "
            f"{spatial_dims!r} (2: video frames (B, C, T, H, W); 3: volume frames (B, C, T, X, Y, Z))."
        )


def _positive(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _fc_stack(f: int, fc_channels: Sequence[int], dropout: float) -> list[nn.Module]:
    """Linear-ReLU-Dropout layers of widths ``fc_channels`` on ``f`` input features."""
    layers: list[nn.Module] = []
    for width in fc_channels:
        layers += [nn.Linear(f, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        f = width
    return layers


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, *S) -> (B * T, C, *S): every frame a batch item."""
    return x.transpose(1, 2).flatten(0, 1)


def _unframes(y: torch.Tensor, batch: int) -> torch.Tensor:
    """(B * T, c, *S) -> (B, c, T, *S)."""
    return y.reshape([batch, y.shape[0] // batch] + list(y.shape[1:])).transpose(1, 2)


class FrameCNN(nn.Module):
    """A plain conv trunk for one frame, then pooling and optional fully connected layers: (N, C, *S) -> (N, F).

    Args:
        spatial_dims: axes of a frame (2 or 3).
        in_channels: frame channels.
        stages: one layer list per stage (see ``CAFFENET_STAGES``, ``VGG16_STAGES``, ``SMALL_STAGES``):
            ``("conv", out, kernel, stride, groups)``, ``("pool", kernel, stride)``, ``("lrn", size)``.
        norm: a MONAI norm name after each conv (``"batch"``, ``"instance"``, ...), or None (the papers' trunks).
        pool_size: the adaptive average pool's output size per axis before flattening (1: global average pooling;
            6 for CaffeNet and 7 for VGG-16 at their 227/224 input, where the pool is then a no-op).
        fc_channels: units of the fully connected layers after flattening (each Linear, ReLU, Dropout), e.g.
            ``(4096,)`` for CaffeNet's fc6.
        dropout: dropout after each fully connected layer.

    Attributes:
        stages: the conv stages (an ``nn.ModuleList``); ``stage_channels[i]`` is the output channels of stage i.
        head: pooling, flattening and the fully connected layers; ``out_features`` is its width.

    Raises:
        ValueError: for an unknown layer kind, a malformed layer spec or an empty ``stages``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        stages: Sequence[Sequence[LayerSpec]] = SMALL_STAGES,
        norm: str | tuple | None = "batch",
        pool_size: int = 1,
        fc_channels: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims, (2, 3), "FrameCNN")
        _positive(in_channels, "in_channels")
        _positive(pool_size, "pool_size")
        if len(stages) < 1:
            raise ValueError("FrameCNN needs at least one stage in stages.")
        conv_t, pool_t = Conv[Conv.CONV, spatial_dims], Pool[Pool.MAX, spatial_dims]
        c = in_channels
        built, self.stage_channels = [], []
        for i, stage in enumerate(stages):
            layers: list[nn.Module] = []
            for spec in stage:
                kind = spec[0] if len(spec) else None
                if kind == "conv" and len(spec) == 5:
                    _, out, k, s, g = spec
                    if c % g or out % g:
                        raise ValueError(f"stage {i}: groups {g} must divide the conv's {c} -> {out} channels.")
                    layers.append(conv_t(c, out, k, stride=s, padding=k // 2, groups=g))
                    if norm is not None:
                        layers.append(get_norm_layer(norm, spatial_dims, out))
                    layers.append(nn.ReLU(inplace=True))
                    c = out
                elif kind == "pool" and len(spec) == 3:
                    layers.append(pool_t(spec[1], stride=spec[2], ceil_mode=True))
                elif kind == "lrn" and len(spec) == 2:
                    layers.append(nn.LocalResponseNorm(spec[1], alpha=1e-4, beta=0.75, k=1.0))
                else:
                    raise ValueError(
                        f"stage {i}: layer spec {tuple(spec)!r} is not one of ('conv', out, kernel, stride, groups), "
                        "('pool', kernel, stride) or ('lrn', size)."
                    )
            built.append(nn.Sequential(*layers))
            self.stage_channels.append(c)
        self.stages = nn.ModuleList(built)
        self.head = self.make_head(spatial_dims, c, pool_size, fc_channels, dropout)
        self.out_features = fc_channels[-1] if len(fc_channels) else c * pool_size**spatial_dims

    @staticmethod
    def make_head(spatial_dims: int, channels: int, pool_size: int, fc_channels: Sequence[int],
                  dropout: float) -> nn.Sequential:
        """Adaptive average pool to ``pool_size`` per axis, flatten, then Linear-ReLU-Dropout layers."""
        pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](pool_size)
        return nn.Sequential(pool, nn.Flatten(1), *_fc_stack(channels * pool_size**spatial_dims, fc_channels, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


class LRCN(nn.Module):
    """Long-term Recurrent Convolutional Network for activity recognition (Donahue et al. 2015, "Long-term Recurrent
    Convolutional Networks for Visual Recognition and Description", https://arxiv.org/abs/1411.4389).

    Every frame goes through the same CNN; an LSTM reads the frame features in order and predicts a class at every
    time step; the clip's logits are the per-frame logits averaged over time (the paper averages the per-frame
    predictions; averaging logits keeps a cross-entropy loss on the clip logits).

    Args:
        spatial_dims: axes of a frame: 2 for video (B, C, T, H, W), 3 for a volume series (B, C, T, X, Y, Z).
        in_channels: frame channels.
        out_channels: classes K.
        frame_encoder: any module mapping (N, C, *S) to (N, F) with an ``out_features`` attribute (F); None: a
            :class:`FrameCNN` built from ``encoder_kwargs``.
        encoder_kwargs: arguments of the default :class:`FrameCNN` (``stages``, ``norm``, ``pool_size``,
            ``fc_channels``, ``dropout``).
        hidden_size: LSTM units (256 in the paper).
        num_layers: stacked LSTM layers (1 in the paper).
        dropout: dropout on the frame features and on the LSTM outputs.

    Shapes: (B, C, T, *S) -> (B, K).

    Example::

        net = LRCN(spatial_dims=2, in_channels=1, out_channels=5)
        logits = net(torch.rand(2, 1, 8, 32, 32))   # (2, 5)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 101,
        frame_encoder: nn.Module | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims, (2, 3), "LRCN")
        for v, n in ((in_channels, "in_channels"), (out_channels, "out_channels"), (hidden_size, "hidden_size"),
                     (num_layers, "num_layers")):
            _positive(v, n)
        if frame_encoder is None:
            frame_encoder = FrameCNN(spatial_dims, in_channels, **(encoder_kwargs or {}))
        elif encoder_kwargs:
            raise ValueError("give either frame_encoder or encoder_kwargs, not both.")
        if not isinstance(getattr(frame_encoder, "out_features", None), int):
            raise ValueError("frame_encoder needs an integer attribute out_features (the width of its (N, F) output).")
        self.spatial_dims = spatial_dims
        self.encoder = frame_encoder
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(frame_encoder.out_features, hidden_size, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, out_channels)

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, *S) -> per-frame logits (B, T, K)."""
        if x.ndim != self.spatial_dims + 3:
            raise ValueError("LRCN expects a clip (B, C, T, *spatial) with spatial_dims frame axes.")
        b, t = x.shape[0], x.shape[2]
        f = self.encoder(_frames(x)).reshape(b, t, -1)
        h, _ = self.lstm(self.dropout(f))
        return self.fc(self.dropout(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_frames(x).mean(1)


class TwoStreamFusion(nn.Module):
    """Convolutional two-stream fusion (Feichtenhofer et al. 2016, "Convolutional Two-Stream Network Fusion for Video
    Action Recognition", https://arxiv.org/abs/1604.06573), its best architecture: the appearance and motion towers
    are fused after conv stage ``fusion_layer`` by *3D conv fusion* (their features stacked over channels and time,
    a 3 x 3 x 3 conv back to one tower's width), the fused features run through the appearance tower's remaining
    stages per frame and are *3D max-pooled* over time and space before the fully connected head. With
    ``keep_motion_stream`` the motion tower is not truncated: it continues on its own, is 3D-pooled too and has its
    own head; the logits are the mean of the two heads (the paper trains both heads' losses and averages their
    predictions at test time: :meth:`forward_heads` returns both).

    The input is one tensor: the frames' ``in_channels`` channels followed by ``flow_channels`` (2L: the x and y
    components of L stacked optical flow fields per time step, as :class:`medst.transforms.StackFlow` builds).

    Args:
        spatial_dims: must be 2 (optical flow is a 2D field on video frames).
        in_channels: appearance channels (3 for RGB, 1 for grey).
        out_channels: classes K.
        flow_channels: motion channels, 2L (20 for the paper's L = 10).
        stages: the towers' conv stages (both towers alike; ``VGG16_STAGES`` in the paper).
        fusion_layer: fuse after this many stages (1..len(stages); None: the last, the paper's best: ReLU5_3).
        norm: a MONAI norm name after each conv, or None (VGG-16).
        pool_size: the 3D pool's spatial output size per axis (time is pooled to 1): 7 for VGG-16 at 224 x 224.
        fc_channels: the head's hidden fully connected layers ((4096, 4096) for VGG-16).
        dropout: dropout after each hidden fully connected layer.
        keep_motion_stream: keep the motion tower after the fusion and average the two heads.

    Shapes: (B, in_channels + flow_channels, T, H, W) -> (B, K).

    Raises:
        ValueError: for ``spatial_dims`` other than 2, a ``fusion_layer`` outside 1..len(stages), or an input whose
            channels are not ``in_channels + flow_channels``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 101,
        flow_channels: int = 20,
        stages: Sequence[Sequence[LayerSpec]] = VGG16_STAGES,
        fusion_layer: int | None = None,
        norm: str | tuple | None = None,
        pool_size: int = 7,
        fc_channels: Sequence[int] = (4096, 4096),
        dropout: float = 0.5,
        keep_motion_stream: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(
                f"TwoStreamFusion fuses 2D towers over time (optical flow is a 2D field): spatial_dims must be 2, got "
                f"{spatial_dims!r}."
            )
        for v, n in ((in_channels, "in_channels"), (out_channels, "out_channels"), (flow_channels, "flow_channels")):
            _positive(v, n)
        if fusion_layer is None:
            fusion_layer = len(stages)
        if not isinstance(fusion_layer, int) or not 1 <= fusion_layer <= len(stages):
            raise ValueError(f"fusion_layer must be in 1..{len(stages)} (the number of stages), got {fusion_layer!r}.")
        app = FrameCNN(2, in_channels, stages, norm=norm)
        mot = FrameCNN(2, flow_channels, stages, norm=norm)
        k = fusion_layer
        c = app.stage_channels[k - 1]
        self.in_channels, self.flow_channels = in_channels, flow_channels
        self.appearance_pre = nn.Sequential(*app.stages[:k])
        self.motion_pre = nn.Sequential(*mot.stages[:k])
        self.fusion = nn.Sequential(nn.Conv3d(2 * c, c, 3, padding=1), nn.ReLU(inplace=True))
        self.fused_post = nn.Sequential(*app.stages[k:])
        c_out = app.stage_channels[-1]
        self.pool = nn.AdaptiveMaxPool3d((1, pool_size, pool_size))
        self.fused_head = self._head(c_out * pool_size**2, fc_channels, dropout, out_channels)
        self.keep_motion_stream = keep_motion_stream
        if keep_motion_stream:
            self.motion_post = nn.Sequential(*mot.stages[k:])
            self.motion_head = self._head(c_out * pool_size**2, fc_channels, dropout, out_channels)
        else:
            self.motion_post = nn.Sequential()
            self.motion_head = nn.Sequential()

    @staticmethod
    def _head(f: int, fc_channels: Sequence[int], dropout: float, out_channels: int) -> nn.Sequential:
        hidden = _fc_stack(f, fc_channels, dropout)
        return nn.Sequential(nn.Flatten(1), *hidden, nn.Linear(fc_channels[-1] if len(fc_channels) else f, out_channels))

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C + F, T, H, W) -> [fused logits (B, K)] and, with ``keep_motion_stream``, [..., motion logits]."""
        if x.ndim != 5 or x.shape[1] != self.in_channels + self.flow_channels:
            raise ValueError(
                "TwoStreamFusion expects (B, in_channels + flow_channels, T, H, W) = (B, "
                f"{self.in_channels + self.flow_channels}, T, H, W): the frames' channels, then the stacked flow."
            )
        b = x.shape[0]
        rgb, flow = x[:, : self.in_channels], x[:, self.in_channels :]
        a = _unframes(self.appearance_pre(_frames(rgb)), b)
        m = _unframes(self.motion_pre(_frames(flow)), b)
        fused = self.fusion(torch.cat([a, m], 1))
        # the remaining stages per frame, then the 3D pool over time and space: (B, c, 1, p, p)
        out = [self.fused_head(self.pool(_unframes(self.fused_post(_frames(fused)), b)))]
        if self.keep_motion_stream:
            out.append(self.motion_head(self.pool(_unframes(self.motion_post(_frames(m)), b))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = self.forward_heads(x)
        return torch.stack(heads, 0).mean(0)


class _TemporalTransformer(nn.Module):
    """A [CLS] token and learned positions before a stack of MONAI TransformerBlocks: (B, N, D) -> (B, D) ([CLS]).

    Args:
        hidden_size, mlp_dim, num_heads, num_layers, dropout: the blocks' sizes (MONAI's TransformerBlock, pre-norm,
            biases on the query/key/value projections as in BERT and torch's TransformerEncoderLayer).
        max_len: the most tokens (positions ``max_len + 1`` with the [CLS] token).
        final_norm: a LayerNorm on the output (STAM's temporal encoder has one; BERT's has none).
    """

    def __init__(self, hidden_size: int, mlp_dim: int, num_heads: int, num_layers: int, max_len: int,
                 dropout: float = 0.0, final_norm: bool = True) -> None:
        super().__init__()
        for v, n in ((hidden_size, "hidden_size"), (mlp_dim, "mlp_dim"), (num_heads, "num_heads"),
                     (num_layers, "num_layers"), (max_len, "max_len")):
            _positive(v, n)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}).")
        self.max_len = max_len
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_len + 1, hidden_size))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            [TransformerBlock(hidden_size, mlp_dim, num_heads, dropout, qkv_bias=True) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(hidden_size) if final_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        if n > self.max_len:
            raise ValueError(
                "more temporal tokens than learned positions: raise max_len (R2Plus1DBERT) or num_frames (STAM)."
            )
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed[:, : n + 1]
        x = self.drop(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


class R2Plus1DBERT(nn.Module):
    """Late temporal modelling with BERT (Kalfaoglu et al. 2020, "Late Temporal Modeling in 3D CNN Architectures
    with BERT for Action Recognition", https://arxiv.org/abs/2008.01232): a 3D CNN backbone whose temporal global
    average pooling is replaced by a BERT-style transformer over the temporal feature sequence.

    The backbone's last feature map (B, c, T', h, w) is averaged over space only, giving T' tokens of width c;
    a [CLS] token is prepended, learned positional embeddings added, ``num_layers`` transformer blocks applied,
    and the classifier reads the [CLS] output (masked-token pre-training is not implemented).

    Args:
        spatial_dims: must be 3 (the backbone sees the video (T, H, W) as one volume).
        in_channels: input channels.
        out_channels: classes K.
        backbone: a registered VideoResNet name (``"r2plus1d_34"``, ``"r2plus1d_18"``, ``"r3d_18"``, ``"ir_csn_152"``,
            ...) or a module with ``forward_features`` and ``num_features`` (its ``fc``, if any, is removed).
        backbone_kwargs: extra arguments for a named backbone (``widths``, ...).
        hidden_size: the transformer's width (the backbone's features are projected linearly when they differ;
            512 = R(2+1)D-34's width in the paper, no projection).
        num_layers, num_heads: transformer blocks and heads (1 and 8 in the paper).
        mlp_dim: the blocks' feed-forward width (default 4 x hidden_size, as BERT).
        max_len: the most temporal tokens T' (4 in the paper: 32 frames, T downsampled by 8).
        dropout: dropout inside the transformer.
        head_dropout: dropout before the classifier (0.8 in the reference implementation).

    Shapes: (B, C, T, H, W) -> (B, K).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 3,
        out_channels: int = 101,
        backbone: Any = "r2plus1d_34",
        backbone_kwargs: dict[str, Any] | None = None,
        hidden_size: int = 512,
        num_layers: int = 1,
        num_heads: int = 8,
        mlp_dim: int | None = None,
        max_len: int = 4,
        dropout: float = 0.1,
        head_dropout: float = 0.8,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"R2Plus1DBERT's backbone sees a video (T, H, W) as a volume: spatial_dims must be 3, "
                             f"got {spatial_dims!r}.")
        _positive(out_channels, "out_channels")
        if isinstance(backbone, str):
            from medst.networks.registry import create_network

            backbone = create_network(backbone, in_channels=in_channels, **(backbone_kwargs or {}))
        elif backbone_kwargs:
            raise ValueError("backbone_kwargs apply to a backbone given by name only.")
        if not hasattr(backbone, "forward_features") or not isinstance(getattr(backbone, "num_features", None), int):
            raise ValueError("backbone must provide forward_features(x) and an integer num_features (VideoResNet).")
        if hasattr(backbone, "fc"):
            backbone.fc = nn.Identity()  # the classifier is replaced by the transformer's
        self.backbone = backbone
        c = backbone.num_features
        self.proj = nn.Identity() if c == hidden_size else nn.Linear(c, hidden_size)
        self.bert = _TemporalTransformer(hidden_size, mlp_dim or 4 * hidden_size, num_heads, num_layers, max_len,
                                         dropout, final_norm=False)
        self.head_dropout = nn.Dropout(head_dropout)
        self.fc = nn.Linear(hidden_size, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor] = self.backbone.forward_features(x)
        tokens = feats[-1].mean((3, 4)).transpose(1, 2)  # (B, T', c): spatial pooling only
        return self.fc(self.head_dropout(self.bert(self.proj(tokens))))


class STAM(nn.Module):
    """STAM (Sharir et al. 2021, "An Image is Worth 16x16 Words, What is a Video Worth?",
    https://arxiv.org/abs/2103.13915): MONAI's ViT on every frame (spatial_dims 2 for video frames, 3 for volume
    frames), its normalised [CLS] embedding per frame, then a temporal transformer with its own [CLS] token and
    learned positions over the frame embeddings, and a linear classifier.

    Args:
        spatial_dims: axes of a frame (2 or 3).
        in_channels: frame channels.
        out_channels: classes K.
        img_size: the frame size (one entry per frame axis, or one int), divisible by ``patch_size``.
        patch_size: the ViT's patch size.
        hidden_size, mlp_dim, num_layers, num_heads: the spatial ViT (ViT-B/16: 768, 3072, 12, 12).
        qkv_bias: biases on the spatial ViT's query/key/value projections (False in the reference implementation).
        num_frames: the most frames T (learned temporal positions; 16 for STAM-16).
        temporal_layers, temporal_heads, temporal_mlp_dim: the temporal transformer (6, 8, 2048 in the reference
            implementation: torch's TransformerEncoderLayer defaults).
        dropout: dropout in both transformers.

    Shapes: (B, C, T, *img_size) -> (B, K).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 400,
        img_size: Sequence[int] | int = 224,
        patch_size: Sequence[int] | int = 16,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_layers: int = 12,
        num_heads: int = 12,
        qkv_bias: bool = False,
        num_frames: int = 16,
        temporal_layers: int = 6,
        temporal_heads: int = 8,
        temporal_mlp_dim: int = 2048,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims, (2, 3), "STAM")
        _positive(out_channels, "out_channels")
        self.spatial_dims = spatial_dims
        self.vit = ViT(
            in_channels=in_channels, img_size=img_size, patch_size=patch_size, hidden_size=hidden_size,
            mlp_dim=mlp_dim, num_layers=num_layers, num_heads=num_heads, classification=True,
            dropout_rate=dropout, spatial_dims=spatial_dims, qkv_bias=qkv_bias,
        )
        self.vit.classification_head = nn.Identity()  # the ViT gives the normalised [CLS] embedding of a frame
        self.temporal = _TemporalTransformer(hidden_size, temporal_mlp_dim, temporal_heads, temporal_layers,
                                             num_frames, dropout, final_norm=True)
        self.fc = nn.Linear(hidden_size, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 3:
            raise ValueError("STAM expects a clip (B, C, T, *img_size) with spatial_dims frame axes.")
        b = x.shape[0]
        cls = self.vit(_frames(x))[0]  # (B * T, D)
        return self.fc(self.temporal(cls.reshape(b, -1, cls.shape[-1])))


# ---- registered variants ---------------------------------------------------------------------------------------
_TINY_STAGES = [[("conv", 4, 3, 1, 1), ("pool", 2, 2)], [("conv", 8, 3, 1, 1), ("pool", 2, 2)]]


def _merge(cls: type, defaults: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    return cls(**dict(defaults, **kwargs))


@register_network(example_kwargs=dict(in_channels=1, out_channels=3), example_input_shape=(2, 1, 4, 16, 16),
                  example_output_shape=(2, 3))
def lrcn_small(**kwargs: Any) -> LRCN:
    """LRCN, small: FrameCNN (16, 32, 64) with BatchNorm and global pooling, LSTM 64; trains on a CPU."""
    return _merge(LRCN, dict(spatial_dims=2, in_channels=1, out_channels=10, hidden_size=64, dropout=0.2), kwargs)


@register_network(
    example_kwargs=dict(out_channels=3, hidden_size=8, encoder_kwargs=dict(stages=_TINY_STAGES, fc_channels=(16,))),
    example_input_shape=(2, 3, 3, 16, 16),
    example_output_shape=(2, 3),
)
def lrcn_caffenet(**kwargs: Any) -> LRCN:
    """LRCN as in the paper: CaffeNet trunk to fc6 (4096), LSTM 256, 101 classes (UCF101); frames 227 x 227."""
    enc = dict(stages=CAFFENET_STAGES, norm=None, pool_size=6, fc_channels=(4096,), dropout=0.5)
    return _merge(LRCN, dict(spatial_dims=2, in_channels=3, out_channels=101, encoder_kwargs=enc, hidden_size=256,
                             dropout=0.5), kwargs)


_EX_2S = dict(
    example_kwargs=dict(in_channels=1, out_channels=3, flow_channels=4, stages=_TINY_STAGES, fusion_layer=1,
                        pool_size=2, fc_channels=(8,)),
    example_input_shape=(2, 5, 4, 16, 16),
    example_output_shape=(2, 3),
)


@register_network(**_EX_2S)
def two_stream_fusion_small(**kwargs: Any) -> TwoStreamFusion:
    """Two-stream fusion, small: grey frames + 2 flow fields, SMALL_STAGES towers with BatchNorm, fc 64; CPU size."""
    return _merge(TwoStreamFusion, dict(spatial_dims=2, in_channels=1, out_channels=10, flow_channels=4,
                                        stages=SMALL_STAGES, fusion_layer=3, norm="batch", pool_size=2,
                                        fc_channels=(64,), dropout=0.3), kwargs)


@register_network(**_EX_2S)
def two_stream_fusion_vgg16(**kwargs: Any) -> TwoStreamFusion:
    """Two-stream fusion as in the paper: VGG-16 towers, 3D conv fusion at ReLU5_3, 3D pooling, L = 10 flows."""
    return _merge(TwoStreamFusion, dict(spatial_dims=2, in_channels=3, out_channels=101, flow_channels=20,
                                        stages=VGG16_STAGES, fusion_layer=5, norm=None, pool_size=7,
                                        fc_channels=(4096, 4096), dropout=0.5, keep_motion_stream=True), kwargs)


_EX_BERT = dict(
    example_kwargs=dict(in_channels=1, out_channels=3, backbone_kwargs=dict(widths=(8, 8, 16, 16)), hidden_size=16,
                        num_heads=2, max_len=4),
    example_input_shape=(2, 1, 8, 16, 16),
    example_output_shape=(2, 3),
)


@register_network(**_EX_BERT)
def r2plus1d_bert_small(**kwargs: Any) -> R2Plus1DBERT:
    """R(2+1)D-BERT, small: R(2+1)D-18 at widths (16, 32, 64, 128), one block of width 128, 4 heads; CPU size."""
    return _merge(R2Plus1DBERT, dict(spatial_dims=3, in_channels=1, out_channels=10, backbone="r2plus1d_18",
                                     backbone_kwargs=dict(widths=(16, 32, 64, 128)), hidden_size=128, num_heads=4,
                                     max_len=8, head_dropout=0.3), kwargs)


@register_network(**_EX_BERT)
def r2plus1d_34_bert(**kwargs: Any) -> R2Plus1DBERT:
    """R(2+1)D-BERT as in the paper: R(2+1)D-34, one BERT block (512, 8 heads), 32-frame clips (T' = 4)."""
    return _merge(R2Plus1DBERT, dict(spatial_dims=3, in_channels=3, out_channels=101, backbone="r2plus1d_34",
                                     hidden_size=512, num_layers=1, num_heads=8, max_len=4, head_dropout=0.8), kwargs)


_EX_STAM = dict(
    example_kwargs=dict(in_channels=1, out_channels=3, img_size=16, patch_size=8, hidden_size=16, mlp_dim=32,
                        num_layers=1, num_heads=2, num_frames=4, temporal_layers=1, temporal_heads=2,
                        temporal_mlp_dim=32),
    example_input_shape=(2, 1, 4, 16, 16),
    example_output_shape=(2, 3),
)


@register_network(**_EX_STAM)
def stam_small(**kwargs: Any) -> STAM:
    """STAM, small: ViT 32 x 32 frames, patch 8, width 96, 4 layers, 4 heads; temporal 2 layers; CPU size."""
    return _merge(STAM, dict(spatial_dims=2, in_channels=1, out_channels=10, img_size=32, patch_size=8, hidden_size=96,
                             mlp_dim=192, num_layers=4, num_heads=4, num_frames=16, temporal_layers=2,
                             temporal_heads=4, temporal_mlp_dim=192), kwargs)


@register_network(**_EX_STAM)
def stam_vit_b16(**kwargs: Any) -> STAM:
    """STAM-16 as in the paper: ViT-B/16 on 224 x 224 frames, a 6-layer temporal transformer, 16 frames, 400 classes."""
    return _merge(STAM, dict(spatial_dims=2, in_channels=3, out_channels=400, img_size=224, patch_size=16,
                             hidden_size=768, mlp_dim=3072, num_layers=12, num_heads=12, num_frames=16,
                             temporal_layers=6, temporal_heads=8, temporal_mlp_dim=2048), kwargs)
