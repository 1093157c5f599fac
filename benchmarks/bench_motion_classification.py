"""Accuracy of each video network family on the moving-digits motion task, beside a single-frame baseline and chance.

Every family is trained by the bundle's own ``configs/train.json`` (only ``network_def``, the clip length, the
epochs and the output folders are overridden) for about the same CPU time, and evaluated by its
``configs/evaluate.json`` on the test clips (digits no training clip shows), with several-clip averaging. The number
of epochs of a family is chosen from a timing of a few training iterations so that its training takes about
``--budget`` CPU seconds of this process (the cosine schedule then runs its full course). CPU time, not wall time,
is the budget: on a shared machine a process gets a varying share of the cores, and its CPU time is what the
network costs (``OMP_NUM_THREADS=1``: one core). Both are reported.

Usage (after ``python data_scripts/moving_digits_motion_classification.py --output-dir datasets/moving_digits_motion``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_motion_classification.py --out /tmp/motion_cls
    OMP_NUM_THREADS=1 python benchmarks/bench_motion_classification.py --out /tmp/motion_cls --families ir_csn r3d

Writes ``<out>/<family>/ckpt/model.pt``, ``<out>/<family>/eval/`` (metrics, confusion matrix) and
``<out>/results.json``; prints a Markdown table. ``--diagnose`` evaluates the trained families again, with one clip
instead of several (a single-frame network also on all 16 frames, their scores averaged), and on the test clips
played backwards (each motion's opposite is its time reversal: a network
that reads the motion's direction then answers the opposite class), into ``<out>/<family>/diag.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medst.bundle import run_workflow  # noqa: E402

BUNDLE = REPO / "bundles" / "moving_digits_motion_classification"

_VRN = {"_target_": "medst.networks.nets.VideoResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 8,
        "layers": [1, 1, 1, 1]}
#: family -> (network_def, clip_frames, num_clips, what it is)
FAMILIES: dict[str, tuple[dict, int, int, str]] = {
    "frame2d": ({"_target_": "medst.networks.nets.FramewiseClassifier", "spatial_dims": 3, "in_channels": 1,
                 "out_channels": 8, "frame_network": "dilated_classifier",
                 "frame_kwargs": {"channels": [16, 32, 64, 128], "dropout": 0.2}},
                1, 1, "single-frame baseline: 2D dilated CNN, the middle frame at test time"),
    "r3d": (dict(_VRN, conv_kinds=["3d"] * 4, stem="basic", widths=[16, 32, 64, 128]), 8, 3,
            "R3D (3x3x3 convs), basic blocks (1, 1, 1, 1)"),
    "mc3": (dict(_VRN, conv_kinds=["3d", "2d", "2d", "2d"], stem="basic", widths=[16, 32, 64, 128]), 8, 3,
            "MC3 (3D stage 1, 2D stages 2-4)"),
    "r2plus1d": (dict(_VRN, conv_kinds=["2plus1d"] * 4, stem="r2plus1d", widths=[16, 32, 64, 128]), 8, 3,
                 "R(2+1)D (factorised convs)"),
    "ir_csn": (dict(_VRN, block="bottleneck", conv_kinds=["ir"] * 4, stem="pool", widths=[8, 16, 32, 64]), 8, 3,
               "ir-CSN (bottleneck, depthwise 3x3x3)"),
    # h-cls-nets' clip classifiers at their small presets (registered names)
    "lrcn": ({"_target_": "medst.networks.create_network", "name": "lrcn_small", "in_channels": 1, "out_channels": 8},
             8, 3, "LRCN (Donahue 2015): a 2D CNN per frame, an LSTM"),
    # the small preset pools each frame's features globally, which keeps what a frame shows but not where: a 4x4 map
    # and a fully connected layer keep the position (LRCN's CaffeNet features are fc6, after a 6x6 map)
    "lrcn_4x4": ({"_target_": "medst.networks.create_network", "name": "lrcn_small", "in_channels": 1, "out_channels": 8,
                  "encoder_kwargs": {"pool_size": 4, "fc_channels": [128]}},
                 8, 3, "LRCN with 4x4 frame features and an fc layer (position kept)"),
    "r2plus1d_bert": ({"_target_": "medst.networks.create_network", "name": "r2plus1d_bert_small", "in_channels": 1,
                       "out_channels": 8}, 8, 3, "R(2+1)D-BERT (Kalfaoglu 2020): a BERT block instead of pooling"),
    "stam": ({"_target_": "medst.networks.create_network", "name": "stam_small", "in_channels": 1, "out_channels": 8,
              "img_size": 64, "num_frames": 8}, 8, 3, "STAM (Sharir 2021): a ViT per frame, a temporal transformer"),
    "two_stream": ({"_target_": "medst.networks.create_network", "name": "two_stream_fusion_small", "in_channels": 1,
                    "out_channels": 8, "flow_channels": 4}, 8, 3,
                   "two-stream fusion (Feichtenhofer 2016): frames + 2 stacked Farneback flows, 3D conv fusion"),
    "dilated3d": ({"_target_": "medst.networks.nets.DilatedClassifier", "spatial_dims": 3, "in_channels": 1,
                   "out_channels": 8, "channels": [16, 32, 64, 128], "dilations": [1, 2, 4, 2], "dropout": 0.2},
                  8, 3, "dilated 3D CNN (Wang 2019), the clip as a volume"),
}


#: Two-stream's input: the frames (scaled to [0, 1]) and L = 2 stacked optical flows
#: (OpenCV Farneback between consecutive frames) on the channel axis, (1 + 2L, T - L, H, W), computed once per video
#: before the clips are cut (a clip of 8 steps holds 8 frames and the flows after each).
def _load_transforms(name: str) -> list | None:
    if name != "two_stream":
        return None
    from monai.bundle import ConfigParser

    loads = ConfigParser.load_config_files(_configs("train"))["load_transforms"]
    flow = [{"_target_": "medst.transforms.OpticalFlowd", "keys": "image", "intensity_range": [0.0, 1.0]},
            {"_target_": "medst.transforms.StackFlowd", "keys": "image", "num_flows": 2},
            {"_target_": "DeleteItemsd", "keys": "image_flow"}]
    return [*loads[:-1], *flow, loads[-1]]  # after ScaleIntensityRanged, before EnsureTyped


def _configs(*names: str) -> list[str]:
    return [str(BUNDLE / "configs" / f"{n}.json") for n in names]


def seconds_per_iteration(network_def: dict, clip_frames: int, batch_size: int, runs: int = 4, in_channels: int = 1
                          ) -> float:
    """Median CPU seconds (this process) of one training step (forward, backward, AdamW) on a random batch of
    clips."""
    from monai.bundle import ConfigParser

    net = ConfigParser({"net": network_def}).get_parsed_content("net")
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.rand(batch_size, in_channels, clip_frames, 64, 64)
    y = torch.randint(0, 8, (batch_size,))
    times = []
    for _ in range(runs + 1):
        t = time.process_time()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.process_time() - t)
    return sorted(times[1:])[len(times[1:]) // 2]


def run_family(name: str, data: Path, out: Path, budget: float, batch_size: int, learning_rate: float | None = None
               ) -> dict:
    network_def, clip_frames, num_clips, what = FAMILIES[name]
    work = out / name
    num_train = len(json.loads((data / "dataset.json").read_text())["training"])
    per_iter = seconds_per_iteration(network_def, clip_frames, batch_size,
                                     in_channels=1 + int(network_def.get("flow_channels", 0)))
    iters_per_epoch = -(-num_train // batch_size)
    epochs = int(max(1, min(40, round(budget / (per_iter * iters_per_epoch)))))
    overrides = dict(bundle_root=str(BUNDLE), dataset_dir=str(data), ckpt_dir=str(work / "ckpt"),
                     output_dir=str(work / "eval"), network_def=network_def, clip_frames=clip_frames,
                     num_clips=num_clips, epochs=epochs, val_interval=epochs, batch_size=batch_size)
    if _load_transforms(name) is not None:
        overrides["load_transforms"] = _load_transforms(name)
    if learning_rate is not None:
        overrides["learning_rate"] = learning_rate
    print(f"{name}: {per_iter:.3f} CPU s/iteration -> {epochs} epochs", flush=True)
    t, c = time.perf_counter(), time.process_time()
    train = run_workflow(_configs("train"), "train", **overrides)
    train_s, train_cpu = time.perf_counter() - t, time.process_time() - c
    trainer = train.parser.get_parsed_content("train#trainer")
    net = train.parser.get_parsed_content("network_def")
    t, c = time.perf_counter(), time.process_time()
    # the training set is built (check_properties) but not needed: no caching
    evaluate = run_workflow(_configs("train", "evaluate"), "train", **overrides, **{"train#dataset#cache_rate": 0.0})
    eval_s, eval_cpu = time.perf_counter() - t, time.process_time() - c
    metrics = evaluate.parser.get_parsed_content("validate#evaluator").state.metrics
    result = {
        "family": name, "what": what, "params": sum(p.numel() for p in net.parameters()),
        "clip_frames": clip_frames, "num_clips": num_clips, "epochs": epochs, "cpu_seconds_per_iteration": per_iter,
        "train_seconds": train_s, "train_cpu_seconds": train_cpu, "eval_seconds": eval_s, "eval_cpu_seconds": eval_cpu,
        "train_accuracy": float(trainer.state.metrics.get("train_accuracy", float("nan"))),
        "test_accuracy": float(metrics["test_accuracy"]), "test_auc": float(metrics["test_auc"]),
        "weights_bytes": (work / "ckpt" / "model.pt").stat().st_size, "learning_rate": learning_rate,
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))
    return result


def diagnose(name: str, data: Path, out: Path) -> dict:
    """Test accuracy with one clip per video, and the share of time-reversed test clips given the opposite class."""
    import numpy as np
    from monai.bundle import ConfigParser

    network_def, clip_frames, num_clips, _ = FAMILIES[name]
    work = out / name
    base = dict(bundle_root=str(BUNDLE), dataset_dir=str(data), ckpt_dir=str(work / "ckpt"), network_def=network_def,
                clip_frames=clip_frames, num_clips=num_clips, **{"train#dataset#cache_rate": 0.0})
    loads = _load_transforms(name) or ConfigParser.load_config_files(_configs("train"))["load_transforms"]
    if _load_transforms(name) is not None:
        base["load_transforms"] = loads
    flip = {"_target_": "medst.transforms.RandTemporalFlipd", "keys": "image", "prob": 1.0}
    result = {}
    runs = [("one_clip", {"validate#inferer#num_clips": 1}), ("reversed", {"load_transforms": [*loads[:3], flip, *loads[3:]]})]
    if clip_frames == 1:  # the single-frame network on every frame, their scores averaged: order ignored
        runs.append(("all_frames", {"validate#inferer#num_clips": 16}))
    for tag, extra in runs:
        folder = work / f"eval_{tag}"
        wf = run_workflow(_configs("train", "evaluate"), "train", **{**base, **extra}, output_dir=str(folder))
        metrics = wf.parser.get_parsed_content("validate#evaluator").state.metrics
        counts = np.loadtxt(folder / "test_confusion_matrix.csv", delimiter=",", skiprows=1, usecols=range(1, 9))
        result[tag] = {"test_accuracy": float(metrics["test_accuracy"]),
                       "opposite_class": float(sum(counts[i, i ^ 1] for i in range(8)) / counts.sum())}
    (work / "diag.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "datasets" / "moving_digits_motion")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--budget", type=float, default=180.0, help="training CPU seconds per family (approximate)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: train.json's (2e-3)")
    parser.add_argument("--diagnose", action="store_true", help="only evaluate trained families again (see above)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.diagnose:
        for name in args.families:
            print(name, json.dumps(diagnose(name, args.data, args.out)), flush=True)
        return
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name in args.families:
        results[name] = run_family(name, args.data, args.out, args.budget, args.batch_size, args.learning_rate)
        results_file.write_text(json.dumps(results, indent=1))
        r = results[name]
        print(json.dumps(r), flush=True)
    num_test = len(json.loads((args.data / "dataset.json").read_text())["test"])
    print(f"\n{num_test} test clips; chance 1/8 = 0.125\n")
    print("| family | params | clip x clips | epochs | train CPU | train wall | test accuracy | test ROC AUC |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results.values():
        print(f"| {r['family']} | {r['params']:,} | {r['clip_frames']} x {r['num_clips']} | {r['epochs']} | "
              f"{r['train_cpu_seconds'] / 60:.1f} min | {r['train_seconds'] / 60:.1f} min | {r['test_accuracy']:.4f} | "
              f"{r['test_auc']:.4f} |")


if __name__ == "__main__":
    main()
