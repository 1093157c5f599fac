"""Plain-Python entry points for research scripts: load a MONAI bundle, run its inference workflow, get the results.

Three lines from import to a saved segmentation::

    import medst
    seg = medst.load_bundle("bundles/brain_extraction_unetr")
    labels = seg.predict("scan.nii.gz", output_dir="out/")

A bundle is any folder in the MONAI model-zoo layout: ``configs/inference.json`` (or ``.yaml``),
``configs/metadata.json`` and ``models/model.pt``. :meth:`Bundle.predict` runs the bundle's own inference workflow,
``monai.bundle.ConfigWorkflow(workflow_type="inference")``, the one ``python -m monai.bundle run`` runs, so the
outputs are the same file for file; medst changes nothing inside the config. It sets these top-level ids, which a
bundle's ``configs/inference.json`` provides (a missing one is an error naming it when its setting is asked for):

- ``datalist``: the input files (the bundle's ``dataset`` reads ``@datalist``); ``output_dir``; ``bundle_root``;
  ``device``;
- ``precision``, ``roi_size``, ``overlap``, ``sw_batch_size`` (its ``inferer`` refers to them), ``num_workers``
  (its ``dataloader``) and ``ckpt_path`` (its ``CheckpointLoader``), when asked for.

A classification bundle (its metadata's output ``pred`` has the format ``"classification"``) writes a CSV, a row
per input (the class and every class's probability); :meth:`Bundle.predict` then returns a :class:`ClassPrediction`
per input, and reads a finished input's row back from that CSV.

What medst adds is what a bundle cannot know: arrays become temporary files in the format the bundle reads
(NIfTI, a lossless video, ``.npy``: see :meth:`Bundle.predict`); a folder becomes a sorted list of its files
(without hidden files and without what a medst run wrote there); an input the bundle cannot take (a 2D image for a
3D bundle, a NIfTI for a video bundle) is refused with what the bundle expects (from ``configs/metadata.json``'s
``network_data_format``); finished inputs are skipped (see :mod:`medst.bundle.runner`); the predictions are
returned. Weights are checked with ``torch.load(..., weights_only=True)`` before the run (tensors only; an empty or
truncated file is named), as MONAI's ``CheckpointLoader`` then loads them.

Importing this module is cheap: torch and MONAI are imported when a bundle is loaded.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Bundle",
    "ClassPrediction",
    "PredictError",
    "load_bundle",
    "load_weights",
    "widen_input_channels",
    "bundle_info",
    "find_bundles",
    "default_bundles_dir",
]

logger = logging.getLogger(__name__)

#: file suffixes of scans and arrays that MONAI's ``LoadImage`` reads (nibabel, ITK, pydicom, numpy).
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm", ".dicom", ".npy", ".npz"
)
#: file suffixes of videos read by ``medst.data.VideoReader``.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")
#: what a folder input is searched for.
SUPPORTED_SUFFIXES: tuple[str, ...] = IMAGE_SUFFIXES + VIDEO_SUFFIXES

_CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _suffix(path: str | os.PathLike) -> str:
    """Lower-case suffix, ``.nii.gz`` counted as one."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def default_bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (next to the ``medst`` package), else ``./bundles``."""
    repo_bundles = Path(__file__).resolve().parents[1] / "bundles"
    return repo_bundles if repo_bundles.is_dir() else Path.cwd() / "bundles"


def find_bundles(root: str | os.PathLike | None = None) -> list[Path]:
    """Bundle folders directly under ``root`` (default :func:`default_bundles_dir`), sorted by name.

    A folder counts as a bundle when it has ``configs/metadata.json`` or ``configs/inference.{json,yaml}``.
    """
    root = Path(root).expanduser() if root is not None else default_bundles_dir()
    if not root.is_dir():
        return []
    found = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        configs = d / "configs"
        if (configs / "metadata.json").is_file() or any((configs / n).is_file() for n in _CONFIG_NAMES):
            found.append(d)
    return found


def _bundle_dir(path: str | os.PathLike) -> Path:
    """The bundle folder: ``path`` itself, or ``bundles/<path>`` of the repository for a bare name."""
    bundle_dir = Path(path).expanduser()
    if bundle_dir.is_dir():
        return bundle_dir
    if not bundle_dir.is_absolute() and (default_bundles_dir() / bundle_dir).is_dir():
        return default_bundles_dir() / bundle_dir
    names = [p.name for p in find_bundles()]
    hint = f"; bundles in {default_bundles_dir()}: {', '.join(names)}" if names else ""
    raise FileNotFoundError(f"bundle folder {str(path)!r} does not exist{hint}")


def _read_metadata(bundle_dir: Path) -> dict:
    meta_file = bundle_dir / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file} is missing: a bundle needs configs/metadata.json (model-zoo layout)")
    with open(meta_file) as f:
        return json.load(f)


def bundle_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a bundle's ``configs/metadata.json``, without loading its network.

    Returns:
        a dict with ``name``, ``version``, ``task``, ``description``, ``authors``, ``inputs`` and ``outputs`` (from
        ``network_data_format``), ``performance`` (the metadata's ``eval_metrics``, ``performance`` and
        ``measured_performance``, where listed), ``path`` and ``weights`` (``models/model.pt``, or ``None``).
    """
    bundle_dir = _bundle_dir(path)
    meta = _read_metadata(bundle_dir)
    fmt = meta.get("network_data_format", {})
    perf = {k: meta[k] for k in ("eval_metrics", "performance", "measured_performance") if k in meta}
    weights = bundle_dir / "models" / "model.pt"
    return {
        "name": meta.get("name", bundle_dir.name),
        "version": meta.get("version"),
        "task": meta.get("task"),
        "description": meta.get("description"),
        "authors": meta.get("authors"),
        "inputs": fmt.get("inputs", {}),
        "outputs": fmt.get("outputs", {}),
        "performance": perf,
        "path": str(bundle_dir),
        "weights": str(weights) if weights.is_file() else None,
    }


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict with ``torch.load(path, weights_only=True)``; never unpickles arbitrary objects.

    Accepts a plain ``state_dict``, ``{"model": state_dict}`` (MONAI's ``CheckpointSaver``) and
    ``{"state_dict": state_dict}``; a ``module.`` prefix left by DistributedDataParallel is removed.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file holds something other than tensors (a pickled class, a whole model), or no state dict.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist (a bundle keeps it in models/model.pt)")
    if path.stat().st_size == 0:
        raise ValueError(f"weights file {path} is empty (0 bytes): a copy or download that did not finish?")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError) as e:
        raise ValueError(f"weights file {path} is truncated or not a PyTorch file ({type(e).__name__}: {e})") from e
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} holds Python objects other than tensors; medst loads weights with torch.load(weights_only=True) "
            f"and refuses to unpickle them. Save the weights with torch.save(model.state_dict(), path). ({first})"
        ) from e
    if isinstance(ckpt, Mapping):
        for key in ("model", "state_dict"):
            if key in ckpt and isinstance(ckpt[key], Mapping):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, Mapping) or not ckpt or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(
            f"{path} is not a state dict of tensors (got {type(ckpt).__name__}); expected "
            "torch.save(model.state_dict(), path) or {'model': state_dict}"
        )
    state = dict(ckpt)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def widen_input_channels(state: Mapping[str, Any], network: Any) -> dict[str, Any]:
    """Fit ``state`` (weights of a network with fewer input channels) to ``network``, to fine-tune with new inputs.

    Each weight whose shape differs from ``network``'s only by more channels on axis 1 (the input convolutions)
    keeps its trained channels and gets zeros for the new ones (:func:`medst.networks.adapt_input_conv` with
    ``extra="zeros"``), so the widened network computes what the trained one did, whatever the new channels hold,
    until training changes those weights. Other tensors must match.

    Raises:
        ValueError: a tensor differs in another way, or keys are missing or unexpected.
    """
    from medst.networks.pretrained import adapt_input_conv

    own = network.state_dict()
    if missing := sorted(set(own) - set(state)) + sorted(set(state) - set(own)):
        raise ValueError(f"widen_input_channels: keys do not match the network: {missing[:5]}")
    out = {}
    for key, value in state.items():
        target = own[key]
        if value.shape == target.shape:
            out[key] = value
            continue
        same_but_1 = value.ndim == target.ndim >= 2 and all(
            a == b for i, (a, b) in enumerate(zip(value.shape, target.shape)) if i != 1
        )
        if not same_but_1 or value.shape[1] > target.shape[1]:
            raise ValueError(
                f"widen_input_channels: {key} is {tuple(value.shape)}, the network's is {tuple(target.shape)}; only "
                "more input channels (axis 1) can be added"
            )
        out[key] = adapt_input_conv(value, int(target.shape[1]), extra="zeros")
    return out


def _is_array(x: Any) -> bool:
    import numpy as np

    if isinstance(x, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _one_or_list(paths: list[Path]) -> Path | list[Path] | None:
    if not paths:
        return None
    return paths[0] if len(paths) == 1 else list(paths)


def _stem(name: str) -> str:
    """A file name without its suffix (``.nii.gz`` counted as one), as SaveImage names outputs after it."""
    suffix = _suffix(name)
    return name[: -len(suffix)] if suffix and name.lower().endswith(suffix) else name


@dataclass
class ClassPrediction:
    """What a classification bundle predicts for one input (:meth:`Bundle.predict`).

    Attributes:
        input: the input file (or the name of an array input).
        index: the predicted class's index (the argmax of ``probabilities``).
        name: the predicted class's name (``network_data_format`` of the bundle's metadata).
        probabilities: every class's probability, ``{name: probability}``, in the network's order.
        csv: the CSV the bundle wrote the input's row to (``None`` when there was no ``output_dir``).
    """

    input: str
    index: int
    name: str
    probabilities: dict[str, float] = field(default_factory=dict)
    csv: str | None = None

    @property
    def probability(self) -> float:
        """The probability of the predicted class."""
        return self.probabilities[self.name]


class PredictError(RuntimeError):
    """The bundle's workflow failed; the message names the bundle and the input, the chained cause says why.

    Attributes:
        input: the input (path or array name) that was being loaded or predicted, or ``None`` when the failure
            came before any input (building the network, loading the weights).
    """

    def __init__(self, message: str, input: str | None = None) -> None:  # noqa: A002
        super().__init__(message)
        self.input = input


def _all_ids(config: Any, prefix: str = "", depth: int = 3) -> list[str]:
    """Config ids (``a``, ``a#b``, ``a#0#c``) down to ``depth`` levels, for close-match suggestions."""
    ids: list[str] = []
    if depth == 0:
        return ids
    children = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else ()
    for k, v in children:
        cid = f"{prefix}#{k}" if prefix else str(k)
        ids.append(cid)
        ids.extend(_all_ids(v, cid, depth - 1))
    return ids


class _Item:
    """One input: its manifest ``key``, the ``file`` the bundle reads, the ``source`` file (``None`` for an array)."""

    def __init__(self, key: str, file: str | None, source: Path | None, name: str, array: Any = None) -> None:
        self.key, self.file, self.source, self.name, self.array = key, file, source, name, array


#: config ids that medst sets from its own arguments.
_OWN_KEYS = ("bundle_root", "device", "output_dir", "datalist", "precision", "roi_size", "overlap", "sw_batch_size",
             "num_workers", "ckpt_path")


class Bundle:
    """A MONAI bundle ready to predict, run through its own inference workflow (``monai.bundle.ConfigWorkflow``).

    Every prediction runs the bundle's ``configs/inference.json`` exactly as ``python -m monai.bundle run`` would,
    with the inputs, the output folder and the settings given here as overrides of its top-level ids:
    ``datalist``, ``output_dir``, ``device``, ``precision``, ``roi_size``, ``overlap``, ``sw_batch_size``,
    ``num_workers`` and ``ckpt_path``. A bundle whose config has no such id cannot take that setting (the error
    says so). medst only turns paths, folders and arrays into the ``datalist``, skips finished inputs, and returns
    the results.

    Args:
        path: bundle folder (model-zoo layout), or the name of a folder in the repository's ``bundles/``.
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; default CUDA when available, else the CPU.
        config_file: inference config; default ``configs/inference.json`` (or ``.yaml``/``.yml``).
        weights: weights file, overriding the config's ``ckpt_path`` (default ``models/model.pt``).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``, the config's ``precision``. ``"fp16"`` on a
            CPU is refused (float16 has no fast CPU kernels: tens of times slower than float32; use ``"bf16"``).
        roi_size: the config's ``roi_size`` (an int: the same on each of its axes). A network with a fixed input
            size (UNETR's ``img_size``) only takes the size it was built for.
        overlap: the config's ``overlap``.
        sw_batch_size: the config's ``sw_batch_size``.
        config_overrides: other config ids, ``{"overlay": False, "inferer#mode": "constant"}`` (``#`` separates
            nested keys, as in ``python -m monai.bundle run --key value``); an id that the config lacks is an error
            that lists the close matches.
        logging_file: the workflow's ``logging_file``: ``False`` (default) leaves the process's logging alone;
            ``None`` applies the bundle's ``configs/logging.conf``.

    Raises:
        FileNotFoundError: the folder, its config, metadata or weights are missing.
        ValueError: an unknown precision, fp16 on a CPU, CUDA asked but absent, a setting or override id that the
            config lacks, or weights that are empty or not a plain state dict.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        config_file: str | os.PathLike | None = None,
        weights: str | os.PathLike | None = None,
        precision: str | None = None,
        roi_size: Sequence[int] | int | None = None,
        overlap: float | None = None,
        sw_batch_size: int | None = None,
        config_overrides: Mapping[str, Any] | None = None,
        logging_file: str | bool | None = False,
    ) -> None:
        import torch
        from monai.bundle import ConfigParser

        import medst  # noqa: F401  (registers medst's readers and writers with MONAI before any config is parsed)

        self.path = _bundle_dir(path)
        self.config_file = self._find_config(config_file)
        self.meta_file = self.path / "configs" / "metadata.json"
        self.metadata = _read_metadata(self.path)
        self.logging_file = logging_file
        self._config = ConfigParser()
        self._config.read_config(str(self.config_file))

        if precision is not None and precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
        if overlap is not None and not 0.0 <= float(overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False; use device='cpu'")
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError(
                "precision 'fp16' on the CPU: float16 has no fast CPU kernels and runs tens of times slower than "
                "float32; use precision='bf16' (or 'fp32', or 'auto', which picks the fastest accurate type)"
            )
        self.precision = precision

        overrides: dict[str, Any] = {"bundle_root": str(self.path), "device": f"$torch.device({str(self.device)!r})"}
        settings = {"precision": precision, "roi_size": roi_size, "overlap": overlap, "sw_batch_size": sw_batch_size}
        for key, value in settings.items():
            if value is None:
                continue
            if key not in self._config.config:
                raise ValueError(
                    f"{self.config_file} has no top-level {key!r}: bundle {self.path.name} does not take that setting "
                    f"(a bundle exposes it as \"{key}\": ... and refers to it as \"@{key}\" in its inferer)"
                )
            if key == "roi_size":
                own = self._config.config.get("roi_size")
                value = [int(value)] * len(own) if isinstance(value, int) and isinstance(own, list) else value
                value = [int(v) for v in value] if isinstance(value, (list, tuple)) else int(value)
            overrides[key] = value
        if overlap is not None:
            overrides["overlap"] = float(overlap)
        if sw_batch_size is not None:
            overrides["sw_batch_size"] = int(sw_batch_size)

        self.config_overrides = dict(config_overrides or {})
        fixed = sorted(set(_OWN_KEYS) & set(self.config_overrides))
        if fixed:
            raise ValueError(
                f"set {fixed} through load_bundle's and predict's arguments (inputs, output_dir, device, precision, "
                "roi_size, overlap, sw_batch_size, num_workers, weights), not config_overrides"
            )
        for key in self.config_overrides:
            self._check_id(key)
        overrides.update(self.config_overrides)

        if weights is not None:
            if "ckpt_path" not in self._config.config:
                raise ValueError(
                    f"{self.config_file} has no top-level 'ckpt_path': bundle {self.path.name} cannot load other "
                    "weights"
                )
            self.weights_file = Path(weights).expanduser().resolve()
            overrides["ckpt_path"] = str(self.weights_file)
        elif "ckpt_path" in self._config.config:
            probe = ConfigParser(copy.deepcopy(self._config.config))
            probe["bundle_root"] = str(self.path)
            self.weights_file = Path(probe.get_parsed_content("ckpt_path"))
        else:
            self.weights_file = self.path / "models" / "model.pt"
        if not self.weights_file.is_file():
            raise FileNotFoundError(
                f"weights {str(self.weights_file)!r} are missing: a bundle keeps them in models/model.pt "
                "(train the bundle or download its weights first)"
            )
        load_weights(self.weights_file)  # a clear error now for an empty, truncated or pickled file
        self._overrides = overrides
        #: failures of the last :meth:`predict` with ``on_error="skip"``: input name -> the error chain, one line
        self.last_errors: dict[str, str] = {}
        #: inputs that the last :meth:`predict` skipped (finished before) and predicted
        self.last_skipped: list[str] = []
        self.last_predicted: list[str] = []
        logger.info("bundle %s (%s) on %s", self.name, self.path, self.device)

    # ------------------------------------------------------------------ bundle files and config
    def _find_config(self, config_file: str | os.PathLike | None) -> Path:
        if config_file is not None:
            cfg = Path(config_file).expanduser()
            if not cfg.is_absolute() and not cfg.is_file():
                cfg = self.path / cfg
            if not cfg.is_file():
                raise FileNotFoundError(f"config file {str(config_file)!r} does not exist")
            return cfg
        for name in _CONFIG_NAMES:
            if (self.path / "configs" / name).is_file():
                return self.path / "configs" / name
        raise FileNotFoundError(f"{self.path / 'configs'} has no inference.json (or inference.yaml): not a bundle")

    def _check_id(self, key: str) -> None:
        """Raise ``KeyError`` listing close matches when the config has no id ``key``."""
        try:
            self._config[key]
            return
        except (KeyError, IndexError, ValueError, TypeError):
            pass
        ids = _all_ids(self._config.config)
        close = difflib.get_close_matches(key, ids, n=5, cutoff=0.6)
        top = ", ".join(self._config.config)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; its top-level ids: {top}"
        raise KeyError(f"{self.config_file} has no id {key!r} to override{hint}")

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.path.name))

    @property
    def _input_spec(self) -> dict:
        return self.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {}) or {}

    @property
    def spatial_ndim(self) -> int | None:
        """Number of axes after the channel of the network's input (``network_data_format``), if listed."""
        shape = self._input_spec.get("spatial_shape")
        return len(shape) if isinstance(shape, (list, tuple)) and shape else None

    @property
    def _output_spec(self) -> dict:
        return self.metadata.get("network_data_format", {}).get("outputs", {}).get("pred", {}) or {}

    @property
    def is_classifier(self) -> bool:
        """Whether the bundle classifies whole inputs: its metadata's output ``pred`` has the format
        ``"classification"`` (or the model zoo's ``"classes"``) or the type ``"probabilities"``."""
        spec = self._output_spec
        return spec.get("format") in ("classification", "classes") or spec.get("type") == "probabilities"

    @property
    def class_names(self) -> list[str]:
        """The classes of a classification bundle, in the network's order (the output's ``channel_def``; their
        indices when it lists none)."""
        spec = self._output_spec
        names = spec.get("channel_def") or {}
        if names:
            return [str(names[k]) for k in sorted(names, key=int)]
        return [str(i) for i in range(int(spec.get("num_channels", 0) or 0))]

    def _classification(self, pred: Any, name: str, csv: Path | None) -> ClassPrediction:
        """A classifier's ``pred`` (the class probabilities, ``(K,)``) as a :class:`ClassPrediction`."""
        import torch

        probs = torch.as_tensor(pred).detach().float().cpu().reshape(-1).tolist()
        names = self.class_names
        if len(names) != len(probs):
            raise PredictError(f"bundle {self.path.name}: {len(probs)} class scores for {name}, but its metadata names "
                               f"{len(names)} classes ({names})", input=name)
        index = max(range(len(probs)), key=probs.__getitem__)
        return ClassPrediction(input=name, index=index, name=names[index],
                               probabilities=dict(zip(names, probs)), csv=str(csv) if csv is not None else None)

    def _read_back_row(self, saved: list[Path], item: _Item) -> ClassPrediction:
        """A skipped input's row of the classification CSV it was recorded with."""
        from .transforms.classification import read_classification_csv

        table = next((p for p in saved if _suffix(p) == ".csv"), None)
        rows = read_classification_csv(table) if table is not None and table.is_file() else []
        for row in rows:
            if row["file"] in (item.file, item.name, item.key):
                return ClassPrediction(input=item.name, index=row["index"], name=row["class"],
                                       probabilities=row["probabilities"], csv=str(table))
        raise PredictError(f"{item.name}: recorded as finished but {table} has no row for it; predict it again with "
                           "overwrite=True", input=item.name)

    @property
    def _frames_in_channels(self) -> bool:
        """A 4D-scan bundle whose preprocessing moves the loaded channel axis to time (``ChannelToTimed``), or that
        reads a 4D NIfTI chunk by chunk (``medst.data.ChunkDataset``, frames on the file's last axis)."""
        config = self._config.config
        if "ChannelToTime" in json.dumps(config.get("preprocessing", "")):
            return True
        return "ChunkDataset" in json.dumps(config.get("dataset", "")) and self.input_kind == "image"

    @property
    def input_kind(self) -> str:
        """What the bundle reads: ``"numpy"`` (its LoadImaged names NumpyReader), ``"video"`` (VideoReader, or the
        metadata's input type), else ``"image"`` (NIfTI and what MONAI's readers read)."""
        pre = json.dumps(self._config.config.get("preprocessing", ""))
        if "NumpyReader" in pre:
            return "numpy"
        if "VideoReader" in pre or self._input_spec.get("type") == "video":
            return "video"
        return "image"

    def info(self) -> dict[str, Any]:
        """:func:`bundle_info` of this bundle."""
        return bundle_info(self.path)

    # ------------------------------------------------------------------ inputs -> datalist
    def _expects(self) -> str:
        spec = self._input_spec
        shape = spec.get("spatial_shape")
        axes = f"{len(shape)} axes after the channel, spatial_shape {shape}" if shape else "any shape"
        what = {"numpy": "a .npy array", "video": f"a video ({' '.join(VIDEO_SUFFIXES)})",
                "image": "a scan (NIfTI or what MONAI's readers read)"}[self.input_kind]
        return f"bundle {self.path.name} expects {what} with {spec.get('num_channels', '?')} channel(s) and {axes}"

    def _check_file(self, p: Path) -> None:
        """Refuse a file the bundle cannot take (from its suffix and, for NIfTI, its header), saying what it takes."""
        suffix = _suffix(p)
        kind = self.input_kind
        ok = {"numpy": suffix in (".npy", ".npz"), "video": suffix in VIDEO_SUFFIXES or suffix in (".dcm", ".dicom"),
              "image": suffix not in VIDEO_SUFFIXES}[kind]
        if not ok:
            raise ValueError(f"{p}: a {suffix or 'suffix-less'} file; {self._expects()}")
        n = self.spatial_ndim
        if kind != "image" or n is None or suffix not in (".nii", ".nii.gz"):
            return
        try:
            import nibabel as nib

            shape = tuple(nib.load(str(p)).shape)
        except Exception:  # noqa: BLE001  (unreadable: the bundle's reader says why)
            return
        dims = list(shape)
        while len(dims) > n and dims[-1] == 1:
            dims.pop()
        channels = int(self._input_spec.get("num_channels", 1) or 1)
        if len(dims) == n or (not self._frames_in_channels and len(dims) == n + 1 and dims[-1] == channels > 1):
            return
        raise ValueError(f"{p}: a {len(shape)}D image of shape {shape}; {self._expects()}")

    def _collect(self, inputs: Any, channel_first: bool | None, out: Path | None) -> tuple[list[_Item], bool]:
        if isinstance(inputs, (str, os.PathLike)):
            p = Path(inputs).expanduser()
            if not p.exists():
                raise FileNotFoundError(f"input {str(inputs)!r} does not exist")
            if p.is_dir():
                return self._folder(p, out), True
            return [self._path_item(p)], False
        if _is_array(inputs):
            return [self._array_item(inputs, 0, channel_first)], False
        if isinstance(inputs, Sequence) and not isinstance(inputs, (bytes, bytearray)):
            items: list[_Item] = []
            for x in inputs:
                if _is_array(x):
                    items.append(self._array_item(x, len(items), channel_first))
                elif isinstance(x, (str, os.PathLike)):
                    items.extend(self._collect(x, channel_first, out)[0])
                else:
                    raise TypeError(f"unsupported input of type {type(x).__name__} in the list; {_INPUT_HELP}")
            if not items:
                raise ValueError("no inputs given (an empty list)")
            return items, True
        raise TypeError(f"unsupported input of type {type(inputs).__name__}; {_INPUT_HELP}")

    def _folder(self, p: Path, out: Path | None) -> list[_Item]:
        """The supported files of a folder, sorted, without hidden files (medst's and the writers' temporaries) and
        without what a medst run recorded as its outputs (so that input folder = output folder works)."""
        from .bundle.runner import OutputManifest

        outputs: set[Path] = set()
        for folder in {p, out} - {None}:
            outputs |= OutputManifest(folder).all_outputs()
        files = sorted(
            f for f in p.iterdir()
            if f.is_file() and not f.name.startswith(".") and _suffix(f) in SUPPORTED_SUFFIXES
            and f.resolve() not in outputs
        )
        if not files:
            raise ValueError(f"folder {str(p)!r} holds no supported file ({' '.join(SUPPORTED_SUFFIXES)})")
        return [self._path_item(f) for f in files]

    def _path_item(self, p: Path) -> _Item:
        if _suffix(p) not in SUPPORTED_SUFFIXES:
            logger.warning("%s: suffix %r is not one medst knows; trying MONAI's readers", p, _suffix(p))
        self._check_file(p)
        path = os.path.abspath(p.expanduser())
        return _Item(key=path, file=path, source=Path(path), name=str(p))

    def _array_item(self, x: Any, index: int, channel_first: bool | None) -> _Item:
        """An array as the bundle's ``LoadImaged`` + ``EnsureChannelFirstd`` would give it, ``(C, *spatial)``."""
        import torch
        from monai.data import MetaTensor

        meta = dict(x.meta) if isinstance(x, MetaTensor) else {}
        t = torch.as_tensor(x.as_tensor() if isinstance(x, MetaTensor) else x).detach().cpu()
        n = self.spatial_ndim
        if channel_first is None and self._frames_in_channels:
            # a 4D-scan bundle: its preprocessing moves the channel axis to time (ChannelToTimed), so the array is
            # (T, X, Y, Z) as EnsureChannelFirstd leaves a 4D NIfTI; metadata lists T, X, Y, Z as spatial axes
            if n is not None and t.ndim != n:
                raise ValueError(
                    f"array of shape {tuple(t.shape)}: this bundle moves channels to time, give (T, *spatial) with "
                    f"{n} axes in all, frames first; {self._expects()}"
                )
            channel_first = True
        if channel_first is None:
            if n is None:
                raise ValueError(
                    "cannot tell whether the array has a channel axis (metadata lists no input spatial_shape); "
                    "pass channel_first=True for (C, *spatial) or False for spatial-only"
                )
            if t.ndim == n + 1:
                channel_first = True
            elif t.ndim == n:
                channel_first = False
            else:
                raise ValueError(
                    f"array of shape {tuple(t.shape)} fits neither (C, *spatial) nor spatial-only with {n} spatial "
                    f"axes; {self._expects()}"
                )
        if not channel_first:
            t = t[None]
        own = meta.get("filename_or_obj")
        name = _stem(Path(str(own)).name) if own and not str(own).startswith("array_") else f"array_{index}"
        if own and str(own).startswith("array_"):
            name = str(own)
        affine = x.affine.numpy() if isinstance(x, MetaTensor) else None
        return _Item(key=f"array:{name}", file=None, source=None, name=name,
                     array=(t, affine, meta.get("fps"), meta.get("time_spacing")))

    def _write_array(self, item: _Item, folder: Path) -> str:
        """Write an array input to a temporary file in the format the bundle reads (removed after the run)."""
        import numpy as np

        t, affine, fps, time_spacing = item.array
        data = t.float().numpy() if t.is_floating_point() else t.numpy()
        kind = self.input_kind
        if kind == "numpy":
            if data.shape[0] != 1:
                raise ValueError(f"array {item.name} of shape {data.shape}: {self._expects()}")
            path = folder / f"{item.name}.npy"
            np.save(path, data[0])
        elif kind == "video":
            from .data import write_video

            if data.shape[0] not in (1, 3):
                raise ValueError(f"array {item.name} of shape {data.shape}: {self._expects()}")
            frames = np.clip(np.rint(data), 0, 255).astype(np.uint8)
            frames = frames[0] if frames.shape[0] == 1 else np.moveaxis(frames, 0, -1)
            path = folder / f"{item.name}.mkv"
            write_video(frames, path, fps=float(fps) if fps else 25.0, lossless=True)
        else:
            import nibabel as nib

            volume = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
            img = nib.Nifti1Image(volume, np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64))
            if time_spacing and volume.ndim == 4:
                zooms = list(img.header.get_zooms())
                img.header.set_zooms((*zooms[:3], float(time_spacing)))
            path = folder / f"{item.name}.nii.gz"
            nib.save(img, str(path))
        return str(path)

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        inputs: Any,
        output_dir: str | os.PathLike | None = None,
        overwrite: bool = False,
        num_workers: int = 0,
        channel_first: bool | None = None,
        return_predictions: bool = True,
        progress: bool | None = None,
        on_error: str = "raise",
    ) -> Any:
        """Run the bundle's inference workflow on one input or many; write the outputs when ``output_dir`` is given.

        Args:
            inputs: a file path, a folder (every file with a :data:`SUPPORTED_SUFFIXES` suffix in it, sorted; hidden
                files and the outputs of an earlier medst run there left out), a list of paths and arrays, a numpy
                array or a torch tensor / ``MetaTensor``. An array stands for what ``LoadImaged`` and
                ``EnsureChannelFirstd`` would give: channel-first, ``(C, *spatial)``, or spatial-only for one
                channel (a MetaTensor keeps its affine and ``filename_or_obj``; a numpy array gets an identity
                affine and is named ``array_<i>``); it is written to a temporary file in the format the bundle
                reads (NIfTI, lossless video, .npy), removed afterwards. For a 4D-scan bundle whose preprocessing
                moves channels to time (``ChannelToTimed``), ``C`` is the frame axis: ``(T, X, Y, Z)``.
            output_dir: the bundle's ``output_dir``; ``None``: a temporary folder, removed afterwards.
            overwrite: when ``False``, an input whose outputs are finished (recorded in
                ``output_dir/.medst-outputs.json`` by an earlier run, each there, not empty, not the input) is
                skipped and its saved output read back. With ``True`` its record is dropped first, so that a
                redo that fails leaves it recognisably unfinished.
            num_workers: the config's ``num_workers`` (DataLoader workers).
            channel_first: layout of array inputs; ``None``: decided from the bundle's ``network_data_format``.
            return_predictions: ``False`` returns the output path(s) instead of the predictions: one path per
                input, or a list of paths when the bundle writes several outputs.
            progress: tqdm progress bar; ``None``: on when stderr is a terminal.
            on_error: ``"raise"`` stops at the first input that fails (:class:`PredictError`, naming the input,
                with the cause chained); ``"skip"`` logs the error, leaves ``None`` in its place, goes on with the
                other inputs, and keeps the failures in :attr:`last_errors`.

        Returns:
            what the bundle's postprocessing leaves in ``pred`` (a ``MetaTensor``, in the input's space when the
            bundle inverts its preprocessing) for a single input, a list of them for a list or a folder; for a
            classification bundle (:attr:`is_classifier`) a :class:`ClassPrediction` per input (the class, its name
            and every class's probability; the bundle writes them to a CSV, a row per input, in ``output_dir``); with
            ``return_predictions=False`` the output path(s) instead.

        Raises:
            FileNotFoundError: an input path does not exist.
            TypeError: an input of an unsupported type.
            ValueError: an empty folder or list, an input that the bundle cannot take, two inputs with the same
                file name.
            PredictError: the workflow failed.
        """
        from .bundle.runner import (
            OutputManifest,
            make_temporary_dir,
            sweep_stale_temporaries,
            terminate_as_interrupt,
        )

        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.last_errors, self.last_skipped, self.last_predicted = {}, [], []
        out = Path(output_dir).expanduser().absolute() if output_dir is not None else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            if not os.access(out, os.W_OK | os.X_OK):
                raise PermissionError(f"output folder {out} is not writable")
        sweep_stale_temporaries([out, tempfile.gettempdir()])
        scratch: Path | None = None
        try:
            with terminate_as_interrupt():
                items, many = self._collect(inputs, channel_first, out)
                names: dict[str, str] = {}
                for item in items:
                    stem = _stem(Path(item.file).name if item.file else item.name)
                    if stem in names and names[stem] != item.key:
                        raise ValueError(
                            f"{names[stem]} and {item.name} would both be written under the output name {stem}; "
                            "give inputs distinct file names"
                        )
                    names[stem] = item.name
                scratch = make_temporary_dir(out)
                bundle_out = out if out is not None else scratch / "out"
                manifest = OutputManifest(out) if out is not None else None
                results: list[Any] = [None] * len(items)
                todo = []
                for i, item in enumerate(items):
                    reason = "overwrite" if overwrite or manifest is None or item.source is None else (
                        manifest.unfinished_reason(item.key, item.source))
                    if reason is None:
                        logger.info("skip %s: its outputs are there (overwrite=True to redo it)", item.name)
                        self.last_skipped.append(item.name)
                        saved = manifest.outputs(item.key)
                        if not return_predictions:
                            results[i] = _one_or_list(saved)
                        elif self.is_classifier:
                            results[i] = self._read_back_row(saved, item)
                        else:
                            results[i] = self._read_back(saved)
                    else:
                        logger.debug("predict %s: %s", item.name, reason)
                        todo.append(i)
                logger.info("%s: %d input(s) to predict, %d finished before", self.name, len(todo),
                            len(items) - len(todo))
                if manifest is not None and todo:
                    for i in todo:  # an output name that is a link (to the input, say) is replaced, not written through
                        for p in manifest.outputs(items[i].key):
                            if p.is_symlink():
                                logger.warning("%s is a link; removing it to write the output there", p)
                                p.unlink()
                    manifest.forget([items[i].key for i in todo])
                if todo:
                    (scratch / "inputs").mkdir()
                    for i in todo:
                        if items[i].file is None:
                            items[i].file = self._write_array(items[i], scratch / "inputs")
                    show = sys.stderr.isatty() if progress is None else bool(progress)
                    self._run_all(items, todo, bundle_out, manifest, int(num_workers), return_predictions, show,
                                  on_error == "skip", results)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        return results if many else results[0]

    @staticmethod
    def _read_back(saved: list[Path]) -> Any:
        from monai.transforms import LoadImage

        readable = [p for p in saved if _suffix(p) in SUPPORTED_SUFFIXES] or saved
        pred = LoadImage(image_only=True, ensure_channel_first=True)(str(readable[0]))
        pred.meta["saved_to"] = str(readable[0])
        return pred

    def _run_all(self, items, todo, bundle_out, manifest, num_workers, return_predictions, show, skip_errors,
                 results) -> None:
        """Run the workflow over ``todo``; with ``skip_errors`` a failed input is logged and the rest run again."""
        from .bundle.runner import OutputRecorder, error_chain

        pending = list(todo)
        while pending:
            recorder = OutputRecorder(
                bundle_out, keys=[items[i].key for i in pending], sources=[items[i].source for i in pending],
                manifest=manifest, keep_predictions=return_predictions, progress=show,
            )
            failure: BaseException | None = None
            try:
                self._run_workflow([items[i].file for i in pending], bundle_out, num_workers, recorder)
            except Exception as e:  # noqa: BLE001  (re-raised as a PredictError naming the input)
                failure = e
            for i in pending:
                key = items[i].key
                if key not in recorder.written:
                    continue
                self.last_predicted.append(items[i].name)
                saved = recorder.written[key]
                for p in saved:
                    logger.info("wrote %s", p)
                table = next((p for p in saved if _suffix(p) == ".csv"), None) if self.is_classifier else None
                if table is not None and items[i].source is None:  # the row names the array, not its temporary file
                    from .transforms.classification import rename_rows

                    rename_rows(table, {items[i].file: items[i].name})
                if return_predictions and self.is_classifier:
                    pred = recorder.predictions.get(key)
                    results[i] = None if pred is None else self._classification(
                        pred, items[i].name, table if manifest is not None else None)
                elif return_predictions:
                    pred = recorder.predictions.get(key)
                    if pred is not None and hasattr(pred, "meta"):
                        if items[i].source is None:
                            pred.meta["filename_or_obj"] = items[i].name
                        if saved and manifest is not None:
                            pred.meta["saved_to"] = str(saved[0])
                    results[i] = pred
                else:  # without an output_dir the files were in a temporary folder, removed now
                    results[i] = _one_or_list(saved) if manifest is not None else None
            if failure is None:
                return
            if not recorder.loading or recorder.done >= len(pending):
                # before the first input (network, weights, handlers) or after the last: not one input's fault
                raise PredictError(f"bundle {self.path.name}: its inference workflow failed outside of any one input "
                                   "(building the network, loading the weights, a handler)") from failure
            failed = items[pending[recorder.done]]
            error = PredictError(f"{failed.name}: bundle {self.path.name} failed on this input", input=failed.name)
            error.__cause__ = failure
            if not skip_errors:
                raise error
            self.last_errors[failed.name] = " <- ".join(error_chain(failure))
            logger.error("%s failed: %s", failed.name, self.last_errors[failed.name])
            pending = pending[recorder.done + 1 :]

    def workflow(self, datalist: Sequence[str], output_dir: str | os.PathLike, num_workers: int = 0):
        """The bundle's inference ``ConfigWorkflow`` with medst's overrides, not yet initialised: what
        :meth:`predict` runs, and what ``python -m monai.bundle run --datalist ... --output_dir ...`` runs."""
        from monai.bundle import ConfigWorkflow

        overrides = dict(self._overrides, datalist=[str(d) for d in datalist], output_dir=str(output_dir))
        if "num_workers" in self._config.config:
            overrides["num_workers"] = int(num_workers)
        elif num_workers:
            raise ValueError(
                f"{self.config_file} has no top-level 'num_workers': bundle {self.path.name} does not take it"
            )
        quiet = logging.getLogger("monai.bundle.workflows")
        level = quiet.level
        if self.logging_file is False:
            quiet.setLevel(logging.ERROR)  # "Logging file is set to False, skipping logging." at every call
        try:
            return ConfigWorkflow(
                workflow_type="inference",
                config_file=str(self.config_file),
                meta_file=str(self.meta_file),
                logging_file=self.logging_file,
                **overrides,
            )
        finally:
            quiet.setLevel(level)

    def _run_workflow(self, datalist: list[str], output_dir: Path, num_workers: int, recorder) -> None:
        workflow = self.workflow(datalist, output_dir, num_workers)
        workflow.initialize()
        recorder.attach(workflow.parser.get_parsed_content("evaluator"))
        workflow.run()
        workflow.finalize()

    def compile(self) -> list[Path]:
        """Build the network's ahead-of-time compiled package for the bundle's window settings now (blocking), so
        that the first :meth:`predict` already runs compiled (``medst compile``; see :mod:`medst.inferers.aot`).

        Runs the bundle's own inferer over one window of zeros with ``MEDST_COMPILE=sync``: the package is built
        for exactly the window batch, layout and precision that prediction uses. Returns the packages' paths (none
        where the inferer stays eager: float32, CUDA, ``compile=False``).

        Raises:
            ValueError: the bundle's inferer is not a ``medst.inferers.VolumeInferer``.
        """
        import torch
        from monai.bundle import ConfigParser

        from monai.inferers import Inferer

        from .inferers import VolumeInferer
        from .inferers import aot

        parser = ConfigParser(copy.deepcopy(self._config.config))
        for key, value in self._overrides.items():
            parser[key] = value
        inferer = parser.get_parsed_content("inferer", lazy=False)
        while not isinstance(inferer, VolumeInferer) and isinstance(getattr(inferer, "inferer", None), Inferer):
            inferer = inferer.inferer  # a wrapper (AtlasPriorInferer) over the window inferer
        if not isinstance(inferer, VolumeInferer):
            raise ValueError(
                f"bundle {self.name}'s inferer is a {type(inferer).__name__}: only VolumeInferer bundles are compiled"
            )
        net = parser.get_parsed_content("network", lazy=False).eval()
        net.load_state_dict(load_weights(self.weights_file))
        roi = inferer.roi_size
        if isinstance(roi, int):
            roi = (roi,) * (self.spatial_ndim or 3)
        x = torch.zeros(1, int(self._input_spec.get("num_channels", 1)), *roi)
        previous = os.environ.get("MEDST_COMPILE")
        os.environ["MEDST_COMPILE"] = "sync"
        try:
            inferer(x, net)
        finally:
            if previous is None:
                os.environ.pop("MEDST_COMPILE", None)
            else:
                os.environ["MEDST_COMPILE"] = previous
        return [c.package for c in aot._PACKAGES.get(net, {}).values() if c.package.is_file()]

    def __repr__(self) -> str:
        return f"Bundle(name={self.name!r}, path={str(self.path)!r}, device={str(self.device)!r})"


_INPUT_HELP = "give a file path, a folder, a list of paths, a numpy array or a MetaTensor"


def load_bundle(path: str | os.PathLike, **kwargs: Any) -> Bundle:
    """Load a MONAI bundle for prediction: ``medst.load_bundle("bundles/<name>").predict("scan.nii.gz", "out/")``.

    Args:
        path: bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt``), or the
            name of a folder in the repository's ``bundles/``.
        kwargs: ``device``, ``config_file``, ``weights``, ``precision``, ``roi_size``, ``overlap``,
            ``sw_batch_size``, ``config_overrides``: see :class:`Bundle`.
    """
    return Bundle(path, **kwargs)
