"""Plain-Python entry points for research scripts: load a MONAI bundle, predict, save in the input's space.

Three lines from import to a saved segmentation::

    import medst
    seg = medst.load_bundle("bundles/brain_extraction")
    labels = seg.predict("scan.nii.gz", output_dir="out/")

A bundle is any folder in the MONAI model-zoo layout: ``configs/inference.json`` (or ``.yaml``),
``configs/metadata.json`` and ``models/model.pt``. The bundle's own config is used through
:class:`monai.bundle.ConfigParser`: its ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing``
(typically ``Activationsd``/``AsDiscreted``, ``Invertd`` and ``SaveImaged(output_dir="@output_dir")``), so a
prediction is inverted back into the input's space (affine, orientation, spacing, frame rate) by the same transforms
that ``python -m monai.bundle run`` would use. Weights are read with ``torch.load(..., weights_only=True)``:
tensors only, never arbitrary pickled objects.

What a bundle's ``configs/inference.json`` must provide for :func:`load_bundle`:

- ``network_def`` (or ``network``): the network, whose ``state_dict`` is ``models/model.pt`` (a plain state dict,
  or ``{"model": state_dict}``);
- ``preprocessing``: a ``Compose`` of dict transforms on the key ``"image"`` that starts with ``LoadImaged``
  (array inputs skip it and ``EnsureChannelFirstd``: they enter channel-first);
- ``inferer``: a MONAI ``Inferer`` called as ``inferer(image_batch, network)`` that returns the logits (or labels)
  as ``(1, K, *spatial)``; ``roi_size``, ``overlap``, ``sw_batch_size`` and ``precision`` are overridden by name;
- ``postprocessing``: a ``Compose`` on the key ``"pred"`` (with the preprocessed ``"image"`` beside it), usually
  ``Activationsd``/``AsDiscreted``, ``Invertd(keys="pred", transform="@preprocessing", orig_keys="image")`` and
  ``SaveImaged(keys="pred", output_dir="@output_dir", ...)`` (several are fine: a NIfTI, a label video, an
  overlay); where there is no ``Invertd`` medst adds one before the first ``SaveImaged`` (acting only while
  ``pred`` is still in the preprocessed grid), and where there is no ``SaveImaged`` it saves ``pred`` itself;
- the keys ``bundle_root``, ``device`` and ``output_dir``, which medst sets. ``configs/metadata.json`` is read for
  the name and, for array inputs, ``network_data_format.inputs.image.spatial_shape`` (how many axes follow C).

Importing this module is cheap: torch and MONAI are imported when a bundle is loaded.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Bundle",
    "load_bundle",
    "load_weights",
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
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
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


def _is_array(x: Any) -> bool:
    import numpy as np

    if isinstance(x, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class _InputError(RuntimeError):
    """An input whose loading or preprocessing failed in a DataLoader worker (``on_error="skip"``)."""


def _one_or_list(paths: list[Path]) -> Path | list[Path]:
    return paths[0] if len(paths) == 1 else list(paths)


def _single(items: list) -> Any:
    """Collate for ``batch_size=1``: the item itself (the batch axis is added before inference)."""
    return items[0]


class _InvertIfInPreprocessedGrid:
    """The Invertd that medst adds to a bundle whose postprocessing has none, applied only while ``pred`` still lies
    in the preprocessed image's grid (same shape after the channel): a bundle that already moved it elsewhere
    (e.g. ``TimeToChanneld`` after a ``ChannelToTimed``) is left as it is."""

    def __init__(self, invert):
        self.invert = invert

    def __call__(self, data: dict) -> dict:
        pred, image = data.get("pred"), data.get("image")
        if pred is None or image is None or tuple(pred.shape[1:]) != tuple(image.shape[1:]):
            logger.debug("pred is no longer in the preprocessed grid: not inverted by medst")
            return data
        return self.invert(data)


class _Preprocess:
    """Dispatch an item to the full preprocessing (a path) or to the one without ``LoadImaged`` (an array).

    With ``catch``, a failure becomes ``{"_error": message}`` so that one unreadable file does not stop a batch.
    """

    def __init__(self, full, without_load, catch: bool = False):
        self.full = full
        self.without_load = without_load
        self.catch = catch

    def __call__(self, item: dict) -> dict:
        item = dict(item)
        try:
            return (self.without_load if item.pop("_array", False) else self.full)(item)
        except Exception as e:
            if not self.catch:
                raise
            return {"_error": _error_line(e)}


def _error_line(e: BaseException, name_unwrapped: bool = True) -> str:
    """The first line of an error, after its type's name (MONAI wraps transform errors: the innermost cause says what
    went wrong, so its line is used). ``name_unwrapped=False``: an error with no cause gives its line alone."""
    inner = e
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = str(inner).strip()
    line = text.splitlines()[0] if text else ""
    if inner is e and not name_unwrapped and line:
        return line
    return f"{type(inner).__name__}: {line}".rstrip(": ")


class Bundle:
    """A MONAI bundle ready to predict: network with its weights, and the bundle's own pre- and postprocessing.

    Args:
        path: bundle folder (model-zoo layout), or the name of a folder in the repository's ``bundles/``.
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; default CUDA when available, else the CPU.
        config_file: inference config; default ``configs/inference.json`` (or ``.yaml``/``.yml``).
        weights: weights file; default ``models/model.pt``.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: passed to the bundle's inferer when it takes a
            ``precision`` argument (medst's ``VolumeInferer``), otherwise applied with ``torch.autocast``.
        roi_size: sliding-window size, overriding the inferer's ``roi_size`` (an int: the same on each of its axes).
            A network with a fixed input size (UNETR's ``img_size``) only takes the size it was built for.
        overlap: sliding-window overlap, overriding the inferer's ``overlap``.
        sw_batch_size: windows per network call, overriding the inferer's ``sw_batch_size``.
        config_overrides: config ids set before parsing, ``{"overlay": True, "inferer#mode": "constant"}``
            (``#`` separates nested keys, as in ``python -m monai.bundle run --key value``).

    Raises:
        FileNotFoundError: the folder, its config, metadata or weights are missing.
        ValueError: an override the bundle's inferer does not take, an unknown precision, CUDA asked but absent,
            or weights that are not a plain state dict.
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
    ) -> None:
        import torch

        import medst  # noqa: F401  (registers medst's readers and writers with MONAI before any config is parsed)

        self.path = _bundle_dir(path)
        self.config_file = self._find_config(config_file)
        self.metadata = _read_metadata(self.path)
        self.weights_file = Path(weights).expanduser() if weights is not None else self.path / "models" / "model.pt"
        if not self.weights_file.is_file():
            raise FileNotFoundError(
                f"weights {str(self.weights_file)!r} are missing: a bundle keeps them in models/model.pt "
                "(train the bundle or download its weights first)"
            )
        if precision is not None and precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
        if overlap is not None and not 0.0 <= float(overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False; use device='cpu'")
        self.precision = precision
        self.config_overrides = dict(config_overrides or {})
        fixed = sorted({"bundle_root", "device", "output_dir"} & set(self.config_overrides))
        if fixed:
            raise ValueError(f"set {fixed} through the path/device/output_dir arguments, not config_overrides")
        overrides: dict[str, Any] = {}
        if roi_size is not None:
            # an int means every axis of the bundle inferer's own roi_size (see _build_inferer)
            overrides["roi_size"] = int(roi_size) if isinstance(roi_size, int) else [int(r) for r in roi_size]
        if overlap is not None:
            overrides["overlap"] = float(overlap)
        if sw_batch_size is not None:
            overrides["sw_batch_size"] = int(sw_batch_size)
        self._inferer_overrides = overrides
        self._autocast_dtype = None
        #: failures of the last :meth:`predict` with ``on_error="skip"``: input name -> one-line message
        self.last_errors: dict[str, str] = {}

        parser = self._parser(output_dir=None)
        key = "network_def" if "network_def" in parser else "network"
        if key not in parser:
            raise ValueError(f"{self.config_file} defines neither 'network_def' nor 'network'")
        network = parser.get_parsed_content(key)
        state = load_weights(self.weights_file)
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{self.weights_file} does not fit the bundle's {key}: {e}") from e
        self.network = network.to(self.device).eval()
        self.inferer = self._build_inferer(parser)
        pre = parser.get_parsed_content("preprocessing") if "preprocessing" in parser else None
        pre_transforms = pre.flatten().transforms if hasattr(pre, "flatten") else ()
        self._frames_in_channels = any(type(t).__name__ in ("ChannelToTime", "ChannelToTimed") for t in pre_transforms)
        logger.info("loaded bundle %s (%s) on %s", self.name, self.path, self.device)

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

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.path.name))

    @property
    def spatial_ndim(self) -> int | None:
        """Number of axes after the channel of the network's input (``network_data_format``), if listed."""
        shape = self.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {}).get("spatial_shape")
        return len(shape) if isinstance(shape, (list, tuple)) and shape else None

    def info(self) -> dict[str, Any]:
        """:func:`bundle_info` of this bundle."""
        return bundle_info(self.path)

    def _parser(self, output_dir: str | os.PathLike | None):
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_meta(str(self.path / "configs" / "metadata.json"))
        parser.read_config(str(self.config_file))
        parser["bundle_root"] = str(self.path)
        parser["device"] = f"$torch.device({str(self.device)!r})"
        parser["output_dir"] = str(Path(output_dir).expanduser()) if output_dir is not None else str(self.path / "eval")
        for key, value in self.config_overrides.items():
            parser[key] = value
        return parser

    def _build_inferer(self, parser):
        if "inferer" not in parser:
            raise ValueError(f"{self.config_file} defines no 'inferer'")
        inferer = parser.get_parsed_content("inferer")
        accepted = inspect.signature(type(inferer).__init__).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        overrides = dict(self._inferer_overrides)
        own_roi = getattr(inferer, "roi_size", None)
        if isinstance(overrides.get("roi_size"), int) and isinstance(own_roi, Sequence):
            overrides["roi_size"] = [overrides["roi_size"]] * len(own_roi)
        if self.precision is not None and ("precision" in accepted):
            overrides["precision"] = self.precision
        elif self.precision in ("bf16", "fp16"):
            import torch

            self._autocast_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        if not overrides:
            return inferer
        cfg = parser.get("inferer")
        if not isinstance(cfg, dict) or "_target_" not in cfg:
            raise ValueError(f"the inferer of {self.config_file} is not a '_target_' component: cannot override it")
        for k, v in overrides.items():
            if k not in accepted and not takes_kwargs:
                raise ValueError(
                    f"the bundle's inferer {type(inferer).__name__} takes no {k!r}; leave that option out"
                )
            parser[f"inferer#{k}"] = v
        return parser.get_parsed_content("inferer", lazy=False)

    def _transforms(self, parser, output_dir):
        """(full preprocessing, preprocessing without LoadImaged, postprocessing, SaveImaged transforms)."""
        from monai.transforms import (
            AsDiscreted,
            Compose,
            EnsureChannelFirstd,
            InvertibleTransform,
            Invertd,
            LoadImaged,
            SaveImaged,
        )

        def as_compose(key):
            if key not in parser:
                return Compose([])
            obj = parser.get_parsed_content(key)  # lazy: Invertd must see this very instance
            return obj if isinstance(obj, Compose) else Compose(list(obj) if isinstance(obj, Sequence) else [obj])

        pre = as_compose("preprocessing")
        # arrays enter channel-first already (see _array_item): no loading, no EnsureChannelFirstd (which, with a
        # fixed channel_dim such as "no_channel", would add a second channel axis)
        pre_arrays = Compose([t for t in pre.transforms if not isinstance(t, (LoadImaged, EnsureChannelFirstd))])
        post_list = list(as_compose("postprocessing").transforms)
        savers = [t for t in post_list if isinstance(t, SaveImaged)]
        if output_dir is None:
            post_list = [t for t in post_list if not isinstance(t, SaveImaged)]
            savers = []
        invertible = any(isinstance(t, InvertibleTransform) for t in pre.flatten().transforms)
        if invertible and not any(isinstance(t, Invertd) for t in post_list):
            at = next((i for i, t in enumerate(post_list) if isinstance(t, SaveImaged)), len(post_list))
            labels = any(isinstance(t, AsDiscreted) for t in post_list[:at])
            invert = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=labels)
            post_list.insert(at, _InvertIfInPreprocessedGrid(invert))
        if output_dir is not None and not savers:
            saver = SaveImaged(
                keys="pred", output_dir=str(output_dir), output_postfix="seg", separate_folder=False, resample=False
            )
            post_list.append(saver)
            savers = [saver]
        for s in savers:
            s.saver.savepath_in_metadict = True
        return pre, pre_arrays, Compose(post_list), savers

    # ------------------------------------------------------------------ inputs
    def _collect(self, inputs: Any, channel_first: bool | None) -> tuple[list[dict], bool]:
        """Items ``{"image": path or MetaTensor, "_subject": name}`` and whether the answer is a list."""
        if isinstance(inputs, (str, os.PathLike)):
            p = Path(inputs).expanduser()
            if not p.exists():
                raise FileNotFoundError(f"input {str(inputs)!r} does not exist")
            if p.is_dir():
                files = sorted(f for f in p.iterdir() if f.is_file() and _suffix(f) in SUPPORTED_SUFFIXES)
                if not files:
                    raise ValueError(f"folder {str(p)!r} holds no supported file ({' '.join(SUPPORTED_SUFFIXES)})")
                return [self._path_item(f) for f in files], True
            return [self._path_item(p)], False
        if _is_array(inputs):
            return [self._array_item(inputs, 0, channel_first)], False
        if isinstance(inputs, Sequence) and not isinstance(inputs, (bytes, bytearray)):
            items: list[dict] = []
            for x in inputs:
                if _is_array(x):
                    items.append(self._array_item(x, len(items), channel_first))
                elif isinstance(x, (str, os.PathLike)):
                    items.extend(self._collect(x, channel_first)[0])
                else:
                    raise TypeError(f"unsupported input of type {type(x).__name__} in the list; {_INPUT_HELP}")
            if not items:
                raise ValueError("no inputs given (an empty list)")
            return items, True
        raise TypeError(f"unsupported input of type {type(inputs).__name__}; {_INPUT_HELP}")

    @staticmethod
    def _path_item(p: Path) -> dict:
        if _suffix(p) not in SUPPORTED_SUFFIXES:
            logger.warning("%s: suffix %r is not one medst knows; trying MONAI's readers", p, _suffix(p))
        # LoadImage records f"{Path(p).expanduser()}" as filename_or_obj; SaveImage names the output from it
        return {"image": str(p), "_subject": str(p)}

    def _array_item(self, x: Any, index: int, channel_first: bool | None) -> dict:
        import torch
        from monai.data import MetaTensor

        meta = dict(x.meta) if isinstance(x, MetaTensor) else {}
        affine = x.affine.clone() if isinstance(x, MetaTensor) else None
        t = torch.as_tensor(x.as_tensor() if isinstance(x, MetaTensor) else x)
        n = self.spatial_ndim
        if channel_first is None and self._frames_in_channels:
            # a 4D-scan bundle: its preprocessing moves the channel axis to time (ChannelToTimed), so the array is
            # (T, X, Y, Z) as EnsureChannelFirstd leaves a 4D NIfTI; metadata lists T, X, Y, Z as spatial axes
            if n is not None and t.ndim != n:
                raise ValueError(
                    f"array of shape {tuple(t.shape)}: this bundle moves channels to time, give (T, *spatial) with "
                    f"{n} axes in all, frames first"
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
                    f"array of shape {tuple(t.shape)} fits neither (C, *spatial) nor spatial-only with "
                    f"{n} spatial axes, as the bundle's network_data_format expects"
                )
        if not channel_first:
            t = t[None]
        meta.pop("original_channel_dim", None)
        meta["original_channel_dim"] = 0  # already channel-first: a following EnsureChannelFirstd leaves it as it is
        meta["spatial_shape"] = list(t.shape[1:])
        meta.setdefault("filename_or_obj", f"array_{index}")
        if affine is not None:
            meta["affine"] = affine
        img = MetaTensor(t, meta=meta)
        return {"image": img, "_array": True, "_subject": str(meta["filename_or_obj"])}

    @staticmethod
    def _expected_outputs(savers: list, subject: str) -> list[Path] | None:
        """Where each SaveImaged will write, computed as SaveImage does but without making folders."""
        paths = []
        for s in savers:
            saver = s.saver
            try:
                layout = copy.copy(saver.folder_layout)
                if hasattr(layout, "makedirs"):
                    layout.makedirs = False
                kw = saver.fname_formatter({"filename_or_obj": subject}, saver)
                paths.append(Path(layout.filename(**kw)))
            except Exception as e:  # a custom name formatter that needs more metadata: cannot know in advance
                logger.debug("cannot compute the output name of %s in advance: %s", subject, e)
                return None
        return paths

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
        """Segment one input or many, in the input's space; write the outputs when ``output_dir`` is given.

        Args:
            inputs: a file path, a folder (every file with a :data:`SUPPORTED_SUFFIXES` suffix in it, sorted), a
                list of paths and arrays, a numpy array or a torch tensor / ``MetaTensor``. An array replaces what
                ``LoadImaged`` and ``EnsureChannelFirstd`` would give: channel-first, ``(C, *spatial)``, or
                spatial-only for one channel (a MetaTensor keeps its affine and ``filename_or_obj``; a numpy array
                gets an identity affine and is named ``array_<i>``). For a 4D-scan bundle whose preprocessing
                moves channels to time (``ChannelToTimed``), ``C`` is the frame axis, as ``EnsureChannelFirstd``
                leaves a 4D NIfTI: ``(T, X, Y, Z)``.
            output_dir: where the bundle's ``SaveImaged`` writes (its ``@output_dir``); ``None``: write nothing.
            overwrite: when ``False``, an input whose output already exists is skipped before inference (so a killed
                batch resumes where it stopped) and its saved output is read back.
            num_workers: DataLoader workers that load and preprocess the next inputs during inference.
            channel_first: layout of array inputs; ``None``: decided from the bundle's ``network_data_format``.
            return_predictions: ``False`` returns the output paths instead of the predictions (saves memory over a
                long batch): one path per input, or a list of paths when the bundle saves several outputs (e.g. a
                NIfTI, a label video and an overlay video).
            progress: tqdm progress bar; ``None``: on when stderr is a terminal.
            on_error: ``"raise"`` stops at the first input that fails; ``"skip"`` logs the error, leaves ``None`` in
                its place, goes on, and keeps the failures in :attr:`last_errors` (input name -> message).

        Returns:
            a ``MetaTensor`` (channel-first, in the input's space, with its metadata) for a single input, a list of
            them for a list or a folder; with ``return_predictions=False`` the output path(s) instead.

        Raises:
            FileNotFoundError: an input path does not exist.
            TypeError: an input of an unsupported type.
            ValueError: an empty folder or list, or an array whose layout does not fit the network.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.last_errors = {}
        items, many = self._collect(inputs, channel_first)
        if output_dir is not None:
            output_dir = Path(output_dir).expanduser()
            output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="medst_") as scratch:
            # without output_dir, whatever the postprocessing writes besides SaveImaged (an overlay...) goes to a
            # scratch folder removed afterwards
            parser = self._parser(output_dir if output_dir is not None else scratch)
            return self._run(parser, items, many, output_dir, overwrite, num_workers, return_predictions, progress,
                             on_error == "skip")

    def _run(self, parser, items, many, output_dir, overwrite, num_workers, return_predictions, progress, skip_errors):
        import torch
        from monai.data import DataLoader, Dataset
        from monai.transforms import LoadImage
        from tqdm.auto import tqdm

        pre, pre_arrays, post, savers = self._transforms(parser, output_dir)

        results: list[Any] = [None] * len(items)
        todo: list[int] = []
        claimed: dict[Path, str] = {}
        expected_paths: list[list[Path] | None] = [None] * len(items)
        for i, item in enumerate(items):
            expected = self._expected_outputs(savers, item["_subject"]) if savers else None
            expected_paths[i] = expected
            for p in expected or ():
                if p in claimed and claimed[p] != item["_subject"]:
                    raise ValueError(
                        f"{claimed[p]} and {item['_subject']} would both be written to {p}; give inputs distinct "
                        "file names (or a bundle SaveImaged with separate_folder/data_root_dir)"
                    )
                claimed[p] = item["_subject"]
            if expected and not overwrite and all(p.exists() for p in expected):
                logger.info("skip %s: %s exists (overwrite=True to redo it)", item["_subject"], expected[0])
                if return_predictions:
                    results[i] = LoadImage(image_only=True, ensure_channel_first=True)(str(expected[0]))
                else:
                    results[i] = _one_or_list(expected)
            else:
                todo.append(i)
        logger.info(
            "%s: %d input(s) to predict, %d skipped (outputs exist)", self.name, len(todo), len(items) - len(todo)
        )

        if todo:
            data = [{k: v for k, v in items[i].items() if k != "_subject"} for i in todo]
            loader = DataLoader(
                Dataset(data=data, transform=_Preprocess(pre, pre_arrays, catch=skip_errors)),
                batch_size=1,
                shuffle=False,
                num_workers=num_workers,
                collate_fn=_single,  # inputs differ in size; and MONAI's collate fails on None metadata values
            )
            show = sys.stderr.isatty() if progress is None else progress
            autocast = (
                torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)
                if self._autocast_dtype is not None
                else contextlib.nullcontext()
            )
            for i, item in zip(todo, tqdm(loader, total=len(data), disable=not show, desc=self.name, unit="input")):
                try:
                    if "_error" in item:
                        raise _InputError(item["_error"])
                    pred = self._predict_one(item, post, autocast)
                except Exception as e:
                    if not skip_errors:
                        raise
                    message = item.get("_error") or _error_line(e)
                    self.last_errors[items[i]["_subject"]] = message
                    logger.error("%s failed: %s", items[i]["_subject"], message)
                    continue
                saved = expected_paths[i] or [Path(p) for p in [getattr(pred, "meta", {}).get("saved_to")] if p]
                for p in saved:
                    logger.info("wrote %s", p)
                if return_predictions:
                    results[i] = pred
                else:
                    results[i] = _one_or_list(saved) if saved else None
        return results if many else results[0]

    def _predict_one(self, item: dict, post, autocast) -> Any:
        """Inference and postprocessing of one preprocessed item; returns ``pred`` as the postprocessing leaves it."""
        import torch
        from monai.data import MetaTensor

        image = item["image"]
        if not isinstance(image, MetaTensor):
            image = item["image"] = MetaTensor(torch.as_tensor(image))
        with torch.no_grad(), autocast:
            pred = self.inferer(image.as_tensor()[None].to(self.device), self.network)
        if isinstance(pred, (tuple, list)):
            pred = pred[0]
        pred = torch.as_tensor(pred)[0].detach().cpu()
        # the prediction carries the preprocessed image's metadata and transform trace, as decollate_batch would
        # give it, so that Invertd and SaveImaged see where it came from
        item["pred"] = MetaTensor(
            pred.float() if pred.is_floating_point() else pred,
            meta=copy.deepcopy(dict(image.meta)),
            applied_operations=copy.deepcopy(image.applied_operations),
        )
        return post(item)["pred"]

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
