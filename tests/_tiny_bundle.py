"""A tiny MONAI bundle in the model-zoo layout, written into a temporary folder for the API and CLI tests.

One 3x3x3 convolution with random weights (1 -> 2 channels) behind the conventions medst's bundles follow:
``configs/inference.json`` with ``bundle_root``, ``device``, ``dataset_dir``, ``output_dir``, ``datalist``, the
inferer's settings as top-level ids (``roi_size``, ``sw_batch_size``, ``overlap``, ``precision``), ``num_workers``,
``ckpt_path``, ``network_def``,
``network``, ``preprocessing`` (LoadImaged, EnsureChannelFirstd, Orientationd, Spacingd: a prediction must be inverted
to land in the input's space), ``inferer``, ``postprocessing`` (Activationsd, Invertd, AsDiscreted, SaveImaged),
``dataset``, ``dataloader``, ``evaluator``, ``handlers``, ``initialize``, ``run``, ``finalize``;
``configs/metadata.json``; ``models/model.pt``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["make_tiny_bundle", "make_tiny_video_bundle", "make_tiny_4d_bundle", "make_tiny_classification_bundle"]

PREPROCESSING = {
    "_target_": "Compose",
    "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "LPS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [2.0, 2.0, 2.0], "mode": "bilinear"},
        {"_target_": "NormalizeIntensityd", "keys": "image"},
        {"_target_": "EnsureTyped", "keys": "image"},
    ],
}

POSTPROCESSING = {
    "_target_": "Compose",
    "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "image",
            "nearest_interp": False,
            "to_tensor": True,
        },
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {
            "_target_": "SaveImaged",
            "keys": "pred",
            "output_dir": "@output_dir",
            "output_postfix": "seg",
            "output_dtype": "$np.uint8",
            "resample": False,
            "separate_folder": False,
        },
    ],
}

# no Invertd and no SaveImaged: the API must invert and save by itself
BARE_POSTPROCESSING = {
    "_target_": "Compose",
    "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
    ],
}


def inference_config(bare: bool = False) -> dict:
    return {
        "imports": ["$import glob", "$import medst"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "dataset_dir": "$@bundle_root + '/data'",
        "output_dir": "$@bundle_root + '/eval'",
        "datalist": "$sorted(glob.glob(@dataset_dir + '/*.nii*'))",
        "roi_size": [16, 16, 16],
        "sw_batch_size": 2,
        "overlap": 0.25,
        "num_workers": 0,
        "ckpt_path": "$@bundle_root + '/models/model.pt'",
        "network_def": {
            "_target_": "torch.nn.Conv3d",
            "in_channels": 1,
            "out_channels": 2,
            "kernel_size": 3,
            "padding": 1,
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": PREPROCESSING,
        "precision": "fp32",
        "inferer": {
            "_target_": "medst.inferers.VolumeInferer",
            "roi_size": "@roi_size",
            "sw_batch_size": "@sw_batch_size",
            "overlap": "@overlap",
            "precision": "@precision",
            "progress": False,
        },
        "postprocessing": BARE_POSTPROCESSING if bare else POSTPROCESSING,
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': f} for f in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": "@num_workers"},
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": "@ckpt_path",
                "load_dict": {"model": "@network"},
            }
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
        },
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
        "finalize": [],
    }


METADATA = {
    "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
    "meta_schema_20220324.json",
    "version": "0.1.0",
    "changelog": {"0.1.0": "tiny test bundle"},
    "monai_version": "1.6.1",
    "pytorch_version": "2.13.0",
    "numpy_version": "2.0",
    "name": "tiny_seg",
    "task": "Tiny two-class segmentation for tests",
    "description": "One random 3x3x3 convolution.",
    "authors": "medst developers",
    "copyright": "Copyright (c) medst developers",
    "eval_metrics": {"mean_dice": 0.0},
    "performance": {"note": "random weights"},
    "network_data_format": {
        "inputs": {
            "image": {
                "type": "image",
                "format": "magnitude",
                "modality": "MR",
                "num_channels": 1,
                "spatial_shape": [16, 16, 16],
                "dtype": "float32",
                "value_range": [],
                "is_patch_data": True,
                "channel_def": {"0": "image"},
            }
        },
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "spatial_shape": [16, 16, 16],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "background", "1": "foreground"},
            }
        },
    },
}


def make_tiny_bundle(root: str | Path, name: str = "tiny_seg", bare: bool = False, checkpoint=None) -> Path:
    """Write the tiny bundle to ``root/name`` and return its folder.

    Args:
        bare: postprocessing without Invertd and SaveImaged.
        checkpoint: what to save as ``models/model.pt``: ``None`` a plain state dict, ``"wrapped"``
            ``{"model": state_dict}``, or any object to ``torch.save`` as it is.
    """
    bundle = Path(root) / name
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "models").mkdir(exist_ok=True)
    (bundle / "configs" / "inference.json").write_text(json.dumps(inference_config(bare), indent=2))
    (bundle / "configs" / "metadata.json").write_text(json.dumps({**METADATA, "name": name}, indent=2))
    torch.manual_seed(0)
    state = torch.nn.Conv3d(1, 2, 3, padding=1).state_dict()
    if checkpoint is None:
        obj = state
    elif isinstance(checkpoint, str) and checkpoint == "wrapped":
        obj = {"model": state}
    else:
        obj = checkpoint
    torch.save(obj, bundle / "models" / "model.pt")
    return bundle


def make_tiny_video_bundle(root: str | Path, name: str = "tiny_video_seg") -> Path:
    """A video bundle: (1, T, H, W) grey frames -> 2-class labels written as a lossless .mkv at the input's rate."""
    cfg = inference_config()
    cfg["datalist"] = "$sorted(glob.glob(@dataset_dir + '/*.mkv'))"
    cfg["preprocessing"] = {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "reader": "medst.data.VideoReader", "channels": "grey"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "ScaleIntensityd", "keys": "image"},
            {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
        ],
    }
    cfg["roi_size"] = [4, 16, 16]
    post = json.loads(json.dumps(POSTPROCESSING))
    post["transforms"][-1].update({"output_ext": ".mkv", "output_dtype": "$np.uint8"})
    cfg["postprocessing"] = post
    bundle = make_tiny_bundle(root, name=name)
    meta = {**METADATA, "name": name, "task": "Tiny video segmentation for tests"}
    for io in ("inputs", "outputs"):
        key = "image" if io == "inputs" else "pred"
        meta["network_data_format"][io][key]["spatial_shape"] = [4, 16, 16]
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg, indent=2))
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    return bundle


def make_tiny_4d_bundle(root: str | Path, name: str = "tiny_4d_seg") -> Path:
    """A 4D-scan bundle: (T, X, Y, Z) after EnsureChannelFirstd -> ChannelToTimed (1, T, X, Y, Z) -> a small ConvGRU
    RecurrentSegNet streamed over time -> labels inverted back to (T, X, Y, Z) and saved as a 4D NIfTI."""
    cfg = inference_config()
    cfg["network_def"] = {
        "_target_": "medst.networks.nets.RecurrentSegNet",
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": 2,
        "channels": [4, 8],
        "cell": "gru",
        "recurrent_levels": 1,
    }
    cfg["preprocessing"] = {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "medst.transforms.ChannelToTimed", "keys": "image"},
            {"_target_": "NormalizeIntensityd", "keys": "image"},
        ],
    }
    cfg["roi_size"] = [24, 24, 4]  # one tile over functional.nii's 17 x 21 x 3 volumes: cheap on a busy CPU
    cfg["precision"] = "auto"
    cfg["inferer"] = {
        "_target_": "medst.inferers.StreamingInferer",
        "roi_size": "@roi_size",
        "time_chunk": 10,
        "overlap": "@overlap",
        "sw_batch_size": "@sw_batch_size",
        "precision": "@precision",
    }
    post = json.loads(json.dumps(POSTPROCESSING))
    activation, invert, discrete, save = post["transforms"]
    post["transforms"] = [activation, discrete, dict(invert, nearest_interp=True), save]
    cfg["postprocessing"] = post
    bundle = make_tiny_bundle(root, name=name)
    meta = {**METADATA, "name": name, "task": "Tiny 4D segmentation for tests"}
    meta = json.loads(json.dumps(meta))
    for io, key in (("inputs", "image"), ("outputs", "pred")):
        meta["network_data_format"][io][key]["spatial_shape"] = ["*", "*", "*", "*"]
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg, indent=2))
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    from monai.bundle import ConfigParser

    parser = ConfigParser(cfg)
    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models" / "model.pt")
    return bundle


CLASS_NAMES = ["circle", "square", "cross"]


def make_tiny_classification_bundle(root: str | Path, name: str = "tiny_cls", kind: str = "video") -> Path:
    """A classification bundle: a grey video (.mkv, ``kind="video"``: clips of 4 frames along time) or a NIfTI
    volume (``kind="volume"``: slabs of 4 along its last axis) -> a small DilatedClassifier with random weights ->
    3 class probabilities (several clips averaged, ``medst.inferers.MultiClipInferer``) -> a CSV row per input
    (``medst.transforms.SaveClassificationd``) in ``output_dir/predictions.csv``."""
    if kind not in ("video", "volume"):
        raise ValueError(f"kind must be 'video' or 'volume', got {kind!r}")
    cfg = inference_config()
    load = ({"_target_": "LoadImaged", "keys": "image", "reader": "medst.data.VideoReader", "channels": "grey"}
            if kind == "video" else {"_target_": "LoadImaged", "keys": "image"})
    cfg["datalist"] = "$sorted(glob.glob(@dataset_dir + '/*" + (".mkv" if kind == "video" else ".nii*") + "'))"
    cfg["class_names"] = CLASS_NAMES
    cfg["network_def"] = {
        "_target_": "medst.networks.nets.DilatedClassifier", "spatial_dims": 3, "in_channels": 1,
        "out_channels": len(CLASS_NAMES), "channels": [4, 8], "dilations": [1, 2], "dropout": 0.0,
    }
    cfg["preprocessing"] = {"_target_": "Compose", "transforms": [
        load,
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "ScaleIntensityd", "keys": "image"},
        {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
    ]}
    cfg["inferer"] = {"_target_": "medst.inferers.MultiClipInferer", "clip_frames": 4, "num_clips": 2,
                      "axis": 0 if kind == "video" else 2}
    cfg["postprocessing"] = {"_target_": "Compose", "transforms": [
        {"_target_": "medst.transforms.SaveClassificationd", "keys": "pred",
         "output_file": "$@output_dir + '/predictions.csv'", "class_names": "@class_names"},
    ]}
    for key in ("roi_size", "sw_batch_size", "overlap", "precision"):
        del cfg[key]
    bundle = make_tiny_bundle(root, name=name)
    meta = json.loads(json.dumps({**METADATA, "name": name, "task": f"Tiny {kind} classification for tests"}))
    meta["network_data_format"]["inputs"]["image"].update(
        type="video" if kind == "video" else "image", spatial_shape=[4, 16, 16] if kind == "video" else [16, 16, 4])
    meta["network_data_format"]["outputs"]["pred"] = {
        "type": "probabilities", "format": "classification", "num_channels": len(CLASS_NAMES),
        "spatial_shape": [1, len(CLASS_NAMES)], "dtype": "float32", "value_range": [0, 1], "is_patch_data": False,
        "channel_def": {str(i): n for i, n in enumerate(CLASS_NAMES)},
    }
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg, indent=2))
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    from monai.bundle import ConfigParser

    torch.manual_seed(0)
    torch.save(ConfigParser(cfg).get_parsed_content("network_def").state_dict(), bundle / "models" / "model.pt")
    return bundle
