"""The video reader goes by content: a clip written by PyAV in each common container reads through ``LoadImage()``.

Every clip is made here with PyAV (this PyAV wheel's FFmpeg encodes all of them). Encoder choices, where the
container's usual codec has no encoder in this build: .ogv/.ogg use VP8 (the build has no Theora encoder);
.3gp/.3g2 use MPEG-4 Part 2 (H.263 only takes its fixed frame sizes, not 32x32); .rm uses RealVideo 1 (rv10);
.swf uses Sorenson/FLV1; .m1v/.mpg use MPEG-1 at 25 fps (MPEG-1 only takes the standard frame rates).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from monai.transforms import LoadImage, LoadImaged

import medst  # noqa: F401  (registers the reader)
from medst.data import VideoReader, is_video_file, read_video

N, H, W = 8, 32, 32

# suffix -> (encoder, pixel format, FFmpeg muxer or None for the suffix's default)
CONTAINERS = {
    "mp4": ("libx264", "yuv420p", None),
    "m4v": ("libx264", "yuv420p", None),
    "mov": ("libx264", "yuv420p", None),
    "mkv": ("ffv1", "gray", None),
    "webm": ("libvpx-vp9", "yuv420p", None),
    "avi": ("mpeg4", "yuv420p", None),
    "gif": ("gif", "gray", None),
    "mpg": ("mpeg1video", "yuv420p", None),
    "mpeg": ("mpeg2video", "yuv420p", None),
    "m1v": ("mpeg1video", "yuv420p", None),
    "vob": ("mpeg2video", "yuv420p", None),
    "wmv": ("wmv2", "yuv420p", None),
    "asf": ("msmpeg4", "yuv420p", None),
    "flv": ("flv", "yuv420p", None),
    "f4v": ("libx264", "yuv420p", None),
    "3gp": ("mpeg4", "yuv420p", None),
    "3g2": ("mpeg4", "yuv420p", None),
    "ogv": ("libvpx", "yuv420p", None),
    "ogg": ("libvpx", "yuv420p", None),
    "rm": ("rv10", "yuv420p", None),
    "swf": ("flv", "yuv420p", None),
    "ts": ("mpeg2video", "yuv420p", None),
    "mts": ("libx264", "yuv420p", "mpegts"),
    "m2ts": ("libx264", "yuv420p", "mpegts"),
}


def _frames() -> np.ndarray:
    """Grey frames, each brighter than the one before (so that the order can be checked through a lossy codec)."""
    y, x = np.mgrid[0:H, 0:W]
    base = (x + y).astype(np.float64)  # a smooth ramp, 0..62
    return np.stack([np.clip(base + 40 + 20 * t, 0, 255) for t in range(N)]).astype(np.uint8)


def _write(path, encoder: str, pix_fmt: str, fmt: str | None, frames: np.ndarray, rate: int = 25) -> None:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(encoder, rate=rate)
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        if encoder in ("libx264",):
            s.options = {"crf": "10"}
        for f in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("containers")
    frames = _frames()
    out = {}
    for sfx, (enc, pix, fmt) in CONTAINERS.items():
        path = folder / f"clip.{sfx}"
        _write(path, enc, pix, fmt, frames)
        out[sfx] = path
    return frames, out


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_load_image_reads_every_container(clips, suffix):
    frames, paths = clips
    path = paths[suffix]
    img = LoadImage(ensure_channel_first=True, dtype=None)(path)  # picked by LoadImage() after import medst
    assert isinstance(LoadImage().readers[-1], VideoReader) and LoadImage().readers[-1].verify_suffix(path)
    assert img.dtype == torch.uint8
    assert not img.meta["variable_frame_rate"] and "frame_times" not in img.meta  # constant rate: the affine says it
    assert img.shape[1:] == (N, H, W), img.shape
    grey = img.float().mean(0).numpy()  # the channel mean: grey for grey streams, ~grey for colour ones
    # the frames come back in order and close to what was written (all but FFV1/GIF are lossy)
    err = np.abs(grey - frames).mean(axis=(1, 2))
    assert err.max() < 12, (suffix, err)
    assert np.all(np.diff(grey.mean(axis=(1, 2))) > 10)
    assert img.meta["num_frames"] == N and img.meta["frames_decoded"] == N
    assert not img.meta["decode_incomplete"]
    _, meta = read_video(path)
    assert len(meta["frame_times"]) == N
    np.testing.assert_allclose(np.diff(np.asarray(meta["frame_times"])), 1 / 25, atol=2e-3)
    assert img.meta["fps"] == pytest.approx(25.0, rel=0.02)


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_seek_in_every_container_is_exact(clips, suffix):
    _, paths = clips
    full, meta = read_video(paths[suffix], channels="grey")
    part, pmeta = read_video(paths[suffix], channels="grey", start=3, num_frames=2, stride=2)
    assert part.shape == (2, H, W)
    np.testing.assert_array_equal(part, full[3:7:2])
    np.testing.assert_allclose(pmeta["frame_times"], meta["frame_times"][3:7:2])


@pytest.mark.parametrize("suffix", ["mkv", "mpg", "ts"])
def test_content_not_suffix(clips, tmp_path, suffix):
    """A video under a name that says nothing (no suffix, or .dat) is still found by content."""
    _, paths = clips
    for name in ("recording", "recording.dat"):
        p = tmp_path / name
        p.write_bytes(paths[suffix].read_bytes())
        assert is_video_file(p)
        img = LoadImage(ensure_channel_first=True, dtype=None)(p)
        assert tuple(img.shape[1:]) == (N, H, W)


@pytest.mark.parametrize("reader", ["VideoReader", "medst.data.VideoReader"])
def test_config_naming_the_reader_reads_mpeg_ps(clips, reader):
    _, paths = clips
    data = LoadImaged("image", reader=reader, ensure_channel_first=True, dtype=None)({"image": paths["vob"]})
    assert tuple(data["image"].shape) == (3, N, H, W)


def test_non_videos_keep_their_readers(sample, tmp_path):
    """NIfTI, PNG, numpy, NRRD-like files are never claimed, whatever their name."""
    import nibabel as nib
    from PIL import Image

    vol = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(60, dtype=np.float32).reshape(3, 4, 5), np.eye(4)), vol)
    png = tmp_path / "still.png"
    Image.fromarray(np.full((6, 7), 9, np.uint8)).save(png)
    npy = tmp_path / "arr.npy"
    np.save(npy, np.zeros((2, 3), np.float32))
    for p in (vol, png, npy):
        assert not is_video_file(p)
        disguised = tmp_path / f"{p.stem.split('.')[0]}_noext"
        disguised.write_bytes(p.read_bytes())
        assert not is_video_file(disguised)  # magic bytes, not the name
    assert not is_video_file(tmp_path)  # a folder (a DICOM series) is never a video
    assert tuple(LoadImage(image_only=True)(vol).shape) == (3, 4, 5)
    assert tuple(LoadImage(image_only=True)(png).shape) == (7, 6)
    head = LoadImage(image_only=True)(sample("head_t1"))
    assert "fps" not in head.meta and "frame_times" not in head.meta  # MONAI's NIfTI reading


def test_probe_is_cached_and_never_decodes(clips, tmp_path, monkeypatch):
    _, paths = clips
    p = tmp_path / "cached.dat"
    p.write_bytes(paths["mkv"].read_bytes())
    calls = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        calls.append(args[0])
        return real_open(*args, **kwargs)

    def no_decode(*args, **kwargs):
        raise AssertionError("the probe decoded a frame")

    monkeypatch.setattr(av, "open", counting_open)
    monkeypatch.setattr(av.container.InputContainer, "decode", no_decode)
    assert is_video_file(p) and is_video_file(p) and VideoReader().verify_suffix([p, p])
    assert len(calls) == 1


def test_uint8_until_asked(clips):
    _, paths = clips
    arr, _ = read_video(paths["mkv"])
    assert arr.dtype == np.uint8
    img = LoadImage(reader=VideoReader(dtype=np.float32), dtype=None, ensure_channel_first=True)(paths["mkv"])
    assert img.dtype == torch.float32 and float(img.max()) > 100  # not rescaled


def test_rate_fraction_kept(clips):
    _, paths = clips
    with av.open(str(paths["mp4"])) as c:
        assert Fraction(c.streams.video[0].average_rate) == 25
