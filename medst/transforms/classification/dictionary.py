"""Dictionary version of :mod:`medst.transforms.classification.array`."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import ImageMetaKey

from .array import SaveClassification

__all__ = ["SaveClassificationd"]


class SaveClassificationd(MapTransform):
    """Dictionary :class:`~medst.transforms.SaveClassification`: a row per input for ``keys`` (the probabilities,
    usually ``"pred"``), named after ``data[source_key].meta["filename_or_obj"]`` (the input image).

    Bundle config (postprocessing, after the probabilities are computed)::

        {"_target_": "medst.transforms.SaveClassificationd", "keys": "pred",
         "output_file": "$@output_dir + '/predictions.csv'", "class_names": "@class_names"}
    """

    backend = SaveClassification.backend

    def __init__(self, keys: KeysCollection, output_file: str | os.PathLike, class_names: Sequence[str],
                 source_key: str = "image", precision: int = 6, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.saver = SaveClassification(output_file, class_names, precision)
        self.source_key = source_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = d.get(self.source_key)
        meta = getattr(source, "meta", None) or {}
        for key in self.key_iterator(d):
            name = meta.get(ImageMetaKey.FILENAME_OR_OBJ) or (getattr(d[key], "meta", None) or {}).get(
                ImageMetaKey.FILENAME_OR_OBJ)
            d[key] = self.saver(d[key], filename=name)
        return d
