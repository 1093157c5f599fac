"""A registry of named network builders, in the style of timm's ``register_model`` / ``create_model``.

A builder is a one-line function that fills in a variant's defaults and still lets the caller override any of
them::

    @register_network(example_input_shape=(1, 1, 4, 16, 16), example_kwargs=dict(in_channels=1, out_channels=2))
    def convlstm_seg_small(**kwargs):
        return RecurrentSegNet(**dict(dict(spatial_dims=2, channels=(16, 32, 64), cell="lstm"), **kwargs))

    net = create_network("convlstm_seg_small", in_channels=3, out_channels=2)

A bundle config can name a network either by its dotted class path (``"_target_": "medst.networks.nets.ConvRNN"``)
or through the registry (``"$medst.networks.create_network('convlstm_seg_small', in_channels=1, out_channels=2)"``).

Every entry keeps a small example configuration (``example_kwargs`` and ``example_input_shape``) so that one test can
build, run and differentiate every registered network on a tiny input.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

__all__ = ["NetworkEntry", "register_network", "create_network", "list_networks", "get_network_entry"]


@dataclass(frozen=True)
class NetworkEntry:
    """One registered builder and its small example configuration.

    Attributes:
        name: the registered name.
        builder: ``builder(**kwargs) -> nn.Module``.
        example_kwargs: keyword arguments that build a small instance (for tests and docs).
        example_input_shape: a small input shape that instance accepts, batch first.
        example_output_shape: the output shape for that input (None: the test checks the batch size only).
        doc: the first line of the builder's docstring.
    """

    name: str
    builder: Callable[..., nn.Module]
    example_kwargs: dict[str, Any] = field(default_factory=dict)
    example_input_shape: tuple[int, ...] | None = None
    example_output_shape: tuple[int, ...] | None = None
    doc: str = ""


_REGISTRY: dict[str, NetworkEntry] = {}


def register_network(
    fn: Callable[..., nn.Module] | None = None,
    *,
    name: str | None = None,
    example_kwargs: dict[str, Any] | None = None,
    example_input_shape: tuple[int, ...] | None = None,
    example_output_shape: tuple[int, ...] | None = None,
) -> Any:
    """Register a network builder under its function name (or ``name``).

    Usable bare (``@register_network``) or with arguments
    (``@register_network(example_input_shape=(1, 1, 4, 16, 16), example_kwargs={...})``).

    Raises:
        ValueError: when the name is already registered.
    """

    def _register(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or f.__name__
        if key in _REGISTRY:
            raise ValueError(f"a network named {key!r} is already registered; choose another name.")
        doc = (f.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = NetworkEntry(
            name=key,
            builder=f,
            example_kwargs=dict(example_kwargs or {}),
            example_input_shape=tuple(example_input_shape) if example_input_shape is not None else None,
            example_output_shape=tuple(example_output_shape) if example_output_shape is not None else None,
            doc=doc[0] if doc else "",
        )
        return f

    if fn is not None:
        return _register(fn)
    return _register


def get_network_entry(name: str) -> NetworkEntry:
    """The registry entry of ``name``.

    Raises:
        KeyError: when no network has that name; the message lists the closest registered names.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.4)
        hint = f" Did you mean one of {close}?" if close else ""
        raise KeyError(f"no network named {name!r} is registered.{hint} See medst.networks.list_networks().")
    return _REGISTRY[name]


def create_network(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered network ``name``; ``kwargs`` override the variant's defaults.

    Example::

        net = create_network("unetr_small", in_channels=1, out_channels=3, img_size=(32, 64, 64))
    """
    return get_network_entry(name).builder(**kwargs)


def list_networks(filter: str = "") -> list[str]:  # noqa: A002  (timm's argument name)
    """Sorted registered names; ``filter`` is a substring or a shell pattern (``"unetr_*"``)."""
    names = sorted(_REGISTRY)
    if not filter:
        return names
    if any(c in filter for c in "*?["):
        return [n for n in names if fnmatch.fnmatch(n, filter)]
    return [n for n in names if filter in n]
