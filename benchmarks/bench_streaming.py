"""Streaming a recurrent segmentation network over clips of growing length: time per frame and peak memory.

``StreamingInferer`` walks time in chunks and carries each spatial tile's recurrent state, so the memory it needs
should stay flat as the clip grows. Clips of 1x1xTx256x256 for T = 100, 400, 1600 are generated block by block
(never held whole) and the uint8 label chunks go to a callback (as a writer would take them); each T runs in its
own subprocess so that the peaks do not mix. The network is medst's ``RecurrentSegNet`` (ConvLSTM, Shi et al.
2015, https://arxiv.org/abs/1506.04214) with small widths when it is importable, else a local one-layer ConvLSTM.

    python benchmarks/bench_streaming.py [--quick] [--frames 100,400,1600]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def child(frames: int, size: int, chunk: int, precision: str) -> None:
    torch.set_num_threads(2)
    net, name = make_net()
    gen = torch.Generator().manual_seed(0)
    block = 50

    def blocks():
        for t0 in range(0, frames, block):
            yield torch.rand(1, 1, min(block, frames - t0), size, size, generator=gen)

    seen = {"frames": 0, "fg": 0}

    def sink(labels: torch.Tensor, t0: int) -> None:
        seen["frames"] += labels.shape[2]
        seen["fg"] += int(labels.sum())

    inf = StreamingInferer((size // 2, size // 2), time_chunk=chunk, overlap=0.0, sw_batch_size=4,
                           precision=precision, output="labels", callback=sink, progress=False)
    # warm-up on a few frames (allocator, oneDNN primitives), then the clip
    inf(torch.rand(1, 1, chunk, size, size), net)
    base = peak_rss_gb()
    t = time.perf_counter()
    inf(blocks(), net)
    secs = time.perf_counter() - t
    print(json.dumps(dict(frames=seen["frames"], seconds=secs, peak_gb=peak_rss_gb(), base_gb=base, net=name)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="T = 20, 80 at 128x128")
    p.add_argument("--frames", default=None, help="comma-separated clip lengths")
    p.add_argument("--chunk", type=int, default=20, help="frames per network call")
    p.add_argument("--precision", default="auto")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    size = args.size or (128 if args.quick else 256)
    if args.child is not None:
        child(args.child, size, args.chunk, args.precision)
        return
    frames = [int(f) for f in (args.frames or ("20,80" if args.quick else "100,400,1600")).split(",")]
    print(machine_line())
    print(f"clips 1x1xTx{size}x{size}, tiles {size // 2}^2 (4 per frame, one call), time_chunk {args.chunk}, "
          f"precision {args.precision}, labels to a callback, one subprocess per T")
    for n in frames:
        r = run_isolated(__file__, ["--child", str(n), "--size", str(size), "--chunk", str(args.chunk),
                                    "--precision", args.precision])
        print(f"  T={n:5d}: {1000 * r['seconds'] / r['frames']:7.1f} ms/frame, peak RSS {r['peak_gb']:.3f} GB "
              f"(after warm-up {r['base_gb']:.3f} GB)   [{r['net']}]", flush=True)


if __name__ == "__main__":
    main()
