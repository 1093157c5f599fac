"""Reading a 720p H.264 clip: ``LoadImage`` (uint8, medst's video reader) against a plain PyAV decode of it.

The clip (1280x720, H.264 yuv420p, 25 fps, a moving textured pattern with sensor-like grain, a few Mbit/s as a
camera writes; ``--grain 0``: smooth, under 1 Mbit/s, where decoding is so cheap that any copy shows) is written
here with PyAV, in a temporary folder. Each reader decodes the whole clip to RGB arrays; the median wall time of 3 runs (after one warm-up) is
reported as frames per second (the variants run interleaved, round by round):

- ``pyav``: ``av.open``, ``stream.thread_type = "AUTO"`` (the reader's setting), ``frame.to_ndarray("rgb24")``
  for every frame into a list: what a PyAV user writes to get the frames as arrays;
- ``pyav + stack``: the same, then ``np.stack`` into one (T, H, W, 3) array, as a volume needs;
- ``LoadImage uint8``: ``LoadImage(dtype=None, ensure_channel_first=True)`` after ``import medst`` (the reader is
  picked by content): a uint8 MetaTensor (3, T, H, W) with its metadata;
- ``LoadImage float32``: MONAI's default ``dtype=np.float32``, the conversion that a bundle makes when its
  ``LoadImaged`` does not say ``"dtype": null``; one run on the first ``--float32-frames`` frames (60 by default:
  the whole clip would need 3.3 GB as float32), compared by frames per second.

The goal (issue 14): ``LoadImage`` uint8 at >= 0.9 of the ``pyav`` rate.

    python benchmarks/bench_video_decode.py [--frames 300] [--runs 3] [--grain 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, time_runs  # noqa: E402


def make_clip(path: Path, frames: int, width: int = 1280, height: int = 720, grain: float = 5.0) -> None:
    """A moving sinusoidal texture with slow colour drift and sensor-like grain (``grain``: the noise's standard
    deviation in grey levels, new in every frame; 0: a smooth, very compressible clip), H.264 at crf 23."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "23", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            a = np.sin((x + 6 * t) / 23.0) * np.cos((y - 3 * t) / 31.0)
            rgb = np.stack([a * 90 + 120 + 30 * np.sin(t / 20), a * 70 + 110, 128 - a * 80], -1)
            if grain:
                rgb += rng.normal(0.0, grain, size=(height, width, 1)).astype(np.float32)
            f = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


def pyav_decode(path: Path, stack: bool = False):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        out = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    return np.stack(out) if stack else out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--grain", type=float, default=5.0, help="noise in the clip (0: smooth, very compressible)")
    ap.add_argument("--float32-frames", type=int, default=60,
                    help="frames of the clip that the float32 row decodes, once (0: skip; it needs 4 bytes a value)")
    args = ap.parse_args()

    import torch
    from monai.transforms import LoadImage

    import medst  # noqa: F401  (registers the video reader)

    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip_720p.mp4"
        t = time.perf_counter()
        make_clip(clip, args.frames, grain=args.grain)
        mbps = clip.stat().st_size * 8 / 1e6 / (args.frames / 25)
        print(f"clip: {args.frames} frames 1280x720 H.264 at 25 fps, grain {args.grain}, "
              f"{clip.stat().st_size / 1e6:.1f} MB ({mbps:.1f} Mbit/s), written in {time.perf_counter() - t:.1f} s")
        n = args.frames
        load_u8 = LoadImage(dtype=None, ensure_channel_first=True)

        def check_list(out):
            assert len(out) == n

        def check_u8(img):
            assert img.dtype == torch.uint8 and tuple(img.shape) == (3, n, 720, 1280), (img.dtype, img.shape)

        variants = {
            "pyav": (lambda: pyav_decode(clip), check_list),
            "pyav + stack": (lambda: pyav_decode(clip, stack=True), lambda a: a.shape[0] == n),
            "LoadImage uint8": (lambda: load_u8(clip), check_u8),
        }
        # interleaved: run r of every variant before run r + 1 of any, so that a change of load on a shared
        # machine hits all of them alike
        times: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(args.runs + 1):  # the first round is a warm-up
            for name, (fn, check) in variants.items():
                t = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t
                check(out)
                del out
                if r:
                    times[name].append(dt)
        rows = {name: statistics.median(ts) for name, ts in times.items()}
        for name, ts in times.items():
            print(f"{name}: runs {', '.join(f'{t:.3f}' for t in ts)} s")
        counts = {name: n for name in rows}
        if args.float32_frames:
            from medst.data import VideoReader

            m = min(n, args.float32_frames)
            load_f32 = LoadImage(reader=VideoReader(num_frames=m), ensure_channel_first=True)  # dtype float32
            rows["LoadImage float32"], _, img = time_runs(lambda: load_f32(clip), 1, warmup=0)
            assert img.dtype == torch.float32 and img.shape[1] == m
            counts["LoadImage float32"] = m
            del img
    print(f"{'reader':<20} {'frames':>6} {'median s':>9} {'frames/s':>9} {'vs pyav':>8} {'best s':>7} {'best vs pyav':>12}")
    base = n / rows["pyav"]
    best_base = n / min(times["pyav"])
    for name, sec in rows.items():
        fps = counts[name] / sec
        best = min(times[name]) if name in times else sec
        print(f"{name:<20} {counts[name]:>6} {sec:>9.3f} {fps:>9.1f} {fps / base:>8.2f} {best:>7.3f} "
              f"{counts[name] / best / best_base:>12.2f}")
    ratio = rows["pyav"] / rows["LoadImage uint8"]
    print(f"LoadImage uint8 / PyAV rate (medians): {ratio:.2f} (goal >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}); "
          f"best runs: {min(times['pyav']) / min(times['LoadImage uint8']):.2f}")


if __name__ == "__main__":
    main()
