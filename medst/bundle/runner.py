"""What :func:`medst.load_bundle` adds around a bundle's own inference workflow (``monai.bundle.ConfigWorkflow``).

The bundle's config does the work: its preprocessing, inferer, postprocessing and writers run exactly as
``python -m monai.bundle run`` runs them. This module holds only what a bundle cannot know:

- :class:`OutputRecorder`, an ignite handler that records, for every input, the files the postprocessing wrote
  (every ``SaveImaged`` and any side output such as an overlay PNG), and the predictions, after each iteration;
- :class:`OutputManifest`, the record of finished inputs that lives in the output folder
  (``.medst-outputs.json``, rewritten atomically): an input counts as finished only when each of its recorded
  outputs exists, is a non-empty regular file and is not its input, and the input is unchanged since;
- temporary folders named ``.medst-tmp-<pid>-*``, removed at the end, on Ctrl-C and on SIGTERM, and swept by the
  next run when the process that made them was killed (:func:`sweep_stale_temporaries`);
- :func:`error_chain`, every message of an exception's chain, outermost first (MONAI wraps transform errors;
  ``SaveImage`` folds each writer's traceback into "cannot find a suitable writer": the real reason is dug out).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST_NAME",
    "TMP_PREFIX",
    "OutputManifest",
    "OutputRecorder",
    "error_chain",
    "make_temporary_dir",
    "sweep_stale_temporaries",
    "terminate_as_interrupt",
]

logger = logging.getLogger(__name__)

#: the record of finished inputs, in the output folder.
MANIFEST_NAME = ".medst-outputs.json"
#: prefix of medst's temporary folders: ``.medst-tmp-<pid>-<random>``.
TMP_PREFIX = ".medst-tmp-"
_TMP_PATTERN = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-")


# ---------------------------------------------------------------------------------------------- temporaries
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def sweep_stale_temporaries(folders: Sequence[str | os.PathLike | None]) -> list[Path]:
    """Remove ``.medst-tmp-<pid>-*`` entries in ``folders`` whose process no longer runs (a run killed by SIGKILL).

    Returns:
        the paths removed.
    """
    removed = []
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        try:
            entries = list(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            m = _TMP_PATTERN.match(entry.name)
            if m is None or _pid_alive(int(m.group(1))):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as e:  # another sweeper got there first, or no permission: leave it
                logger.debug("cannot remove %s: %s", entry, e)
                continue
            logger.info("removed %s, left behind by a run that was killed (pid %s)", entry, m.group(1))
            removed.append(entry)
    return removed


def make_temporary_dir(parent: str | os.PathLike | None = None) -> Path:
    """A new folder ``<parent>/.medst-tmp-<pid>-<random>`` (``parent`` default: the system's temporary folder)."""
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=parent))


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does, so that ``finally`` clauses clean up.

    Only in the main thread (elsewhere signals cannot be handled and the block runs unchanged).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"terminated (signal {signum})")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------- the manifest
def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class OutputManifest:
    """The finished inputs of one output folder: ``{input: {"outputs": [names relative to the folder], "input":
    [size, mtime_ns]}}`` in ``<folder>/.medst-outputs.json``, written atomically after each input.

    Several processes writing into one folder (the ranks of a ``multi_gpu_inference`` run) each keep their own file,
    ``.medst-outputs-<writer>.json``; every file is read, and a single-process run folds them into the main one.

    Args:
        folder: the output folder.
        writer: ``None`` for the main record; a name (``"rank0"``) for one of several concurrent writers.
    """

    def __init__(self, folder: str | os.PathLike, writer: str | None = None) -> None:
        self.folder = Path(folder)
        self.writer = writer
        self.path = self.folder / (MANIFEST_NAME if writer is None else f".medst-outputs-{writer}.json")
        self.entries: dict[str, dict[str, Any]] = {}
        self._own: set[str] = set()
        self._others = sorted(self.folder.glob(".medst-outputs-*.json")) if self.folder.is_dir() else []
        main = self.folder / MANIFEST_NAME
        for f in [main, *self._others]:
            if not f.is_file():
                continue
            try:
                data = json.loads(f.read_text())
                self.entries.update(dict(data.get("inputs", {})))
                if f == self.path:
                    self._own |= set(data.get("inputs", {}))
            except (OSError, ValueError, AttributeError) as e:
                logger.warning("%s is unreadable (%s): its inputs count as unfinished", f, e)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        entries = self.entries if self.writer is None else {k: self.entries[k] for k in self._own if k in self.entries}
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=".json", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "inputs": entries}, f, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.writer is None:  # the writers' records are in the main one now
            for f in self._others:
                with contextlib.suppress(OSError):
                    f.unlink()
            self._others = []

    def unfinished(self, data: Sequence[Any], key: str = "image") -> list[Any]:
        """The items of a datalist (paths, or dicts with the path under ``key``) whose input is not finished."""
        todo = []
        for d in data:
            path = os.path.abspath(d[key] if isinstance(d, dict) else d)
            if self.unfinished_reason(path, Path(path)) is not None:
                todo.append(d)
            else:
                logger.info("skip %s: its outputs are there", path)
        return todo

    def outputs(self, key: str) -> list[Path]:
        entry = self.entries.get(key) or {}
        return [self.folder / name for name in entry.get("outputs", [])]

    def all_outputs(self) -> set[Path]:
        """Every file that the manifest lists as an output (resolved), whatever its input."""
        return {(self.folder / n).resolve() for e in self.entries.values() for n in e.get("outputs", [])}

    def record(self, key: str, outputs: Sequence[Path], source: Path | None) -> None:
        names = []
        for p in outputs:
            try:
                names.append(str(Path(p).resolve().relative_to(self.folder.resolve())))
            except ValueError:
                names.append(str(Path(p).resolve()))
        self.entries[key] = {"outputs": names, "input": _stat_key(source) if source is not None else None,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._own.add(key)

    def forget(self, keys: Sequence[str]) -> None:
        """Mark inputs unfinished (before they are redone with ``overwrite``: a failed redo is then recognised)."""
        if any(k in self.entries for k in keys):
            for k in keys:
                self.entries.pop(k, None)
            self.save()

    def unfinished_reason(self, key: str, source: Path | None) -> str | None:
        """``None`` when ``key``'s outputs are all there; else why the input must be predicted (again)."""
        entry = self.entries.get(key)
        if not entry or not entry.get("outputs"):
            return "not predicted yet"
        if source is not None and entry.get("input") != _stat_key(source):
            return f"{source} changed since its outputs were written"
        for p in self.outputs(key):
            if p.is_symlink():
                return f"{p} is a link"
            if not p.is_file():
                return f"{p} is missing"
            if p.stat().st_size == 0:
                return f"{p} is empty"
            if source is not None and source.exists() and os.path.samefile(p, source):
                return f"{p} is the input itself"
        return None


# ---------------------------------------------------------------------------------------------- the handler
def _snapshot(folder: Path) -> dict[str, tuple]:
    """Visible files under ``folder`` (recursively), with what changes when a file is written again."""
    found: dict[str, tuple] = {}
    if not folder.is_dir():
        return found
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            p = os.path.join(root, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            found[p] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return found


class OutputRecorder:
    """Ignite handler for a bundle's inference evaluator: after each iteration (the postprocessing and its writers
    have run), records in ``manifest`` the files written for each input of the batch and keeps its prediction.

    Args:
        output_dir: the bundle's ``output_dir``.
        keys: for each entry of the datalist, in order, the manifest key of that input (its path, or a name for an
            array).
        sources: for each entry, the input file that it reads (for the manifest's change check); default: the keys.
        manifest: where finished inputs are recorded; ``None``: nothing recorded.
        keep_predictions: keep each input's ``pred`` (on the CPU) in :attr:`predictions`.
        pred_key: the key of the prediction in the evaluator's output.
        progress: a tqdm bar over the inputs.
        match_names: a file counts as an input's output only when its name starts with the input's (needed where
            other processes write into the same folder at the same time).
    """

    def __init__(self, output_dir, keys, sources=None, manifest=None, keep_predictions=True, pred_key="pred",
                 progress=False, match_names=False):
        self.output_dir = Path(output_dir)
        self.keys = [str(k) for k in keys]
        sources = self.keys if sources is None else sources
        self.sources = [Path(s) if s is not None else None for s in sources]
        self.match_names = match_names
        self.manifest = manifest
        self.keep_predictions = keep_predictions
        self.pred_key = pred_key
        self.progress = progress
        self.done = 0  #: inputs finished so far; the input being loaded or predicted is ``keys[done]``
        self.loading = False  #: whether the evaluator has started loading its first input
        self.predictions: dict[str, Any] = {}
        self.written: dict[str, list[Path]] = {}
        self._before: dict[str, tuple] = {}
        self._bar = None

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.GET_BATCH_STARTED, self.batch_started)
        engine.add_event_handler(Events.ITERATION_STARTED, self.iteration_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=len(self.keys), unit="input")
            engine.add_event_handler(Events.COMPLETED, lambda _: self._bar.close())

    #: predictions of an input read chunk by chunk are kept (joined along time) up to this size; a longer input's
    #: prediction is left to its output files, so that memory does not grow with its length
    max_chunked_prediction_bytes = 256 * 2**20

    def _keep_chunk(self, item: dict) -> None:
        chunks = self.__dict__.setdefault("_chunks", [])
        if not self.keep_predictions or chunks is None or self.pred_key not in item:
            return
        pred = item[self.pred_key]
        pred = pred.detach().cpu() if hasattr(pred, "detach") else pred
        chunks.append(pred)
        if sum(c.numel() * c.element_size() for c in chunks) > self.max_chunked_prediction_bytes:
            logger.info("%s: the prediction is longer than %d MB: not kept in memory (read its output files)",
                        self.current, self.max_chunked_prediction_bytes // 2**20)
            self._chunks = None

    def _joined_chunks(self, item: dict) -> dict:
        chunks, self._chunks = self.__dict__.get("_chunks"), []
        item = {k: v for k, v in item.items() if k != self.pred_key}
        if chunks:
            import torch
            from monai.data import MetaTensor

            joined = torch.cat([c.as_tensor() if isinstance(c, MetaTensor) else c for c in chunks], 1)
            first = chunks[0]
            item[self.pred_key] = MetaTensor(joined, meta=dict(first.meta)) if isinstance(first, MetaTensor) else joined
        return item

    @property
    def current(self) -> str | None:
        """The key of the input being loaded or predicted (``None`` when all are done)."""
        return self.keys[self.done] if self.done < len(self.keys) else None

    def batch_started(self, engine) -> None:  # noqa: ARG002
        self.loading = True

    def iteration_started(self, engine) -> None:  # noqa: ARG002
        self._before = _snapshot(self.output_dir)

    def iteration_completed(self, engine) -> None:
        after = _snapshot(self.output_dir)
        changed = sorted((p for p, s in after.items() if self._before.get(p) != s), key=lambda p: after[p][0])
        items = engine.state.output
        items = items if isinstance(items, list) else [items]
        position = _chunk_position(items)
        if position is not None:  # one chunk of an input (medst.data.ChunkDataset): done at its last chunk
            self._chunk_changed = [*getattr(self, "_chunk_changed", []), *changed]
            self._keep_chunk(items[0])
            if not position[1]:
                return
            changed, self._chunk_changed = list(dict.fromkeys(self._chunk_changed)), []
            items = [self._joined_chunks(items[0])]
        n = max(len(items), 1)
        batch_keys = self.keys[self.done : self.done + n]
        for j, key in enumerate(batch_keys):
            if n == 1 and not self.match_names:
                mine = changed
            else:  # several inputs per batch, or several writers: a file belongs to the input whose name it starts with
                stem = Path(key).name.split(".")[0]
                mine = [p for p in changed if Path(p).name.startswith((f"{stem}_", f"{stem}."))]
            self.written[key] = [Path(p) for p in mine]
            if self.keep_predictions and j < len(items) and isinstance(items[j], dict) and self.pred_key in items[j]:
                pred = items[j][self.pred_key]
                self.predictions[key] = pred.detach().cpu() if hasattr(pred, "detach") else pred
            if self.manifest is not None and mine:
                index = self.done + j
                self.manifest.record(key, self.written[key], self.sources[index])
        if self.manifest is not None:
            self.manifest.save()
        self.done += len(batch_keys)
        if self._bar is not None:
            self._bar.update(len(batch_keys))


def _chunk_position(items: list) -> tuple[int, bool] | None:
    """(chunk index, last chunk?) when the evaluator's output is one chunk of an input, else ``None``."""
    if len(items) != 1 or not isinstance(items[0], dict):
        return None
    for value in items[0].values():
        meta = getattr(value, "meta", None)
        if isinstance(meta, dict) and "chunk_index" in meta and "last_chunk" in meta:
            index, last = np.asarray(meta["chunk_index"]).reshape(-1)[0], np.asarray(meta["last_chunk"]).reshape(-1)[0]
            return int(index), bool(last)
    return None


# ---------------------------------------------------------------------------------------------- errors
_FOLDED = ("cannot find a suitable writer", "cannot find a suitable reader")
_MAX_LINE = 600


def _writer_reasons(message: str) -> list[str]:
    """The last line of each traceback that ``SaveImage`` (``LoadImage``) folded into its "cannot find a suitable
    writer (reader)" error."""
    reasons = []
    for block in message.split("Traceback (most recent call last):")[1:]:
        lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip()]
        # the exception line is the last one that is not part of a frame ("File ...", code, "^^^^")
        for ln in reversed(lines):
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", ln) or re.match(r"^[\w.]+: ", ln):
                if ln not in reasons:
                    reasons.append(ln)
                break
    return reasons


def _own_line(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    if any(f in text for f in _FOLDED):
        first = text.splitlines()[0]
        reasons = _writer_reasons(text)
        because = f" because: {'; '.join(reasons)}" if reasons else ""
        return f"{type(e).__name__}: {first}{because}"
    line = " ".join(text.split()) if text else ""  # the whole message on one line (MONAI's span several)
    if len(line) > _MAX_LINE:
        line = line[: _MAX_LINE - 3] + "..."
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def error_chain(e: BaseException) -> list[str]:
    """One line per exception in ``e``'s chain (``__cause__``, else an implicit ``__context__``), outermost first;
    a line that repeats an earlier one is left out, and a message over several lines is joined into one. MONAI's
    "cannot find a suitable writer" (and "reader") gets each writer's (reader's) reason appended (a read-only
    folder, a full disk, a refusal to overwrite the input, a corrupt file)."""
    lines: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        line = _own_line(cur)
        if line not in lines:
            lines.append(line)
        cur = cur.__cause__ if cur.__cause__ is not None else (None if cur.__suppress_context__ else cur.__context__)
    return lines
