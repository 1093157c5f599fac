"""medst.networks: recurrent, dilated, transformer and video networks, and a registry of named builders.

``create_network(name, **kwargs)`` builds a registered network; ``list_networks()`` lists the names;
``load_pretrained(net, path)`` loads a published video backbone converted by ``scripts/convert_video_weights.py``.
"""

from __future__ import annotations

from . import blocks, nets
from .inference import (
    PRECISIONS,
    AutocastInference,
    autocast_dtype,
    cpu_has_native_bf16,
    optimize_for_inference,
    resolve_precision,
)
from .pretrained import (
    PUBLISHED_CHECKPOINTS,
    adapt_input_conv,
    convert_checkpoint,
    convert_video_state_dict,
    load_pretrained,
)
from .registry import NetworkEntry, create_network, get_network_entry, list_networks, register_network

__all__ = [
    "blocks",
    "nets",
    "NetworkEntry",
    "create_network",
    "get_network_entry",
    "list_networks",
    "register_network",
    "optimize_for_inference",
    "resolve_precision",
    "autocast_dtype",
    "PRECISIONS",
    "cpu_has_native_bf16",
    "AutocastInference",
    "PUBLISHED_CHECKPOINTS",
    "adapt_input_conv",
    "convert_checkpoint",
    "convert_video_state_dict",
    "load_pretrained",
]
