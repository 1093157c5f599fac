"""The ``medst`` command: a thin wrapper over :mod:`medst.api`.

::

    medst predict --bundle bundles/<name> scan.nii.gz more/ --output-dir out/ [--device cpu] [--precision bf16]
                  [--roi 96,96,96] [--overlap 0.5] [--sw-batch-size 2] [--overwrite] [--num-workers 2]
                  [--continue-on-error] [--set KEY=VALUE ...]
    medst list [--bundles-dir DIR]
    medst info BUNDLE [--json]

``medst predict`` runs the bundle's own inference workflow (``monai.bundle.ConfigWorkflow``), as
``python -m monai.bundle run`` does, through :func:`medst.load_bundle`. It prints the files written; for a
classification bundle a line per input (``input<TAB>class<TAB>probability``), then the CSV the bundle wrote (a row
per input, every class's probability).

An error prints its whole chain on stderr, medst's message (which names the file) first, then each cause
(``caused by: ...``), and exits non-zero (1: the command failed, 2: bad arguments, 130: interrupted by Ctrl-C or
SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _roi(text: str) -> list[int] | int:
    """``"96"`` -> 96 (every axis), ``"96,96,64"`` -> [96, 96, 64]."""
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--roi takes integers such as 96 or 96,96,64, got {text!r}") from None
    if not parts or any(p <= 0 for p in parts):
        raise argparse.ArgumentTypeError(f"--roi takes positive integers such as 96 or 96,96,64, got {text!r}")
    return parts[0] if len(parts) == 1 else parts


def _key_value(text: str) -> tuple[str, Any]:
    """``"overlay=true"`` -> ("overlay", True); ``"inferer#mode=constant"`` -> ("inferer#mode", "constant")."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The ``medst`` argument parser (sub-commands ``predict``, ``compile``, ``list``, ``info``)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="medst",
        description="Segment 3D scans, 4D scans and videos with MONAI bundles; outputs land in the input's space.",
    )
    parser.add_argument("--version", action="version", version=f"medst {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="{predict,compile,list,info}")
    sub.required = True

    p = sub.add_parser("predict", help="segment or classify files or folders with a bundle and write the outputs")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="scan or video files, or folders of them")
    p.add_argument("-b", "--bundle", required=True, help="bundle folder, or the name of one in bundles/")
    p.add_argument("-o", "--output-dir", required=True, help="where the outputs are written")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: cuda when available)")
    p.add_argument("--precision", choices=_PRECISIONS, default=None, help="inference precision (default: bundle's)")
    p.add_argument("--roi", type=_roi, default=None, help="sliding-window size: 96 or 96,96,64 (default: bundle's)")
    p.add_argument("--overlap", type=float, default=None, help="sliding-window overlap in [0, 1)")
    p.add_argument("--sw-batch-size", type=int, default=None, help="windows per network call")
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose output already exists")
    p.add_argument("--num-workers", type=int, default=0, help="data-loading workers (default 0)")
    p.add_argument("--config-file", default=None, help="inference config (default configs/inference.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--continue-on-error",
        action="store_true",
        help="log an input that fails and go on with the others (exit code 1 at the end if any failed)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="override a config id before parsing (VALUE read as JSON when it parses): --set overlay=true",
    )

    comp = sub.add_parser(
        "compile",
        help="build a volume bundle's compiled network now (otherwise built in the background after its first run)",
    )
    comp.add_argument("bundle", help="bundle folder, or the name of one in bundles/")
    comp.add_argument("--device", default=None, help="cuda, cpu... (default: cuda when available)")
    comp.add_argument("--precision", choices=_PRECISIONS, default=None, help="inference precision (default: bundle's)")
    comp.add_argument("--roi", type=_roi, default=None, help="sliding-window size (default: bundle's)")
    comp.add_argument("--sw-batch-size", type=int, default=None, help="windows per network call (default: bundle's)")

    ls = sub.add_parser("list", help="list the bundles and the registered networks")
    ls.add_argument("--bundles-dir", default=None, help="folder of bundles (default: the repository's bundles/)")

    info = sub.add_parser("info", help="a bundle's metadata: name, version, task, inputs, outputs, performance")
    info.add_argument("bundle", help="bundle folder, or the name of one in bundles/")
    info.add_argument("--json", action="store_true", help="print the metadata summary as JSON")
    return parser


def _predict(args: argparse.Namespace) -> int:
    from .api import load_bundle

    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    bundle = load_bundle(
        args.bundle,
        device=args.device,
        config_file=args.config_file,
        precision=args.precision,
        roi_size=args.roi,
        overlap=args.overlap,
        sw_batch_size=args.sw_batch_size,
        config_overrides=dict(args.set),
    )
    paths = bundle.predict(
        list(args.inputs),
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        num_workers=args.num_workers,
        return_predictions=bundle.is_classifier,
        progress=False if args.no_progress else None,
        on_error="skip" if args.continue_on_error else "raise",
    )
    if bundle.is_classifier:  # one line per input: the input, its class and that class's probability; then the CSV
        for c in paths:
            if c is not None:
                print(f"{c.input}\t{c.name}\t{c.probability:.4f}")
        for table in dict.fromkeys(c.csv for c in paths if c is not None and c.csv):
            print(table)
    else:
        for path in paths:
            for p in path if isinstance(path, list) else [path]:
                if p is not None:
                    print(p)
    if bundle.last_errors:
        failed = f"{len(bundle.last_errors)} of {len(paths)} input(s) failed"
        print(f"medst predict: error: {failed}:", file=sys.stderr)
        for name, message in bundle.last_errors.items():
            print(f"  {name}: {message}", file=sys.stderr)
        return 1
    return 0


def _compile(args: argparse.Namespace) -> int:
    from .api import load_bundle

    bundle = load_bundle(
        args.bundle, device=args.device, precision=args.precision, roi_size=args.roi, sw_batch_size=args.sw_batch_size
    )
    packages = bundle.compile()
    if not packages:
        print(f"medst compile: bundle {bundle.name} has no compiled package with these settings (it runs eagerly in "
              "float32, on CUDA, with compile=False, or after a failed build: see the warnings)", file=sys.stderr)
        return 1
    for p in packages:
        print(p)
    return 0


def _format_io(spec: dict[str, Any]) -> str:
    parts = []
    for key in ("type", "format", "modality", "num_channels", "spatial_shape", "dtype"):
        if key in spec:
            parts.append(f"{key}={spec[key]}")
    if "channel_def" in spec:
        parts.append("channels=" + ",".join(f"{k}:{v}" for k, v in spec["channel_def"].items()))
    return " ".join(parts)


def _info(args: argparse.Namespace) -> int:
    from .api import bundle_info

    info = bundle_info(args.bundle)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"name:        {info['name']}")
    print(f"version:     {info['version']}")
    print(f"task:        {info['task']}")
    if info.get("description"):
        print(f"description: {info['description']}")
    print(f"path:        {info['path']}")
    print(f"weights:     {info['weights'] or 'missing (models/model.pt)'}")
    for kind in ("inputs", "outputs"):
        for name, spec in (info[kind] or {}).items():
            print(f"{kind[:-1]:<12} {name}: {_format_io(spec) if isinstance(spec, dict) else spec}")
    if info["performance"]:
        for key, value in info["performance"].items():
            print(f"{key}: {json.dumps(value, default=str)}")
    else:
        print("performance: not listed")
    return 0


def _list(args: argparse.Namespace) -> int:
    from .api import bundle_info, default_bundles_dir, find_bundles

    root = args.bundles_dir or default_bundles_dir()
    bundles = find_bundles(root)
    print(f"bundles in {root}:" if bundles else f"bundles in {root}: none")
    for b in bundles:
        try:
            info = bundle_info(b)
            print(f"  {b.name:<28} {info['version'] or '':<8} {info['task'] or ''}")
        except (OSError, ValueError) as e:  # a half-written bundle: list it, say what is wrong
            print(f"  {b.name:<28} (unreadable: {e})")
    try:
        from .networks import list_networks
    except ImportError:
        return 0
    try:
        names = list_networks()
    except Exception as e:  # noqa: BLE001  (the registry is optional for this command)
        logger.warning("cannot list the registered networks: %s", e)
        return 0
    print(f"networks ({len(names)}):")
    for name in names:
        print(f"  {name}")
    return 0


def _messages(e: BaseException) -> list[str]:
    """The error's chain, outermost (medst's own message, naming the file) first, one line each."""
    from .bundle.runner import error_chain

    lines = error_chain(e)
    own = (str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)).strip().splitlines()
    if lines and own and "cannot find a suitable" not in own[0]:
        lines[0] = own[0]  # the outermost error's own message, without its type's name
    return lines


class _NoTraceback(logging.Filter):
    """Log records keep their message and lose their traceback (``-v`` keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_COMMANDS = {"predict": _predict, "compile": _compile, "list": _list, "info": _info}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``medst`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code instead of exiting."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("medst").setLevel(level)
    factory = logging.getLogRecordFactory()
    if not args.verbose:  # a bundle's handlers log a failure with its traceback; medst prints the chain instead
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())

        def no_traceback(*a, **kw):  # also for loggers with handlers of their own (MONAI's StatsHandler's)
            record = factory(*a, **kw)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            return record

        logging.setLogRecordFactory(no_traceback)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt as e:
        print(f"medst: interrupted{f' ({e})' if str(e) else ''}; temporary files removed", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ImportError) as e:
        if args.verbose:
            logger.exception("medst %s failed", args.command)
        first, *causes = _messages(e) or [type(e).__name__]
        print(f"medst {args.command}: error: {first}", file=sys.stderr)
        for cause in causes:
            print(f"  caused by: {cause}", file=sys.stderr)
        return 1
    finally:
        logging.setLogRecordFactory(factory)


if __name__ == "__main__":  # python -m medst.cli
    sys.exit(main())
