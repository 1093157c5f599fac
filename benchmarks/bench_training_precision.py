"""Training-step speed: float32 (MONAI's trainers on a CPU) against ``medst.inferers.AutocastInferer`` (bfloat16).

MONAI's ``SupervisedTrainer`` autocasts only on CUDA (``amp=True``), so on a CPU it trains in float32. Giving it
``medst.inferers.AutocastInferer("auto")`` as its inferer runs the forward pass in bfloat16 where the CPU computes
it natively (AVX512-BF16 / AMX); the loss and the optimiser stay float32. This script times one optimiser step
(forward, BCE loss, backward, AdamW) of a Moving-MNIST forecaster (10 -> 10 frames of 64x64, hidden (64, 64), 4x4
patches): ``--network encoder_forecaster`` (Shi 2015; the prediction bundle's network up to its 0.3.0) or
``--network cdna`` (``MotionForecaster``, trained on the context frames too, as the bundle's 0.4.0 is) both ways, in
interleaved rounds (the machine is shared), and prints the medians and their ratio. It also checks that the two
paths agree: the bf16 loss within 2% of the float32 loss on the same batch and weights.

    python benchmarks/bench_training_precision.py [--network cdna] [--rounds 7] [--steps 10] [--batch 4] [--threads N]

Measured 2026-11-25 on the 2-core AMD EPYC (AVX512-BF16; torch 2.13.0 CPU), quiet machine, 2 threads, batch 4, 7
rounds x 10 steps, encoder_forecaster, medians per step: float32 168.8 ms; AutocastInferer bf16 115.5 ms (0.68x the
time, 1.46x the speed); the losses on one batch differ by 7.6e-6 (relative). With one thread and batch 1 (one
round): 174.5 vs 92.8 ms. Measured 2026-11-26, same machine and settings, ``--network cdna`` (``MotionForecaster``,
19 predicted frames per sequence): float32 253.9 ms; bf16 186.4 ms (0.73x the time, 1.36x the speed); losses differ
by 1.3e-3 (relative). The prediction bundle trains this way (0.4.0: 20 epochs of 3000 sequences in 59 min).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from medst.inferers import AutocastInferer
from medst.networks.nets import EncoderForecaster, MotionForecaster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per timed run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--network", choices=["encoder_forecaster", "cdna"], default="encoder_forecaster")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 10, 64, 64).round_()
    if args.network == "cdna":
        net: torch.nn.Module = MotionForecaster(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=4)
        kwargs = {"network_kwargs": {"return_context": True}}
        y = torch.rand(args.batch, 1, 19, 64, 64).round_()  # frames 2..20
    else:
        net = EncoderForecaster(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=4, output_act="sigmoid")
        kwargs = {}
        y = torch.rand(args.batch, 1, 10, 64, 64).round_()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    inferers = {"fp32": AutocastInferer("fp32", **kwargs), "bf16": AutocastInferer("bf16", **kwargs)}

    def loss_of(name: str) -> torch.Tensor:
        return F.binary_cross_entropy(inferers[name](x, net).clamp(1e-5, 1 - 1e-5), y)

    with torch.no_grad():
        l32, l16 = loss_of("fp32").item(), loss_of("bf16").item()
    rel = abs(l16 - l32) / l32
    print(machine_line())
    print(f"loss on one batch: fp32 {l32:.5f}, bf16 {l16:.5f} (relative difference {rel:.2e}, tolerance 2e-2)")
    if rel > 2e-2:
        raise SystemExit("bf16 loss differs from fp32 by more than 2%")

    def run(name: str) -> float:
        t = time.perf_counter()
        for _ in range(args.steps):
            opt.zero_grad(set_to_none=True)
            loss_of(name).backward()
            opt.step()
        return (time.perf_counter() - t) / args.steps

    for name in inferers:  # warm-up
        run(name)
    times: dict[str, list[float]] = {name: [] for name in inferers}
    names = list(inferers)
    for r in range(args.rounds):
        for name in names[r % 2 :] + names[: r % 2]:
            times[name].append(run(name))
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"{args.network}, batch {args.batch}, {args.rounds} rounds x {args.steps} steps, medians per step:")
    print(f"  float32 (MONAI's trainer on a CPU): {med['fp32'] * 1000:.1f} ms")
    print(f"  AutocastInferer bf16:               {med['bf16'] * 1000:.1f} ms "
          f"({med['bf16'] / med['fp32']:.2f}x the time, {med['fp32'] / med['bf16']:.2f}x the speed)")


if __name__ == "__main__":
    main()
