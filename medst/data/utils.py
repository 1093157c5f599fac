"""Error classes and safe-writing helpers shared by medst's readers and writers.

Every reader or writer in medst reports bad input with an error that names the file and says what is wrong, and
every writer writes to a temporary file in the destination folder that is renamed into place only once it is
complete (:func:`atomic_write_path`), so that a failed write never leaves a partial file behind and never
replaces a good one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "MedstDataError",
    "CorruptFileError",
    "UnsupportedFormatError",
    "atomic_write_path",
    "check_not_input",
    "check_readable_file",
    "DeferredReadError",
]

logger = logging.getLogger(__name__)


class MedstDataError(ValueError):
    """Data that medst cannot use as it is: wrong number of axes, zero frames, mismatched shapes."""


class CorruptFileError(MedstDataError, OSError):
    """A file that exists but cannot be decoded (truncated, corrupt, not what its suffix says)."""


class UnsupportedFormatError(MedstDataError):
    """A suffix, codec or pixel layout that the reader or writer does not handle."""


class DeferredReadError:
    """What a medst reader's ``read`` returns for a file it could not read; its ``get_data`` raises ``error``.

    MONAI's ``LoadImage`` with a named reader catches every error of ``read`` and tries its other readers, then
    reports "cannot find a suitable reader" (or lets another reader read the file: a NIfTI given to a video
    bundle is read by NibabelReader with X as time). ``get_data`` is called outside that ``try``, so the user sees
    the reader's own error and the file.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"DeferredReadError({self.error!r})"


def check_readable_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking that it is an existing, non-empty file.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        PermissionError: the file cannot be read (permission denied), not reported as corrupt.
        CorruptFileError: the path is a folder or the file is empty.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise CorruptFileError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{p}: permission denied (cannot read the file)")
    if p.stat().st_size == 0:
        raise CorruptFileError(f"{p}: the file is empty (0 bytes)")
    return p


def check_not_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] | str | None) -> None:
    """Refuse to write ``path`` when it is one of the input files ``inputs``.

    Raises:
        MedstDataError: ``path`` resolves to the same file as one of ``inputs``.
    """
    if inputs is None:
        return
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    target = Path(path).expanduser().resolve()
    for src in inputs:
        if src is None or not isinstance(src, (str, os.PathLike)) or not str(src):
            continue
        s = Path(src).expanduser()
        same = s.resolve() == target
        if not same and s.exists() and target.exists():
            same = os.path.samefile(s, target)
        if same:
            raise MedstDataError(
                f"{target}: refusing to overwrite the input file; choose another output folder or postfix"
            )


def _new_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] | str | None = None
                      ) -> Iterator[Path]:
    """Context manager yielding a temporary path, in the folder of ``path``, that becomes ``path`` on success.

    The temporary name keeps the suffixes of ``path`` (``.nii.gz``, ``.mp4``) so that libraries choosing a format
    by suffix still see the right one. When the block raises, the temporary file is removed and ``path`` is left
    as it was; when it succeeds, the file is moved into place with :func:`os.replace` (atomic on one filesystem).

    Args:
        path: the final file name; its folder is created when missing.
        inputs: input file(s) that must not be overwritten (see :func:`check_not_input`).

    Example::

        with atomic_write_path("out/seg.nii.gz") as tmp:
            nib.save(img, tmp)
    """
    final = Path(path).expanduser()
    check_not_input(final, inputs)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes[-2:]) if final.name.endswith(".nii.gz") else final.suffix
    # named like the runner's temporaries, so that a run killed by SIGKILL has them swept by the next one
    fd, tmp_name = tempfile.mkstemp(prefix=f".medst-tmp-{os.getpid()}-{final.stem}.", suffix=f".part{suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise CorruptFileError(f"{final}: the writer produced no data")
        os.chmod(tmp, _new_file_mode())  # mkstemp makes files private (0600); outputs get the usual mode
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - best effort cleanup
            logger.warning("could not remove the temporary file %s", tmp)
        raise


def restore_io_tables(saved: dict, readers: dict, writers: dict) -> None:
    """Put back MONAI's reader and writer table entries saved before medst registered its own (``saved["readers"]``,
    ``saved["writers"]``: the previous value of each entry, ``None`` where there was none), then forget them."""
    for table, previous in ((readers, saved.get("readers", {})), (writers, saved.get("writers", {}))):
        for key, value in previous.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
    saved.clear()
