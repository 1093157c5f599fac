"""Ignite handlers that medst's bundle configs name."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import CheckpointLoader
from monai.utils import min_version, optional_import

from medst.data.utils import atomic_write_path

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
    from ignite.handlers import Checkpoint
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")
    Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
    Checkpoint, _ = optional_import("ignite.handlers", "0.4.11", min_version, "Checkpoint")

__all__ = ["ClipGradNorm", "ConfusionMatrixSaver", "ResumeCheckpoint", "atomic_torch_save"]

logger = logging.getLogger(__name__)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A run killed while saving leaves the previous file intact, never a truncated one.
    """
    with atomic_write_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


class ResumeCheckpoint:
    """Save a training run's last state every ``save_interval`` epochs, and resume from it when it exists.

    At ``Events.STARTED`` the state in ``ckpt_path`` (if the file exists) is loaded into every object of
    ``save_dict`` (model, optimiser, scheduler, the trainer itself: its epoch and iteration), so that a run that was
    killed goes on from its last completed epoch when started again with the same command. At the end of each
    ``save_interval``-th epoch, and when the run completes, the state is written atomically (temporary file, then
    rename). With ``model_path`` the model's plain ``state_dict`` (the weights a bundle ships) is written too.
    In a distributed run only rank 0 writes; every rank loads.

    Built on ignite: saving is an ignite ``Checkpoint`` (the state dicts it collects, ``DataParallel`` /
    ``DistributedDataParallel`` unwrapped), loading MONAI's ``CheckpointLoader`` (``Checkpoint.load_objects``). The
    file is written by :func:`atomic_torch_save`, not by ignite's ``DiskSaver(atomic=True)``: under a fixed file
    name ``Checkpoint`` asks a ``DiskSaver`` to remove the previous file before it writes the new one (a kill in
    between leaves no checkpoint), and ``DiskSaver``'s temporaries (``tmp*``) are not named for medst's sweep of a
    killed run's leftovers. A ``save_dict`` of one object is saved as that object's bare ``state_dict`` (ignite's
    rule), which ``CheckpointLoader`` loads back.

    Example (a bundle's ``train.json``; a top-level item attached in ``run``, because a handler inside
    ``train#handlers`` that names ``@train#trainer`` would be a circular reference for the config parser)::

        "resume": {"_target_": "medst.bundle.ResumeCheckpoint", "ckpt_path": "$@ckpt_dir + '/last.pt'",
                   "save_dict": {"model": "@network", "optimizer": "@optimizer", "lr_scheduler": "@lr_scheduler",
                                 "trainer": "@train#trainer"},
                   "model_path": "$@ckpt_dir + '/model.pt'"},
        "run": ["$@resume.attach(@train#trainer)", "$@train#trainer.run()"]

    Args:
        ckpt_path: file of the last state.
        save_dict: name -> object with ``state_dict()`` / ``load_state_dict()``; an ignite ``Engine`` is allowed.
        save_interval: save every this many epochs.
        model_path: also save ``save_dict[model_key]``'s plain state_dict here.
        model_key: the key of the model in ``save_dict``.
        map_location: where to load tensors; defaults to the CPU.
    """

    def __init__(
        self,
        ckpt_path: str | os.PathLike,
        save_dict: Mapping[str, Any],
        save_interval: int = 1,
        model_path: str | os.PathLike | None = None,
        model_key: str = "model",
        map_location: Any = "cpu",
    ) -> None:
        if not save_dict:
            raise ValueError("save_dict must name at least one object to save, e.g. {'model': network}.")
        if save_interval < 1:
            raise ValueError(f"save_interval must be a positive number of epochs, got {save_interval}.")
        if model_path is not None and model_key not in save_dict:
            raise ValueError(f"model_path needs save_dict[{model_key!r}]; save_dict has {sorted(save_dict)}.")
        self.ckpt_path = Path(ckpt_path)
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.model_path = None if model_path is None else Path(model_path)
        self.model_key = model_key
        self.map_location = map_location
        self.resumed_from_epoch: int | None = None
        self._checkpoints = [self._checkpoint(self.save_dict, self.ckpt_path)]
        if self.model_path is not None:
            self._checkpoints.append(self._checkpoint({model_key: self.save_dict[model_key]}, self.model_path))

    @staticmethod
    def _checkpoint(to_save: dict[str, Any], path: Path) -> Checkpoint:
        """An ignite ``Checkpoint`` of ``to_save`` that always writes ``path`` (atomically, rank 0 only)."""

        def save(checkpoint: Mapping, filename: str) -> None:  # a plain callable: Checkpoint never removes a file
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
                return
            atomic_torch_save(checkpoint, path.parent / filename)

        pattern = path.name.replace("{", "{{").replace("}", "}}")  # a literal name for str.format
        return Checkpoint(to_save, save, filename_pattern=pattern, n_saved=None)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)

    def load(self, engine: Engine) -> None:
        if not self.ckpt_path.is_file():
            logger.info("no checkpoint at %s: training starts from scratch", self.ckpt_path)
            return
        loader = CheckpointLoader(
            load_path=str(self.ckpt_path), load_dict=self.save_dict, map_location=self.map_location
        )
        loader(engine)  # weights_only=True inside; restores epoch/iteration of any Engine in save_dict
        self.resumed_from_epoch = int(engine.state.epoch)
        logger.info("resumed from %s at epoch %d", self.ckpt_path, engine.state.epoch)

    def save(self, engine: Engine) -> None:
        for checkpoint in self._checkpoints:
            checkpoint(engine)
        logger.debug("saved the state of epoch %d to %s", engine.state.epoch, self.ckpt_path)


class ClipGradNorm:
    """Clip the gradient norm of a trainer's network after every backward pass, before the optimiser steps.

    MONAI's ``SupervisedTrainer`` has no gradient clipping; this attaches to its
    ``IterationEvents.BACKWARD_COMPLETED`` and calls ``torch.nn.utils.clip_grad_norm_`` on the trainer's network
    (or on ``parameters`` when given). With ``amp=True`` and a gradient scaler, the gradients are unscaled first (as
    the PyTorch AMP recipe does), so ``max_norm`` is in the true gradients' units. With gradient accumulation, the
    gradient summed so far is clipped after each backward pass.

    Example (a ``train#handlers`` entry)::

        {"_target_": "medst.bundle.ClipGradNorm", "max_norm": 1.0}
    """

    def __init__(self, max_norm: float, norm_type: float = 2.0, parameters: Any = None) -> None:
        if max_norm <= 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}.")
        self.max_norm = float(max_norm)
        self.norm_type = float(norm_type)
        self.parameters = None if parameters is None else list(parameters)  # a generator would run dry
        self.last_norm: torch.Tensor | None = None  # the total norm before clipping, at the latest iteration

    def attach(self, engine: Engine) -> None:
        from monai.engines.utils import IterationEvents

        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        params = self.parameters if self.parameters is not None else engine.network.parameters()
        params = [p for p in params if p.grad is not None]
        if not params:
            return
        scaler = getattr(engine, "scaler", None)
        if getattr(engine, "amp", False) and scaler is not None:
            scaler.unscale_(engine.optimizer)
        self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm, norm_type=self.norm_type).detach()


class ConfusionMatrixSaver:
    """Count an evaluator's predictions in a K x K confusion matrix over each epoch and save it, at the epoch's end,
    as ``<prefix>confusion_matrix.csv`` (rows: the true class, columns: the predicted class, header and first
    column the class names) and ``<prefix>confusion_matrix.png`` (a picture with the counts), in ``save_dir``.

    The predicted class is the argmax of each input's scores (probabilities or logits, ``(K,)``); the true class is
    an index (a 0-d or one-element label) or a one-hot ``(K,)`` vector. Only rank 0 writes in a distributed run.

    Args:
        save_dir: the folder (created).
        class_names: the classes, in the network's output order.
        output_transform: engine output -> ``(preds, labels)``, lists of per-input tensors (default
            ``from_engine(["pred", "label"])``, after MONAI's decollation).
        prefix: file name prefix.

    Example (a ``validate#handlers`` entry)::

        {"_target_": "medst.bundle.ConfusionMatrixSaver", "save_dir": "@output_dir", "class_names": "@class_names"}
    """

    def __init__(self, save_dir: str | os.PathLike, class_names: Any, output_transform: Any = None,
                 prefix: str = "") -> None:
        from monai.handlers import from_engine

        self.class_names = [str(n) for n in class_names]
        if len(self.class_names) < 2:
            raise ValueError(f"class_names must name at least 2 classes, got {self.class_names}.")
        self.save_dir = Path(save_dir)
        self.output_transform = output_transform if output_transform is not None else from_engine(["pred", "label"])
        self.prefix = prefix
        k = len(self.class_names)
        self.matrix = torch.zeros(k, k, dtype=torch.int64)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def reset(self, engine: Engine | None = None) -> None:  # noqa: ARG002
        self.matrix.zero_()

    def _true_class(self, label: Any) -> int:
        label = torch.as_tensor(label).detach().cpu().reshape(-1)
        k = len(self.class_names)
        if label.numel() == 1:
            index = int(label.item())
        elif label.numel() == k:
            index = int(label.argmax())
        else:
            raise ValueError(f"a label must be a class index or one-hot over {k} classes, got {label.numel()} values.")
        if not 0 <= index < k:
            raise ValueError(f"label {index} is not a class index in [0, {k}).")
        return index

    def update(self, engine: Engine) -> None:
        preds, labels = self.output_transform(engine.state.output)
        if isinstance(preds, torch.Tensor) and preds.ndim == 2:  # not decollated: (B, K) and (B,)
            preds, labels = list(preds), list(labels)
        for pred, label in zip(preds, labels):
            scores = torch.as_tensor(pred).detach().cpu().reshape(-1)
            if scores.numel() != len(self.class_names):
                raise ValueError(f"a prediction has {scores.numel()} scores for {len(self.class_names)} classes.")
            self.matrix[self._true_class(label), int(scores.argmax())] += 1

    def save(self, engine: Engine | None = None) -> list[Path]:  # noqa: ARG002
        """Write the CSV and the PNG; returns their paths (none on a rank other than 0)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_rank() > 0:
            return []
        self.save_dir.mkdir(parents=True, exist_ok=True)
        csv_path = self.save_dir / f"{self.prefix}confusion_matrix.csv"
        png_path = self.save_dir / f"{self.prefix}confusion_matrix.png"
        counts = self.matrix.numpy()
        with atomic_write_path(csv_path) as tmp:
            lines = [",".join(["true\\predicted", *self.class_names])]
            lines += [",".join([name, *map(str, row)]) for name, row in zip(self.class_names, counts)]
            Path(tmp).write_text("\n".join(lines) + "\n")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        k = len(self.class_names)
        fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 1.0 + 0.55 * k), dpi=100)
        ax.imshow(counts, cmap="Blues")
        ax.set_xticks(range(k), self.class_names, rotation=45, ha="right")
        ax.set_yticks(range(k), self.class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        top = counts.max() if counts.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                        color="white" if counts[i, j] > top / 2 else "black", fontsize=8)
        fig.tight_layout()
        with atomic_write_path(png_path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        logger.info("confusion matrix (accuracy %.4f) saved to %s", self.accuracy, csv_path)
        return [csv_path, png_path]

    @property
    def accuracy(self) -> float:
        """Correct / all inputs counted so far (NaN before any)."""
        total = int(self.matrix.sum())
        return float(self.matrix.diagonal().sum()) / total if total else float("nan")
