from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _bad_videos import audio_only, zero_frames
from _tiny_bundle import make_tiny_bundle

from medst.cli import build_parser, main


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    make_tiny_bundle(root, name="tiny_seg")
    make_tiny_bundle(root, name="other_seg")
    (root / "not_a_bundle").mkdir()
    return root


def test_predict_writes_in_input_space_and_skips(bundles, sample, tmp_path, capsys):
    t1 = sample("anatomical_t1")
    out = tmp_path / "out"
    argv = ["predict", "--bundle", str(bundles / "tiny_seg"), str(t1), "-o", str(out), "--device", "cpu"]
    assert main([*argv, "--no-progress"]) == 0
    saved = out / "anatomical_seg.nii.gz"
    assert capsys.readouterr().out.split() == [str(saved)]
    img, seg = nib.load(t1), nib.load(saved)
    assert seg.shape == img.shape
    np.testing.assert_allclose(seg.affine, img.affine, atol=1e-5)
    before = saved.stat().st_mtime_ns
    assert main(argv) == 0  # output exists: skipped
    assert saved.stat().st_mtime_ns == before
    assert main([*argv, "--overwrite", "--roi", "16,16,8", "--overlap", "0.5", "--precision", "fp32"]) == 0
    assert saved.stat().st_mtime_ns != before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--roi", "8", "--overlap", "2"], "overlap must be in"),
        (["--device", "cpu", "--num-workers", "-1"], "--num-workers must be >= 0"),
    ],
)
def test_predict_option_errors(bundles, sample, tmp_path, capsys, extra, message):
    argv = ["predict", "-b", str(bundles / "tiny_seg"), str(sample("anatomical_t1")), "-o", str(tmp_path), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["predict", "-b", "/no/such/bundle", "x.nii.gz", "-o", "out"], 1, "bundle folder '/no/such/bundle' does not"),
        (["info", "/no/such/bundle"], 1, "does not exist"),
        (["predict", "x.nii.gz", "-o", "out"], 2, "--bundle"),
        (["predict", "-b", "b", "x", "-o", "o", "--roi", "a,b"], 2, "--roi takes integers"),
        (["predict", "-b", "b", "x", "-o", "o", "--precision", "fp8"], 2, "invalid choice"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_predict_missing_input(bundles, tmp_path, capsys):
    argv = ["predict", "-b", str(bundles / "tiny_seg"), str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("does not exist") and "nope.nii.gz" in err


def test_list(bundles, capsys):
    assert main(["list", "--bundles-dir", str(bundles)]) == 0
    out = capsys.readouterr().out
    assert "other_seg" in out and "tiny_seg" in out and "not_a_bundle" not in out
    assert "Tiny two-class segmentation for tests" in out
    try:
        from medst.networks import list_networks
    except ImportError:
        return
    assert f"networks ({len(list_networks())})" in out


def test_info(bundles, capsys):
    assert main(["info", str(bundles / "tiny_seg")]) == 0
    out = capsys.readouterr().out
    assert "name:        tiny_seg" in out and "version:     0.1.0" in out
    assert "input        image:" in out and "num_channels=2" in out and '"mean_dice": 0.0' in out
    assert main(["info", str(bundles / "tiny_seg"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "tiny_seg" and info["outputs"]["pred"]["channel_def"]["1"] == "foreground"


def test_roi_parsing():
    args = build_parser().parse_args(["predict", "-b", "b", "x", "-o", "o", "--roi", "96,96,64"])
    assert args.roi == [96, 96, 64] and args.inputs == ["x"] and args.num_workers == 0
    assert build_parser().parse_args(["predict", "-b", "b", "x", "y", "-o", "o", "--roi", "32"]).roi == 32


def test_console_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "medst.cli", "predict", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "--output-dir" in out.stdout and "--num-workers" in out.stdout


def test_cuda_asked_without_cuda(bundles, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    argv = ["predict", "-b", str(bundles / "tiny_seg"), "x.nii.gz", "-o", str(tmp_path), "--device", "cuda"]
    assert main(argv) == 1
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def test_set_overrides_config(bundles, sample, tmp_path, capsys):
    t1 = str(sample("anatomical_t1"))
    argv = ["predict", "-b", str(bundles / "tiny_seg"), t1, "-o", str(tmp_path), "--no-progress"]
    assert main([*argv, "--set", "postprocessing#transforms#3#output_postfix=mask"]) == 0
    assert (tmp_path / "anatomical_mask.nii.gz").is_file()
    assert main([*argv, "--set", "novalue"]) == 2
    assert "--set takes KEY=VALUE" in capsys.readouterr().err


def test_bundle_by_name(bundles, monkeypatch, capsys):
    import medst.api

    monkeypatch.setattr(medst.api, "default_bundles_dir", lambda: bundles)
    assert main(["info", "other_seg"]) == 0  # a bare name is looked up in the repository's bundles/
    assert "name:        other_seg" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert f"bundles in {bundles}:" in capsys.readouterr().out
    assert main(["info", "missing_seg"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "other_seg, tiny_seg" in err  # the message lists what there is


def test_continue_on_error(bundles, sample, tmp_path, capsys):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    t1 = str(sample("anatomical_t1"))
    argv = ["predict", "-b", str(bundles / "tiny_seg"), str(broken), t1, "-o", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 1  # stops at the broken file
    assert not (tmp_path / "out" / "anatomical_seg.nii.gz").exists()
    first, *causes = capsys.readouterr().err.strip().splitlines()
    # medst's line names the file; the causes follow, down to the reader's own message
    assert first.startswith("medst predict: error: ") and "broken.nii.gz: bundle tiny_seg failed" in first
    assert causes and all(c.startswith("  caused by: ") for c in causes)
    assert any("applying transform" in c and "LoadImaged" in c for c in causes)
    assert "broken.nii.gz" in causes[-1] and "Traceback" not in causes[-1]
    assert main([*argv, "--continue-on-error"]) == 1  # goes on, and still says that something failed
    captured = capsys.readouterr()
    assert captured.out.split() == [str(tmp_path / "out" / "anatomical_seg.nii.gz")]
    assert "1 of 2 input(s) failed" in captured.err and f"  {broken}: " in captured.err


def test_unknown_set_key_lists_close_matches(bundles, sample, tmp_path, capsys):
    argv = ["predict", "-b", str(bundles / "tiny_seg"), str(sample("anatomical_t1")), "-o", str(tmp_path)]
    assert main([*argv, "--set", "overlapp=0.5"]) == 1
    err = capsys.readouterr().err
    assert "has no id 'overlapp' to override; did you mean overlap" in err
    assert not any(p.suffix == ".gz" for p in tmp_path.iterdir())


def test_fp16_on_the_cpu_is_refused(bundles, sample, tmp_path, capsys):
    argv = ["predict", "-b", str(bundles / "tiny_seg"), str(sample("anatomical_t1")), "-o", str(tmp_path)]
    assert main([*argv, "--device", "cpu", "--precision", "fp16"]) == 1
    assert "'fp16' on the CPU" in capsys.readouterr().err


def test_empty_weights_name_the_file(tmp_path, sample, capsys):
    bundle = make_tiny_bundle(tmp_path, name="empty_weights")
    (bundle / "models" / "model.pt").write_bytes(b"")
    assert main(["predict", "-b", str(bundle), str(sample("anatomical_t1")), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{bundle / 'models' / 'model.pt'} is empty (0 bytes)" in err and "EOFError" not in err


def test_wrong_dimensions_in_the_cli(bundles, tmp_path, capsys):
    f = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 18), np.float32), np.eye(4)), str(f))
    assert main(["predict", "-b", str(bundles / "tiny_seg"), str(f), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "slice.nii.gz: a 2D image of shape (20, 18); bundle tiny_seg expects a scan" in err


def test_a_failure_prints_the_chain_without_tracebacks(bundles, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "medst.cli", "predict", "-b", str(bundles / "tiny_seg"), str(broken), "-o",
         str(tmp_path / "out"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("medst predict: error: "))
    assert f"{broken}: bundle tiny_seg failed on this input" in lines[start]
    assert all(line.startswith("  caused by: ") for line in lines[start + 1 :]) and len(lines) > start + 2


DIGITS = Path(__file__).resolve().parents[1] / "bundles" / "moving_digits_convlstm_segmentation"


@pytest.mark.parametrize("kind, name, message", [
    ("random", "random.mp4", "cannot open as a video"),
    ("audio", "audio.mp4", "no video stream"),
    ("zero", "zero.avi", "zero frames"),
    ("cut", "cut.mkv", "decoding stopped at frame"),
])
def test_bad_videos_through_the_video_bundle_name_the_file(tmp_path, capsys, kind, name, message):
    """The chunked video bundle, from the CLI: a bad video is one clear line naming the file, and leaves no output."""
    from medst.data import write_video

    path = tmp_path / name
    if kind == "random":
        path.write_bytes(np.random.default_rng(3).integers(0, 256, 6000, dtype=np.uint8).tobytes())
    elif kind == "audio":
        audio_only(path)
    elif kind == "zero":
        zero_frames(path)
    else:
        full = write_video(np.random.default_rng(0).integers(0, 256, (300, 64, 64), dtype=np.uint8),
                           tmp_path / "full.mkv", fps=25)
        data = full.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
        full.unlink()
    out = tmp_path / "out"
    assert main(["predict", "-b", str(DIGITS), str(path), "-o", str(out), "--device", "cpu", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"medst predict: error: {path}: bundle moving_digits_convlstm_segmentation failed on this input" in err
    assert any(name in line and message in line for line in err.splitlines() if "caused by:" in line), err
    assert "cannot find a suitable reader" not in err
    # (no traceback in a real run: test_a_failure_prints_the_chain_without_tracebacks, a subprocess; in-process
    # runs of several tests share MONAI's StatsHandler logger, whose handler keeps an earlier test's stderr)
    assert not [p for p in out.rglob("*") if p.is_file() and p.name.endswith((".mkv", ".mp4"))]


def test_compile_a_bundle_that_stays_eager(bundles, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDST_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["compile", str(bundles / "tiny_seg"), "--device", "cpu"]) == 1  # the bundle runs in float32
    assert "no compiled package" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "compiled").exists() or not any((tmp_path / "cache" / "compiled").iterdir())


@pytest.mark.slow  # one AOTInductor compile: a minute or more on 2 shared cores
def test_compile_then_predict_loads_the_package(bundles, sample, tmp_path, monkeypatch, capsys, caplog):
    from medst.inferers.utils import autocast_dtype

    if autocast_dtype("bf16", "cpu") is None:
        pytest.skip("no native bfloat16 on this CPU")
    monkeypatch.setenv("MEDST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDST_COMPILE", "always")  # the one-convolution network may run no faster compiled
    argv = ["--precision", "bf16", "--device", "cpu"]
    assert main(["compile", str(bundles / "tiny_seg"), *argv]) == 0
    package = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert package.suffix == ".pt2" and package.parent == tmp_path / "cache" / "compiled" and package.is_file()
    caplog.clear()
    with caplog.at_level("INFO", logger="medst.inferers.aot"):
        code = main(["predict", "--bundle", str(bundles / "tiny_seg"), str(sample("anatomical_t1")), "-o",
                     str(tmp_path / "out"), *argv])
    assert code == 0
    assert f"from {package}" in caplog.text and "no compiled version" not in caplog.text


def test_compile_finds_the_window_inferer_inside_the_atlas_prior_inferer(tmp_path, monkeypatch, capsys):
    # brain_extraction_unetr's inferer is an AtlasPriorInferer over a VolumeInferer; in float32 it stays eager
    monkeypatch.setenv("MEDST_CACHE_DIR", str(tmp_path / "cache"))
    brain = Path(__file__).resolve().parents[1] / "bundles" / "brain_extraction_unetr"
    assert main(["compile", str(brain), "--device", "cpu", "--precision", "fp32"]) == 1
    err = capsys.readouterr().err
    assert "no compiled package" in err and "only VolumeInferer bundles" not in err
