"""ConvLSTM / ConvGRU inference speed: medst's fused per-step path against the usual loop, like for like.

The usual loop (written inline below) is the ConvLSTM / ConvGRU most PyTorch code uses: at every time step,
concatenate the input frame and the hidden state and run ONE convolution for all the gates (the GRU: one for z and
r over ``[x, h]``, one for the candidate over ``[x, r.h]``), default memory format. medst's ConvRNN holds the same
single weight tensor (loaded here from the reference). Both run in the same precision:

- float32 against float32 (medst: ``optimize_for_inference(net, precision="fp32")``);
- bfloat16: the usual loop under ``torch.autocast("cpu", torch.bfloat16)`` (what a user gets in one line) against
  medst's ``precision="bf16"`` (bf16 convolutions, float32 cell state).

medst's fused path (``medst.networks.blocks.recurrent_cells``, taken without autograd on CPUs): oneDNN's
convolution called directly (``F.conv3d`` / ``F.conv2d`` give small batch-1 float32 inputs to PyTorch's slower
native kernel), channels-last (set by ``optimize_for_inference`` on CPUs), one preallocated ``[x, h]`` buffer per
step (no concatenation), one sigmoid over all gates (the candidate's weights doubled so that
``tanh(a) = 2 sigmoid(2a) - 1``), computed on a float32 copy of half-precision pre-activations so that the gate
maths never mixes dtypes, the LSTM's cell state updated in place in float32.

Then the path ``StreamingInferer`` runs (``--no-stream`` skips it): the recurrent segmentation bundles'
``RecurrentSegNet`` (``bundles/moving_digits_convlstm_segmentation``: 2D, channels 8/16/32, 64x64 frames, chunks
of 10; ``bundles/cardiac_phantom_convlstm4d_segmentation``: 3D, channels 16/32/64, 32^3 volumes, chunks of 6;
their trained weights when present, the cell set by ``--cell``) streamed through ``StreamingInferer`` with the
bundles' window settings and ``output="labels"``, with the recurrent layers on the usual loop
(``ConvRNN.set_fused(False)``: the cells' plain ``cat`` + one convolution per step) or on the fused path, in
float32 and in bfloat16 (``precision="bf16"``: the inferer autocasts the whole network). It reports the whole
call and the time spent inside the recurrent layers.

Every variant runs in interleaved rounds (the machine is shared: each round runs all variants, in a rotating
order), after a warm-up; medians over the rounds and ratios are printed, after checking the outputs: float32
equal to the usual loop (max abs diff <= 1e-5), bfloat16 within the stated tolerance of the float32 usual loop on
every frame.

    python benchmarks/bench_convlstm.py [--cell lstm|gru] [--rounds 5] [--threads N] [--frames 20] [--size 128]
        [--hidden 64] [--no-stream]

Measured: see README.md's performance table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402

from medst.inferers import StreamingInferer  # noqa: E402
from medst.networks import optimize_for_inference  # noqa: E402
from medst.networks.nets import ConvRNN, RecurrentSegNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class ReferenceConvLSTM(nn.Module):
    """The usual ConvLSTM: conv over cat([x_t, h]) -> i, f, o, g at every step, default memory format."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T, H, W)
        b, _, t, hh, ww = x.shape
        h = x.new_zeros(b, self.hidden, hh, ww)
        c = x.new_zeros(b, self.hidden, hh, ww)
        outs = []
        for i in range(t):
            gates = self.conv(torch.cat([x[:, :, i], h], dim=1))
            cc_i, cc_f, cc_o, cc_g = torch.split(gates, self.hidden, dim=1)
            c = torch.sigmoid(cc_f) * c + torch.sigmoid(cc_i) * torch.tanh(cc_g)
            h = torch.sigmoid(cc_o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=2)


class ReferenceConvGRU(nn.Module):
    """The usual ConvGRU: z, r from conv(cat([x_t, h])), n = tanh(conv(cat([x_t, r.h]))), one weight tensor."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 3 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T, H, W)
        b, _, t, hh, ww = x.shape
        hc = self.hidden
        h = x.new_zeros(b, hc, hh, ww)
        w, bias = self.conv.weight, self.conv.bias
        pad = self.conv.padding
        outs = []
        for i in range(t):
            xt = x[:, :, i]
            zr = torch.sigmoid(nn.functional.conv2d(torch.cat([xt, h], 1), w[: 2 * hc], bias[: 2 * hc], padding=pad))
            z, r = torch.split(zr, hc, dim=1)
            n = torch.tanh(nn.functional.conv2d(torch.cat([xt, r * h], 1), w[2 * hc :], bias[2 * hc :], padding=pad))
            h = (1 - z) * n + z * h
            outs.append(h)
        return torch.stack(outs, dim=2)


def _autocast_bf16() -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", torch.bfloat16)


def _interleaved(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for fn in variants.values():  # warm-up
        fn()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            variants[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def _per_frame(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Max abs difference per frame of (B, C, T, *spatial) tensors."""
    d = (a.float() - b.float()).abs().transpose(0, 2)
    return d.reshape(d.shape[0], -1).amax(1)


def bench_cell(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 1, args.frames, args.size, args.size)
    ref_cls = ReferenceConvLSTM if args.cell == "lstm" else ReferenceConvGRU
    ref = ref_cls(1, args.hidden).eval()

    def copy_of() -> ConvRNN:  # optimize_for_inference sets the cells' options in place: one instance per variant
        n = ConvRNN(2, 1, args.hidden, kernel_size=3, cell=args.cell)
        cell = n.layers[0].fwd.cell
        with torch.no_grad():  # the same weights: medst keeps the reference's fused layout
            cell.conv.weight.copy_(ref.conv.weight)
            cell.conv.bias.copy_(ref.conv.bias)
        return n

    net_fp32 = optimize_for_inference(copy_of(), precision="fp32")
    net_bf16 = optimize_for_inference(copy_of(), precision="bf16")

    def ref_bf16() -> torch.Tensor:
        with _autocast_bf16():
            return ref(x)

    variants = {
        "usual loop, fp32": lambda: ref(x),
        "medst fused, fp32": lambda: net_fp32(x),
        "usual loop under autocast bf16": ref_bf16,
        "medst fused, bf16": lambda: net_bf16(x),
    }
    print(f"\n== lone Conv{args.cell.upper()}: input 1x1x{args.frames}x{args.size}x{args.size}, "
          f"hidden {args.hidden}, 3x3")
    with torch.inference_mode():
        y_ref = ref(x)
        d32 = _per_frame(net_fp32(x), y_ref).max().item()
        pf_ref16 = _per_frame(ref_bf16(), y_ref)
        pf_16 = _per_frame(net_bf16(x), y_ref)
        print(f"check fp32: max abs diff {d32:.2e} (must be <= 1e-5): {'OK' if d32 <= 1e-5 else 'FAIL'}")
        for name, pf in (("usual loop under autocast", pf_ref16), ("medst bf16", pf_16)):
            print(f"check {name} against the fp32 usual loop: max abs diff per frame {pf.max().item():.2e} "
                  f"(tolerance {args.tol:g}): {'OK' if bool((pf <= args.tol).all()) else 'FAIL'}")
        times = _interleaved(variants, max(3, args.rounds))
    _report(times, [("fp32 / fp32", 0, 1), ("bf16 / bf16 under autocast", 2, 3), ("bf16 / the fp32 usual loop", 0, 3)])


def _report(
    times: dict[str, list[float]], ratios: list[tuple[str, int, int]], extra: dict[str, list[float]] | None = None
) -> None:
    names = list(times)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"medians over {len(times[names[0]])} rounds:")
    for n in names:
        more = f"   (recurrent layers {statistics.median(extra[n]) * 1e3:8.1f} ms)" if extra else ""
        print(f"  {n:48s} {med[n] * 1e3:9.1f} ms{more}")
    for label, a, b in ratios:
        na, nb = names[a], names[b]
        line = f"ratio {label}: {med[na] / med[nb]:.2f}x"
        if extra:
            line += f" whole call; recurrent layers {statistics.median(extra[na]) / statistics.median(extra[nb]):.2f}x"
        print(line)


class _RecurrentTimer:
    """Adds up the wall time spent in every ConvRNN.forward_frames call (RecurrentSegNet's recurrent layers)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._orig = ConvRNN.forward_frames

    def __enter__(self) -> _RecurrentTimer:
        orig, timer = self._orig, self

        def timed(net, x, state=None):
            t0 = time.perf_counter()
            try:
                return orig(net, x, state)
            finally:
                timer.total += time.perf_counter() - t0

        ConvRNN.forward_frames = timed
        return self

    def __exit__(self, *exc: object) -> None:
        ConvRNN.forward_frames = self._orig


STREAM_CASES = {
    "digits": dict(
        bundle="moving_digits_convlstm_segmentation",
        net=dict(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32)),
        shape=(1, 1, 40, 64, 64), roi=(64, 64), time_chunk=10, overlap=0.25,
    ),
    "cardiac": dict(
        bundle="cardiac_phantom_convlstm4d_segmentation",
        net=dict(spatial_dims=3, in_channels=1, out_channels=4, channels=(16, 32, 64)),
        shape=(1, 1, 12, 32, 32, 32), roi=(32, 32, 32), time_chunk=6, overlap=0.5,
    ),
}


def _stream_net(case: dict, cell: str) -> tuple[RecurrentSegNet, str]:
    torch.manual_seed(0)
    net = RecurrentSegNet(**case["net"], cell=cell).eval()
    ckpt = REPO / "bundles" / case["bundle"] / "models" / "model.pt"
    if cell == "lstm" and ckpt.is_file():
        try:
            sd = torch.load(ckpt, map_location="cpu", weights_only=True)
            net.load_state_dict(sd.get("state_dict", sd) if isinstance(sd, dict) else sd)
            return net, "trained weights"
        except (RuntimeError, KeyError) as e:  # another width: random weights time the same
            return net, f"random weights ({type(e).__name__})"
    return net, "random weights"


def bench_stream(args: argparse.Namespace) -> None:
    for name, case in STREAM_CASES.items():
        net, weights = _stream_net(case, args.cell)
        torch.manual_seed(1)
        x = torch.rand(case["shape"])
        print(f"\n== StreamingInferer, {name} bundle's RecurrentSegNet ({args.cell}, {weights}), input "
              f"{'x'.join(map(str, case['shape']))}, roi {case['roi']}, chunks of {case['time_chunk']} frames")

        def run(fused: bool, precision: str, output: str = "labels", net=net, case=case, x=x):
            for m in net.modules():
                if isinstance(m, ConvRNN):
                    m.set_fused(fused)
            inf = StreamingInferer(case["roi"], case["time_chunk"], overlap=case["overlap"], precision=precision,
                                   output=output, progress=False)
            return inf(x, net)

        logits = {(f, p): run(f, p, "logits") for f in (False, True) for p in ("fp32", "bf16")}
        d32 = _per_frame(logits[(True, "fp32")], logits[(False, "fp32")]).max().item()
        print(f"check fp32: logits max abs diff {d32:.2e} (must be <= 1e-4): {'OK' if d32 <= 1e-4 else 'FAIL'}")
        for f in (False, True):
            lab32, lab16 = logits[(False, "fp32")].argmax(1), logits[(f, "bf16")].argmax(1)
            agree = (lab32 == lab16).float().mean().item()
            d16 = _per_frame(logits[(f, "bf16")], logits[(False, "fp32")]).max().item()
            print(f"check bf16 {'fused' if f else 'usual loop'} against fp32 usual: labels agree on {agree:.4%}, "
                  f"logits max abs diff {d16:.2e}")
        variants = {}
        extra: dict[str, list[float]] = {}
        timer = _RecurrentTimer()
        for precision in ("fp32", "bf16"):
            for fused in (False, True):
                key = f"{'fused' if fused else 'usual loop'}, {precision}"

                def fn(fused=fused, precision=precision, key=key):
                    timer.total = 0.0
                    with timer:
                        run(fused, precision)
                    extra.setdefault(key, []).append(timer.total)

                variants[key] = fn
        times = _interleaved(variants, max(3, args.rounds))
        extra = {k: v[1:] for k, v in extra.items()}  # drop the warm-up
        _report(times, [("fp32 / fp32", 0, 1), ("bf16 / bf16 (both autocast)", 2, 3)], extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (>= 3), after one warm-up round")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--tol", type=float, default=5e-3, help="max abs difference allowed per frame in bfloat16")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-stream", action="store_true", help="skip the StreamingInferer cases")
    ap.add_argument("--no-cell", action="store_true", help="skip the lone cell")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(machine_line())
    if not args.no_cell:
        bench_cell(args)
    if not args.no_stream:
        bench_stream(args)


if __name__ == "__main__":
    main()
