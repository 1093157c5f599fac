"""A bundle's trained network on its own sample: medst's fast inference paths against MONAI's float32 sliding window.

Random weights make near-ties in the argmax, so the fast paths are judged here on trained weights: the bundle's
``network_def`` with ``models/model.pt``, its ``preprocessing`` applied to its default input (``datalist``), and
the bundle's own window settings (roi, overlap, blending). For a recurrent bundle (its inferer a
``StreamingInferer``) the reference is the same streaming inferer in float32, since MONAI has none. For each medst
variant it prints the share of voxels whose label agrees with stock float32, the foreground Dice between the two
label maps, the largest logit difference, and the median time of both (same process, interleaved rounds).

Variants (``--variants``): ``oneliner`` is MONAI's ``SlidingWindowInferer`` under ``torch.inference_mode`` and
``torch.autocast("cpu", torch.bfloat16)``; ``auto`` is the bundle's default path (``precision="auto"``,
``compile="auto"``: the network's AOTInductor package, built first here with ``MEDST_COMPILE=sync`` when the cache
has none); ``eager`` the same with ``compile=False``; ``compile`` is ``compile=True`` (torch.compile in the
process). ``--cold-start`` times a second process from its start to the end of its first window through the
bundle's inferer.

    python benchmarks/bench_bundle_agreement.py [--bundle bundles/brain_extraction_unetr] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.inferers import SlidingWindowInferer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OneLiner, machine_line, seconds_to_line  # noqa: E402

from medst.api import load_weights  # noqa: E402
from medst.inferers import AtlasPriorInferer, VolumeInferer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _labels(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(1)


COLD_MARKER = "FIRST-WINDOW-DONE"


def _bundle(path: str) -> tuple[Path, ConfigParser, torch.nn.Module]:
    bundle = Path(path).resolve()
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    net = parser.get_parsed_content("network_def").eval()
    net.load_state_dict(load_weights(bundle / "models" / "model.pt"))
    return bundle, parser, net


def _window_key(parser) -> str:
    """The config id of the sliding-window inferer: ``inferer``, or the ``window_inferer`` that a wrapper over it
    (``AtlasPriorInferer``, which appends the registered atlas mask as a channel) runs."""
    return "window_inferer" if "window_inferer" in parser.config else "inferer"


def cold_child(path: str) -> None:
    """A fresh process: the bundle's network and weights, then one window through the bundle's own inferer."""
    _, parser, net = _bundle(path)
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(name)s: %(message)s", force=True)
    key = _window_key(parser)
    roi = parser.get_parsed_content(f"{key}#roi_size")
    channels = parser.get("in_channels", 1)
    parser.get_parsed_content(key, lazy=False)(torch.rand(1, channels, *roi), net)
    print(COLD_MARKER, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=str(REPO / "bundles" / "brain_extraction_unetr"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--variants", default="fp32,auto",
                   help="medst precisions to compare: fp32,auto,bf16,eager,compile, and oneliner (MONAI + autocast)")
    p.add_argument("--cold-start", action="store_true", help="time a second process to the end of its first window")
    p.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cold_child:
        cold_child(args.bundle)
        return
    os.environ.setdefault("MEDST_COMPILE", "sync")  # the default variant is timed with its package built

    bundle, parser, net = _bundle(args.bundle)
    source = parser.get_parsed_content("datalist")[0]
    dataset = parser.get_parsed_content("dataset")
    if hasattr(dataset, "chunk_frames"):  # a chunked bundle (medst.data.ChunkDataset): the whole input as one chunk
        dataset.chunk_frames, dataset.data = 10**9, [{"image": source}]
        image = next(iter(dataset))["image"][None].as_tensor()
    else:
        image = parser.get_parsed_content("preprocessing")({"image": source})["image"][None]
        outer = parser.get_parsed_content("inferer", lazy=False)
        if isinstance(outer, AtlasPriorInferer):  # the windows' input: the scan and its registered atlas mask
            image = outer.widen(image, net)
        image = image.as_tensor()
    key = _window_key(parser)
    window = parser[key]
    def setting(name, default=None):  # the inferer's setting, references (``"@overlap"``) resolved
        return parser.get_parsed_content(f"{key}#{name}") if name in window else default

    roi, overlap, mode = setting("roi_size"), setting("overlap", 0.25), setting("mode", "constant")
    print(machine_line())
    print(f"bundle {bundle.name}, input {Path(str(source)).name} -> {tuple(image.shape)}, roi {roi}, overlap {overlap}")

    variants = {}
    if str(window.get("_target_", "")).endswith("StreamingInferer"):
        # a recurrent bundle: MONAI has no streaming inferer, so the reference is medst's own in float32
        for v in ["fp32"] + [v for v in args.variants.split(",") if v != "fp32"]:
            parser["inferer#precision"] = v
            parser["inferer#output"] = "logits"  # compared as logits, whatever the bundle asks for
            inferer = parser.get_parsed_content("inferer", lazy=False)
            variants["stock fp32" if v == "fp32" else f"medst {v}"] = lambda inferer=inferer: inferer(image, net)
    else:
        sw_batch = setting("sw_batch_size", 1)
        stock = SlidingWindowInferer(roi_size=roi, sw_batch_size=sw_batch, overlap=overlap, mode=mode)
        variants["stock fp32"] = lambda: stock(image, net)
        for v in args.variants.split(","):
            if v == "oneliner":
                one = OneLiner(SlidingWindowInferer(roi_size=roi, sw_batch_size=sw_batch, overlap=overlap, mode=mode))
                variants["MONAI+autocast"] = lambda one=one: one(image, net)
                continue
            kw = {"compile": True} if v == "compile" else {"compile": False} if v == "eager" else {}
            kw["precision"] = "auto" if v in ("compile", "eager") else v
            inferer = VolumeInferer(roi_size=roi, sw_batch_size=sw_batch, overlap=overlap, mode=mode, progress=False,
                                    **kw)
            variants[f"medst {v}"] = lambda inferer=inferer: inferer(image, net)

    outputs = {}
    with torch.inference_mode():
        for name, fn in variants.items():  # warm-up (and compile) outside the timing
            outputs[name] = fn().float()
            if name == "medst auto":  # the first call built the package when the cache had none: use it
                outputs[name] = fn().float()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, fn in variants.items():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)

    ref = outputs["stock fp32"]
    ref_labels = _labels(ref)
    t_ref = statistics.median(times["stock fp32"])
    t_one = statistics.median(times["MONAI+autocast"]) if "MONAI+autocast" in times else None
    print(f"medians of {args.runs} interleaved runs after a warm-up:")
    for name, out in outputs.items():
        labels = _labels(out)
        agree = (labels == ref_labels).float().mean().item()
        fg_a, fg_b = labels > 0, ref_labels > 0
        dice = (2 * (fg_a & fg_b).sum() / (fg_a.sum() + fg_b.sum()).clamp(min=1)).item()
        diff = (out - ref).abs().max().item()
        t = statistics.median(times[name])
        print(f"  {name:<14} {t:7.2f} s  speed-up {t_ref / t:4.2f}x  labels agree {100 * agree:8.4f}%  "
              f"foreground Dice {dice:.5f}  largest logit difference {diff:.2e}"
              + (f"  {t_one / t:4.2f}x the one-liner" if t_one else ""))
    if args.cold_start:
        argv = [str(Path(__file__).resolve()), "--bundle", str(bundle), "--cold-child"]
        seconds, log = seconds_to_line(argv, COLD_MARKER, env=dict(os.environ, MEDST_COMPILE="1"))
        said = [line for line in log.splitlines() if "medst.inferers.aot" in line]
        print(f"  second process, start to the end of its first window: {seconds:.1f} s ({'; '.join(said)})")


if __name__ == "__main__":
    main()
