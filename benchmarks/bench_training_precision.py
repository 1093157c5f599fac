"""Training-step speed inside MONAI's ``SupervisedTrainer``: float32, MONAI's ``amp=True``, a one-line
``torch.autocast``, and medst's ``AutocastInferer`` (the prediction bundle's ``train.json`` path).

Every variant is a real ``monai.engines.SupervisedTrainer.run()`` over the same small in-memory ``DataLoader``
(``--steps`` batches of ``--batch`` Moving-MNIST-sized sequences, 10 -> 10 frames of 64x64), the same loss (BCE on
the clamped prediction, as the bundle's) and ``AdamW``; an ignite handler times each iteration from
``ITERATION_STARTED`` to ``ITERATION_COMPLETED`` (forward, loss, backward, optimiser step; the batch fetch is
outside), in wall time and in this process's CPU time (steadier on a shared machine, especially with
``--threads 1``), and the first iteration of every run is dropped as warm-up. The variants:

- ``fp32``: ``SupervisedTrainer`` with MONAI's default ``SimpleInferer``: what a MONAI user gets on a CPU;
- ``amp``: the same with ``amp=True``. MONAI 1.6.1 (``monai/engines/trainer.py``) then runs the step under
  ``torch.autocast("cuda", **amp_kwargs)`` with a ``torch.cuda.amp.GradScaler``: on a CPU the CUDA autocast does not
  touch CPU tensors and the scaler disables itself, so this is float32 again (the script checks the dtype);
- ``autocast``: ``trainer.run()`` inside ``with torch.autocast("cpu", dtype=torch.bfloat16)``: the one line a MONAI
  user would add (forward and loss under CPU autocast);
- ``medst``: ``SupervisedTrainer(inferer=medst.inferers.AutocastInferer("auto"))`` as the bundles' ``train.json``
  name it: the forward pass in bfloat16 where the CPU computes it natively, float32 outputs to the loss.

Rounds are interleaved (the machine is shared) and the order rotates; the medians per iteration are printed with
their ratio to ``fp32``. The script also checks that the paths agree: the bf16 loss on one batch within 2% of the
float32 loss. ``--network cdna`` is ``MotionForecaster`` (CDNA), trained on the context frames too
(``return_context``, 19 predicted frames), as the prediction bundle's 0.4.0 is; the bundle's patch size is 8, this
benchmark keeps the 4x4 patches of its earlier measurements (``--patch 8`` for the bundle's).

    python benchmarks/bench_training_precision.py [--network cdna] [--rounds 5] [--steps 6] [--batch 4] [--threads N]

Measured figures are in the README's performance table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.engines import SupervisedTrainer, default_prepare_batch
from monai.inferers import SimpleInferer
from torch.utils.data import DataLoader

from medst.inferers import AutocastInferer
from medst.networks.nets import EncoderForecaster, MotionForecaster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402

VARIANTS = ("fp32", "amp", "autocast", "medst")


def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The prediction bundle's loss."""
    return F.binary_cross_entropy(pred.clamp(1e-5, 1.0 - 1e-5), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="iterations (batches) per trainer run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--patch", type=int, default=4)
    parser.add_argument("--network", choices=["encoder_forecaster", "cdna"], default="encoder_forecaster")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*GradScaler.*")  # MONAI's amp=True on a CPU-only torch
    warnings.filterwarnings("ignore", category=FutureWarning)

    cdna = args.network == "cdna"
    n = args.steps * args.batch
    torch.manual_seed(0)
    images = torch.rand(n, 1, 10, 64, 64).round_()
    labels = torch.rand(n, 1, 19 if cdna else 10, 64, 64).round_()  # CDNA: frames 2..20
    data = [{"image": images[i], "label": labels[i]} for i in range(n)]
    loader = DataLoader(data, batch_size=args.batch, shuffle=False, num_workers=0)

    def make_net() -> torch.nn.Module:
        torch.manual_seed(1)
        if cdna:
            return MotionForecaster(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=args.patch)
        return EncoderForecaster(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=args.patch,
                                 output_act="sigmoid")

    net_kwargs = {"return_context": True} if cdna else {}

    def prepare_batch(batchdata, device=None, non_blocking=False, **kwargs):
        """MONAI's default_prepare_batch, plus the network's keyword arguments (the stock inferer passes them)."""
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        return image, label, (), dict(net_kwargs)

    def trainer_of(variant: str, net: torch.nn.Module, opt: torch.optim.Optimizer) -> SupervisedTrainer:
        common = dict(device=torch.device("cpu"), max_epochs=1, train_data_loader=loader, network=net,
                      optimizer=opt, loss_function=loss_fn)
        if variant == "medst":  # as the bundle's train.json: AutocastInferer with the network's kwargs
            return SupervisedTrainer(inferer=AutocastInferer("auto", network_kwargs=net_kwargs), **common)
        return SupervisedTrainer(inferer=SimpleInferer(), prepare_batch=prepare_batch, amp=variant == "amp",
                                 **common)

    state = {v: (lambda net: (net, torch.optim.AdamW(net.parameters(), lr=1e-3)))(make_net()) for v in VARIANTS}
    pred_dtypes: dict[str, torch.dtype] = {}

    def run(variant: str) -> list[tuple[float, float]]:
        net, opt = state[variant]
        trainer = trainer_of(variant, net, opt)
        times: list[tuple[float, float]] = []
        start = [0.0, 0.0]

        @trainer.on("ITERATION_STARTED")
        def _tic(engine):
            start[:] = [time.perf_counter(), time.process_time()]

        @trainer.on("ITERATION_COMPLETED")
        def _toc(engine):
            times.append((time.perf_counter() - start[0], time.process_time() - start[1]))
            pred_dtypes[variant] = engine.state.output[0]["pred"].dtype if isinstance(
                engine.state.output, list) else engine.state.output["pred"].dtype

        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if variant == "autocast" else contextlib.nullcontext()
        with ctx:
            trainer.run()
        return times[1:]  # the first iteration of a run is warm-up

    # agreement: the loss of one batch, float32 against medst's bf16 path, same weights
    net = make_net()
    batch = next(iter(loader))
    with torch.no_grad():
        l32 = loss_fn(AutocastInferer("fp32", net_kwargs)(batch["image"], net), batch["label"]).item()
        l16 = loss_fn(AutocastInferer("auto", net_kwargs)(batch["image"], net), batch["label"]).item()
    rel = abs(l16 - l32) / l32
    print(machine_line())
    print(f"medst precision 'auto' here: {AutocastInferer('auto').dtype('cpu') or torch.float32}")
    print(f"loss on one batch: fp32 {l32:.5f}, auto {l16:.5f} (relative difference {rel:.2e}, tolerance 2e-2)")
    if rel > 2e-2:
        raise SystemExit("the bf16 loss differs from the float32 loss by more than 2%")

    for v in VARIANTS:  # warm-up run of each
        run(v)
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]
        for v in order:
            times[v] += run(v)
    wall = {v: [w for w, _ in t] for v, t in times.items()}
    cpu = {v: [c for _, c in t] for v, t in times.items()}
    med = {v: statistics.median(t) for v, t in wall.items()}
    med_cpu = {v: statistics.median(t) for v, t in cpu.items()}
    labels_ = {
        "fp32": "SupervisedTrainer, float32 (MONAI default on a CPU)",
        "amp": "SupervisedTrainer(amp=True) (CUDA autocast: no-op on CPU)",
        "autocast": "SupervisedTrainer under torch.autocast('cpu', bf16)",
        "medst": "SupervisedTrainer + medst AutocastInferer('auto')",
    }
    print(f"{args.network} (patch {args.patch}), batch {args.batch}, {args.rounds} rounds x {args.steps - 1} timed "
          f"iterations per variant, medians per iteration, wall time and this process's CPU time (ratio: fp32 / variant):")
    for v in VARIANTS:
        q1, _, q3 = statistics.quantiles(wall[v], n=4)
        print(f"  {labels_[v]:<56s} wall {med[v] * 1000:7.1f} ms {med['fp32'] / med[v]:.2f}x "
              f"(quartiles {q1 * 1000:.0f}-{q3 * 1000:.0f}), CPU {med_cpu[v] * 1000:7.1f} ms "
              f"{med_cpu['fp32'] / med_cpu[v]:.2f}x; prediction {str(pred_dtypes[v]).replace('torch.', '')}")


if __name__ == "__main__":
    main()
