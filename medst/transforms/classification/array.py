"""Class predictions written to a CSV, one row per input (what users of classification models expect).

The CSV has the header ``file,class,index,<class name 0>,...,<class name K-1>``: the input file, the predicted class
(name and index, the argmax) and the probability of every class. A file predicted again replaces its row, so a
re-run never leaves two rows for one input; the file is rewritten atomically (temporary file, then rename) after
every input, so a run that is killed leaves the rows of the inputs it finished.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Transform
from monai.utils import ImageMetaKey, TransformBackends

from medst.data.utils import atomic_write_path

__all__ = ["SaveClassification", "read_classification_csv", "rename_rows"]


def read_classification_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a CSV written by :class:`SaveClassification`.

    Returns:
        one dict per row: ``file`` (str), ``class`` (str), ``index`` (int) and ``probabilities``
        (``{class name: float}``, in the header's order).

    Raises:
        ValueError: the file does not start with the header ``file,class,index,...``.
    """
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or header[:3] != ["file", "class", "index"]:
            raise ValueError(f"{path}: not a classification CSV (expected the header 'file,class,index,<classes>', "
                             f"got {header})")
        names = header[3:]
        return [{"file": r[0], "class": r[1], "index": int(r[2]),
                 "probabilities": {n: float(v) for n, v in zip(names, r[3:])}} for r in reader if r]


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [r for r in csv.reader(f) if r]


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    with atomic_write_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def rename_rows(path: str | os.PathLike, names: dict[str, str]) -> None:
    """Rename the ``file`` of rows of a :class:`SaveClassification` CSV (``{old: new}``), in place (atomically); a
    row already named ``new`` is replaced. Used where an input was a temporary file standing for an array."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        return
    body = {r[0]: r for r in rows[1:]}
    for old, new in names.items():
        if old in body:
            body[new] = [new, *body.pop(old)[1:]]
    _write_rows(path, [rows[0], *body.values()])


class SaveClassification(Transform):
    """Write one input's class probabilities as a row of ``output_file`` (CSV; see the module's docstring).

    Args:
        output_file: the CSV (its folder is created).
        class_names: the name of each class, in the network's output order.
        precision: decimals of the probabilities.

    ``__call__(probs, filename=None)``: ``probs`` is ``(K,)`` (or ``(1, K)``) class probabilities (they are written
    as they are: apply the softmax first); ``filename`` defaults to ``probs.meta["filename_or_obj"]``. Returns
    ``probs`` unchanged.

    Raises:
        ValueError: empty ``class_names``, ``probs`` with another number of classes, or no file name.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, output_file: str | os.PathLike, class_names: Sequence[str], precision: int = 6) -> None:
        self.class_names = [str(n) for n in class_names]
        if not self.class_names:
            raise ValueError("class_names must name at least one class, got none.")
        if {"file", "class", "index"} & set(self.class_names):
            raise ValueError(f"class_names must not be 'file', 'class' or 'index' (the CSV's own columns), got "
                             f"{self.class_names}.")
        self.output_file = Path(output_file)
        self.precision = int(precision)

    def __call__(self, probs: Any, filename: str | os.PathLike | None = None) -> Any:
        if filename is None:
            meta = getattr(probs, "meta", {}) or {}
            filename = meta.get(ImageMetaKey.FILENAME_OR_OBJ)
        if filename is None or str(filename) == "":
            raise ValueError("SaveClassification needs the input's file name: give filename= or a MetaTensor with "
                             "meta['filename_or_obj'].")
        values = probs.detach().float().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
        values = values.reshape(-1)
        if values.size != len(self.class_names):
            raise ValueError(f"probs has {values.size} classes but class_names names {len(self.class_names)}: "
                             f"{self.class_names}.")
        index = int(values.argmax())
        row = [str(filename), self.class_names[index], str(index), *(f"{v:.{self.precision}f}" for v in values)]
        rows = {}
        if self.output_file.is_file():
            old = _read_rows(self.output_file)
            if old and old[0] == self._header():
                rows = {r[0]: r for r in old[1:]}
        rows[row[0]] = row  # a file predicted again replaces its row
        _write_rows(self.output_file, [self._header(), *rows.values()])
        return probs

    def _header(self) -> list[str]:
        return ["file", "class", "index", *self.class_names]
