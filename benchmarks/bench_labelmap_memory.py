"""Peak memory of a label map from a sliding window: medst's label-map stitching against MONAI's float32 stitching.

A 1x1x512x512x400 CT-sized volume, a small 14-class network (BTCV's 13 organs + background; 1x1x1 convolutions, so
that stitching, not the network, is measured), roi 96^3, overlap 0.25. Each way runs in its own subprocess, so
that their peaks do not mix; the peak resident memory (ru_maxrss) of each is printed with the input's share.

    stock: SlidingWindowInferer(...)(x, net).argmax(1)   -> a float32 (1, 14, 512, 512, 400) map, then labels
    medst: VolumeInferer(..., output="labels")(x, net)    -> a one-window band of float32 logits, uint8 labels

    python benchmarks/bench_labelmap_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, peak_rss_gb, run_isolated  # noqa: E402


def make_net(k: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 8, 1), torch.nn.ReLU(), torch.nn.Conv3d(8, k, 1)).eval()


def child(which: str, size: tuple[int, ...], k: int, roi: int, precision: str) -> None:
    torch.set_num_threads(2)
    net = make_net(k)
    x = torch.rand(1, 1, *size)
    base = peak_rss_gb()
    t = time.perf_counter()
    if which == "stock":
        from monai.inferers import SlidingWindowInferer

        with torch.no_grad():
            lab = SlidingWindowInferer(roi_size=roi, sw_batch_size=1, overlap=0.25)(x, net).argmax(1, keepdim=True)
    else:
        from medst.inferers import VolumeInferer

        inf = VolumeInferer(
            roi_size=roi, sw_batch_size=1, overlap=0.25, output="labels", precision=precision, progress=False
        )
        lab = inf(x, net)
    secs = time.perf_counter() - t
    checksum = int(lab.long().sum())
    print(json.dumps(dict(which=which, peak_gb=peak_rss_gb(), before_gb=base, seconds=secs, checksum=checksum)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1x1x256x256x200 instead of 1x1x512x512x400")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--classes", type=int, default=14)
    args = p.parse_args()
    size = (256, 256, 200) if args.quick else (512, 512, 400)
    roi = 96
    if args.child:
        child(args.child, size, args.classes, roi, "fp32")
        return
    print(machine_line())
    print(f"input 1x1x{size[0]}x{size[1]}x{size[2]} float32 ({torch.Size(size).numel() * 4 / 1e9:.2f} GB), "
          f"{args.classes} classes, roi {roi}^3, overlap 0.25, constant blending, fp32 network, own subprocess each")
    extra = ["--quick"] if args.quick else []
    res = {}
    for which in ("stock", "medst"):
        r = run_isolated(__file__, ["--child", which, "--classes", str(args.classes), *extra])
        res[which] = r
        print(f"  {which:6s} peak RSS {r['peak_gb']:6.2f} GB (before inference {r['before_gb']:.2f} GB), "
              f"{r['seconds']:.1f} s")
    same = res["stock"]["checksum"] == res["medst"]["checksum"]
    above = {k: res[k]["peak_gb"] - res[k]["before_gb"] for k in res}
    print(f"  peak ratio medst/stock {res['medst']['peak_gb'] / res['stock']['peak_gb']:.3f}; "
          f"above the pre-inference baseline: {above['medst'] / above['stock']:.3f}"
          f"; label checksums equal: {same}")


if __name__ == "__main__":
    main()
