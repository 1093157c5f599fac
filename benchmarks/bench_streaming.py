"""Streaming a recurrent segmentation network over clips of growing length, against the whole clip at once.

``StreamingInferer`` walks time in chunks and carries each spatial tile's recurrent state, so the memory it needs
should stay flat as the clip grows. Clips of 1x1xTx256x256 for T = 100, 400, 1600 are generated block by block
(never held whole) and the uint8 label chunks go to a callback (as a writer would take them). The stock way, the
usual non-streaming inference, holds the whole clip and runs MONAI's ``SlidingWindowInferer`` over it with the same
tiles (``roi_size=(-1, 128, 128)``: all of time, 4 tiles of a frame in one call, no overlap) under
``torch.no_grad()``, then the argmax: in float32, and under the one-line ``torch.autocast("cpu", bfloat16)``.
Streaming runs in float32 and with ``precision="auto"``, so float32 is compared with float32 and bf16 with bf16.
Each (way, T) runs in its own subprocess so that the peaks do not mix; the stock way's subprocess has its address
space capped (``--cap-gb``, default 8) so that a clip that does not fit fails there with an allocation error rather
than pressing the shared machine. The labels of each stock run are compared with those of streaming in the same
precision (the recurrent state carried from chunk to chunk should give the whole clip's labels). The network is
medst's ``RecurrentSegNet`` (ConvLSTM, Shi et al. 2015, https://arxiv.org/abs/1506.04214) with small widths when it
is importable, else a local one-layer ConvLSTM.

    python benchmarks/bench_streaming.py [--quick] [--frames 100,400,1600] [--cap-gb 8] [--threads 2]

Measured figures are in the README's performance table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, peak_rss_gb, run_isolated  # noqa: E402

from medst.inferers import StreamingInferer  # noqa: E402


class LocalConvLSTM(nn.Module):
    """One ConvLSTM layer (fused gates) and a 1x1 head: the fall-back when RecurrentSegNet is absent."""

    supports_streaming = True

    def __init__(self, in_channels: int = 1, hidden: int = 16, out_channels: int = 2) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, 3, padding=1)
        self.head = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x, state=None, return_state=False):
        b, _, t, hh, ww = x.shape
        h, c = state if state is not None else (x.new_zeros(b, self.hidden, hh, ww),) * 2
        outs = []
        for i in range(t):
            ig, fg, og, gg = self.gates(torch.cat([x[:, :, i], h], 1)).chunk(4, 1)
            c = torch.sigmoid(fg) * c + torch.sigmoid(ig) * torch.tanh(gg)
            h = torch.sigmoid(og) * torch.tanh(c)
            outs.append(self.head(h))
        y = torch.stack(outs, 2)
        return (y, (h, c)) if return_state else y


def make_net() -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    try:
        from medst.networks.nets import RecurrentSegNet

        net = RecurrentSegNet(2, 1, 2, channels=(8, 16), cell="lstm").eval()
        return net, "RecurrentSegNet(2, 1, 2, channels=(8, 16), cell='lstm')"
    except ImportError:
        return LocalConvLSTM().eval(), "local ConvLSTM (1 layer, 16 hidden)"


def _clip_blocks(frames: int, size: int, block: int = 50):
    """The clip, 50 frames at a time, the same for every way (seeded)."""
    gen = torch.Generator().manual_seed(0)
    for t0 in range(0, frames, block):
        yield torch.rand(1, 1, min(block, frames - t0), size, size, generator=gen)


def child(way: str, frames: int, size: int, chunk: int, precision: str, labels_path: str, cap_gb: float,
          threads: int) -> None:
    torch.set_num_threads(threads)
    net, name = make_net()
    if way == "stock":
        from monai.inferers import SlidingWindowInferer

        cap = int(cap_gb * 1e9)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        inferer = SlidingWindowInferer(roi_size=(-1, size // 2, size // 2), sw_batch_size=4, overlap=0.0,
                                       progress=False)

        def infer(clip: torch.Tensor) -> torch.Tensor:
            amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            with torch.no_grad(), amp:
                return inferer(clip, net).argmax(1).to(torch.uint8)

        infer(torch.rand(1, 1, chunk, size, size))  # warm-up
        base = peak_rss_gb()
        t, c = time.perf_counter(), time.process_time()
        try:
            labels = infer(torch.cat(list(_clip_blocks(frames, size)), 2))
        except (RuntimeError, MemoryError) as e:  # the allocation that did not fit under the cap
            print(json.dumps(dict(failed=str(e).splitlines()[0][:160], peak_gb=peak_rss_gb(), base_gb=base, net=name)))
            return
        secs, cpu = time.perf_counter() - t, time.process_time() - c
        got = labels[0].numpy()
    else:
        out = open(labels_path, "wb")  # noqa: SIM115  (labels go to a file, as a writer's would: not held)

        def sink(labels: torch.Tensor, t0: int) -> None:
            count[0] += labels.shape[2]
            out.write(labels[0, 0].numpy().tobytes())

        count = [0]

        inf = StreamingInferer((size // 2, size // 2), time_chunk=chunk, overlap=0.0, sw_batch_size=4,
                               precision=precision, output="labels", callback=sink, progress=False)
        # warm-up on a few frames (allocator, oneDNN primitives), then the clip
        inf(torch.rand(1, 1, chunk, size, size), net)
        out.seek(0)
        out.truncate()
        count[0] = 0
        base = peak_rss_gb()
        t, c = time.perf_counter(), time.process_time()
        inf(_clip_blocks(frames, size), net)
        secs, cpu = time.perf_counter() - t, time.process_time() - c
        out.close()
        print(json.dumps(dict(frames=count[0], seconds=secs, cpu_seconds=cpu, peak_gb=peak_rss_gb(), base_gb=base,
                              net=name)))
        return
    if labels_path:
        got.tofile(labels_path)
    print(json.dumps(dict(frames=int(got.shape[0]), seconds=secs, cpu_seconds=cpu, peak_gb=peak_rss_gb(), base_gb=base, net=name)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="T = 20, 80 at 128x128")
    p.add_argument("--frames", default=None, help="comma-separated clip lengths")
    p.add_argument("--chunk", type=int, default=20, help="frames per network call")
    p.add_argument("--cap-gb", type=float, default=8.0, help="address-space cap of the stock way's subprocess")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each subprocess")
    p.add_argument("--ways", default="stream-fp32,stock-fp32,stream-auto,stock-bf16",
                   help="which of stream-fp32, stock-fp32, stream-auto, stock-bf16 to run, in this order")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--frames-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    p.add_argument("--labels", default="", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    size = args.size or (128 if args.quick else 256)
    if args.child is not None:
        child(args.child, args.frames_child, size, args.chunk, args.precision, args.labels, args.cap_gb, args.threads)
        return
    frames = [int(f) for f in (args.frames or ("20,80" if args.quick else "100,400,1600")).split(",")]
    print(machine_line())
    print(f"clips 1x1xTx{size}x{size}, tiles {size // 2}^2 (4 per frame, one call), streaming time_chunk {args.chunk}, "
          f"labels out; one subprocess per way and T, {args.threads} thread(s); stock capped at {args.cap_gb:g} GB of "
          "address space; ms/frame in wall time (this process's CPU time in brackets)")
    names = {"stream-fp32": ("stream", "fp32", "streaming, fp32"), "stock-fp32": ("stock", "fp32", "stock, fp32"),
             "stream-auto": ("stream", "auto", "streaming, precision auto"),
             "stock-bf16": ("stock", "bf16", "stock under torch.autocast bf16")}
    ways = [names[w] for w in args.ways.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for n in frames:
            streamed: dict[str, np.ndarray] = {}
            for way, precision, label in ways:
                path = str(Path(tmp) / f"{way}-{precision}-{n}.u8")
                r = run_isolated(__file__, ["--child", way, "--frames-child", str(n), "--size", str(size),
                                            "--chunk", str(args.chunk), "--precision", precision, "--labels", path,
                                            "--cap-gb", str(args.cap_gb), "--threads", str(args.threads)])
                if "failed" in r:
                    print(f"  T={n:5d} {label:<33s} out of memory under the cap (peak RSS {r['peak_gb']:.3f} GB): "
                          f"{r['failed']}", flush=True)
                    continue
                got = np.fromfile(path, np.uint8).reshape(-1, size, size)
                note = ""
                if way == "stream":
                    streamed["bf16" if precision == "auto" else precision] = got
                elif precision in streamed:
                    note = f", labels agree with streaming on {100 * float((got == streamed[precision]).mean()):.3f}%"
                print(f"  T={n:5d} {label:<33s} {1000 * r['seconds'] / r['frames']:7.1f} ms/frame "
                      f"(CPU {1000 * r['cpu_seconds'] / r['frames']:.1f}), peak RSS "
                      f"{r['peak_gb']:.3f} GB (after warm-up {r['base_gb']:.3f} GB){note}", flush=True)
    print(f"network: {make_net()[1]}")


if __name__ == "__main__":
    main()
