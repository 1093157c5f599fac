"""Videos file to file: peak memory against length, and end-to-end speed against the decoder and the network.

Issue 14's measurement. For each length, a grey H.264 .mp4 is made here by cycling the frames of the digits
bundle's sample clip (64x64), or, for ``--large``, the same clip scaled to 640x480. Then, each in its own process:

- ``e2e``: the moving-digits segmentation bundle, file to file (mask video + overlay video), run as a user runs it:
  ``medst predict`` (``--runner cli``, default) or ``python -m monai.bundle run`` (``--runner bundle``); its peak
  resident memory (``/usr/bin/time``-style, from ``getrusage`` of the child) and frames per second;
- ``decode``: PyAV's plain decode of the same file to grey uint8 arrays, nothing else (the stock way to read it),
  with frame threading (``thread_type = "AUTO"``) from 96x96 pixels and PyAV's default below, the faster setting
  at each size here (64x64: 1,802 frames/s with the default against 867 with frame threads; 640x480: 206 / 313);
- ``network``: the bundle's network and ``StreamingInferer`` alone on the same frames already in memory as
  float32 chunks (no decoding, no writing), on 2,000 frames (300 at 640x480), once per size, the median of three
  processes: a rate, which does not depend on the length.

- ``start-up``: the same e2e run on a clip of ``STARTUP_FRAMES`` frames of the same size, once per size: the
  fixed cost of a run (importing torch and MONAI, parsing the bundle, loading the weights, opening the files).

Printed: memory ratio of each length to the shortest, and e2e fps / the slower of (decode, network), twice: over
the whole wall time of the run, and over the run less its start-up (``(frames - STARTUP_FRAMES) / (seconds -
start-up seconds)``, the rate at which a long recording goes, and like for like with the decode and network rates,
which leave out their own imports and loading). Goals: memory at 20,000 frames at most 1.25x that of 2,000; e2e at
least 0.8 of the slower of the two.

    python benchmarks/bench_video_e2e.py [--frames 2000,20000,100000] [--large 300,3000] [--runner cli|bundle]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402

BUNDLE = REPO / "bundles" / "moving_digits_convlstm_segmentation"
STARTUP_FRAMES = 64


def make_video(path: Path, frames: int, size: tuple[int, int] | None) -> None:
    import av

    from medst.data import read_video

    clip = read_video(sorted((BUNDLE / "sample").glob("*.mp4"))[0], channels="grey")[0]
    if size is not None:
        import torch
        import torch.nn.functional as F

        clip = F.interpolate(torch.from_numpy(clip)[:, None].float(), size=size[::-1], mode="bilinear")
        clip = clip[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "18", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = clip.shape[2], clip.shape[1], "yuv420p"
        for t in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(clip[t % len(clip)], format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def child_decode(path: str) -> dict:
    import av

    t = time.perf_counter()
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        if s.codec_context.width * s.codec_context.height >= 96 * 96:  # frame threads pay only for larger frames
            s.thread_type = "AUTO"
        for f in c.decode(s):
            f.to_ndarray(format="gray")
            n += 1
    return {"frames": n, "seconds": time.perf_counter() - t}


def child_network(path: str, frames: int) -> dict:
    import torch
    from monai.bundle import ConfigParser

    from medst.data import iter_chunks

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser["bundle_root"] = str(BUNDLE)
    net = parser.get_parsed_content("network_def").eval()
    net.load_state_dict(torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True))
    inferer = parser.get_parsed_content("inferer")
    chunk_frames = int(parser["chunk_frames"])
    chunk = next(iter(iter_chunks(path, chunk_frames, channels="grey"))).as_tensor().float()[None] / 255.0
    t = time.perf_counter()
    done = 0
    while done < frames:  # the same chunk again and again: the network's rate, not the decoder's
        inferer(chunk[:, :, : min(chunk.shape[2], frames - done)], net)
        done += min(chunk.shape[2], frames - done)
    return {"frames": done, "seconds": time.perf_counter() - t}


def run_e2e(path: Path, out: Path, runner: str) -> dict:
    if runner == "cli":
        cmd = [str(Path(sys.executable).parent / "medst"), "-q", "predict", str(path), "-b", str(BUNDLE), "-o",
               str(out), "--no-progress"]
        cwd = REPO
    else:
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
               "--output_dir", str(out), "--datalist", f"['{path}']"]
        cwd = BUNDLE
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("this child's peak did not exceed an earlier child's: run each length in a fresh process")
    from medst.data import count_frames

    masks = sorted(out.glob("*_mask.mkv"))
    return {"seconds": seconds, "peak_gb": peak * 1024 / 1e9, "mask_frames": count_frames(masks[0]) if masks else 0}


def e2e_child(video: Path, out: Path, runner: str) -> dict:
    """The e2e run in a fresh process (getrusage of children is a running maximum: each e2e gets its own parent)."""
    e2e = subprocess.run([sys.executable, __file__, "--child-e2e", str(video), str(out), runner],
                         capture_output=True, text=True)
    if e2e.returncode != 0:
        raise RuntimeError(e2e.stderr[-3000:])
    return json.loads(e2e.stdout.strip().splitlines()[-1])


def startup_seconds(size: tuple[int, int] | None, runner: str, work: Path) -> float:
    """Wall time of an e2e run on a clip of STARTUP_FRAMES frames: the fixed cost of any run."""
    tag = f"startup_{'x'.join(map(str, size)) if size else '64'}"
    video = work / f"{tag}.mp4"
    make_video(video, STARTUP_FRAMES, size)
    seconds = e2e_child(video, work / f"out_{tag}", runner)["seconds"]
    video.unlink()
    return seconds


def child_rate(me: list[str], kind: str, video: Path, frames: int) -> float:
    p = subprocess.run([*me, f"--child-{kind}", str(video), str(frames)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["frames"] / r["seconds"]


def network_rate(size: tuple[int, int] | None, work: Path, frames: int, repeats: int = 3) -> float:
    """The network's frames per second on ``frames`` frames of this size: the median of ``repeats`` processes
    (the rate does not depend on the video's length; a short run is easily caught by other jobs' bursts)."""
    video = work / f"network_{'x'.join(map(str, size)) if size else '64'}.mp4"
    make_video(video, frames, size)
    rates = [child_rate([sys.executable, __file__], "network", video, frames) for _ in range(repeats)]
    video.unlink()
    return statistics.median(rates)


def measure(frames: int, size: tuple[int, int] | None, runner: str, work: Path, startup: float,
            network_fps: float) -> dict:
    tag = f"{frames}_{'x'.join(map(str, size)) if size else '64'}"
    video = work / f"clip_{tag}.mp4"
    make_video(video, frames, size)
    me = [sys.executable, __file__]
    res = {"frames": frames, "size": f"{size[0]}x{size[1]}" if size else "64x64", "startup_s": startup}
    res.update(e2e_child(video, work / f"out_{tag}", runner))
    res["decode_fps"] = child_rate(me, "decode", video, frames)
    res["network_fps"] = network_fps
    res["e2e_fps"] = frames / res["seconds"]
    res["e2e_over_slower"] = res["e2e_fps"] / min(res["decode_fps"], res["network_fps"])
    res["run_fps"] = (frames - STARTUP_FRAMES) / max(1e-9, res["seconds"] - startup)
    res["run_over_slower"] = res["run_fps"] / min(res["decode_fps"], res["network_fps"])
    video.unlink()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="2000,20000,100000")
    ap.add_argument("--large", default="300,3000", help="frame counts at 640x480 ('' for none)")
    ap.add_argument("--runner", choices=("cli", "bundle"), default="cli")
    ap.add_argument("--child-e2e", nargs=3)
    ap.add_argument("--child-decode", nargs=2)
    ap.add_argument("--child-network", nargs=2)
    a = ap.parse_args()
    if a.child_e2e:
        print(json.dumps(run_e2e(Path(a.child_e2e[0]), Path(a.child_e2e[1]), a.child_e2e[2])))
        return
    if a.child_decode:
        print(json.dumps(child_decode(a.child_decode[0])))
        return
    if a.child_network:
        print(json.dumps(child_network(a.child_network[0], int(a.child_network[1]))))
        return
    print(machine_line())
    print(f"runner: {a.runner}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    runs = [(int(f), None) for f in a.frames.split(",") if f] + [(int(f), (640, 480)) for f in a.large.split(",") if f]
    rows = []
    startups: dict = {}
    networks: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for frames, size in runs:
            if size not in startups:
                startups[size] = startup_seconds(size, a.runner, Path(tmp))
                networks[size] = network_rate(size, Path(tmp), 2000 if size is None else 300)
            r = measure(frames, size, a.runner, Path(tmp), startups[size], networks[size])
            rows.append(r)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
    print(f"{'size':>8} {'frames':>7} {'peak GB':>8} {'mem/first':>9} {'e2e fps':>8} {'decode fps':>10} "
          f"{'net fps':>8} {'e2e/slower':>10} {'start-up s':>10} {'run fps':>8} {'run/slower':>10} "
          f"{'mask frames':>11}")
    first: dict[str, float] = {}
    for r in rows:
        first.setdefault(r["size"], r["peak_gb"])
        print(f"{r['size']:>8} {r['frames']:>7} {r['peak_gb']:>8.3f} {r['peak_gb'] / first[r['size']]:>9.2f} "
              f"{r['e2e_fps']:>8.1f} {r['decode_fps']:>10.1f} {r['network_fps']:>8.1f} "
              f"{r['e2e_over_slower']:>10.2f} {r['startup_s']:>10.1f} {r['run_fps']:>8.1f} "
              f"{r['run_over_slower']:>10.2f} {r['mask_frames']:>11}")


if __name__ == "__main__":
    main()
