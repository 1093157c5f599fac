"""Dense optical flow of a video and its stacking with the frames (the motion input of two-stream networks).

The flow is OpenCV's Farneback (G. Farneback 2003, "Two-Frame Motion Estimation Based on Polynomial Expansion"):
dense, deterministic, on the CPU, in a well-kept wheel (``opencv-python-headless``), with no weights to train or
download. TV-L1 (the two-stream papers' choice) lives in opencv-contrib's ``optflow`` module only, and RAFT would
need training here; Farneback is the flow the pipeline can compute anywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_tensor, optional_import

from medst.data.utils import MedstDataError

__all__ = ["OpticalFlow", "StackFlow", "to_grey_uint8"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's RGB2GRAY


def _name(img: Any) -> str:
    name = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
    return f" ({name})" if name else ""


def to_grey_uint8(img: torch.Tensor, intensity_range: tuple[float, float] | None = None) -> np.ndarray:
    """(C, T, H, W) -> (T, H, W) uint8 grey frames.

    Three channels are taken as RGB (BT.601 luma), one as grey, any other count is averaged. uint8 input is kept
    as is; other input is scaled from ``intensity_range`` (default: the clip's own min and max, one scale for all
    frames so that a frame's brightness change is not taken for motion) to 0..255.
    """
    x = img.float()
    if x.shape[0] == 3:
        grey = sum(w * x[i] for i, w in enumerate(_LUMA))
    else:
        grey = x.mean(0)
    if img.dtype == torch.uint8:
        return grey.round().clamp(0, 255).to(torch.uint8).numpy()
    lo, hi = intensity_range if intensity_range is not None else (float(grey.min()), float(grey.max()))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return ((grey - lo) * scale).round().clamp(0, 255).to(torch.uint8).numpy()


class OpticalFlow(Transform):
    """Dense optical flow between consecutive frames of a video (C, T, H, W) -> (2, T - 1, H, W) float32.

    ``flow[:, t]`` is the motion from frame ``t`` to frame ``t + 1``, in pixels per frame: channel 0 along W (x,
    to the right), channel 1 along H (y, downwards), so that ``frame_{t+1}(y + flow[1], x + flow[0]) ~ frame_t(y,
    x)``. With ``same_length`` a zero flow is appended as the last step, giving (2, T, H, W), aligned with the frames.

    Flow is computed on grey uint8 frames (see :func:`to_grey_uint8`); the Farneback parameters are OpenCV's
    documented example values. A MetaTensor in gives a MetaTensor out with the input's metadata (``fps``, time
    spacing, affine).

    Args:
        pyr_scale, levels, winsize, iterations, poly_n, poly_sigma: ``cv2.calcOpticalFlowFarneback``'s arguments.
        bound: clip the flow to [-bound, bound] pixels (the two-stream papers use 20); None: no clipping.
        same_length: append a zero flow so that time keeps T steps.
        intensity_range: (low, high) of a float input mapped to 0..255 (None: the clip's min and max).

    Raises:
        MedstDataError: for an input that is not (C, T, H, W) with T >= 2 (a 4D series (C, T, X, Y, Z) has no 2D flow).
        ImportError: when OpenCV (``opencv-python-headless``) is not installed.

    Example::

        flow = OpticalFlow()(video)        # video (3, 16, 112, 112) uint8 -> flow (2, 15, 112, 112) float32
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
        bound: float | None = None,
        same_length: bool = False,
        intensity_range: tuple[float, float] | None = None,
    ) -> None:
        if not 0 < pyr_scale < 1:
            raise ValueError(f"pyr_scale must be in (0, 1), got {pyr_scale!r}.")
        if poly_n not in (5, 7):
            raise ValueError(f"poly_n must be 5 or 7 (OpenCV's two supported neighbourhoods), got {poly_n!r}.")
        if bound is not None and bound <= 0:
            raise ValueError(f"bound must be positive or None, got {bound!r}.")
        self.params = (pyr_scale, int(levels), int(winsize), int(iterations), int(poly_n), float(poly_sigma), 0)
        self.bound, self.same_length, self.intensity_range = bound, same_length, intensity_range

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        cv2, has_cv2 = optional_import("cv2")  # imported on first use: importing medst does not load OpenCV
        if not has_cv2:
            raise ImportError("OpticalFlow needs OpenCV: pip install opencv-python-headless")
        x = convert_to_tensor(img, track_meta=False)
        if x.ndim != 4 or x.shape[1] < 2:
            raise MedstDataError(
                f"OpticalFlow needs a video (C, T, H, W) with at least 2 frames; got shape {tuple(x.shape)}"
                f"{_name(img)}. Optical flow is 2D: a 4D series (C, T, X, Y, Z) has none."
            )
        grey = to_grey_uint8(x.cpu(), self.intensity_range)
        t, h, w = grey.shape
        flow = np.zeros((2, t if self.same_length else t - 1, h, w), np.float32)
        for i in range(t - 1):  # one pair at a time: nothing but the output is held
            f = cv2.calcOpticalFlowFarneback(grey[i], grey[i + 1], None, *self.params)
            flow[0, i], flow[1, i] = f[..., 0], f[..., 1]
        if self.bound is not None:
            np.clip(flow, -self.bound, self.bound, out=flow)
        out = torch.from_numpy(flow)
        if isinstance(img, MetaTensor):
            out = MetaTensor(out, meta=dict(img.meta))
        return out


class StackFlow(Transform):
    """The frames and ``num_flows`` (L) consecutive flow fields stacked on the channel axis, the input of
    :class:`medst.networks.nets.TwoStreamFusion`: frames (C, T, H, W) and flow (2, T_f, H, W) -> (C + 2L, T', H, W).

    Time step ``t`` holds frame ``t`` and the flows ``t, ..., t + L - 1`` as interleaved (x, y) channels (Simonyan &
    Zisserman 2014's stacking): ``[frame_t, x_t, y_t, x_{t+1}, y_{t+1}, ...]``. T' is the number of steps with L
    flows after them: ``min(T, T_f - L + 1)`` (T - L for the T - 1 flows of :class:`OpticalFlow`).

    Args:
        num_flows: L, the flow fields per time step (10 in the paper).

    Raises:
        ValueError: for ``num_flows`` < 1.
        MedstDataError: when the shapes do not fit (H, W differ, the flow has not 2 channels, or fewer than L flows).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, num_flows: int = 1) -> None:
        if not isinstance(num_flows, int) or num_flows < 1:
            raise ValueError(f"num_flows must be a positive integer, got {num_flows!r}.")
        self.num_flows = num_flows

    def __call__(self, img: NdarrayOrTensor, flow: NdarrayOrTensor) -> torch.Tensor:
        x = convert_to_tensor(img, track_meta=False)
        f = convert_to_tensor(flow, track_meta=False)
        n = self.num_flows
        if x.ndim != 4 or f.ndim != 4 or f.shape[0] != 2 or x.shape[2:] != f.shape[2:]:
            raise MedstDataError(
                f"StackFlow needs frames (C, T, H, W) and flow (2, T_f, H, W) of the same H, W; got {tuple(x.shape)} "
                f"and {tuple(f.shape)}{_name(img)}."
            )
        steps = min(x.shape[1], f.shape[1] - n + 1)
        if steps < 1:
            raise MedstDataError(f"StackFlow: {f.shape[1]} flow fields cannot give num_flows={n} per step{_name(img)}.")
        x = x.float() if not x.is_floating_point() else x
        h, w = f.shape[2:]
        # window t: flows t..t+L-1, (2, L, H, W) -> (L, 2, H, W) -> (2L, H, W): interleaved x, y
        stacked = f.unfold(1, n, 1)[:, :steps]  # (2, steps, H, W, L)
        stacked = stacked.permute(1, 4, 0, 2, 3).reshape(steps, 2 * n, h, w).transpose(0, 1)
        out = torch.cat([x[:, :steps], stacked.to(x.dtype)], 0)
        if isinstance(img, MetaTensor):
            out = MetaTensor(out, meta=dict(img.meta))
        return out
