"""Sliding-window speed and agreement: medst's VolumeInferer against MONAI's SlidingWindowInferer in float32.

Timing: UNETR at the paper's size (Hatamizadeh et al. 2022, https://arxiv.org/abs/2103.10497; MONAI UNETR with
feature_size 16, hidden 768, MLP 3072, 12 heads, img 96^3) over a 1x1x192x192x128 volume, roi 96^3, overlap 0.5,
one window per call, the same network and weights for every variant; medians of ``--runs`` runs after a warm-up.
Speed does not depend on the weights, so random ones are timed.

Agreement is judged on TRAINED weights: with ``--weights model.pt`` (a state dict for the timed network) on the
timed volume (or ``--image`` NIfTI), else on a smaller UNETR trained here for ``--train-seconds`` on a synthetic
sphere-segmentation task: labels agreement %, foreground Dice and the largest logit difference of each fast variant
against stock float32 (and the stock Dice against the ground truth, to show the training took).

Variants: stock MONAI in float32; the "one-liner" (MONAI's ``SlidingWindowInferer`` under ``torch.inference_mode``
and ``torch.autocast("cpu", torch.bfloat16)``); medst's default (``precision="auto"``, ``compile="auto"``: the
network's AOTInductor package from the compile cache, built here first with ``MEDST_COMPILE=sync`` when missing);
medst eager (``compile=False``); ``compile=True`` (torch.compile in the process); fp32. ``--cold-start`` also times a
second process from its start to the end of its first window (the package built, loaded from the cache).

    python benchmarks/bench_sliding_window.py            # paper size, 3 runs each (several minutes on 2 cores)
    python benchmarks/bench_sliding_window.py --quick    # small UNETR, small volume
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.networks.nets import UNETR

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OneLiner, machine_line, seconds_to_line, time_runs  # noqa: E402

from medst.inferers import VolumeInferer, resolve_precision  # noqa: E402

PAPER = dict(feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12)
SMALL = dict(feature_size=8, hidden_size=192, mlp_dim=768, num_heads=3)


def spheres(
    shape: tuple[int, ...], n: int, gen: torch.Generator, noise: float = 0.6
) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy volume with ``n`` bright balls of random centre and radius, and their mask: (1, 1, *shape) each."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in shape], indexing="ij"))
    mask = torch.zeros(shape, dtype=torch.bool)
    for _ in range(n):
        c = torch.rand(3, generator=gen) * torch.tensor(shape, dtype=torch.float32)
        r = 3 + torch.rand(1, generator=gen).item() * min(shape) / 5
        mask |= ((grid - c.view(3, 1, 1, 1)) ** 2).sum(0) < r * r
    img = mask.float() + noise * torch.randn(shape, generator=gen)
    return img[None, None], mask[None, None].long()


def train_small(roi: int, seconds: float, seed: int = 0) -> torch.nn.Module:
    """A small UNETR trained for ``seconds`` on random sphere patches (roi^3)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = UNETR(1, 2, img_size=roi, **SMALL)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    net.train()
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        batch = [spheres((roi,) * 3, 3, gen) for _ in range(2)]
        x, y = torch.cat([b[0] for b in batch]), torch.cat([b[1] for b in batch])
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    elapsed = time.perf_counter() - t0
    print(f"trained a small UNETR ({SMALL}) for {step} steps in {elapsed:.0f} s, last loss {loss.item():.3f}")
    return net.eval()


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return (2 * (a & b).sum() / (a.sum() + b.sum()).clamp(min=1)).item()


NAMES = {
    "oneliner": "MONAI + autocast one-liner",
    "auto": "medst default (AOT package)",
    "eager": "medst auto, compile=False",
    "compile": "medst auto+torch.compile",
    "fp32": "medst fp32",
}


def variants(roi: int, wanted: list[str]) -> dict[str, object]:
    common = dict(roi_size=roi, sw_batch_size=1, overlap=0.5, progress=False)
    make = {
        "oneliner": lambda: OneLiner(SlidingWindowInferer(roi_size=roi, sw_batch_size=1, overlap=0.5)),
        "auto": lambda: VolumeInferer(precision="auto", **common),
        "eager": lambda: VolumeInferer(precision="auto", compile=False, **common),
        "compile": lambda: VolumeInferer(precision="auto", compile=True, **common),
        "fp32": lambda: VolumeInferer(precision="fp32", **common),
    }
    return {NAMES[v]: make[v]() for v in wanted}


def warm_up(name: str, fn) -> float:
    """One call (two for the default: the first builds the package when the cache has none); the last's seconds."""
    for _ in range(2 if name == NAMES["auto"] else 1):
        t0 = time.perf_counter()
        fn()
    return time.perf_counter() - t0


COLD_MARKER = "FIRST-WINDOW-DONE"


def cold_child(args: argparse.Namespace) -> None:
    """A fresh process: the network, its weights, then one window through medst's default path."""
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(name)s: %(message)s")
    cfg = SMALL if args.quick else PAPER
    roi = 32 if args.quick else 96
    net = UNETR(1, 2, img_size=roi, **cfg).eval()
    net.load_state_dict(torch.load(args.cold_child, map_location="cpu", weights_only=True))
    VolumeInferer(roi_size=roi, sw_batch_size=1, overlap=0.5, progress=False)(torch.rand(1, 1, roi, roi, roi), net)
    print(COLD_MARKER, flush=True)


def cold_start(net: torch.nn.Module, args: argparse.Namespace) -> None:
    """A second process with the same weights: seconds from its start to the end of its first window."""
    weights = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_sw_weights_{os.getpid()}.pt"
    torch.save(net.state_dict(), weights)
    try:
        argv = [str(Path(__file__).resolve()), "--cold-child", str(weights)] + (["--quick"] if args.quick else [])
        seconds, log = seconds_to_line(argv, COLD_MARKER, env=dict(os.environ, MEDST_COMPILE="1"))
    finally:
        with contextlib.suppress(OSError):
            weights.unlink()
    loaded = [line for line in log.splitlines() if "loaded the compiled network" in line or "no compiled" in line]
    print(f"  second process, start to the end of its first window: {seconds:.1f} s ({'; '.join(loaded)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small UNETR (img 32) over 1x1x64x64x48, roi 32")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    p.add_argument("--weights", type=str, default=None, help="state dict for the timed network (trained weights)")
    p.add_argument("--image", type=str, default=None, help="NIfTI for the agreement check with --weights")
    p.add_argument("--train-seconds", type=float, default=None, help="training time of the small UNETR")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--skip-agreement", action="store_true")
    p.add_argument("--interleaved", action="store_true", help="time one run of every variant per round")
    p.add_argument("--variants", default="oneliner,auto,eager,fp32",
                   help="variants to time besides stock MONAI fp32: oneliner,auto,eager,compile,fp32")
    p.add_argument("--cold-start", action="store_true", help="time a second process to the end of its first window")
    p.add_argument("--cold-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cold_child:
        cold_child(args)
        return
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MEDST_COMPILE", "sync")  # the default variant is timed with its package built
    torch.manual_seed(0)

    roi = 32 if args.quick else 96
    size = (64, 64, 48) if args.quick else (192, 192, 128)
    cfg = SMALL if args.quick else PAPER
    print(machine_line())
    print(f"auto precision on this CPU: {resolve_precision('auto', 'cpu')}")
    net = UNETR(1, 2, img_size=roi, **cfg).eval()
    if args.weights:
        sd = torch.load(args.weights, map_location="cpu", weights_only=True)
        net.load_state_dict(sd.get("state_dict", sd) if isinstance(sd, dict) else sd)
    stock = SlidingWindowInferer(roi_size=roi, sw_batch_size=1, overlap=0.5)
    wanted = [v for v in args.variants.split(",") if v and not (args.no_compile and v == "compile")]
    fast = variants(roi, wanted)

    if not args.skip_timing:
        x = torch.rand(1, 1, *size)
        print(f"\nTIMING: UNETR {cfg}, img {roi}^3, input {tuple(x.shape)}, roi {roi}^3, overlap 0.5, sw_batch_size 1, "
              f"median of {args.runs} runs after 1 warm-up")

        def run_stock():
            with torch.no_grad():
                return stock(x, net)

        if args.interleaved:
            # one run of every variant per round, so that a shared machine's load changes hit them all alike
            fns = {"stock MONAI fp32 (no_grad)": run_stock}
            fns.update({k: (lambda inf=inf: inf(x, net)) for k, inf in fast.items()})
            for k, fn in fns.items():
                warm_up(k, fn)  # builds the default's package when the cache has none; compiles compile=True
            times = {k: [] for k in fns}
            for _ in range(args.runs):
                for k, fn in fns.items():
                    t0 = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t0)
            t_stock = statistics.median(times["stock MONAI fp32 (no_grad)"])
            t_one = statistics.median(times[NAMES["oneliner"]]) if NAMES["oneliner"] in times else None
            for k, ts in times.items():
                vs = f"   {t_one / statistics.median(ts):.2f}x the one-liner" if t_one else ""
                print(f"  {k:28s} {statistics.median(ts):7.2f} s   runs {[round(v, 2) for v in ts]}   "
                      f"speed-up {t_stock / statistics.median(ts):.2f}x{vs}", flush=True)
            if args.cold_start:
                cold_start(net, args)
            return
        t_stock, ts, _ = time_runs(run_stock, args.runs)
        print(f"  stock MONAI fp32 (no_grad)   {t_stock:7.2f} s   runs {[round(t, 2) for t in ts]}", flush=True)
        for name, inf in fast.items():
            first = warm_up(name, lambda inf=inf: inf(x, net))  # builds / compiles outside the timing
            t, ts, _ = time_runs(lambda inf=inf: inf(x, net), args.runs, warmup=0)
            print(f"  {name:28s} {t:7.2f} s   runs {[round(v, 2) for v in ts]}   speed-up {t_stock / t:.2f}x"
                  f"   (first call {first:.1f} s)", flush=True)

        if args.cold_start:
            cold_start(net, args)

    # ---------------- agreement on trained weights
    if args.skip_agreement:
        return
    if args.weights:
        anet, aroi = net, roi
        if args.image:
            import nibabel as nib

            arr = torch.as_tensor(nib.load(args.image).get_fdata(), dtype=torch.float32)
            arr = (arr - arr.mean()) / arr.std().clamp(min=1e-6)
            ax = arr[None, None]
        else:
            ax = torch.rand(1, 1, *size)
        truth = None
        print("\nAGREEMENT on the given weights")
    else:
        secs = args.train_seconds if args.train_seconds is not None else (30 if args.quick else 120)
        aroi = 32
        anet = train_small(aroi, secs)
        ax, truth = spheres((96, 96, 64), 12, torch.Generator().manual_seed(123))
        print(f"\nAGREEMENT on a trained small UNETR, spheres volume {tuple(ax.shape)}, roi {aroi}^3, overlap 0.5")
    with torch.no_grad():
        ref = SlidingWindowInferer(roi_size=aroi, sw_batch_size=1, overlap=0.5)(ax, anet)
    ref_lab = ref.argmax(1)
    if truth is not None:
        print(f"  stock fp32 Dice against the ground truth: {dice(ref_lab, truth[:, 0]):.4f}")
    for name, inf in variants(aroi, wanted).items():
        warm_up(name, lambda inf=inf: inf(ax, anet))
        y = inf(ax, anet)
        lab = y.argmax(1)
        agree = (lab == ref_lab).float().mean().item() * 100
        print(f"  {name:28s} agreement {agree:8.4f} %   Dice vs stock {dice(lab, ref_lab):.5f}   "
              f"max |logit diff| {(y - ref).abs().max().item():.4g}")
    print("\nThe machine is shared with other jobs: ratios were measured in one run, absolute times are noisy.")


if __name__ == "__main__":
    main()
