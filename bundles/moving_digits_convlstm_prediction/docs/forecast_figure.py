"""Draw docs/forecast_test_0000.png: a test sequence's 10 input frames, the 10 true next frames, the 10 forecasts.

Run from the bundle folder after making the data (see the README):

    python docs/forecast_figure.py --dataset_dir ../../datasets/moving_digits_pred
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from medst.data import save_filmstrip_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_dir", required=True, type=Path)
    parser.add_argument("--index", type=int, default=0, help="which test sequence")
    parser.add_argument("--out", type=Path, default=Path("docs/forecast_test_0000.png"))
    args = parser.parse_args()
    item = json.loads((args.dataset_dir / "dataset.json").read_text())["test"][args.index]
    frames_in = np.load(args.dataset_dir / item["image"]).astype(np.float32) / 255.0
    frames_out = np.load(args.dataset_dir / item["label"]).astype(np.float32) / 255.0

    config = ConfigParser()
    config.read_config("configs/inference.json")  # the network and the inferer (test-time flips) of inference
    net = config.get_parsed_content("network_def")
    net.load_state_dict(torch.load("models/model.pt", map_location="cpu", weights_only=True))
    net.eval()
    inferer = config.get_parsed_content("inferer")
    with torch.no_grad():
        forecast = inferer(torch.from_numpy(frames_in)[None, None], net)[0, 0].clamp(0, 1).numpy()

    save_filmstrip_png([frames_in, frames_out, forecast], args.out)  # rows: input / truth / forecast
    print(f"wrote {args.out}: rows = input frames 1-10, true frames 11-20, forecast frames 11-20")


if __name__ == "__main__":
    main()
