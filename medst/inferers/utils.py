"""Fast sliding-window inference for volumes, videos and 4D scans, and streaming inference for recurrent networks.

Everything here builds on MONAI's :func:`monai.inferers.sliding_window_inference`: the same window positions
(:func:`monai.data.utils.dense_patch_slices`), the same importance maps
(:func:`monai.data.utils.compute_importance_map`) and the same padding rule when the window is larger than the
input. What medst adds:

- speed: no autograd (``torch.inference_mode``), mixed precision (``precision="auto"|"fp32"|"bf16"|"fp16"``) with
  the logits always accumulated in float32, the channels-last memory format for 3D convolutions in half
  precision, optional test-time flips, and by default on CPUs in half precision the network compiled ahead of time
  once per machine and window shape (AOTInductor with inductor's weight freezing, :mod:`medst.inferers.aot`), or
  ``torch.compile`` in the process;
- memory that does not grow with the number of classes: ``output="labels"`` stitches windows slab by slab along
  one axis and takes the argmax of a slab as soon as every window covering it is done, so only a band of float32
  logits one window deep is ever held (the labels equal the argmax of MONAI's float32 map exactly);
- devices: windows on the compute device, the stitched output on the GPU only where it fits, with a fall-back to
  CPU stitching (and then to one window at a time) on ``torch.OutOfMemoryError``;
- frame-wise tiling: a ``roi_size`` with one entry fewer than the input's axes means "the network sees single
  frames": time (axis 2) is folded into the batch, so a 2D network segments a video ``(B, C, T, H, W)`` and a 3D
  network a 4D scan ``(B, C, T, X, Y, Z)`` frame by frame;
- streaming for recurrent networks (:func:`stream_sequence`): space is tiled like a sliding window while time is
  walked in chunks, carrying each tile's recurrent state from chunk to chunk (Shi et al., "Convolutional LSTM
  Network", https://arxiv.org/abs/1506.04214), so a clip of any length keeps its full temporal context with memory
  that does not grow with its length.

Measured agreement of the fast paths (see ``benchmarks/bench_sliding_window.py``) is recorded in the docstring of
:func:`sliding_window_volume`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers.utils import sliding_window_inference
from monai.utils import BlendMode, PytorchPadMode, convert_to_dst_type, ensure_tuple_rep, fall_back_tuple, look_up_option

from medst.networks.inference import PRECISIONS, autocast_dtype, cpu_has_native_bf16, resolve_precision

try:  # tqdm is a dependency, but keep the library importable without it
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover
    _tqdm = None

__all__ = [
    "PRECISIONS",
    "OUTPUTS",
    "autocast_dtype",
    "cpu_has_native_bf16",
    "resolve_precision",
    "FastPredictor",
    "channel_argmax",
    "sliding_window_volume",
    "stream_sequence",
    "SequenceStreamer",
    "CLIP_AVERAGES",
    "clip_starts",
    "multi_clip_inference",
]

logger = logging.getLogger(__name__)

OUTPUTS = ("logits", "probs", "labels")
_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


# ----------------------------------------------------------------------------------------------------------------
# precision, memory format, compile
# ----------------------------------------------------------------------------------------------------------------
def _scan_interval(image_size: Sequence[int], roi_size: Sequence[int], overlap: Sequence[float]) -> tuple[int, ...]:
    """The step between windows, MONAI's rule (``sliding_window_inference``'s, whose helper is private): a window
    as large as the image does not move, otherwise it steps ``int(roi * (1 - overlap))``, at least 1."""
    if not len(image_size) == len(roi_size) == len(overlap):
        raise ValueError(
            f"image {tuple(image_size)}, roi {tuple(roi_size)} and overlap {tuple(overlap)} differ in length"
        )
    return tuple(
        int(r) if r == i else max(1, int(r * (1 - o))) for i, r, o in zip(image_size, roi_size, overlap)
    )


def _memory_format(ndim: int) -> torch.memory_format | None:
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)


@contextlib.contextmanager
def _channels_last_weights(module: Any, enabled: bool) -> Iterator[None]:
    """Temporarily store a module's 4D/5D parameters channels-last; restores the usual layout on exit."""
    if not enabled or not isinstance(module, torch.nn.Module):
        yield
        return
    changed = []
    # outside inference mode: weights converted under it would become inference tensors (no training, no export)
    with torch.inference_mode(False), torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            fmt = _memory_format(t.ndim)
            if fmt is not None and not t.is_contiguous(memory_format=fmt):
                t.data = t.data.contiguous(memory_format=fmt)
                changed.append(t)
    try:
        yield
    finally:
        with torch.inference_mode(False), torch.no_grad():
            for t in changed:
                t.data = t.data.contiguous()


# compiled modules, per network (weakly held) and per (dtype, layout, device, weight versions)
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_key(module: torch.nn.Module) -> tuple:
    """Identity and in-place version of every parameter (an optimizer step or ``load_state_dict`` bumps it)."""
    return tuple((id(t), t._version) for t in module.parameters())


def _compiled(module: torch.nn.Module, key: tuple) -> Callable:
    """``torch.compile(module)``, cached per network and settings; reset when the (frozen) weights changed."""
    cache = _COMPILED.setdefault(module, {})
    weights = _weights_key(module)
    if cache and next(iter(cache))[-1] != weights:
        # frozen weights are constants of the compiled graphs: drop them all (dynamo caches per code object)
        logger.warning("the network's weights changed since it was compiled: recompiling (torch._dynamo.reset()).")
        cache.clear()
        torch._dynamo.reset()
    full_key = (*key, weights)
    if full_key not in cache:
        if module.training:
            logger.warning("compiling a network in training mode; call network.eval() for inference.")
        cache[full_key] = torch.compile(module)
    return cache[full_key]


class FastPredictor:
    """Calls a network for inference as fast as its ``precision`` allows, returning float32 outputs.

    ``inference_mode``, autocast to the chosen dtype, channels-last inputs, test-time flips averaged in the
    logit domain, and compiled networks: ``compile=True`` is ``torch.compile`` with inductor freezing (the weights
    become constants of the graph; compiled once per window shape and recompiled when the weights change);
    ``compile="auto"`` runs the network's ahead-of-time package from the compile cache when there is one (CPU, half
    precision, no extra network arguments; see :mod:`medst.inferers.aot`) and eagerly otherwise, and
    :meth:`finish` builds the missing package after a volume.

    Args:
        network: a callable, usually a ``torch.nn.Module`` in eval mode: (N, C, *roi) -> (N, K, *roi').
        dtype: autocast dtype (``None``: float32), see :func:`autocast_dtype`.
        device_type: ``"cpu"`` or ``"cuda"``, the device the windows run on.
        channels_last: pass inputs in the channels-last layout (the caller converts the weights).
        flips: tuples of tensor axes (>= 2) to flip for test-time augmentation, e.g. ``((2,), (3,), (4,))``.
        compile: ``True``: ``torch.compile`` with inductor's ``freezing``; ``"auto"``: the ahead-of-time package
            (see above); ``False``: eager.
        pad_batch_to: with ``compile``, pad a short last window batch to this size to avoid a recompilation (with
            ``"auto"``: the window batch of the package).
    """

    def __init__(
        self,
        network: Callable,
        dtype: torch.dtype | None = None,
        device_type: str = "cpu",
        channels_last: bool = False,
        flips: Sequence[Sequence[int]] = (),
        compile: bool = False,
        pad_batch_to: int | None = None,
    ) -> None:
        self.flips = _check_flips(flips)
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}.")
        if compile is True and not isinstance(network, torch.nn.Module):
            raise ValueError("compile=True needs a torch.nn.Module network.")
        self.network = network
        self.dtype = dtype
        self.device_type = device_type
        self.channels_last = channels_last
        self.compile = compile
        self.pad_batch_to = pad_batch_to
        self._aot: Any = None

    def _aot_wanted(self, args: tuple, kwargs: dict) -> bool:
        from medst.inferers.aot import compile_mode

        return (
            self.compile == "auto"
            and isinstance(self.network, torch.nn.Module)
            and self.dtype is not None
            and self.device_type == "cpu"
            and not args
            and not kwargs
            and compile_mode() != "off"
        )

    def _fn(self, x: torch.Tensor, args: tuple = (), kwargs: dict | None = None) -> Callable:
        if self.compile == "auto":
            if self._aot is None and self._aot_wanted(args, kwargs or {}):
                from medst.inferers.aot import compiled_for

                shape = (max(x.shape[0], self.pad_batch_to or 0), *x.shape[1:])
                self._aot = compiled_for(self.network, shape, self.dtype, self.channels_last, self.device_type)
            if self._aot is not None:
                compiled = self._aot.get()  # looks at the cache (and notes a missing package) even for a short batch
                if compiled is not None and tuple(x.shape) == self._aot.shape:
                    return compiled
            return self.network
        if not self.compile:
            return self.network
        return _compiled(self.network, (self.dtype, self.channels_last, self.device_type))

    def _aot_ready(self) -> bool:
        return self._aot is not None and self._aot.compiled is not None

    def finish(self) -> None:
        """After a volume: build the compiled package that ``compile="auto"`` found missing (see :mod:`.aot`)."""
        if self._aot is not None:
            self._aot.build()

    def context(self) -> contextlib.ExitStack:
        """inference mode + autocast (+ inductor freezing when compiling)."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.dtype is not None:
            stack.enter_context(torch.autocast(device_type=self.device_type, dtype=self.dtype))
        if self.compile is True:
            import torch._inductor.config as inductor_config

            stack.enter_context(inductor_config.patch(freezing=True))
        return stack

    def _run(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        n = x.shape[0]
        if self.compile is True and self.pad_batch_to and n < self.pad_batch_to:
            x = torch.cat([x, x[-1:].expand(self.pad_batch_to - n, *x.shape[1:])])
        elif self.compile == "auto" and self.pad_batch_to and n < self.pad_batch_to:
            self._fn(x, args, kwargs)  # loads the package, if any, for the full window batch
            if self._aot_ready():
                x = torch.cat([x, x[-1:].expand(self.pad_batch_to - n, *x.shape[1:])])
        fmt = _memory_format(x.ndim) if self.channels_last else None
        if fmt is not None:
            x = x.contiguous(memory_format=fmt)
        fn = self._fn(x, args, kwargs)
        if fn is self.network or self._aot is None:
            out = fn(x, *args, **kwargs)
        else:
            try:
                out = fn(x)
            except Exception as e:  # a package that loads but does not run: never fail the volume for it
                self._aot.drop(e)
                out = self.network(x, *args, **kwargs)
        return _tree_map(lambda t: t[:n].float(), out)

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        for axes in self.flips:
            if max(axes) >= x.ndim:
                raise ValueError(f"flip axes {axes} do not exist in a window of shape {tuple(x.shape)}.")
        with self.context():
            out = self._run(x, *args, **kwargs)
            for axes in self.flips:
                flipped = self._run(torch.flip(x, axes), *args, **kwargs)
                out = _tree_map2(lambda a, b, ax=axes: a.add_(torch.flip(b, ax)), out, flipped)
            if self.flips:
                out = _tree_map(lambda t: t.div_(len(self.flips) + 1), out)
        # a normal (not inference-mode) float32 tensor, so that callers may update it in place
        return _tree_map(lambda t: t.to(torch.float32, memory_format=torch.contiguous_format, copy=True), out)


def _check_flips(flips: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    out = []
    for axes in flips or ():
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if not axes or min(axes) < 2:
            raise ValueError(
                f"each flip is a tuple of tensor axes >= 2 (0 is the batch, 1 the channel), got {axes}; "
                "e.g. flips=((2,), (3,), (4,)) for a 3D volume."
            )
        out.append(tuple(int(a) for a in axes))
    return tuple(out)


def _tree_map(fn: Callable, tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    return tree


def _tree_map2(fn: Callable, a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return fn(a, b)
    if isinstance(a, (list, tuple)):
        return type(a)(_tree_map2(fn, x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _tree_map2(fn, a[k], b[k]) for k in a}
    return a


def _tree_cat(trees: list[Any]) -> Any:
    """Concatenate nested states along the batch dim 0."""
    first = trees[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(trees, 0) if len(trees) > 1 else first
    if isinstance(first, (list, tuple)):
        return type(first)(_tree_cat([t[i] for t in trees]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _tree_cat([t[k] for t in trees]) for k in first}
    raise TypeError(f"recurrent state must be nested tuples/lists/dicts of tensors, got {type(first).__name__}.")


def _tree_split(tree: Any, size: int, n: int) -> list[Any]:
    """Split a nested state along dim 0 into ``n`` parts of ``size``."""
    if tree is None:
        return [None] * n
    if isinstance(tree, torch.Tensor):
        return list(torch.split(tree, size, 0))
    if isinstance(tree, (list, tuple)):
        parts = [_tree_split(t, size, n) for t in tree]
        return [type(tree)(p[i] for p in parts) for i in range(n)]
    if isinstance(tree, dict):
        parts_d = {k: _tree_split(v, size, n) for k, v in tree.items()}
        return [{k: v[i] for k, v in parts_d.items()} for i in range(n)]
    raise TypeError(f"recurrent state must be nested tuples/lists/dicts of tensors, got {type(tree).__name__}.")


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _progress(iterable: Iterable, show: bool, total: int | None = None, desc: str = "") -> Iterable:
    if show and _tqdm is not None and sys.stderr.isatty():
        return _tqdm(iterable, total=total, desc=desc, leave=False)
    return iterable


def _module_device(predictor: Any) -> torch.device | None:
    if isinstance(predictor, torch.nn.Module):
        p = next(predictor.parameters(), None)
        return p.device if p is not None else None
    return None


def _label_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 256 else torch.int32


def channel_argmax(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x.argmax(1, keepdim=True)``, as ``dtype`` (default: uint8 up to 256 channels, else int32).

    The same labels as ``torch.argmax`` (the first of equal maxima wins) for inputs without NaN, computed as a running
    maximum over the channels, one channel at a time: on CPUs torch's argmax over a non-innermost axis is an order of
    magnitude slower (measured, 2 cores, float32 (1, K, 20, 256, 256): 88 ms against 3.5 ms for K = 2, 110 ms against
    23 ms for K = 14), and in streaming it took over a quarter of the time. A NaN never wins here (torch's argmax
    would pick it).
    """
    k = x.shape[1]
    best = x[:, :1]
    out = torch.zeros(best.shape, dtype=_label_dtype(k) if dtype is None else dtype, device=x.device)
    for c in range(1, k):
        xc = x[:, c : c + 1]
        out.masked_fill_(xc > best, c)
        best = torch.maximum(best, xc)
    return out


def _pad_to_roi(
    inputs: torch.Tensor, roi_size: Sequence[int], padding_mode: str, cval: float, first_axis: int = 2
) -> tuple[torch.Tensor, list[int]]:
    """Pad the axes from ``first_axis`` on to at least ``roi_size`` (MONAI's rule: centred)."""
    pad_size: list[int] = []
    for k in range(inputs.ndim - 1, first_axis - 1, -1):
        diff = max(roi_size[k - first_axis] - inputs.shape[k], 0)
        pad_size.extend([diff // 2, diff - diff // 2])
    if any(pad_size):
        mode = look_up_option(padding_mode, PytorchPadMode)
        if mode == "constant":
            inputs = F.pad(inputs, pad=pad_size, mode=mode, value=cval)
        else:  # torch pads at most 3 trailing axes in the non-constant modes: pad frame-wise if needed
            inputs = F.pad(inputs, pad=pad_size, mode=mode)
    return inputs, pad_size


def _crop_pad(out: torch.Tensor, pad_size: list[int], first_axis: int = 2) -> torch.Tensor:
    if not any(pad_size):
        return out
    n = out.ndim - first_axis
    index: list[slice] = [slice(None)] * first_axis
    for i in range(n):
        before = pad_size[2 * (n - 1 - i)]
        after = pad_size[2 * (n - 1 - i) + 1]
        index.append(slice(before, out.shape[first_axis + i] - after))
    return out[tuple(index)]


def _check_common(roi_size: Any, overlap: Any, n: int) -> None:
    for o in ensure_tuple_rep(overlap, n):
        if not 0 <= o < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    if not isinstance(roi_size, int):
        if len(roi_size) != n:
            raise ValueError(f"roi_size {tuple(roi_size)} must have {n} entries.")


# ----------------------------------------------------------------------------------------------------------------
# label-map stitching: memory independent of the number of classes
# ----------------------------------------------------------------------------------------------------------------
def _stitch_labels(
    inputs: torch.Tensor,
    roi_size: Sequence[int],
    sw_batch_size: int,
    predictor: Callable,
    overlap: Sequence[float],
    mode: str,
    sigma_scale: Sequence[float] | float,
    padding_mode: str,
    cval: float,
    sw_device: torch.device,
    device: torch.device,
    show_progress: bool,
    slab_dim: int,
    finalize_chunk: int = 8,
) -> torch.Tensor:
    """Sliding window straight into a label map (B, 1, *spatial) holding only a one-window band of logits.

    Windows are walked in MONAI's order (the first spatial axis slowest), grouped by their start along
    ``slab_dim``. Before group ``i+1`` starts, no later window touches the slab ``[start_i, start_{i+1})``, so its
    weighted mean and argmax are final. The band accumulator (K x roi[slab_dim] x the other axes, float32) lives on
    ``sw_device``; labels go to ``device``. With ``slab_dim=0`` every voxel sums its windows in the same order as
    MONAI, so the labels equal the argmax of MONAI's float32 map bit for bit.
    """
    nsp = inputs.ndim - 2
    batch, _, *image_size_ = inputs.shape
    roi = fall_back_tuple(roi_size, image_size_)
    inputs, pad_size = _pad_to_roi(inputs, roi, padding_mode, cval)
    image_size = tuple(inputs.shape[2:])
    a = slab_dim % nsp
    scan = _scan_interval(image_size, roi, ensure_tuple_rep(overlap, nsp))
    slices = dense_patch_slices(image_size, roi, scan, return_slice=True)
    if a != 0:
        slices = sorted(slices, key=lambda s: int(s[a].start))  # stable: MONAI's order within a slab
    groups: list[tuple[int, list]] = []
    for s in slices:
        start = int(s[a].start)
        if not groups or groups[-1][0] != start:
            groups.append((start, []))
        groups[-1][1].append(s)
    weight = compute_importance_map(roi, mode=mode, sigma_scale=sigma_scale, device=sw_device, dtype=torch.float32)
    weight = weight[None, None]
    band = roi[a]
    other = list(image_size)
    other[a] = band
    labels: torch.Tensor | None = None
    bar = _progress(range(batch * len(slices)), show_progress, desc="windows")
    bar_update = getattr(bar, "update", None)

    def finalize(acc: torch.Tensor, cnt: torch.Tensor, lo: int, length: int, b: int) -> None:
        for i in range(0, length, finalize_chunk):
            n = min(finalize_chunk, length - i)
            lab = channel_argmax(acc.narrow(2 + a, i, n) / cnt.narrow(2 + a, i, n), labels.dtype)
            labels[b, 0].narrow(a, lo + i, n).copy_(lab[0, 0].to(device))

    for b in range(batch):
        acc = cnt = None
        lo = 0
        for start, group in groups:
            if acc is not None and start != lo:
                shift = start - lo
                finalize(acc, cnt, lo, shift, b)
                keep = band - shift
                for t in (acc, cnt):  # move the unfinished part to the front, in chunks that never overlap
                    for i in range(0, keep, shift):
                        n = min(shift, keep - i)
                        t.narrow(2 + a, i, n).copy_(t.narrow(2 + a, i + shift, n))
                    t.narrow(2 + a, keep, shift).zero_()
            lo = start
            for g in range(0, len(group), sw_batch_size):
                wins = group[g : g + sw_batch_size]
                win_data = torch.cat([inputs[(slice(b, b + 1), slice(None), *s)] for s in wins]).to(sw_device)
                out = predictor(win_data)
                if not isinstance(out, torch.Tensor):
                    raise ValueError("output='labels' needs a predictor that returns one tensor of logits.")
                if tuple(out.shape[2:]) != tuple(roi):
                    raise ValueError(
                        f"output='labels' needs windows out of the same size as in, got {tuple(out.shape[2:])} "
                        f"for roi {tuple(roi)}; use output='logits' for multi-resolution outputs."
                    )
                out = out.to(torch.float32)
                out *= weight
                if acc is None:
                    k = out.shape[1]
                    acc = torch.zeros((1, k, *other), dtype=torch.float32, device=sw_device)
                    cnt = torch.zeros((1, 1, *other), dtype=torch.float32, device=sw_device)
                    if labels is None:
                        labels = torch.empty((batch, 1, *image_size), dtype=_label_dtype(k), device=device)
                for p, s in zip(out, wins):
                    local = list(s)
                    local[a] = slice(int(s[a].start) - lo, int(s[a].stop) - lo)
                    acc[(0, slice(None), *local)] += p
                    cnt[(0, slice(None), *local)] += weight[0]
                if bar_update is not None:
                    bar_update(len(wins))
        finalize(acc, cnt, lo, band, b)
    if hasattr(bar, "close"):
        bar.close()
    return _crop_pad(labels, pad_size)


# ----------------------------------------------------------------------------------------------------------------
# the volume inferer
# ----------------------------------------------------------------------------------------------------------------
def _guess_out_channels(predictor: Any) -> int | None:
    """The network's number of output channels: its ``out_channels``, else that of its last convolution."""
    k = getattr(predictor, "out_channels", None)
    if isinstance(k, int):
        return k
    if isinstance(predictor, torch.nn.Module):
        convs = [m for m in predictor.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
        if convs:
            return int(convs[-1].out_channels)
    return None


def _output_device(
    out_dev: torch.device, nbytes: int | None, free_bytes: int | None = None, fraction: float = 0.8
) -> torch.device:
    """Keep a CUDA output on the GPU only when ``nbytes`` fit in ``fraction`` of its free memory."""
    if out_dev.type != "cuda" or nbytes is None:
        return out_dev
    if free_bytes is None:
        try:
            free_bytes, _ = torch.cuda.mem_get_info(out_dev)
        except Exception:  # noqa: BLE001  (no CUDA, or a device without the query)
            return out_dev
    if nbytes < fraction * free_bytes:
        return out_dev
    logger.info("the output (%.2f GB) would not fit on %s: stitching on the CPU", nbytes / 1e9, out_dev)
    return torch.device("cpu")


def _run_with_oom_fallback(run: Callable[..., torch.Tensor], attempts: list[dict[str, Any]]) -> torch.Tensor:
    """Try ``run(**attempt)`` for each attempt in turn while the previous one ran out of memory."""
    for i, attempt in enumerate(attempts):
        try:
            return run(**attempt)
        except _OOM:
            if i == len(attempts) - 1:
                raise
            logger.warning("out of memory; retrying with %s", attempts[i + 1])
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    raise RuntimeError("no attempt given")  # pragma: no cover


def sliding_window_volume(
    inputs: torch.Tensor,
    roi_size: Sequence[int] | int,
    sw_batch_size: int,
    predictor: Callable[..., Any],
    overlap: Sequence[float] | float = 0.25,
    mode: BlendMode | str = BlendMode.CONSTANT,
    sigma_scale: Sequence[float] | float = 0.125,
    padding_mode: PytorchPadMode | str = PytorchPadMode.CONSTANT,
    cval: float = 0.0,
    precision: str = "auto",
    output: str = "logits",
    flips: Sequence[Sequence[int]] = (),
    channels_last: bool | None = None,
    compile: bool | str = "auto",
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    buffer_steps: int | None = None,
    buffer_dim: int = -1,
    slab_dim: int = 0,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Sliding-window segmentation of a batch of volumes, videos or 4D scans, fast and memory-lean.

    The windows, weights and padding are MONAI's :func:`monai.inferers.sliding_window_inference` (which runs the
    ``"logits"`` and ``"probs"`` outputs); ``output="labels"`` stitches slab by slab into a label map (see the
    module docstring). The logits are always accumulated in float32, whatever ``precision`` the network runs in.

    Tiling: ``inputs`` is ``(B, C, *axes)``. A ``roi_size`` with one entry per axis tiles all axes (a video
    ``(B, C, T, H, W)`` with a 3D window for a network that sees time as an axis; N-D windows work too). A
    ``roi_size`` with one entry fewer tiles frame by frame: axis 2 (time) is folded into the batch, so a 2D
    network segments each frame of a video and a 3D network each frame of a 4D scan ``(B, C, T, X, Y, Z)``.

    Precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` autocast the network; ``"auto"`` is bfloat16 on a GPU that has
    it (else float16) and on a CPU with native bfloat16 (``avx512_bf16``/``amx_bf16``), float32 otherwise.
    Measured agreement (``benchmarks/bench_sliding_window.py``, 2-core AMD EPYC with avx512_bf16, torch 2.13; a
    small UNETR trained briefly on a synthetic sphere task, Dice 0.80 against the truth, over 1x1x96x96x64, roi
    32^3, overlap 0.5), against MONAI's float32 sliding window: ``"bf16"`` (what ``"auto"`` picks there) labels
    agree on 99.94 % of voxels, Dice 0.9983, largest logit difference 0.044; bf16 + ``compile``: 99.96 %, Dice
    0.9987, 0.043; ``"fp32"``: identical (difference 0). Random weights agree less (their logits are near ties).
    Choose ``"fp32"`` where a few boundary voxels matter more than speed. Speed (paper-size UNETR over
    1x1x192x192x128, roi 96^3, overlap 0.5, ``--interleaved`` medians of 2 rounds on the quiet 2-core machine):
    MONAI stock float32 21.8 s, ``"auto"`` (bf16 + channels-last) 9.4 s (2.32x), ``"auto"`` + ``compile`` 5.4 s
    (4.02x; the first call compiles for minutes). The default ``compile="auto"`` (the package from the compile
    cache), in one run on a heavily loaded machine: 1.34x MONAI's ``SlidingWindowInferer`` under
    ``torch.inference_mode`` + CPU bf16 autocast, eager ``"auto"`` 0.90x; a second process reached the end of its
    first window 18.9 s after its start.

    Args:
        inputs: (B, C, *axes) tensor (a MetaTensor keeps its metadata).
        roi_size: window size per tiled axis (see Tiling); non-positive entries use the whole axis.
        sw_batch_size: windows per network call.
        predictor: the network, ``(N, C, *roi) -> (N, K, *roi')`` (a tensor, or a tuple/dict of tensors for
            ``"logits"``).
        overlap: overlap of neighbouring windows, in [0, 1).
        mode: ``"constant"`` or ``"gaussian"`` blending.
        sigma_scale: Gaussian sigma as a fraction of the window size.
        padding_mode: how to pad axes shorter than the window; ``cval`` the constant value.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        output: ``"logits"`` (B, K, *axes) float32, ``"probs"`` softmax over K, or ``"labels"`` (B, 1, *axes)
            uint8 (int32 above 256 classes) with memory independent of K.
        flips: test-time flips, tuples of tensor axes (>= 2) of the windows, e.g. ``((2,), (3,), (4,))``;
            the logits of all flips are averaged.
        channels_last: channels-last layout for inputs and weights; ``None``: on in half precision only.
        compile: ``"auto"`` (default): on a CPU in half precision, the network's ahead-of-time compiled package
            from the cache (``MEDST_CACHE_DIR``), built after the first volume when missing (in the background;
            ``MEDST_COMPILE=0`` turns it off, see :mod:`medst.inferers.aot`), eager otherwise; ``True``:
            ``torch.compile`` with inductor freezing in this process (minutes to start); ``False``: eager.
        sw_device: device the windows run on; default: the network's device, else the inputs'. A network on
            another device is moved there.
        device: device of the stitched output; default: the inputs'. A CUDA output that would not fit in free GPU
            memory is stitched on the CPU, and so is one that runs out of memory.
        progress: a tqdm bar on stderr when it is a terminal.
        buffer_steps, buffer_dim: MONAI's buffered stitching on ``sw_device`` (``"logits"``/``"probs"``).
        slab_dim: the spatial axis (0-based) that label-map stitching walks (0 matches MONAI's order exactly).
        args, kwargs: passed on to ``predictor``.

    Returns:
        The stitched output on ``device``, see ``output``.

    Raises:
        ValueError: for a wrong number of axes, a bad ``precision``, ``output``, ``overlap`` or ``flips``.

    Example::

        net = monai.networks.nets.UNETR(1, 3, img_size=96).eval()
        labels = sliding_window_volume(ct, (96, 96, 96), 2, net, overlap=0.5, mode="gaussian", output="labels")
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
    if not isinstance(inputs, torch.Tensor):
        inputs = torch.as_tensor(inputs)
    if inputs.ndim < 3:
        raise ValueError(f"inputs must be (B, C, *axes) with at least one axis, got shape {tuple(inputs.shape)}.")
    if sw_batch_size < 1:
        raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size}.")
    n_axes = inputs.ndim - 2
    if isinstance(roi_size, int):
        roi_size = (roi_size,) * n_axes
    roi_size = tuple(roi_size)
    if len(roi_size) not in (n_axes, n_axes - 1) or (len(roi_size) == n_axes - 1 and n_axes < 2):
        raise ValueError(
            f"roi_size {roi_size} does not fit inputs of shape {tuple(inputs.shape)}: give one entry per axis after "
            f"(B, C) ({n_axes}), or one fewer ({n_axes - 1}) to run the network frame by frame along axis 2. "
            "Channel-last data needs EnsureChannelFirst upstream."
        )
    _check_common(roi_size, overlap, len(roi_size))
    meta = MetaTensor([]).copy_meta_from(inputs, copy_attr=False) if isinstance(inputs, MetaTensor) else None
    x = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
    if not x.is_floating_point() or x.dtype != torch.float32:
        x = x.float()  # accumulate in float32 whatever the input type

    # frame by frame: fold time into the batch
    framewise = len(roi_size) == n_axes - 1
    if framewise:
        b, c, t = x.shape[:3]
        x = x.movedim(2, 1).reshape(b * t, c, *x.shape[3:])

    sw_dev = torch.device(sw_device) if sw_device is not None else (_module_device(predictor) or x.device)
    if isinstance(predictor, torch.nn.Module) and _module_device(predictor) not in (None, sw_dev):
        logger.info("moving the network to %s", sw_dev)
        predictor.to(sw_dev)
    out_dev = torch.device(device) if device is not None else inputs.device
    dtype = autocast_dtype(precision, sw_dev)
    use_cl = (dtype is not None) if channels_last is None else bool(channels_last)
    fast = FastPredictor(
        predictor,
        dtype=dtype,
        device_type=sw_dev.type,
        channels_last=use_cl,
        flips=flips,
        compile=compile,
        pad_batch_to=sw_batch_size,
    )
    if out_dev.type == "cuda":
        # float32 logits + count map (+ softmax copy); label maps need a band of logits and one byte per voxel
        k = _guess_out_channels(predictor)
        vox = x.shape[0] * x[0, 0].numel()
        if output == "labels":
            nbytes = vox
        elif k is not None:
            nbytes = 4 * vox * ((k + 1) if output == "logits" else (2 * k + 1))
        else:
            nbytes = None
        out_dev = _output_device(out_dev, nbytes)
    show = bool(progress)
    logger.info(
        "sliding window: inputs %s, roi %s, precision %s (%s), output %s, windows on %s, stitched on %s",
        tuple(inputs.shape), roi_size, precision, dtype or torch.float32, output, sw_dev, out_dev,
    )

    def run(out_device: torch.device, batch: int) -> Any:
        fast.pad_batch_to = batch
        if output == "labels":
            return _stitch_labels(
                x, roi_size, batch, fast, ensure_tuple_rep(overlap, len(roi_size)), mode, sigma_scale,
                padding_mode, cval, sw_dev, out_device, show, slab_dim,
            )
        res = sliding_window_inference(
            x, roi_size, batch, fast, overlap, mode, sigma_scale, padding_mode, cval, sw_dev, out_device,
            show and sys.stderr.isatty(), None, None, buffer_steps, buffer_dim, False, *args, **kwargs,
        )
        if output == "probs":
            res = _tree_map(lambda t: torch.softmax(t, 1), res)
        return res

    attempts = [dict(out_device=out_dev, batch=sw_batch_size)]
    if out_dev.type != "cpu":
        attempts.append(dict(out_device=torch.device("cpu"), batch=sw_batch_size))
    if sw_batch_size > 1:
        attempts.append(dict(out_device=torch.device("cpu"), batch=1))
    with _channels_last_weights(predictor, use_cl):
        result = _run_with_oom_fallback(run, attempts)
        fast.finish()

    if framewise:
        result = _tree_map(lambda r: r.reshape(b, t, *r.shape[1:]).movedim(1, 2), result)
    if meta is not None and isinstance(result, torch.Tensor):
        result = convert_to_dst_type(result, meta, device=result.device, dtype=result.dtype)[0]
    return result


# ----------------------------------------------------------------------------------------------------------------
# streaming for recurrent networks
# ----------------------------------------------------------------------------------------------------------------
def _time_chunks(inputs: Any, time_chunk: int) -> Iterator[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        for t0 in range(0, inputs.shape[2], time_chunk):
            yield inputs[:, :, t0 : t0 + time_chunk]
        return
    for block in inputs:  # an iterable of (B, C, t, *spatial) blocks, e.g. decoded from a video
        block = torch.as_tensor(block)
        for t0 in range(0, block.shape[2], time_chunk):
            yield block[:, :, t0 : t0 + time_chunk]


def stream_sequence(
    inputs: torch.Tensor | Iterable[torch.Tensor],
    roi_size: Sequence[int] | int,
    time_chunk: int,
    network: torch.nn.Module,
    overlap: Sequence[float] | float = 0.25,
    mode: BlendMode | str = BlendMode.CONSTANT,
    sigma_scale: Sequence[float] | float = 0.125,
    padding_mode: PytorchPadMode | str = PytorchPadMode.CONSTANT,
    cval: float = 0.0,
    sw_batch_size: int = 1,
    precision: str = "auto",
    output: str = "logits",
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    callback: Callable[[torch.Tensor, int], None] | None = None,
    progress: bool = True,
) -> torch.Tensor | None:
    """Segment a sequence of any length with a recurrent network, tiling space and streaming time.

    Space is tiled like MONAI's sliding window; time is walked in chunks of ``time_chunk`` frames and every tile
    carries its own recurrent state from one chunk to the next, calling
    ``network(chunk, state=tile_state, return_state=True) -> (logits, state)``. Each tile therefore sees the
    whole past of the clip (as a ConvLSTM unrolled over the full sequence would; Shi et al. 2015,
    https://arxiv.org/abs/1506.04214), while the memory used holds one chunk of inputs and outputs plus one state
    per tile, whatever the length. Each chunk's stitched output goes to ``callback(chunk_output, t0)`` if given,
    else it is moved to ``device`` and the chunks are concatenated along time.

    Args:
        inputs: (B, C, T, *spatial) tensor (video: 2 spatial axes for 2D cells; 4D scan: 3 for 3D cells), or an
            iterable of such blocks in time order (e.g. decoded from a file), so that the whole clip need never
            be in memory.
        roi_size: spatial tile size (one entry per spatial axis); non-positive entries use the whole axis.
        time_chunk: frames per network call.
        network: a module with ``supports_streaming = True`` and ``forward(x, state=None, return_state=False)``.
        overlap, mode, sigma_scale, padding_mode, cval: spatial tiling and blending, as MONAI's sliding window.
        sw_batch_size: tiles per network call (their states are concatenated along dim 0).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (logits accumulated in float32; the state is
            carried as the network returns it).
        output: ``"logits"`` (B, K, T, *spatial), ``"probs"`` or ``"labels"`` (B, 1, T, *spatial) uint8.
        sw_device: device the tiles run on (default: the network's); device: of the output (default: inputs').
        callback: ``callback(chunk_output, t0)`` receives each stitched chunk; then nothing is returned.
        progress: a tqdm bar on stderr when it is a terminal.

    Returns:
        The stitched sequence, or ``None`` with a ``callback``.

    Raises:
        ValueError: for a network that cannot stream, wrong input dims, bad ``time_chunk``, ``precision``,
            ``output`` or ``overlap``.
    """
    streamer = SequenceStreamer(
        network, roi_size, time_chunk, overlap=overlap, mode=mode, sigma_scale=sigma_scale,
        padding_mode=padding_mode, cval=cval, sw_batch_size=sw_batch_size, precision=precision, output=output,
        sw_device=sw_device, device=device,
    )
    if isinstance(inputs, torch.Tensor) and inputs.ndim < 4:
        raise ValueError(f"inputs must be (B, C, T, *spatial), got shape {tuple(inputs.shape)}.")
    total = inputs.shape[2] if isinstance(inputs, torch.Tensor) else None
    n_chunks = None if total is None else -(-total // streamer.time_chunk)
    outs: list[torch.Tensor] = []
    for chunk in _progress(_time_chunks(inputs, streamer.time_chunk), progress, total=n_chunks, desc="chunks"):
        t0 = streamer.frames
        out = streamer.step(chunk)
        if callback is not None:
            callback(out, t0)
        else:
            outs.append(out)
    if streamer.frames == 0:
        raise ValueError("the input sequence is empty.")
    logger.info("streamed %d frames in chunks of %d over %d tiles", streamer.frames, streamer.time_chunk,
                len(streamer.setup["slices"]))
    if callback is not None:
        return None
    return torch.cat(outs, 2)


class SequenceStreamer:
    """The state of one sequence being streamed through a recurrent network, one block of frames at a time.

    :func:`stream_sequence` walks a whole sequence with one; :class:`medst.inferers.StreamingInferer` keeps one per
    input across a MONAI engine's iterations, so that a dataset can feed a video chunk by chunk
    (:class:`medst.data.ChunkDataset`) and every tile still carries its recurrent state from the previous chunk.
    ``step(block)`` takes a (B, C, t, *spatial) block (any ``t``: it is cut into ``time_chunk`` frames per network
    call) and returns its stitched output; the arguments are those of :func:`stream_sequence`.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        roi_size: Sequence[int] | int,
        time_chunk: int,
        overlap: Sequence[float] | float = 0.25,
        mode: BlendMode | str = BlendMode.CONSTANT,
        sigma_scale: Sequence[float] | float = 0.125,
        padding_mode: PytorchPadMode | str = PytorchPadMode.CONSTANT,
        cval: float = 0.0,
        sw_batch_size: int = 1,
        precision: str = "auto",
        output: str = "logits",
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        # DistributedDataParallel / DataParallel forward state= and return_state= but hide the module's attributes
        if not getattr(getattr(network, "module", network), "supports_streaming", False):
            raise ValueError(
                f"{type(network).__name__} cannot stream (supports_streaming is not True): streaming needs a causal "
                "recurrent network with forward(x, state=None, return_state=False); use VolumeInferer instead, or a "
                "unidirectional variant of the network."
            )
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        if int(time_chunk) < 1:
            raise ValueError(f"time_chunk must be >= 1, got {time_chunk}.")
        if sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size}.")
        self.network = network
        self.roi_size = roi_size
        self.time_chunk = int(time_chunk)
        self.overlap, self.mode, self.sigma_scale = overlap, mode, sigma_scale
        self.padding_mode, self.cval, self.sw_batch_size, self.output = padding_mode, cval, sw_batch_size, output
        self.sw_dev = (
            torch.device(sw_device) if sw_device is not None else (_module_device(network) or torch.device("cpu"))
        )
        if _module_device(network) not in (None, self.sw_dev):
            network.to(self.sw_dev)
        self.ctx = FastPredictor(network, dtype=autocast_dtype(precision, self.sw_dev), device_type=self.sw_dev.type)
        self.out_dev = torch.device(device) if device is not None else None
        self.setup: dict[str, Any] = {}
        self.states: list[Any] = []
        self.frames = 0  # frames streamed so far

    def _prepare(self, chunk: torch.Tensor) -> None:
        nsp = chunk.ndim - 3
        roi_size = self.roi_size
        roi_t = (roi_size,) * nsp if isinstance(roi_size, int) else tuple(roi_size)
        if len(roi_t) != nsp:
            raise ValueError(
                f"roi_size {roi_t} must have one entry per spatial axis ({nsp}) of inputs (B, C, T, *spatial)."
            )
        _check_common(roi_t, self.overlap, nsp)
        roi = fall_back_tuple(roi_t, chunk.shape[3:])
        padded = tuple(max(s, r) for s, r in zip(chunk.shape[3:], roi))
        interval = _scan_interval(padded, roi, ensure_tuple_rep(self.overlap, nsp))
        slices = dense_patch_slices(padded, roi, interval)
        w = compute_importance_map(roi, mode=self.mode, sigma_scale=self.sigma_scale, device=self.sw_dev,
                                   dtype=torch.float32)
        w = w[None, None, None]
        cnt = torch.zeros((1, 1, 1, *padded), dtype=torch.float32, device=self.sw_dev)
        for s in slices:
            cnt[(0, 0, 0, *s)] += w[0, 0, 0]
        self.setup = dict(roi=roi, slices=slices, w=w, cnt=cnt, spatial=tuple(chunk.shape[3:]), batch=chunk.shape[0])
        self.states = [None] * len(slices)
        if self.out_dev is None:
            self.out_dev = chunk.device

    def step(self, block: torch.Tensor) -> torch.Tensor:
        """The stitched output of the next (B, C, t, *spatial) block of the sequence."""
        block = torch.as_tensor(block)
        if block.ndim < 4:
            raise ValueError(f"inputs must be (B, C, T, *spatial), got a block of shape {tuple(block.shape)}.")
        outs = [self._step(block[:, :, t0 : t0 + self.time_chunk]) for t0 in range(0, block.shape[2], self.time_chunk)]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 2)

    def _step(self, chunk: torch.Tensor) -> torch.Tensor:
        if not self.setup:
            self._prepare(chunk)
        setup = self.setup
        if tuple(chunk.shape[3:]) != setup["spatial"] or chunk.shape[0] != setup["batch"]:
            raise ValueError("every block of the sequence must have the same batch and spatial size.")
        if isinstance(chunk, MetaTensor):
            chunk = chunk.as_tensor()
        x = chunk.float() if chunk.dtype != torch.float32 else chunk
        x, pad_size = _pad_to_roi(x, setup["roi"], self.padding_mode, self.cval, first_axis=3)
        bsz, tc = x.shape[0], x.shape[2]
        acc = None
        slices, states, network = setup["slices"], self.states, self.network
        for g in range(0, len(slices), self.sw_batch_size):
            idx = list(range(g, min(g + self.sw_batch_size, len(slices))))
            win = torch.cat([x[(slice(None), slice(None), slice(None), *slices[i])] for i in idx]).to(self.sw_dev)
            state = _tree_cat([states[i] for i in idx])
            with self.ctx.context():
                res = network(win, state=state, return_state=True)
            if not (isinstance(res, (tuple, list)) and len(res) == 2):
                raise ValueError("network(x, state=..., return_state=True) must return (output, state).")
            out, new_state = res
            for i, st in zip(idx, _tree_split(new_state, bsz, len(idx))):
                states[i] = st
            out = out.float()
            if acc is None:
                acc = torch.zeros((bsz, out.shape[1], tc, *x.shape[3:]), dtype=torch.float32, device=self.sw_dev)
            out = out * setup["w"]
            for j, i in enumerate(idx):
                acc[(slice(None), slice(None), slice(None), *slices[i])] += out[j * bsz : (j + 1) * bsz]
        acc /= setup["cnt"]
        acc = _crop_pad(acc, pad_size, first_axis=3)
        if self.output == "probs":
            acc = torch.softmax(acc, 1)
        elif self.output == "labels":
            acc = channel_argmax(acc)
        self.frames += tc
        return acc.to(self.out_dev)


# ----------------------------------------------------------------------------------------------------------------
# classification: several clips per input, their scores averaged
# ----------------------------------------------------------------------------------------------------------------
CLIP_AVERAGES = ("softmax", "logits")


def clip_starts(num_frames: int, clip_frames: int, num_clips: int) -> list[int]:
    """First frames of ``num_clips`` clips of ``clip_frames`` spread evenly over ``num_frames`` frames.

    The first clip starts at frame 0 and the last ends at the last frame (``numpy.linspace`` over the possible
    starts, rounded); starts that coincide are kept once. An input no longer than one clip has the single start 0.

    Raises:
        ValueError: a count below 1.

    Example::

        clip_starts(16, 8, 3)   # [0, 4, 8]
    """
    for name, value in (("num_frames", num_frames), ("clip_frames", clip_frames), ("num_clips", num_clips)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    room = int(num_frames) - int(clip_frames)
    if room <= 0 or int(num_clips) == 1:
        return [max(room, 0) // 2]
    return sorted({int(round(room * k / (int(num_clips) - 1))) for k in range(int(num_clips))})


def multi_clip_inference(
    inputs: torch.Tensor,
    network: Callable[[torch.Tensor], torch.Tensor],
    clip_frames: int,
    num_clips: int = 3,
    axis: int = 0,
    average: str = "softmax",
    clip_batch_size: int | None = None,
) -> torch.Tensor:
    """Classify an input from several clips: ``num_clips`` evenly spaced windows of ``clip_frames`` along one axis,
    each classified by ``network``, their class scores averaged (video-level prediction from clip-level scores, as
    C3D, Tran et al. 2015, https://arxiv.org/abs/1412.0767, and R(2+1)D, Tran et al. 2018,
    https://arxiv.org/abs/1711.11248, evaluate: softmax scores averaged over clips).

    A video ``(B, C, T, H, W)`` is cut along time (``axis=0``, the first axis after the channel); a volume
    ``(B, C, X, Y, Z)`` along any of its axes (slabs). An input shorter than ``clip_frames`` is repeated from its
    start ("wrap") up to ``clip_frames`` and classified once.

    Args:
        inputs: ``(B, C, *axes)``.
        network: maps ``(N, C, *clip axes)`` to class logits ``(N, K)``.
        clip_frames: clip length along ``axis``.
        num_clips: clips per input (see :func:`clip_starts`).
        axis: the axis cut into clips, counted after the channel (0 is time for a video).
        average: ``"softmax"``: the mean of the clips' softmax probabilities (returns probabilities); ``"logits"``:
            the mean of their logits (returns logits).
        clip_batch_size: clips per network call; ``None``: all ``B * num_clips`` at once.

    Returns:
        ``(B, K)``: class probabilities (``average="softmax"``) or logits (``"logits"``), float32.

    Raises:
        ValueError: an input with fewer than 2 axes after the batch, an axis out of range, an unknown ``average``,
            a non-positive count, or a network output that is not ``(N, K)``.

    Example::

        probs = multi_clip_inference(video, net, clip_frames=8, num_clips=3)   # (B, K), rows sum to 1
    """
    if average not in CLIP_AVERAGES:
        raise ValueError(f"average must be one of {CLIP_AVERAGES}, got {average!r}.")
    if inputs.ndim < 3:
        raise ValueError(f"inputs must be (B, C, *axes) with at least one axis, got shape {tuple(inputs.shape)}.")
    if not 0 <= int(axis) < inputs.ndim - 2:
        raise ValueError(f"axis must be in [0, {inputs.ndim - 2}) for inputs of shape {tuple(inputs.shape)}, got {axis}.")
    if clip_batch_size is not None and int(clip_batch_size) < 1:
        raise ValueError(f"clip_batch_size must be >= 1 or None, got {clip_batch_size}.")
    dim = int(axis) + 2
    n = int(inputs.shape[dim])
    starts = clip_starts(n, clip_frames, num_clips)
    index = torch.arange(int(clip_frames), device=inputs.device)
    clips = [inputs.index_select(dim, (index + s) % n) for s in starts]  # "wrap" where the input is short
    batch = torch.stack(clips, 1).flatten(0, 1)  # (B * N, C, ...): the clips of one input are consecutive
    if isinstance(batch, MetaTensor):
        batch = batch.as_tensor()
    step = batch.shape[0] if clip_batch_size is None else int(clip_batch_size)
    logits = torch.cat([network(batch[i : i + step]) for i in range(0, batch.shape[0], step)], 0)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        raise ValueError(f"the network must give class logits (N, K) for N clips; got shape {tuple(logits.shape)} "
                         f"for {batch.shape[0]} clips.")
    scores = logits.float().reshape(inputs.shape[0], len(starts), -1)
    if average == "softmax":
        scores = scores.softmax(-1)
    return scores.mean(1)
