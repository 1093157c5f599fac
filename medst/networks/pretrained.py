"""Published video backbones in medst: convert a checkpoint's keys once, then load it into any input-channel count.

The published weights of the video ResNets come in torchvision's ``VideoResNet`` layout: torchvision's own Kinetics
checkpoints (r3d_18, mc3_18, r2plus1d_18) and the VMZ / IG-65M ones (Ghadiyaram et al. 2019, weakly supervised
pre-training on 65M Instagram videos, https://arxiv.org/abs/1905.00561; Tran et al.'s VMZ model zoo, Kinetics and
Sports-1M: R(2+1)D-34, ir-CSN-152, ip-CSN-152), which the VMZ PyTorch code builds with torchvision's classes.
medst's :class:`~medst.networks.nets.VideoResNet` has the same modules under other names::

    stem.*                      -> stem.*                  (same indices: conv, BN, ReLU[, conv, BN, ReLU][, pool])
    layer{i}.{j}.conv{k}.*      -> stages.{i-1}.{j}.conv{k}.*
    layer{i}.{j}.downsample.*   -> stages.{i-1}.{j}.shortcut.*
    fc.*                        -> fc.*

Two details of the VMZ / IG-65M weights: their (2+1)D convs compute the mid-planes per conv (medst's
``midplanes="per_conv"``, the ``r2plus1d_34`` default), and their BatchNorm uses Caffe2's eps 1e-3, which the
converted file records and :func:`load_pretrained` sets.

Use: ``python scripts/convert_video_weights.py r2plus1d_18-91a641e6.pth --name r2plus1d_18_kinetics400 -o r2p1d.pt``
once (with the file downloaded from the address ``--list`` prints), then
``load_pretrained(create_network("r2plus1d_18", in_channels=1, out_channels=2), "r2p1d.pt")``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "PUBLISHED_CHECKPOINTS",
    "convert_video_state_dict",
    "convert_checkpoint",
    "adapt_input_conv",
    "load_pretrained",
]

# name -> the medst network, the BatchNorm eps it was trained with, and where the file is published
PUBLISHED_CHECKPOINTS: dict[str, dict[str, Any]] = {
    "r3d_18_kinetics400": dict(network="r3d_18", bn_eps=1e-5,
                               url="https://download.pytorch.org/models/r3d_18-b3b3357e.pth"),
    "mc3_18_kinetics400": dict(network="mc3_18", bn_eps=1e-5,
                               url="https://download.pytorch.org/models/mc3_18-a90a0ba3.pth"),
    "r2plus1d_18_kinetics400": dict(network="r2plus1d_18", bn_eps=1e-5,
                                    url="https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth"),
}
_IG = "https://github.com/moabitcoin/ig65m-pytorch/releases/download/v1.0.0/"
_VMZ = "https://github.com/bjuncek/VMZ/releases/download/test_models/"
for _name, _file in [
    ("r2plus1d_34_ig65m_8frames", "r2plus1d_34_clip8_ig65m_from_scratch-9bae36ae.pth"),
    ("r2plus1d_34_ig65m_32frames", "r2plus1d_34_clip32_ig65m_from_scratch-449a7af9.pth"),
    ("r2plus1d_34_ig65m_kinetics_8frames", "r2plus1d_34_clip8_ft_kinetics_from_ig65m-0aa0550b.pth"),
    ("r2plus1d_34_ig65m_kinetics_32frames", "r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth"),
]:
    PUBLISHED_CHECKPOINTS[_name] = dict(network="r2plus1d_34", bn_eps=1e-3, url=_IG + _file)
for _name, _file in [
    ("ir_csn_152_ig65m", "irCSN_152_ig65m_from_scratch_f125286141.pth"),
    ("ir_csn_152_ig65m_kinetics", "irCSN_152_ft_kinetics_from_ig65m_f126851907.pth"),
    ("ir_csn_152_sports1m", "irCSN_152_Sports1M_from_scratch_f99918785.pth"),
    ("ir_csn_152_sports1m_kinetics", "irCSN_152_ft_kinetics_from_Sports1M_f101599884.pth"),
    ("ip_csn_152_ig65m", "ipCSN_152_ig65m_from_scratch_f130601052.pth"),
    ("ip_csn_152_ig65m_kinetics", "ipCSN_152_ft_kinetics_from_ig65m_f133090949.pth"),
    ("ip_csn_152_sports1m", "ipCSN_152_Sports1M_from_scratch_f111018543.pth"),
    ("ip_csn_152_sports1m_kinetics", "ipCSN_152_ft_kinetics_from_Sports1M_f111279053.pth"),
]:
    PUBLISHED_CHECKPOINTS[_name] = dict(network=_name[:10], bn_eps=1e-3, url=_VMZ + _file)

_LAYER = re.compile(r"^layer(\d+)\.(\d+)\.(downsample\.)?")
_WRAPPERS = ("state_dict", "model_state", "model", "module")


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint object: ``{"state_dict": ...}``-style wrappers and ``module.`` prefixes go."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPERS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            raise ValueError(f"no state dict in the checkpoint: its keys are {sorted(obj)[:10]} (expected tensors, or "
                             f"one of {_WRAPPERS} holding them).")
        obj = inner
    if not isinstance(obj, Mapping):
        raise ValueError(f"a checkpoint must be a state dict (a mapping of names to tensors), got {type(obj).__name__}.")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def convert_video_state_dict(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Rename a torchvision / VMZ ``VideoResNet`` state dict's keys to medst's ``VideoResNet`` names.

    Keys already in medst's layout pass unchanged, so converting twice is harmless.

    Raises:
        ValueError: for keys that belong to neither layout (a Caffe2 blob file, another architecture); the message
            lists some of them.
    """
    sd = _unwrap(state_dict)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        m = _LAYER.match(key)
        if m:
            new = f"stages.{int(m[1]) - 1}.{m[2]}.{'shortcut.' if m[3] else ''}" + key[m.end():]
        elif key.startswith(("stem.", "fc.", "stages.")):
            new = key
        else:
            unknown.append(key)
            continue
        out[new] = value
    if unknown:
        raise ValueError(
            f"{len(unknown)} keys are not in torchvision's / VMZ's VideoResNet layout (stem., layer<i>., fc.), e.g. "
            f"{unknown[:5]}. Caffe2 .pkl blobs need the VMZ / ig65m-pytorch conversion to .pth first."
        )
    return out


def _first_conv_key(keys: Any) -> str:
    for k in keys:
        if k.endswith("weight") and k.startswith("stem."):
            return k
    raise ValueError("the state dict has no stem conv weight (stem.0.weight).")


def adapt_input_conv(weight: torch.Tensor, in_channels: int, mode: str = "mean", extra: str = "repeat") -> torch.Tensor:
    """A first conv's weight (out, m, *k) for ``in_channels`` (n) inputs.

    - n == m: unchanged.
    - n < m (grey from RGB): the mean over the m input channels (``mode="mean"``), each of the n channels getting
      it; ``mode="sum"`` scales it by m / n instead, so that a grey frame gives the response its RGB copy gave.
    - n > m, ``extra="repeat"`` (more copies of the same kind of input, RGB from grey): the m channels repeated
      cyclically and scaled by m / n, so that n copies of the channels give the original response;
      ``extra="zeros"`` (new kinds of input, a prior beside the image): the m trained channels kept and zeros for
      the new ones, so that the network computes what it did, whatever the new channels hold, until training
      changes those weights.

    Raises:
        ValueError: for ``in_channels`` < 1 or an unknown ``mode`` or ``extra``.
    """
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
    if mode not in ("mean", "sum"):
        raise ValueError(f"mode must be 'mean' or 'sum', got {mode!r}.")
    if extra not in ("repeat", "zeros"):
        raise ValueError(f"extra must be 'repeat' or 'zeros', got {extra!r}.")
    m = weight.shape[1]
    if in_channels == m:
        return weight
    if in_channels > m and extra == "zeros":
        wide = weight.new_zeros((weight.shape[0], in_channels, *weight.shape[2:]))
        wide[:, :m] = weight
        return wide
    if in_channels < m:
        w = weight.mean(1, keepdim=True)
        if mode == "sum":
            w = w * (m / in_channels)
        return w.expand(-1, in_channels, *weight.shape[2:]).contiguous()
    reps = math.ceil(in_channels / m)
    return weight.repeat(1, reps, *([1] * (weight.ndim - 2)))[:, :in_channels] * (m / in_channels)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, name: str | None = None,
                       network: str | None = None, network_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Convert a published checkpoint file to a medst file (``{"state_dict": ..., "medst": info}``) and check it.

    The check builds the medst network with the checkpoint's input channels and classes and loads the converted
    weights strictly, so a layout mismatch fails here, once, rather than at training time.

    Args:
        src: the published ``.pth`` file.
        dst: the medst file to write.
        name: a :data:`PUBLISHED_CHECKPOINTS` name (sets the network and the BatchNorm eps).
        network: a registered medst network name instead of ``name`` (BatchNorm eps 1e-5).
        network_kwargs: extra arguments that build the network the checkpoint fits (``widths``, ``midplanes``).

    Returns:
        the info stored with the weights: network, in_channels, num_classes, bn_eps, source.

    Raises:
        ValueError: for an unknown ``name``, neither ``name`` nor ``network``, or weights that do not fit.
    """
    from medst.networks.registry import create_network

    if name is not None:
        if name not in PUBLISHED_CHECKPOINTS:
            raise ValueError(f"unknown checkpoint name {name!r}; known: {sorted(PUBLISHED_CHECKPOINTS)}.")
        entry = PUBLISHED_CHECKPOINTS[name]
        network, bn_eps = entry["network"], entry["bn_eps"]
    elif network is not None:
        bn_eps = 1e-5
    else:
        raise ValueError("give the checkpoint's name (see PUBLISHED_CHECKPOINTS) or a medst network name.")
    sd = convert_video_state_dict(torch.load(src, map_location="cpu", weights_only=True))
    stem = sd[_first_conv_key(sd)]
    info = dict(network=network, in_channels=int(stem.shape[1]), num_classes=int(sd["fc.weight"].shape[0]),
                bn_eps=bn_eps, source=name or os.fspath(src))
    net = create_network(network, in_channels=info["in_channels"], out_channels=info["num_classes"],
                         **(network_kwargs or {}))
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{os.fspath(src)} does not fit medst's {network!r}: {e}") from e
    torch.save({"state_dict": sd, "medst": info}, dst)
    return info


def load_pretrained(
    net: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, Any],
    in_channels: int | None = None,
    first_conv: str = "mean",
    bn_eps: float | None = None,
) -> dict[str, list[str]]:
    """Load a converted (or torchvision / VMZ layout) video checkpoint into a medst VideoResNet-style network.

    - the first conv is adapted to the network's input channels (see :func:`adapt_input_conv`: grey from RGB by
      averaging over the input channels; more channels by repeating and rescaling);
    - a classifier (``fc.*``) whose class count differs from the network's, or that the network does not have
      (an R2Plus1DBERT backbone, ``features_only`` use), is left out: the network keeps its own initialisation;
    - every other tensor must fit exactly (a missing or mis-shaped one raises);
    - the BatchNorm eps is set to the checkpoint's (Caffe2's 1e-3 for VMZ / IG-65M) or to ``bn_eps``.

    Args:
        net: the network (a :class:`~medst.networks.nets.VideoResNet`, or an R2Plus1DBERT's ``backbone``).
        checkpoint: a file written by :func:`convert_checkpoint`, a published ``.pth``, or a state dict.
        in_channels: the network's input channels (default: read from its first conv).
        first_conv: ``"mean"`` or ``"sum"`` for fewer input channels than the checkpoint's.
        bn_eps: the BatchNorm eps to set (default: the checkpoint's, if it records one).

    Returns:
        ``{"adapted": [...], "dropped": [...]}``: the keys changed to fit and the keys left out.

    Raises:
        ValueError: when the weights do not fit the network (wrong architecture, widths or layout).
    """
    obj = checkpoint
    if not isinstance(checkpoint, Mapping):
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    info = obj.get("medst", {}) if isinstance(obj, Mapping) else {}
    sd = convert_video_state_dict(obj)
    target = net.state_dict()
    key = _first_conv_key(target)
    n = in_channels if in_channels is not None else int(target[key].shape[1])
    adapted, dropped = [], []
    if key in sd and sd[key].shape[1] != n:
        sd[key] = adapt_input_conv(sd[key], n, first_conv)
        adapted.append(key)
    for k in [k for k in sd if k.startswith("fc.")]:
        if k not in target or target[k].shape != sd[k].shape:
            dropped.append(k)
            del sd[k]
    missing = [k for k in target if k not in sd and not (k.startswith("fc.") and dropped)]
    unexpected = [k for k in sd if k not in target]
    wrong = [f"{k}: {tuple(sd[k].shape)} vs {tuple(target[k].shape)}" for k in sd if k in target
             and sd[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"the checkpoint does not fit this network: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]}), {len(wrong)} of another shape (e.g. {wrong[:3]}). Build the network "
            "the checkpoint was trained as (r2plus1d_34 uses midplanes='per_conv' for the VMZ / IG-65M weights)."
        )
    net.load_state_dict(sd, strict=False)
    eps = bn_eps if bn_eps is not None else info.get("bn_eps")
    if eps is not None:
        for mod in net.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.eps = float(eps)
    return {"adapted": adapted, "dropped": dropped}
