"""Chunk-by-chunk inputs: ChunkDataset, StreamingInferer across engine iterations, chunk writers, overlays."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from medst.bundle import run_workflow
from medst.data import ChunkDataset, ChunkWriter, iter_chunks, read_video, write_video
from medst.data.utils import CorruptFileError, MedstDataError
from medst.inferers import StreamingInferer, stream_sequence
from medst.transforms import NormalizeSeriesIntensity, Overlay, SaveNiftiChunksd, SaveVideoChunksd

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "bundles" / "moving_digits_convlstm_segmentation"
CARDIAC = REPO / "bundles" / "cardiac_phantom_convlstm4d_segmentation"


class TinyRNN(torch.nn.Module):
    """A causal recurrent net: out_t = conv(x_t) + 0.5 * h_{t-1}, h_t = tanh(out_t); state carried per tile."""

    supports_streaming = True

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x, state=None, return_state=False):
        b, c, t = x.shape[:3]
        h = torch.zeros(b, 2, *x.shape[3:]) if state is None else state
        outs = []
        for i in range(t):
            o = self.conv(x[:, :, i]) + 0.5 * h
            h = torch.tanh(o)
            outs.append(o)
        out = torch.stack(outs, 2)
        return (out, h) if return_state else out


def _video(tmp_path: Path, frames: int = 23, name: str = "clip.mkv") -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (frames, 24, 32), dtype=np.uint8)
    path = tmp_path / name
    write_video(arr, path, fps=12.5)
    return path, arr


def test_iter_chunks_positions_and_uint8(tmp_path):
    path, arr = _video(tmp_path)
    chunks = list(iter_chunks(path, chunk_frames=5))
    assert [c.meta["chunk_index"] for c in chunks] == [0, 1, 2, 3, 4]
    assert [c.meta["chunk_start"] for c in chunks] == [0, 5, 10, 15, 20]
    assert [c.meta["last_chunk"] for c in chunks] == [False] * 4 + [True]
    assert all(c.dtype == torch.uint8 and c.shape[0] == 1 for c in chunks)
    whole = torch.cat([c.as_tensor() for c in chunks], 1)[0].numpy()
    np.testing.assert_array_equal(whole, arr)  # FFV1 is lossless
    # each chunk's affine puts its first frame at its time: t = chunk_start / fps
    assert float(chunks[3].affine[0, 3]) == pytest.approx(15 / 12.5)
    assert float(chunks[3].affine[0, 0]) == pytest.approx(1 / 12.5)
    assert chunks[-1].meta["frames_decoded"] == 23


def test_iter_chunks_truncated_video_raises_or_keeps(tmp_path):
    path, _ = _video(tmp_path, frames=40, name="long.mkv")
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(CorruptFileError, match=r"cut\.mkv: decoding stopped at frame \d+"):
        list(iter_chunks(cut, chunk_frames=8))
    kept = list(iter_chunks(cut, chunk_frames=8, on_error="keep"))
    n = sum(c.shape[1] for c in kept)
    assert 0 < n < 40
    assert kept[-1].meta["last_chunk"] and kept[-1].meta["decode_incomplete"]
    assert kept[-1].meta["frames_decoded"] == n
    assert not kept[0].meta.get("decode_incomplete")  # only known, and said, at the end


def test_iter_chunks_errors_name_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(MedstDataError, match="junk.mp4"):
        list(iter_chunks(junk))
    with pytest.raises(ValueError, match="chunk_frames"):
        list(iter_chunks(junk, chunk_frames=0))
    with pytest.raises(ValueError, match="on_error"):
        list(iter_chunks(junk, on_error="ignore"))


def test_streaming_inferer_chunks_equal_whole_and_keep_meta(tmp_path):
    torch.manual_seed(0)
    net = TinyRNN().eval()
    path, arr = _video(tmp_path)
    whole = stream_sequence(torch.from_numpy(arr).float()[None, None], (16, 16), 4, net, overlap=0.5,
                            precision="fp32", progress=False)
    inferer = StreamingInferer((16, 16), time_chunk=4, overlap=0.5, precision="fp32", progress=False)
    loader = DataLoader(ChunkDataset([{"image": str(path)}], chunk_frames=7), batch_size=1, num_workers=0)
    outs = []
    for batch in loader:
        out = inferer(batch["image"].float(), net)
        assert isinstance(out, MetaTensor)
        assert out.meta["chunk_start"].item() == sum(o.shape[2] for o in outs)
        outs.append(out)
    torch.testing.assert_close(torch.cat([o.as_tensor() for o in outs], 2), whole, rtol=1e-5, atol=1e-5)
    assert not inferer.__dict__.get("_streams")  # the state is dropped after the last chunk
    # a whole tensor in, a MetaTensor with its metadata out
    x = MetaTensor(torch.rand(1, 1, 5, 16, 16), meta={"filename_or_obj": "x.mp4", "fps": 25.0})
    y = inferer(x, net)
    assert isinstance(y, MetaTensor) and y.meta["fps"] == 25.0


def test_streaming_inferer_refuses_chunks_out_of_order(tmp_path):
    net = TinyRNN().eval()
    inferer = StreamingInferer((16, 16), time_chunk=4, precision="fp32", progress=False)
    chunk = MetaTensor(torch.rand(1, 1, 3, 16, 16), meta={"filename_or_obj": "a.mp4", "chunk_index": 2,
                                                         "last_chunk": False})
    with pytest.raises(ValueError, match="chunk 2 arrived, expected chunk 0"):
        inferer(chunk, net)


def test_chunk_dataset_reader_thread_forwards_errors(tmp_path):
    good, _ = _video(tmp_path)
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video at all" * 100)
    ds = ChunkDataset([str(good), str(bad)], chunk_frames=10, prefetch=2)
    seen = []
    with pytest.raises(MedstDataError, match="bad.mkv"):
        for d in ds:
            seen.append(d["image"].meta["filename_or_obj"])
    assert seen and all(s == str(good) for s in seen)


def test_video_chunk_writer_appends_and_moves_into_place(tmp_path):
    path, arr = _video(tmp_path)
    out_dir = tmp_path / "out"
    save = SaveVideoChunksd("pred", output_dir=str(out_dir), output_postfix="mask", output_ext=".mkv")
    chunks = list(iter_chunks(path, chunk_frames=6))
    for c in chunks[:-1]:
        save({"pred": c})
        assert not (out_dir / "clip_mask.mkv").exists()  # nothing under the final name before the last chunk
    save({"pred": chunks[-1]})
    assert save.output_paths(str(path)) == [str(out_dir / "clip_mask.mkv")]
    back, meta = read_video(out_dir / "clip_mask.mkv", channels="grey")
    np.testing.assert_array_equal(back, arr)
    assert meta["fps"] == pytest.approx(12.5)
    assert [p.name for p in out_dir.iterdir()] == ["clip_mask.mkv"]


def test_chunk_writer_abandoned_output_leaves_nothing(tmp_path):
    path, _ = _video(tmp_path)
    writer = ChunkWriter(tmp_path / "out", "mask", ".mkv")
    chunks = iter_chunks(path, chunk_frames=6)
    writer(next(chunks))
    writer(next(chunks))
    assert not writer.output_path(path).exists()
    writer.close()
    assert not any((tmp_path / "out").iterdir())
    with pytest.raises(MedstDataError, match="chunk_index"):
        writer(torch.zeros(1, 2, 4, 4))


def test_nifti_chunks_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.normal(100, 20, (6, 5, 4, 11)).astype(np.float32)
    affine = np.diag([1.5, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-10, 4, 7]
    img = nib.Nifti1Image(vol, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 0.08
    src = tmp_path / "series.nii.gz"
    nib.save(img, src)
    chunks = list(iter_chunks(src, chunk_frames=4))
    assert [c.shape for c in chunks] == [(1, 4, 6, 5, 4), (1, 4, 6, 5, 4), (1, 3, 6, 5, 4)]
    save = SaveNiftiChunksd("pred", output_dir=str(tmp_path / "out"), output_dtype=np.float32)
    for c in chunks:
        save({"pred": c})
    out = nib.load(tmp_path / "out" / "series_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(out.dataobj), vol)
    np.testing.assert_allclose(out.affine, affine)
    assert out.header["pixdim"][4] == pytest.approx(0.08)


def test_series_normalisation_of_chunks_equals_whole(tmp_path):
    from monai.transforms import NormalizeIntensity

    vol = np.random.default_rng(2).normal(50, 9, (4, 4, 3, 10)).astype(np.float32)
    src = tmp_path / "s.nii"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), src)
    ds = ChunkDataset([str(src)], transform=None, chunk_frames=3, series_stats=True, prefetch=0)
    norm = NormalizeSeriesIntensity()
    parts = [norm(d["image"]) for d in ds]
    whole = NormalizeIntensity()(torch.from_numpy(np.moveaxis(vol, -1, 0)[None]))
    torch.testing.assert_close(torch.cat([torch.as_tensor(p) for p in parts], 1), whole, rtol=1e-5, atol=1e-5)
    with pytest.raises(MedstDataError, match="series_stats"):
        norm(MetaTensor(torch.rand(1, 2, 2), meta={"chunk_index": 0}))


def test_overlay_colours_do_not_depend_on_the_chunk():
    img = torch.rand(1, 6, 8, 8)
    lab = torch.zeros(1, 6, 8, 8, dtype=torch.uint8)
    lab[:, 3:, 2:5, 2:5] = 1  # the label appears only in the second half
    ov = Overlay(alpha=0.5, num_classes=2)
    whole = ov(img, lab)
    halves = torch.cat([ov(img[:, :3], lab[:, :3]), ov(img[:, 3:], lab[:, 3:])], 1)
    assert whole.dtype == torch.uint8 and whole.shape == (3, 6, 8, 8)
    torch.testing.assert_close(whole, halves)
    grey = (img * 255).round().to(torch.uint8)
    torch.testing.assert_close(whole[:, :3], grey[:, :3].expand(3, -1, -1, -1), atol=1, rtol=0)  # no label: image
    assert not torch.equal(whole[:, 4, 3, 3], grey[:, 4, 3, 3].expand(3))  # the label is drawn
    # the blend of MONAI's blend_images, with label k coloured cmap(k / num_classes)
    from monai.visualize import blend_images

    lab3 = torch.randint(0, 3, (1, 6, 8, 8))
    ref = blend_images(img, lab3.float() / 3, alpha=0.4, cmap="hsv", rescale_arrays=False, transparent_background=True)
    got = Overlay(alpha=0.4, num_classes=3, as_uint8=False)(img, lab3)
    torch.testing.assert_close(got, ref.float(), atol=1e-6, rtol=0)


def _mask(out: Path, stem: str) -> np.ndarray:
    return read_video(out / f"{stem}_mask.mkv", channels="grey")[0]


def test_digits_bundle_chunked_equals_whole(tmp_path):
    sample = sorted((DIGITS / "sample").glob("*.mp4"))[0]
    kw = dict(bundle_root=str(DIGITS), datalist=[str(sample)])
    run_workflow([str(DIGITS / "configs" / "inference.json")], "infer", output_dir=str(tmp_path / "a"),
                 chunk_frames=7, **kw)
    run_workflow([str(DIGITS / "configs" / "inference.json")], "infer", output_dir=str(tmp_path / "b"),
                 chunk_frames=100000, **kw)
    stem = sample.name[: -len(".mp4")]
    a, b = _mask(tmp_path / "a", stem), _mask(tmp_path / "b", stem)
    n = read_video(sample, channels="grey")[0].shape[0]
    assert a.shape[0] == n  # the mask video holds every frame
    np.testing.assert_array_equal(a, b)
    assert 0 < a.mean() < 1  # both classes present
    assert (tmp_path / "a" / f"{stem}_overlay.mp4").stat().st_size > 0


def test_cardiac_bundle_chunked_equals_whole(tmp_path):
    sample = sorted((CARDIAC / "sample").glob("*.nii.gz"))[0]
    kw = dict(bundle_root=str(CARDIAC), datalist=[str(sample)])
    cfg = [str(CARDIAC / "configs" / "inference.json")]
    run_workflow(cfg, "infer", output_dir=str(tmp_path / "a"), chunk_frames=5, **kw)
    run_workflow(cfg, "infer", output_dir=str(tmp_path / "b"), chunk_frames=1000, **kw)
    name = sample.name.replace(".nii.gz", "_seg.nii.gz")
    a, b = nib.load(tmp_path / "a" / name), nib.load(tmp_path / "b" / name)
    src = nib.load(sample)
    assert a.shape == src.shape
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    np.testing.assert_allclose(a.affine, src.affine, atol=1e-5)
    assert a.header["pixdim"][4] == pytest.approx(src.header["pixdim"][4], rel=1e-4)
    assert json.loads(json.dumps(a.header.get_xyzt_units())) == ["mm", "sec"]


def test_large_frames_make_shorter_chunks(tmp_path):
    path, arr = _video(tmp_path)  # 23 frames of 24x32
    sizes = [c.shape[1] for c in iter_chunks(path, chunk_frames=10, max_chunk_voxels=24 * 32 * 4)]
    assert sizes == [4, 4, 4, 4, 4, 3]  # 4 frames fit the cap
    assert [c.shape[1] for c in iter_chunks(path, chunk_frames=10)] == [10, 10, 3]
    ds = ChunkDataset([str(path)], chunk_frames=10, max_chunk_voxels=24 * 32 * 4, prefetch=0)
    np.testing.assert_array_equal(torch.cat([d["image"].as_tensor() for d in ds], 1)[0].numpy(), arr)
