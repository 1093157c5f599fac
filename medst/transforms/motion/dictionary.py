"""Dictionary versions of :mod:`medst.transforms.motion.array`, one class per array transform, as in MONAI."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import ensure_tuple_rep

from .array import OpticalFlow, StackFlow

__all__ = ["OpticalFlowd", "StackFlowd", "OpticalFlowD", "OpticalFlowDict", "StackFlowD", "StackFlowDict"]


class OpticalFlowd(MapTransform):
    """Dictionary :class:`~medst.transforms.OpticalFlow`: the flow of ``keys`` written to ``flow_keys``.

    Args:
        keys: the videos (C, T, H, W).
        flow_keys: where each flow goes (one per key; default ``"<key>_flow"``).
        kwargs: :class:`~medst.transforms.OpticalFlow`'s arguments.
    """

    backend = OpticalFlow.backend

    def __init__(self, keys: KeysCollection, flow_keys: KeysCollection | None = None, allow_missing_keys: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.flow_keys = ensure_tuple_rep(flow_keys, len(self.keys)) if flow_keys is not None else tuple(
            f"{k}_flow" for k in self.keys)
        self.flow = OpticalFlow(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, flow_key in self.key_iterator(d, self.flow_keys):
            d[flow_key] = self.flow(d[key])
        return d


class StackFlowd(MapTransform):
    """Dictionary :class:`~medst.transforms.StackFlow`: each key's frames and its flow (``flow_keys``) stacked into
    ``output_keys`` (default: the key itself, so the image becomes the two-stream input).

    Args:
        keys: the videos (C, T, H, W).
        flow_keys: their flows (default ``"<key>_flow"``, as :class:`OpticalFlowd` writes them).
        num_flows: L, the flow fields per time step.
        output_keys: where the stacks go (default: ``keys``).
    """

    backend = StackFlow.backend

    def __init__(self, keys: KeysCollection, flow_keys: KeysCollection | None = None, num_flows: int = 1,
                 output_keys: KeysCollection | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        n = len(self.keys)
        self.flow_keys = ensure_tuple_rep(flow_keys, n) if flow_keys is not None else tuple(f"{k}_flow" for k in self.keys)
        self.output_keys = ensure_tuple_rep(output_keys, n) if output_keys is not None else self.keys
        self.stacker = StackFlow(num_flows)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, flow_key, out_key in self.key_iterator(d, self.flow_keys, self.output_keys):
            if flow_key not in d:
                raise KeyError(f"StackFlowd: no flow {flow_key!r} for {key!r}; compute it first with OpticalFlowd.")
            d[out_key] = self.stacker(d[key], d[flow_key])
        return d


OpticalFlowD = OpticalFlowDict = OpticalFlowd
StackFlowD = StackFlowDict = StackFlowd
