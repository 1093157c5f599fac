"""Shared helpers of the inference benchmarks: timing medians, peak memory, subprocess isolation."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["time_runs", "peak_rss_gb", "run_isolated", "machine_line", "seconds_to_line", "OneLiner"]


def time_runs(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[float, list[float], Any]:
    """Median wall time of ``runs`` calls after ``warmup`` calls; returns (median, all times, last result)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def run_isolated(script: str, args: list[str]) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process; its last stdout line must be a JSON object."""
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class OneLiner:
    """What a MONAI user writes: a MONAI inferer under ``torch.inference_mode`` and CPU bfloat16 autocast."""

    def __init__(self, inferer: Callable) -> None:
        self.inferer = inferer

    def __call__(self, x: torch.Tensor, net: torch.nn.Module) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            return self.inferer(x, net).float()


def seconds_to_line(args: list[str], marker: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Start ``python *args`` and return the seconds until it prints a line starting with ``marker`` (a cold start
    measured from outside: interpreter, imports, loading), and everything it wrote to stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or dict(os.environ)
    )
    seconds = None
    for line in proc.stdout:
        if seconds is None and line.startswith(marker):
            seconds = time.perf_counter() - t0
    err = proc.stderr.read()
    if proc.wait() != 0 or seconds is None:
        raise RuntimeError(f"{args} failed or printed no {marker!r}:\n{err[-3000:]}")
    return seconds, err


def machine_line() -> str:
    """One line that says where the numbers come from."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads, "
        f"capability {torch.backends.cpu.get_cpu_capability()}), cuda={torch.cuda.is_available()}"
    )
