"""Ahead-of-time compiled networks for sliding-window inference, built once per machine and kept on disk.

``torch.compile`` with inductor's weight freezing runs a UNETR's windows about twice as fast as eager bfloat16 on a
CPU, but it compiles for minutes in every new process. Here the compile is paid once per machine, network and
window shape: the network (under autocast, with its weights frozen into the graph) is exported with
:func:`torch.export.export` and compiled by AOTInductor (:func:`torch._inductor.aoti_compile_and_package`) into a
``.pt2`` package in a cache folder; a later process loads it with :func:`torch._inductor.aoti_load_package` in a
few seconds. The cache key holds everything the package depends on: the weights' bytes, the network's class and
``repr``, the window batch shape and layout, the autocast dtype, the torch version and the CPU's instruction set.

The first run of a network that has no package yet runs eagerly at once, logs that a compiled version is being
built, and after its volume exports the network and starts the compiler in a background process (its log lies
next to the package); the runs after it load the package. Inductor's own caches were measured as the other way
(FX-graph and AOT-autograd caches, ``TORCHINDUCTOR_CACHE_DIR``): a frozen graph bypasses the FX-graph cache, so a
second process still traced and lowered the network (54 s for a small UNETR against 5 s to load its package).

Settings (environment):

- ``MEDST_CACHE_DIR``: the cache folder (default ``~/.cache/medst``; packages in its ``compiled/`` folder);
- ``MEDST_COMPILE``: ``0`` (or ``off``) neither loads nor builds packages; ``sync`` builds in the foreground
  (after the first volume, blocking); ``always`` builds in the background without timing the package and uses it
  even where it measured slower; anything else (the default) builds in the background.

A new package is timed against the exported network run eagerly on the same window batch (three interleaved calls
each, in the build): where it is not at least 5 % faster on this machine, a ``.slower`` marker keeps later runs
eager (the brain bundle's small UNETR measured slower compiled than eager on the 2-core development CPU).

Every file is written under a temporary name and renamed into place, so a reader never sees half a package. A
package that fails to load is ignored with a warning (the run goes on eagerly) and marked ``.failed`` so that it is
not rebuilt on every run: delete the marker to try again.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["cache_dir", "compile_mode", "artifact_key", "AOTCompiled", "build_package", "load_package"]

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the package's contents or the key change meaning
_STALE_LOCK_S = 3 * 3600.0  # a build lock older than this is a crashed build's


def cache_dir() -> Path:
    """The folder of compiled packages: ``$MEDST_CACHE_DIR/compiled``, default ``~/.cache/medst/compiled``."""
    root = os.environ.get("MEDST_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "medst")
    return Path(root) / "compiled"


def compile_mode() -> str:
    """``"off"``, ``"sync"``, ``"always"`` or ``"background"``, from ``MEDST_COMPILE``."""
    value = os.environ.get("MEDST_COMPILE", "").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("sync", "always"):
        return value
    return "background"


def _cpu_signature() -> str:
    """The CPU's instruction set as torch sees it, and its feature flags (Linux)."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    return f"{torch.backends.cpu.get_cpu_capability()}|{platform.machine()}|{flags}"


def _weights_digest(module: torch.nn.Module) -> str:
    """A digest of the names, shapes, dtypes and bytes of every parameter and buffer."""
    h = hashlib.blake2b(digest_size=20)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=False).items():
            if not isinstance(t, torch.Tensor):  # a module's extra state
                h.update(f"{name}|{t!r}|".encode())
                continue
            h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
            t = t.detach().to("cpu").contiguous()
            if t.numel():
                h.update(t.view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def artifact_key(
    module: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None, channels_last: bool, device_type: str
) -> str:
    """The cache key of ``module`` compiled for windows of ``shape`` (batch included) under these settings."""
    parts = {
        "format": FORMAT,
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "repr": repr(module),
        "weights": _weights_digest(module),
        "shape": list(shape),
        "dtype": str(dtype),
        "channels_last": bool(channels_last),
        "device": device_type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": _cpu_signature(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class _Autocast(torch.nn.Module):
    """``network`` under autocast with float32 outputs: the graph that is exported and compiled."""

    def __init__(self, network: torch.nn.Module, dtype: torch.dtype | None, device_type: str) -> None:
        super().__init__()
        self.network = network
        self.dtype = dtype
        self.device_type = device_type

    def forward(self, x: torch.Tensor) -> Any:
        if self.dtype is None:
            return self.network(x)
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            out = self.network(x)
        return torch.utils._pytree.tree_map(
            lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out
        )


def _example(shape: tuple[int, ...], channels_last: bool, device: torch.device) -> torch.Tensor:
    x = torch.zeros(shape, device=device)
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(len(shape)) if channels_last else None
    return x.contiguous(memory_format=fmt) if fmt is not None else x


def _export(
    module: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None, channels_last: bool, device_type: str
) -> Any:
    """``torch.export`` of the network under autocast for windows of ``shape`` (outside inference mode)."""
    device = next(module.parameters()).device
    with torch.inference_mode(False), torch.no_grad():
        if any(t.is_inference() for t in [*module.parameters(), *module.buffers()]):
            # weights touched under inference mode (e.g. made channels-last there) cannot be traced: export a copy
            module = copy.deepcopy(module)
        return torch.export.export(_Autocast(module, dtype, device_type), (_example(shape, channels_last, device),))


def _compile_exported(program: Any, package: Path) -> Path:
    """AOTInductor with weight freezing (under ``no_grad``, which freezing needs); written atomically."""
    import torch._inductor.config as inductor_config

    tmp = package.with_name(f"{package.stem}.{os.getpid()}.tmp.pt2")
    try:
        with inductor_config.patch(freezing=True), torch.no_grad():
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        if compile_mode() != "always":
            _compare(program, tmp, package.with_suffix(".slower"))
        os.replace(tmp, package)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return package


def _compare(program: Any, path: Path, marker: Path, rounds: int = 3) -> None:
    """Time the exported program eagerly and the compiled package on the example window, interleaved; when the
    package is not faster on this machine, write ``marker`` (JSON of both medians) so that runs stay eager."""
    import statistics

    try:
        x = program.example_inputs[0][0]
        eager, compiled = program.module(), torch._inductor.aoti_load_package(str(path))
        times: dict[str, list[float]] = {"eager_s": [], "compiled_s": []}
        with torch.inference_mode():
            eager(x), compiled(x)
            for _ in range(rounds):
                for name, fn in (("eager_s", eager), ("compiled_s", compiled)):
                    t0 = time.perf_counter()
                    fn(x)
                    times[name].append(time.perf_counter() - t0)
    except Exception as e:  # the comparison is advice: never lose the package for it
        logger.warning("could not time the compiled network against eager (%s: %s)", type(e).__name__, e)
        return
    medians = {k: round(statistics.median(v), 4) for k, v in times.items()}
    logger.info("one window batch: eager %.3f s, compiled %.3f s", medians["eager_s"], medians["compiled_s"])
    print(f"one window batch: eager {medians['eager_s']:.3f} s, compiled {medians['compiled_s']:.3f} s", flush=True)
    if medians["compiled_s"] >= 0.95 * medians["eager_s"]:
        _write_text(marker, json.dumps(medians) + "\n")


def build_package(
    module: torch.nn.Module,
    shape: tuple[int, ...],
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    device_type: str = "cpu",
    folder: Path | None = None,
) -> Path:
    """Compile ``module`` for windows of ``shape`` into the cache now (blocking) and return the package's path."""
    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = artifact_key(module, shape, dtype, channels_last, device_type)
    return _compile_exported(_export(module, shape, dtype, channels_last, device_type), folder / f"{key}.pt2")


def load_package(path: Path) -> Callable | None:
    """The compiled model in ``path``, or ``None`` with a warning (and a ``.failed`` marker) when it cannot load."""
    try:
        return torch._inductor.aoti_load_package(str(path))
    except Exception as e:  # a truncated, corrupt or foreign file: never fail the run for it
        logger.warning(
            "ignoring the compiled network %s, which does not load (%s: %s); running eagerly. Delete %s to rebuild it.",
            path, type(e).__name__, str(e).splitlines()[0] if str(e) else "", path.with_suffix(".failed"),
        )
        _write_text(path.with_suffix(".failed"), f"load failed: {type(e).__name__}: {e}\n")
        return None


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(text)
        os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_held(lock: Path) -> bool:
    """Whether ``lock`` belongs to a build that is still running (its process alive, the lock not hours old)."""
    try:
        text = lock.read_text().strip()
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    try:
        pid = int(text or 0)
    except ValueError:
        pid = 0
    if not pid:
        return age < 60  # being written right now
    return _pid_alive(pid) and age < _STALE_LOCK_S


def _take_lock(lock: Path) -> bool:
    """Create ``lock`` exclusively; the lock of a dead or hours-old build is taken over."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _lock_held(lock):
                return False
            with contextlib.suppress(OSError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


class AOTCompiled:
    """The compiled package of one network for one window shape: loaded, or built when missing.

    ``get()`` returns the compiled callable when the cache has a loadable package, else ``None`` (run eagerly); in
    that case ``build()``, called once the eager run is over, exports the network and compiles it (in a background
    process unless ``MEDST_COMPILE=sync``) so that later runs find it.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        shape: tuple[int, ...],
        dtype: torch.dtype | None,
        channels_last: bool,
        device_type: str,
    ) -> None:
        self._module = weakref.ref(module)  # held weakly: this object is a value of a weak dict keyed by module
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.channels_last = channels_last
        self.device_type = device_type
        self.folder = cache_dir()
        self.key = artifact_key(module, self.shape, dtype, channels_last, device_type)
        self.package = self.folder / f"{self.key}.pt2"
        self.failed = self.package.with_suffix(".failed")
        self.slower = self.package.with_suffix(".slower")
        self.lock = self.package.with_suffix(".building")
        self.log = self.package.with_suffix(".log")
        self.compiled: Callable | None = None
        self.pending = False
        self.checked = False

    def get(self) -> Callable | None:
        """The compiled callable, or ``None``: run eagerly. The cache is looked at once per volume."""
        if self.checked:
            return self.compiled
        self.checked = True
        if self.failed.exists():
            logger.info("compiled network %s marked failed (%s): running eagerly", self.key, self.failed)
            return None
        if self.slower.exists() and compile_mode() != "always":
            logger.info(
                "the compiled network for windows %s measured no faster than eager on this machine when it was built "
                "(%s): running eagerly (MEDST_COMPILE=always uses it anyway)", self.shape, self.slower,
            )
            return None
        if self.package.exists():
            t0 = time.perf_counter()
            self.compiled = load_package(self.package)
            if self.compiled is not None:
                logger.info(
                    "loaded the compiled network for windows %s from %s in %.1f s",
                    self.shape, self.package, time.perf_counter() - t0,
                )
            return self.compiled
        if _lock_held(self.lock):
            logger.info(
                "a compiled version of this network for windows %s is being built (%s, log %s): running eagerly",
                self.shape, self.lock, self.log,
            )
            return None
        self.pending = True
        where = "in the foreground" if compile_mode() == "sync" else "in the background"
        logger.warning(
            "no compiled version of this network for windows %s yet: running eagerly now; after this volume it is "
            "compiled into %s (%s, minutes for a large network), and later runs load it (`medst compile BUNDLE` "
            "builds it beforehand; MEDST_COMPILE=0 turns this off).", self.shape, self.package, where,
        )
        return None

    def drop(self, error: BaseException) -> None:
        """Forget a package whose call failed: warn, mark it failed, run eagerly from now on."""
        logger.warning(
            "the compiled network %s failed (%s: %s); running eagerly. Delete %s to rebuild it.",
            self.package, type(error).__name__, error, self.failed,
        )
        _write_text(self.failed, f"call failed: {type(error).__name__}: {error}\n")
        self.compiled = None

    def build(self) -> None:
        """Export the network and compile it into the cache (once; in the background unless ``MEDST_COMPILE=sync``).

        Called after each volume: without a package yet, the next volume looks at the cache again (a background
        build that has finished by then is used at once)."""
        if self.compiled is None:
            self.checked = False
        if not self.pending:
            return
        self.pending = False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            logger.warning("cannot create the compile cache %s (%s): not compiling", self.folder, e)
            return
        if not _take_lock(self.lock):
            return
        spawned = False
        try:
            t0 = time.perf_counter()
            module = self._module()
            if module is None:
                return
            try:
                program = _export(module, self.shape, self.dtype, self.channels_last, self.device_type)
            except Exception as e:
                logger.warning(
                    "this network does not export with torch.export (%s: %s): it runs eagerly; delete %s to retry.",
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "", self.failed,
                )
                _write_text(self.failed, f"export failed: {type(e).__name__}: {e}\n")
                return
            logger.info("exported the network in %.1f s", time.perf_counter() - t0)
            if compile_mode() == "sync":
                t0 = time.perf_counter()
                try:
                    _compile_exported(program, self.package)
                except Exception as e:
                    logger.warning("compiling the network failed (%s: %s); it runs eagerly", type(e).__name__, e)
                    _write_text(self.failed, f"compile failed: {type(e).__name__}: {e}\n")
                    return
                logger.info("compiled the network into %s in %.1f s", self.package, time.perf_counter() - t0)
                return
            program_path = self.package.with_name(f"{self.key}.{os.getpid()}.export.pt2")
            torch.export.save(program, str(program_path))
            self._spawn(program_path)
            spawned = True
        finally:
            if not spawned:
                with contextlib.suppress(OSError):
                    self.lock.unlink()

    def _spawn(self, program_path: Path) -> None:
        import medst

        env = dict(os.environ)
        root = str(Path(medst.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        with open(self.log, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "medst.inferers.aot", str(program_path), str(self.package)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        _write_text(self.lock, str(proc.pid))
        logger.warning(
            "compiling the network for windows %s in the background (pid %d, log %s); the next run uses %s",
            self.shape, proc.pid, self.log, self.package,
        )


# one AOTCompiled per network (weakly held) and (window shape, dtype, layout, device, weight versions)
_PACKAGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_for(
    module: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None, channels_last: bool, device_type: str
) -> AOTCompiled:
    """The :class:`AOTCompiled` of ``module`` for these settings, kept for the process's later volumes."""
    from medst.inferers.utils import _weights_key  # utils imports this module lazily

    cache = _PACKAGES.setdefault(module, {})
    key = (tuple(shape), dtype, bool(channels_last), device_type, _weights_key(module), str(cache_dir()))
    if key not in cache:
        cache[key] = AOTCompiled(module, shape, dtype, channels_last, device_type)
    return cache[key]


def _main(argv: list[str] | None = None) -> int:
    """The background build: ``python -m medst.inferers.aot EXPORTED.pt2 PACKAGE.pt2``."""
    argv = sys.argv[1:] if argv is None else argv
    program_path, package = Path(argv[0]), Path(argv[1])
    lock, failed = package.with_suffix(".building"), package.with_suffix(".failed")
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # yield the cores to the eager run that goes on in the foreground
    t0 = time.perf_counter()
    try:
        program = torch.export.load(str(program_path))
        _compile_exported(program, package)
        print(f"compiled {package} in {time.perf_counter() - t0:.1f} s", flush=True)
        return 0
    except Exception as e:
        print(f"compile failed after {time.perf_counter() - t0:.1f} s: {type(e).__name__}: {e}", flush=True)
        _write_text(failed, f"compile failed: {type(e).__name__}: {e}\n")
        return 1
    finally:
        for p in (program_path, lock):
            with contextlib.suppress(OSError):
                p.unlink()


if __name__ == "__main__":
    sys.exit(_main())
