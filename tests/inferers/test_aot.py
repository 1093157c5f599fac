"""The ahead-of-time compiled packages of ``compile="auto"`` (medst.inferers.aot): built once, loaded by the next
process, ignored with a warning when corrupt, never written when opted out."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from medst.inferers import VolumeInferer, sliding_window_volume
from medst.inferers import aot
from medst.inferers.utils import autocast_dtype

ROOT = Path(__file__).resolve().parents[2]
NEEDS_BF16 = pytest.mark.skipif(
    autocast_dtype("auto", "cpu") is None, reason="no native bfloat16 on this CPU: precision='auto' is float32"
)

# the same small network in the test and in its subprocesses
NET = """
import torch

def make_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 3, 3, padding=1)
    ).eval()

def make_input():
    return torch.rand(1, 1, 20, 18, 16, generator=torch.Generator().manual_seed(1))
"""
ROI, BATCH = (12, 12, 12), 2


def _load_net_module(tmp_path: Path):
    (tmp_path / "tinynet.py").write_text(NET)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        import tinynet

        return importlib.reload(tinynet)
    finally:
        sys.path.remove(str(tmp_path))


def _infer(net, x, **kw):
    return sliding_window_volume(x, ROI, BATCH, net, overlap=0.5, progress=False, **kw)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDST_COMPILE", "1")
    return tmp_path / "cache" / "compiled"


def test_compile_mode_and_key(monkeypatch, tmp_path):
    for value, mode in (("0", "off"), ("off", "off"), ("sync", "sync"), ("always", "always"), ("1", "background"),
                        ("", "background")):
        monkeypatch.setenv("MEDST_COMPILE", value)
        assert aot.compile_mode() == mode
    monkeypatch.setenv("MEDST_CACHE_DIR", str(tmp_path))
    assert aot.cache_dir() == tmp_path / "compiled"
    tiny = _load_net_module(tmp_path)
    net = tiny.make_net()
    key = aot.artifact_key(net, (2, 1, 12, 12, 12), torch.bfloat16, True, "cpu")
    assert key == aot.artifact_key(tiny.make_net(), (2, 1, 12, 12, 12), torch.bfloat16, True, "cpu")
    assert key != aot.artifact_key(net, (1, 1, 12, 12, 12), torch.bfloat16, True, "cpu")  # window batch
    assert key != aot.artifact_key(net, (2, 1, 12, 12, 12), torch.float16, True, "cpu")  # dtype
    assert key != aot.artifact_key(net, (2, 1, 12, 12, 12), torch.bfloat16, False, "cpu")  # layout
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0, 0] += 1e-3
    assert key != aot.artifact_key(net, (2, 1, 12, 12, 12), torch.bfloat16, True, "cpu")  # weights


def test_opted_out_writes_nothing(cache, monkeypatch, tmp_path):
    tiny = _load_net_module(tmp_path)
    net, x = tiny.make_net(), tiny.make_input()
    monkeypatch.setenv("MEDST_COMPILE", "0")
    _infer(net, x)
    monkeypatch.setenv("MEDST_COMPILE", "sync")
    _infer(net, x, compile=False)  # off by the argument
    _infer(net, x, precision="fp32")  # float32 stays eager
    VolumeInferer(ROI, BATCH, overlap=0.5, progress=False, compile=False)(x, net)
    assert not cache.exists() or not any(cache.iterdir())
    with pytest.raises(ValueError, match="compile must be"):
        VolumeInferer(ROI, compile="yes")


@NEEDS_BF16
def test_corrupt_package_warns_and_runs_eagerly(cache, tmp_path, caplog):
    tiny = _load_net_module(tmp_path)
    net, x = tiny.make_net(), tiny.make_input()
    eager = _infer(net, x, compile=False)
    key = aot.artifact_key(net, (BATCH, 1, *ROI), torch.bfloat16, True, "cpu")
    cache.mkdir(parents=True)
    (cache / f"{key}.pt2").write_bytes(b"PK\x03\x04 not a package")
    with caplog.at_level(logging.WARNING, logger="medst.inferers.aot"):
        out = _infer(net, x)
    assert "does not load" in caplog.text
    torch.testing.assert_close(out, eager, rtol=0, atol=0)
    assert (cache / f"{key}.failed").exists()  # not rebuilt on every run
    assert not (cache / f"{key}.building").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medst.inferers.aot"):
        torch.testing.assert_close(_infer(net, x), eager, rtol=0, atol=0)
    assert "does not load" not in caplog.text and "no compiled version" not in caplog.text


@NEEDS_BF16
def test_network_that_does_not_export_runs_eagerly(cache, monkeypatch, caplog):
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(1, 2, 1)

        def forward(self, x):
            return self.conv(x) if x.sum().item() > 0 else -self.conv(x)

    monkeypatch.setenv("MEDST_COMPILE", "sync")
    net, x = DataDependent().eval(), torch.rand(1, 1, 16, 16, 16)
    with caplog.at_level(logging.WARNING, logger="medst.inferers.aot"):
        out = _infer(net, x)
    assert "does not export" in caplog.text
    torch.testing.assert_close(out, _infer(net, x, compile=False), rtol=0, atol=0)
    assert [p.suffix for p in cache.iterdir()] == [".failed"]


def _run(script: str, out: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow  # one AOTInductor compile of the tiny network: 40-80 s on 2 shared cores
@NEEDS_BF16
def test_second_process_loads_the_package_built_in_the_background(cache, tmp_path):
    tiny = _load_net_module(tmp_path)
    # "always": no timing against eager in the build (a tiny network may well run no faster compiled)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]), OMP_NUM_THREADS="1",
               MEDST_COMPILE="always")
    script = textwrap.dedent(
        """
        import logging, sys, time, torch
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from medst.inferers import sliding_window_volume
        from tinynet import make_input, make_net
        t0 = time.perf_counter()
        out = sliding_window_volume(make_input(), (12, 12, 12), 2, make_net(), overlap=0.5, progress=False)
        print(f"SECONDS {time.perf_counter() - t0:.2f}", file=sys.stderr)
        torch.save(out, sys.argv[1])
        """
    )
    first = _run(script, tmp_path / "first.pt", env)
    assert first.returncode == 0, first.stderr
    assert "no compiled version" in first.stderr and "in the background (pid" in first.stderr
    deadline = time.time() + 300  # the background build of the tiny network
    while time.time() < deadline and (list(cache.glob("*.building")) or not list(cache.glob("[0-9a-f]*[0-9a-f].pt2"))):
        time.sleep(1)
    logs = "".join(p.read_text() for p in cache.glob("*.log"))
    packages = [p for p in cache.glob("*.pt2") if ".tmp" not in p.name and ".export" not in p.name]
    assert len(packages) == 1, (logs, sorted(p.name for p in cache.iterdir()))
    assert not list(cache.glob("*.export.pt2")) and not list(cache.glob("*.failed")), logs

    second = _run(script, tmp_path / "second.pt", env)
    assert second.returncode == 0, second.stderr
    assert "loaded the compiled network" in second.stderr and "no compiled version" not in second.stderr
    net, x = tiny.make_net(), tiny.make_input()
    eager = _infer(net, x, compile=False)
    torch.testing.assert_close(torch.load(tmp_path / "first.pt"), eager, rtol=0, atol=0)  # the first ran eagerly
    compiled = torch.load(tmp_path / "second.pt")
    assert compiled.shape == eager.shape
    torch.testing.assert_close(compiled, eager, rtol=0.02, atol=0.02)  # bfloat16 both ways, fused differently


def test_a_dead_builds_lock_is_taken_over(tmp_path):
    lock = tmp_path / "k.building"
    assert aot._take_lock(lock) and lock.read_text() == str(os.getpid())
    assert aot._lock_held(lock) and not aot._take_lock(lock)  # this process is alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(str(dead.pid))
    assert not aot._lock_held(lock) and aot._take_lock(lock)


@NEEDS_BF16
def test_weights_stay_exportable_after_a_run_under_inference_mode(tmp_path, monkeypatch):
    # channels-last weights converted under inference mode became inference tensors: no export, no training after
    monkeypatch.setenv("MEDST_COMPILE", "0")
    tiny = _load_net_module(tmp_path)
    net, x = tiny.make_net(), tiny.make_input()
    with torch.inference_mode():
        _infer(net, x)
    assert not any(p.is_inference() for p in net.parameters())
    aot._export(net, (BATCH, 1, *ROI), torch.bfloat16, True, "cpu")
    net.train()
    net(x).sum().backward()
    assert net[0].weight.grad is not None


@NEEDS_BF16
def test_a_package_that_measured_slower_is_not_used(cache, tmp_path, monkeypatch, caplog):
    tiny = _load_net_module(tmp_path)
    net, x = tiny.make_net(), tiny.make_input()
    key = aot.artifact_key(net, (BATCH, 1, *ROI), torch.bfloat16, True, "cpu")
    cache.mkdir(parents=True)
    (cache / f"{key}.pt2").write_bytes(b"not loaded: the marker says eager is faster")
    (cache / f"{key}.slower").write_text('{"eager_s": 0.1, "compiled_s": 0.2}')
    with caplog.at_level(logging.INFO, logger="medst.inferers.aot"):
        out = _infer(net, x)
    assert "measured no faster than eager" in caplog.text and "does not load" not in caplog.text
    torch.testing.assert_close(out, _infer(net, x, compile=False), rtol=0, atol=0)
    monkeypatch.setenv("MEDST_COMPILE", "always")  # uses it anyway: here it does not load, so a warning and eager
    with caplog.at_level(logging.WARNING, logger="medst.inferers.aot"):
        _infer(net, x)
    assert "does not load" in caplog.text
