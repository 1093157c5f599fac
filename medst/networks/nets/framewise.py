"""A per-frame classifier over a video or a 4D scan: the single-frame baseline of video classification."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from medst.networks.registry import create_network, register_network

__all__ = ["FramewiseClassifier", "framewise_classifier"]


class FramewiseClassifier(nn.Module):
    """Classify every frame of ``(B, C, T, *frame)`` with a network of one dimension fewer and average the frames'
    logits: the "single-frame" baseline of Karpathy et al. 2014, "Large-scale Video Classification with
    Convolutional Neural Networks" (https://cs.stanford.edu/people/karpathy/deepvideo/), which sees appearance
    only. Given one frame (``T = 1``: a training clip of one frame, the middle frame at test time) it is a plain
    image classifier; given several, it averages their logits and still ignores their order.

    Args:
        spatial_dims: axes after the channel of the input, time included: 3 for a video ``(T, H, W)``, 4 for a 4D
            scan ``(T, X, Y, Z)``; the frame network gets ``spatial_dims - 1``.
        in_channels: input channels.
        out_channels: classes.
        frame_network: a registered classifier (``medst.networks.list_networks()``) that maps
            ``(N, C, *frame)`` to ``(N, K)`` and takes ``spatial_dims``, ``in_channels``, ``out_channels``.
        frame_kwargs: further arguments of ``frame_network``.

    Shapes: (B, C, T, *frame) -> logits (B, K).

    Example::

        net = FramewiseClassifier(3, 1, 8, "dilated_classifier", {"channels": (16, 32, 64, 128)})
        logits = net(torch.rand(2, 1, 1, 64, 64))   # (2, 8), from one frame each
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        frame_network: str = "dilated_classifier",
        frame_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (3, 4):
            raise ValueError(f"spatial_dims counts time and the frame's axes: 3 (video) or 4 (4D scan), got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.frame_net = create_network(
            frame_network, **dict(frame_kwargs or {}), spatial_dims=spatial_dims - 1, in_channels=in_channels,
            out_channels=out_channels,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected (B, C, T, *frame) with {self.spatial_dims} axes after the channel, got shape "
                             f"{list(x.shape)}.")
        b, t = x.shape[0], x.shape[2]
        frames = x.transpose(1, 2).flatten(0, 1)  # (B * T, C, *frame)
        logits = self.frame_net(frames)
        if not isinstance(logits, torch.Tensor):
            raise ValueError("the frame network returned features, not logits: build it with features_only=False.")
        return logits.reshape(b, t, -1).mean(1)


@register_network(
    example_kwargs=dict(in_channels=1, out_channels=3, frame_kwargs=dict(channels=(4, 8), dilations=(1, 2))),
    example_input_shape=(2, 1, 3, 16, 16),
    example_output_shape=(2, 3),
)
def framewise_classifier(**kwargs: Any) -> FramewiseClassifier:
    """Single-frame baseline: a 2D dilated classifier on each frame of a video, logits averaged over frames."""
    return FramewiseClassifier(**dict(dict(spatial_dims=3, in_channels=1, out_channels=2), **kwargs))
