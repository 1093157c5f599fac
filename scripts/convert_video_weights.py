#!/usr/bin/env python
"""Convert a published video-ResNet checkpoint (torchvision or VMZ / IG-65M layout) to a medst weights file, once.

Download the published file yourself (``--list`` prints each name's address; nothing here downloads), then::

    python scripts/convert_video_weights.py r2plus1d_18-91a641e6.pth --name r2plus1d_18_kinetics400 -o r2p1d18.pt
    python scripts/convert_video_weights.py my_r3d.pth --network r3d_18 -o my_r3d.pt

and in Python: ``medst.networks.load_pretrained(net, "r2p1d18.pt")`` (any input-channel count, any class count).
The work is :func:`medst.networks.convert_checkpoint`; this file only reads the command line.
"""

from __future__ import annotations

import argparse
import json
import sys

from medst.networks import PUBLISHED_CHECKPOINTS, convert_checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", help="the published .pth file")
    p.add_argument("-o", "--output", help="the medst weights file to write")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--name", choices=sorted(PUBLISHED_CHECKPOINTS), help="the published checkpoint's name")
    g.add_argument("--network", help="a registered medst network name (for a checkpoint not in --list)")
    p.add_argument("--network-kwargs", type=json.loads, default=None,
                   help='JSON arguments of the network the checkpoint fits, e.g. \'{"widths": [32, 64, 128, 256]}\'')
    p.add_argument("--list", action="store_true", help="list the known checkpoints and their addresses")
    args = p.parse_args(argv)
    if args.list:
        for name, entry in sorted(PUBLISHED_CHECKPOINTS.items()):
            print(f"{name:40s} {entry['network']:12s} bn_eps={entry['bn_eps']:g}  {entry['url']}")
        return 0
    if not args.checkpoint or not args.output or not (args.name or args.network):
        p.error("give a checkpoint, -o/--output and --name or --network (or --list)")
    info = convert_checkpoint(args.checkpoint, args.output, name=args.name, network=args.network,
                              network_kwargs=args.network_kwargs)
    print(f"wrote {args.output}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
