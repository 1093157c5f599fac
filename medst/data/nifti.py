"""NIfTI reading and writing that keeps the time axis of 4D scans (pixdim[4], the time units).

Two problems of the stock MONAI 1.6 path for a 4D NIfTI, measured on nibabel's ``example4d.nii.gz``:

- ``NibabelReader`` calls ``correct_nifti_header_if_necessary``, which for a 4D file compares four zooms against
  ``affine_to_spacing(affine, r=4)`` (whose 4th "spacing" is the length of the translation column) and, when they
  differ, overwrites the header's zooms with it: pixdim[4] (the repetition time, 2000) becomes 123.37.
- ``NibabelWriter`` builds a fresh header from the affine: pixdim[4] is written as 1 and the units as unknown.

:class:`NiftiTimeReader` restores the time zooms after MONAI's correction and adds ``time_spacing`` (seconds)
and ``time_units`` to the metadata; :class:`NiftiTimeWriter` writes pixdim[4] and ``xyzt_units`` back and writes
atomically. Importing :mod:`medst` registers both for ``.nii`` / ``.nii.gz`` (unless ``MEDST_REGISTER_IO=0``;
:func:`medst.data.unregister_io` undoes it), in front of MONAI's own reader and writers, which stay registered
behind them (the ITK fallback included); 3D files behave exactly as with MONAI's own reader and writer. A
``.nii.gz`` is read through to its end first and its gzip CRC checked, so that a corrupt stream is an error, not
garbage.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import nibabel as nib
from nibabel.filebasedimages import ImageFileError
import numpy as np
from monai.data import NibabelReader, NibabelWriter
from monai.data.image_writer import ImageWriter
from monai.data.utils import correct_nifti_header_if_necessary, to_affine_nd
from monai.utils import convert_data_type

from .utils import (
    CorruptFileError,
    DeferredReadError,
    atomic_write_path,
    check_not_input,
    check_readable_file,
    restore_io_tables,
)

__all__ = [
    "NiftiTimeReader", "NiftiTimeWriter", "TIME_UNIT_SECONDS", "time_spacing_seconds", "save_nifti",
    "register_nifti_io", "unregister_nifti_io",
]

logger = logging.getLogger(__name__)

#: seconds per NIfTI time unit
TIME_UNIT_SECONDS: dict[str, float] = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def time_spacing_seconds(pixdim4: float, t_unit: str | None) -> float:
    """pixdim[4] in seconds given the header's time unit (``unknown`` is taken as seconds)."""
    return float(pixdim4) * TIME_UNIT_SECONDS.get(str(t_unit), 1.0)


def _load_nifti(name: str | os.PathLike, **kwargs) -> nib.Nifti1Image:
    """``nib.load``, after reading a gzip-compressed file through to its end, so that its CRC and length are checked.

    nibabel reads only the bytes the image needs, which never reaches the gzip check: a corrupt deflate stream
    would be read as half garbage. The check streams the file (16 MB at a time, no extra memory) and costs one more
    decompression.
    """
    with open(name, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        with gzip.open(name, "rb") as g:  # raises BadGzipFile (OSError), EOFError or zlib.error when corrupt
            while g.read(1 << 24):
                pass
    return nib.load(name, **kwargs)


class NiftiTimeReader(NibabelReader):
    """MONAI's ``NibabelReader`` that keeps pixdim[4:] of 4D+ files and reports the time spacing.

    The metadata of a 4D file gains ``time_spacing`` (seconds per frame), ``time_units`` (the header's unit
    name) and ``num_frames``; ``pixdim`` keeps the header's pixdim[4]. Everything else is MONAI's.
    Files that MONAI cannot parse raise :class:`~medst.data.CorruptFileError` naming the file, from ``get_data``
    (``read`` returns the error, so that ``LoadImage`` does not swallow it and try its other readers); a
    ``.nii.gz`` whose gzip stream is corrupt (CRC, length) is such an error; an unreadable file raises
    ``PermissionError``.
    """

    def read(self, data: Sequence[os.PathLike] | os.PathLike, **kwargs):
        filenames = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        self.filenames = filenames
        kwargs_ = {**self.kwargs, **kwargs}
        out = []
        for name in filenames:
            try:
                check_readable_file(name)
            except (OSError, ValueError) as e:  # missing, permission denied, empty
                return DeferredReadError(e)
            try:
                img = _load_nifti(name, **kwargs_)
                raw = tuple(float(z) for z in img.header.get_zooms())
                img = correct_nifti_header_if_necessary(img)
                if len(raw) > 3:
                    zooms = list(img.header.get_zooms())
                    img.header.set_zooms(tuple(zooms[:3]) + raw[3:])
            except PermissionError as e:
                return DeferredReadError(PermissionError(f"{name}: permission denied ({e})"))
            except (OSError, ValueError, EOFError, ImageFileError, zlib.error) as e:
                err = CorruptFileError(f"{name}: cannot read as NIfTI ({e})")
                err.__cause__ = e
                return DeferredReadError(err)
            out.append(img)
        return out if len(filenames) > 1 else out[0]

    def get_data(self, img):
        if isinstance(img, DeferredReadError):
            raise img.error
        return super().get_data(img)

    def _get_meta_dict(self, img) -> dict:
        meta = super()._get_meta_dict(img)
        if len(img.shape) >= 4:
            zooms = img.header.get_zooms()
            t_unit = img.header.get_xyzt_units()[1]
            meta["time_units"] = t_unit
            meta["time_spacing"] = time_spacing_seconds(zooms[3], t_unit) if len(zooms) > 3 else 1.0
            meta["num_frames"] = int(img.shape[3])
        return meta

    def _get_array_data(self, img, filename):
        try:
            return super()._get_array_data(img, filename)
        except PermissionError as e:
            raise PermissionError(f"{filename}: permission denied ({e})") from e
        except (OSError, ValueError, EOFError, zlib.error) as e:  # a truncated .nii.gz fails here, not at load
            raise CorruptFileError(f"{filename}: the NIfTI data cannot be read, the file may be truncated ({e})") from e


def _set_time_header(img: nib.Nifti1Image, pixdim4: float | None, xyzt: int | None) -> None:
    """Write pixdim[4] and the units into a 4D+ image's header (in place)."""
    if img.ndim < 4 or pixdim4 is None:
        return
    zooms = list(img.header.get_zooms())
    zooms[3] = pixdim4
    img.header.set_zooms(zooms)
    if xyzt is not None:
        img.header["xyzt_units"] = xyzt
    else:
        img.header.set_xyzt_units(xyz="mm", t="sec")


def _first(value: Any) -> Any:
    arr = np.asarray(value)
    return arr.reshape(-1)[0] if arr.size else None


class NiftiTimeWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` that writes pixdim[4] and the time units of a 4D image, atomically.

    The time spacing comes from the metadata: ``time_spacing`` (seconds) first, else ``pixdim[4]``; it is written
    in the input's time unit (``xyzt_units``) when known, else in seconds. The file is written to a temporary
    name in the same folder and renamed, and the input file (``filename_or_obj``) is never overwritten.
    """

    def set_metadata(self, meta_dict: Mapping | None, resample: bool = True, **options):
        self.meta = dict(meta_dict or {})
        super().set_metadata(meta_dict, resample=resample, **options)

    def _time_header(self) -> tuple[float | None, int | None]:
        meta = getattr(self, "meta", {}) or {}
        xyzt = meta.get("xyzt_units")
        xyzt = int(_first(xyzt)) if xyzt is not None else None
        t_unit = "sec"
        if xyzt is not None:
            hdr = nib.Nifti1Header()
            hdr["xyzt_units"] = xyzt
            t_unit = hdr.get_xyzt_units()[1]
            if t_unit not in TIME_UNIT_SECONDS:
                t_unit = "sec"
        ts = meta.get("time_spacing")
        if ts is not None and float(_first(ts)) > 0:
            return float(_first(ts)) / TIME_UNIT_SECONDS[t_unit], xyzt
        pixdim = meta.get("pixdim")
        if pixdim is not None and np.asarray(pixdim).size > 4 and float(np.asarray(pixdim).reshape(-1)[4]) > 0:
            return float(np.asarray(pixdim).reshape(-1)[4]), xyzt
        return None, xyzt

    def write(self, filename, verbose: bool = False, **obj_kwargs):
        ImageWriter.write(self, filename, verbose=verbose)
        img = self.create_backend_obj(self.data_obj, affine=self.affine, dtype=self.output_dtype, **obj_kwargs)
        affine = np.eye(4) if self.affine is None else convert_data_type(self.affine, np.ndarray)[0]
        affine = to_affine_nd(r=3, affine=affine)
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
        pixdim4, xyzt = self._time_header()
        _set_time_header(img, pixdim4, xyzt)
        src = (getattr(self, "meta", {}) or {}).get("filename_or_obj")
        with atomic_write_path(filename, inputs=[src] if isinstance(src, (str, os.PathLike)) else None) as tmp:
            nib.save(img, tmp)
        self.data_obj = img


def save_nifti(
    data: Any, path: str | os.PathLike, affine: Any = None, time_spacing: float | None = None,
    meta: Mapping | None = None, dtype: Any = None,
) -> os.PathLike:
    """Write a channel-last array ((X, Y, Z) or (X, Y, Z, T)) as NIfTI, atomically, with pixdim[4] set.

    Args:
        data: the array (numpy or torch).
        path: output .nii / .nii.gz.
        affine: 4x4 affine (default: ``meta["affine"]``, else the identity).
        time_spacing: seconds per frame for a 4D array (written in the unit of ``meta["xyzt_units"]``, else seconds).
        meta: optional metadata (``affine``, ``xyzt_units``, ``filename_or_obj``, ``time_spacing``, ``pixdim``).
        dtype: output data type (default: the array's).
    """
    m = dict(meta or {})
    if time_spacing is not None:
        m["time_spacing"] = time_spacing
    if affine is None:
        affine = m.get("affine")
    arr = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    if dtype is not None:
        arr = arr.astype(dtype)
    aff = np.eye(4) if affine is None else to_affine_nd(3, convert_data_type(affine, np.ndarray)[0])
    img = nib.Nifti1Image(arr, aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    w = NiftiTimeWriter()
    w.meta = m
    _set_time_header(img, *w._time_header())
    src = m.get("filename_or_obj")
    with atomic_write_path(path, inputs=[src] if isinstance(src, (str, os.PathLike)) else None) as tmp:
        nib.save(img, tmp)
    return path


def _guarded(writer_cls: type) -> type:
    """MONAI's ``writer_cls`` that refuses to overwrite the input file (``filename_or_obj``), as medst's writers do.

    SaveImage falls back to the next writer of the chain when one raises; without this guard, MONAI's
    ``NibabelWriter`` behind :class:`NiftiTimeWriter` would overwrite an input that the latter refused to replace.
    """

    class Guarded(writer_cls):  # type: ignore[misc, valid-type]
        def set_metadata(self, meta_dict: Mapping | None = None, **options):
            self._medst_src = (meta_dict or {}).get("filename_or_obj")
            return super().set_metadata(meta_dict, **options)

        def write(self, filename, verbose: bool = False, **kwargs):
            src = getattr(self, "_medst_src", None)
            check_not_input(filename, [src] if isinstance(src, (str, os.PathLike)) else None)
            return super().write(filename, verbose=verbose, **kwargs)

    Guarded.__name__ = Guarded.__qualname__ = writer_cls.__name__
    Guarded.__module__ = writer_cls.__module__
    Guarded.__doc__ = f"MONAI's {writer_cls.__name__}, refusing to overwrite the input file (medst)."
    Guarded._medst_guarded = writer_cls
    return Guarded


_REGISTERED: dict[str, Any] = {}
_NIFTI_EXTS = ("nii", "nii.gz")


def register_nifti_io() -> None:
    """Register :class:`NiftiTimeReader` (tried before MONAI's ``NibabelReader`` by ``LoadImage()``) and put
    :class:`NiftiTimeWriter` in front of MONAI's writer chain for .nii / .nii.gz; called by ``import medst``
    (unless ``MEDST_REGISTER_IO=0``), undone by :func:`unregister_nifti_io`.

    MONAI's own writers stay behind it (``NibabelWriter``, then the ITK fallback), each refusing, like medst's
    writer, to overwrite the input file; MONAI's readers stay registered (``LoadImage(reader="NibabelReader")``
    is MONAI's reader, unchanged).
    """
    if _REGISTERED:
        return
    from monai.data.image_writer import SUPPORTED_WRITERS
    from monai.data.image_writer import init as init_writers
    from monai.transforms.io import array as io_array

    if not SUPPORTED_WRITERS:
        init_writers()
    _REGISTERED["readers"] = {"niftitimereader": io_array.SUPPORTED_READERS.get("niftitimereader")}
    _REGISTERED["writers"] = {ext: SUPPORTED_WRITERS.get(ext) for ext in _NIFTI_EXTS}
    io_array.SUPPORTED_READERS["niftitimereader"] = NiftiTimeReader
    for ext in _NIFTI_EXTS:
        chain = tuple(getattr(w, "_medst_guarded", w) for w in SUPPORTED_WRITERS.get(ext, ()))
        chain = tuple(w for w in chain if w is not NiftiTimeWriter)
        SUPPORTED_WRITERS[ext] = (NiftiTimeWriter,) + tuple(_guarded(w) for w in chain)


def unregister_nifti_io() -> None:
    """Undo :func:`register_nifti_io`: MONAI's NIfTI reader and writer chain as they were before it."""
    if not _REGISTERED:
        return
    from monai.data.image_writer import SUPPORTED_WRITERS
    from monai.transforms.io import array as io_array

    restore_io_tables(_REGISTERED, io_array.SUPPORTED_READERS, SUPPORTED_WRITERS)
