"""medst.load_bundle(...).predict(...): the bundle's own inference workflow, with inputs, outputs and settings as
overrides; finished outputs skipped; arrays, folders, errors, temporaries, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _tiny_bundle import make_tiny_bundle, make_tiny_video_bundle
from monai.data import MetaTensor
from monai.transforms import LoadImage

import medst
from medst.api import Bundle, ClassPrediction, PredictError, bundle_info, find_bundles, load_bundle, load_weights
from medst.bundle.runner import MANIFEST_NAME, TMP_PREFIX

WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def seg(bundle_dir):
    return load_bundle(bundle_dir, device="cpu")


@pytest.fixture
def t1(sample):
    return sample("anatomical_t1")


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _edit_config(bundle: Path, edit) -> Path:
    f = bundle / "configs" / "inference.json"
    cfg = json.loads(f.read_text())
    edit(cfg)
    f.write_text(json.dumps(cfg, indent=2))
    return bundle


def test_predict_path_lands_in_input_space(seg, t1, tmp_path):
    pred = seg.predict(t1, output_dir=tmp_path)
    src = nib.load(t1)
    saved = tmp_path / "anatomical_seg.nii.gz"
    assert saved.is_file() and Path(pred.meta["saved_to"]) == saved
    out = nib.load(saved)
    # the bundle resamples to 2 mm in LPS; its Invertd must restore shape, affine, orientation and spacing
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert isinstance(pred, MetaTensor) and tuple(pred.shape) == (1, *src.shape)
    np.testing.assert_allclose(pred.affine.numpy(), src.affine, atol=1e-5)
    labels = np.unique(out.get_fdata())
    assert set(labels) <= {0.0, 1.0} and len(labels) == 2  # a real two-class answer, not a constant
    np.testing.assert_array_equal(np.asarray(out.dataobj), pred[0].numpy().astype(np.uint8))
    assert _visible(tmp_path) == ["anatomical_seg.nii.gz"] and (tmp_path / MANIFEST_NAME).is_file()
    assert not list(tmp_path.glob(f"{TMP_PREFIX}*"))  # its temporary folder is gone


def test_predict_without_output_dir_writes_nothing(seg, t1, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.chdir(tmp_path)
    pred = seg.predict(t1)
    assert tuple(pred.shape) == (1, 33, 41, 25)
    assert "saved_to" not in pred.meta
    assert list(tmp_path.iterdir()) == []
    assert not (seg.path / "eval").exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{os.getpid()}-*"))


def test_the_run_is_the_bundles_workflow_with_overrides(bundle_dir, tmp_path):
    b = load_bundle(bundle_dir, device="cpu", roi_size=8, overlap=0.5, sw_batch_size=4)
    wf = b.workflow(["x.nii.gz"], tmp_path)
    wf.initialize()
    inferer = wf.parser.get_parsed_content("inferer")
    assert tuple(inferer.roi_size) == (8, 8, 8) and inferer.overlap == 0.5 and inferer.sw_batch_size == 4
    assert wf.parser.get_parsed_content("datalist") == ["x.nii.gz"]
    assert wf.parser.get_parsed_content("output_dir") == str(tmp_path)
    assert wf.parser.get_parsed_content("device") == torch.device("cpu")
    assert wf.check_properties() in (None, [])


def test_skip_finished_and_overwrite(seg, t1, tmp_path):
    first = seg.predict(t1, output_dir=tmp_path)
    saved = tmp_path / "anatomical_seg.nii.gz"
    stamp = saved.stat().st_mtime_ns
    again = seg.predict(t1, output_dir=tmp_path)  # skipped, read back from disk
    assert seg.last_skipped == [str(t1)] and seg.last_predicted == [] and saved.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.numpy(), first.numpy())
    np.testing.assert_allclose(again.affine.numpy(), first.affine.numpy(), atol=1e-5)
    seg.predict(t1, output_dir=tmp_path, overwrite=True)
    assert seg.last_predicted == [str(t1)] and saved.stat().st_mtime_ns != stamp
    assert seg.predict(t1, output_dir=tmp_path, return_predictions=False) == saved


def test_unfinished_outputs_are_redone(seg, t1, tmp_path):
    """Empty, missing, a link to the input, an output without its manifest entry: none counts as finished."""
    data = tmp_path / "data"
    data.mkdir()
    scan = data / "scan.nii"
    shutil.copy(t1, scan)
    out = tmp_path / "out"
    saved = out / "scan_seg.nii.gz"
    seg.predict(scan, output_dir=out)
    for spoil in ("empty", "missing", "link", "no record", "input changed"):
        if spoil == "empty":
            saved.write_bytes(b"")
        elif spoil == "missing":
            saved.unlink()
        elif spoil == "link":
            saved.unlink()
            saved.symlink_to(scan)
        elif spoil == "no record":  # a run killed after writing, before its record
            (out / MANIFEST_NAME).unlink()
        else:
            os.utime(scan, ns=(time.time_ns(), time.time_ns() + 10**9))
        seg.predict(scan, output_dir=out)
        assert seg.last_predicted == [str(scan)], spoil
        assert saved.is_file() and not saved.is_symlink() and saved.stat().st_size > 0
        assert nib.load(saved).shape == nib.load(t1).shape


def test_folder_and_list_resume(seg, t1, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.nii", "b.nii", "c.nii"):
        shutil.copy(t1, data / name)
    (data / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    # a batch "killed" after its first input: only the other two are predicted on the next run
    seg.predict(str(data / "a.nii"), output_dir=out)
    preds = seg.predict(data, output_dir=out, num_workers=1)
    assert seg.last_skipped == [str(data / "a.nii")]
    assert seg.last_predicted == [str(data / n) for n in ("b.nii", "c.nii")]
    assert len(preds) == 3 and all(tuple(p.shape) == (1, 33, 41, 25) for p in preds)
    assert _visible(out) == ["a_seg.nii.gz", "b_seg.nii.gz", "c_seg.nii.gz"]
    # the same data, same network: same labels for every copy, read back or predicted
    np.testing.assert_array_equal(preds[1].numpy(), preds[2].numpy())
    np.testing.assert_array_equal(preds[0].numpy(), preds[2].numpy())
    paths = seg.predict([data / "c.nii", str(data / "b.nii")], output_dir=out, return_predictions=False)
    assert paths == [out / "c_seg.nii.gz", out / "b_seg.nii.gz"]


def test_input_folder_is_output_folder(seg, t1, tmp_path):
    """medst's own outputs, manifest and temporaries in the folder are never taken for inputs."""
    shutil.copy(t1, tmp_path / "a.nii")
    (tmp_path / f"{TMP_PREFIX}1-leftover.nii.gz").write_bytes(b"x")  # someone else's (pid 1 is alive)
    first = seg.predict(tmp_path, output_dir=tmp_path, return_predictions=False)
    assert first == [tmp_path / "a_seg.nii.gz"]
    again = seg.predict(tmp_path, output_dir=tmp_path, return_predictions=False)
    assert again == first and seg.last_skipped == [str(tmp_path / "a.nii")] and seg.last_predicted == []
    assert _visible(tmp_path) == ["a.nii", "a_seg.nii.gz"]


def test_leftover_temporaries_of_a_killed_run_are_swept(seg, t1, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{TMP_PREFIX}{dead.pid}-abc123"
    (stale / "inputs").mkdir(parents=True)
    (stale / "inputs" / "array_0.nii.gz").write_bytes(b"half")
    alive = tmp_path / f"{TMP_PREFIX}{os.getppid()}-xyz"  # a running process's: left alone
    alive.mkdir()
    # a writer's half-written file (atomic_write_path, the chunk writers) of the killed run: swept too
    from medst.data import atomic_write_path

    with atomic_write_path(tmp_path / "b_seg.nii.gz") as part:
        assert part.name.startswith(f"{TMP_PREFIX}{os.getpid()}-")
        part.write_bytes(b"whole")
    (tmp_path / "b_seg.nii.gz").unlink()
    half = tmp_path / f"{TMP_PREFIX}{dead.pid}-b_seg.nii.x1y2.part.nii.gz"
    half.write_bytes(b"half")
    seg.predict(t1, output_dir=tmp_path)
    assert not stale.exists() and alive.is_dir() and not half.exists()


def _slow_bundle(root: Path) -> Path:
    """The tiny bundle with a postprocessing step that sleeps (a long inference to interrupt)."""
    def edit(cfg):
        cfg["imports"].append("$import time")
        cfg["postprocessing"]["transforms"].append({"_target_": "Lambda", "func": "$lambda d: (time.sleep(60), d)[1]"})

    return _edit_config(make_tiny_bundle(root, name="slow"), edit)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_terminated_run_removes_its_temporaries(tmp_path, sig):
    bundle = _slow_bundle(tmp_path)
    out = tmp_path / "out"
    code = (  # SIGINT as Ctrl-C even when this suite runs in the background (where it starts ignored)
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); import numpy as np, medst; "
        f"medst.load_bundle({str(bundle)!r}, device='cpu').predict(np.ones((20, 18, 16), np.float32), "
        f"output_dir={str(out)!r})"
    )
    env = dict(os.environ, PYTHONPATH=str(WORKTREE), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "array_0_seg.nii.gz").exists():  # in the sleep, after the writer
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.2)
        assert list(out.glob(f"{TMP_PREFIX}*"))  # the array's temporary file is there during the run
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert not list(out.glob(f"{TMP_PREFIX}*")), list(out.iterdir())
    # the input never finished (its postprocessing did not end): the next run does not take it for done
    manifest = json.loads((out / MANIFEST_NAME).read_text()) if (out / MANIFEST_NAME).exists() else {"inputs": {}}
    assert manifest["inputs"] == {}


def test_array_and_metatensor_inputs(seg, t1):
    from_path = seg.predict(t1)
    loaded = LoadImage(image_only=True, ensure_channel_first=True)(t1)
    # a MetaTensor keeps its affine: same answer as from the file
    from_meta = seg.predict(loaded)
    np.testing.assert_array_equal(from_meta.numpy(), from_path.numpy())
    np.testing.assert_allclose(from_meta.affine.numpy(), from_path.affine.numpy(), atol=1e-5)
    # a numpy array: spatial-only, channel-first (told or inferred) all give (1, *spatial) in the array's grid
    arr = np.asarray(nib.load(t1).dataobj, dtype=np.float32)
    a = seg.predict(arr)
    b = seg.predict(arr[None], channel_first=True)
    c = seg.predict(arr[None])
    assert tuple(a.shape) == (1, *arr.shape) and a.meta["filename_or_obj"] == "array_0"
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_allclose(a.affine.numpy(), np.eye(4), atol=1e-6)
    both = seg.predict([arr, t1])
    assert isinstance(both, list) and len(both) == 2
    np.testing.assert_array_equal(both[1].numpy(), from_path.numpy())


def test_array_output_names(seg, tmp_path):
    arr = np.random.default_rng(0).normal(size=(20, 18, 16)).astype(np.float32)
    seg.predict([arr, arr], output_dir=tmp_path)
    assert _visible(tmp_path) == ["array_0_seg.nii.gz", "array_1_seg.nii.gz"]
    assert seg.last_predicted == ["array_0", "array_1"]
    seg.predict([arr, arr], output_dir=tmp_path)  # arrays are never taken for finished: their content may differ
    assert seg.last_predicted == ["array_0", "array_1"]


@pytest.mark.parametrize(
    "inputs, error, match",
    [
        (123, TypeError, "unsupported input of type int"),
        ([{"image": "x"}], TypeError, "unsupported input of type dict"),
        ("/no/such/scan.nii.gz", FileNotFoundError, "does not exist"),
        ([], ValueError, "empty"),
        (np.zeros((2, 3, 4, 5, 6), np.float32), ValueError, "fits neither.*expects .* 3 axes after the channel"),
    ],
)
def test_predict_errors(seg, inputs, error, match):
    with pytest.raises(error, match=match):
        seg.predict(inputs)


@pytest.mark.parametrize("shape", [(20, 18), (20, 18, 16, 2, 3)], ids=["2D", "5D"])
def test_wrong_dimensions_say_what_the_bundle_expects(seg, tmp_path, shape):
    f = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), str(f))
    with pytest.raises(ValueError, match=rf"wrong.nii.gz: a {len(shape)}D image .*tiny_seg expects a scan .*"
                                         r"spatial_shape \[16, 16, 16\]"):
        seg.predict(f, output_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "wrong_seg.nii.gz").exists()


def test_nifti_to_a_video_bundle_is_refused(t1, tmp_path):
    vid = load_bundle(make_tiny_video_bundle(tmp_path), device="cpu")
    with pytest.raises(ValueError, match=r"anatomical.nii: a .nii file; bundle tiny_video_seg expects a video"):
        vid.predict(t1)


def test_same_output_name_is_refused(seg, t1, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(t1, tmp_path / sub / "scan.nii")
    with pytest.raises(ValueError, match="would both be written under the output name scan"):
        seg.predict([tmp_path / "a", tmp_path / "b"], output_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "scan_seg.nii.gz").exists()


def test_empty_folder(seg, tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="no supported file"):
        seg.predict(tmp_path)


def test_bundle_without_invert_or_save_is_run_as_it_is(t1, tmp_path):
    """medst adds nothing to a bundle: one that saves nothing and does not invert gives its preprocessed grid."""
    bare = load_bundle(make_tiny_bundle(tmp_path, name="bare", bare=True), device="cpu")
    pred = bare.predict(t1, output_dir=tmp_path / "out")
    assert _visible(tmp_path / "out") == []
    # Orientationd to LPS, not inverted: the affine of the preprocessed grid, not the input's (RAS) one
    src = nib.load(t1)
    assert tuple(pred.shape) == (1, *src.shape)
    assert np.sign(np.diag(src.affine)[:2]).tolist() == [-1.0, 1.0]  # anatomical.nii is L-A-S
    assert np.sign(np.diag(pred.affine.numpy())[:2]).tolist() == [-1.0, -1.0]


def test_precision_and_fp16_on_cpu(t1, tmp_path):
    from medst.inferers import VolumeInferer

    bundle = make_tiny_bundle(tmp_path, name="volume_inferer")
    ref = load_bundle(bundle, device="cpu", precision="fp32", roi_size=12)
    bf16 = load_bundle(bundle, device="cpu", precision="bf16", roi_size=12)
    wf = bf16.workflow([str(t1)], tmp_path / "x")
    wf.initialize()
    inferer = wf.parser.get_parsed_content("inferer")
    assert isinstance(inferer, VolumeInferer) and inferer.precision == "bf16" and tuple(inferer.roi_size) == (12,) * 3
    a, b = ref.predict(t1), bf16.predict(t1)
    assert a.shape == b.shape == (1, 33, 41, 25)
    assert (a == b).float().mean().item() > 0.99  # random weights: a few near-tie voxels may flip
    with pytest.raises(ValueError, match="'fp16' on the CPU.*bf16"):
        load_bundle(bundle, device="cpu", precision="fp16")


def test_a_setting_the_config_lacks(t1, tmp_path):
    def edit(cfg):
        del cfg["precision"]
        cfg["inferer"] = {"_target_": "SlidingWindowInferer", "roi_size": "@roi_size", "overlap": "@overlap"}

    stock = _edit_config(make_tiny_bundle(tmp_path, name="stock"), edit)
    with pytest.raises(ValueError, match="has no top-level 'precision': bundle stock does not take that setting"):
        load_bundle(stock, device="cpu", precision="bf16")
    assert tuple(load_bundle(stock, device="cpu", roi_size=8).predict(t1).shape) == (1, 33, 41, 25)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"precision": "fp8"}, ValueError, "precision must be one of"),
        ({"overlap": 1.5}, ValueError, "overlap must be in"),
        ({"config_overrides": {"roi_sise": [8, 8, 8]}}, KeyError, "no id 'roi_sise'.*did you mean roi_size"),
        ({"config_overrides": {"inferer#sw_batchsize": 2}}, KeyError, "did you mean inferer#sw_batch_size"),
        ({"config_overrides": {"output_dir": "x"}}, ValueError, "not config_overrides"),
    ],
)
def test_load_errors(bundle_dir, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_bundle(bundle_dir, device="cpu", **kwargs)


def test_missing_bundle_parts(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nothing")
    b = make_tiny_bundle(tmp_path)
    (b / "models" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_bundle(b)
    (b / "configs" / "inference.json").unlink()
    with pytest.raises(FileNotFoundError, match="inference.json"):
        load_bundle(b)
    (b / "configs" / "metadata.json").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        bundle_info(b)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bundle_info(tmp_path / "gone")


class Evil:
    """Unpickling this would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_weights(tmp_path, t1):
    from medst.bundle.runner import error_chain

    state = torch.nn.Conv3d(1, 2, 3, padding=1).state_dict()
    evil = make_tiny_bundle(tmp_path, name="evil", checkpoint={"model": state, "extra": Evil()})
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_bundle(evil, device="cpu")
    torch.save(torch.nn.Conv3d(1, 2, 3), tmp_path / "whole_model.pt")  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_weights(tmp_path / "whole_model.pt")
    torch.save({"module.weight": torch.ones(1)}, tmp_path / "ddp.pt")
    assert list(load_weights(tmp_path / "ddp.pt")) == ["weight"]
    empty = make_tiny_bundle(tmp_path, name="empty")
    (empty / "models" / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty/models/model.pt is empty \(0 bytes\)"):
        load_bundle(empty, device="cpu")
    half = make_tiny_bundle(tmp_path, name="half")
    data = (half / "models" / "model.pt").read_bytes()
    (half / "models" / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"half/models/model.pt is truncated or not a PyTorch file"):
        load_bundle(half, device="cpu")
    # other weights through the config's ckpt_path; weights that do not fit the network fail naming the bundle
    torch.save({"weight": torch.ones(1)}, tmp_path / "wrong.pt")
    wrong = Bundle(make_tiny_bundle(tmp_path, name="wrong"), device="cpu", weights=tmp_path / "wrong.pt")
    with pytest.raises(PredictError, match="bundle wrong: its inference workflow failed") as info:
        wrong.predict(t1)
    chain = " | ".join(error_chain(info.value))
    assert "loading state_dict" in chain and "size mismatch" in chain, chain
    # a wrapped checkpoint ({"model": state}) and a plain state dict give the same answer
    wrapped = load_bundle(make_tiny_bundle(tmp_path, name="wrapped", checkpoint="wrapped"), device="cpu")
    plain = load_bundle(make_tiny_bundle(tmp_path, name="plain"), device="cpu")
    np.testing.assert_array_equal(wrapped.predict(t1).numpy(), plain.predict(t1).numpy())


def test_find_bundles_and_info(bundle_dir, tmp_path):
    assert find_bundles(bundle_dir.parent) == [bundle_dir]
    assert find_bundles(tmp_path / "none") == []
    info = bundle_info(bundle_dir)
    assert info["name"] == "tiny_seg" and info["version"] == "0.1.0"
    assert info["inputs"]["image"]["num_channels"] == 1 and info["outputs"]["pred"]["num_channels"] == 2
    assert info["performance"]["eval_metrics"]["mean_dice"] == 0.0
    assert info["weights"] == str(bundle_dir / "models" / "model.pt")
    assert medst.load_bundle is load_bundle


def test_video_keeps_frame_rate(tmp_path):
    from medst.data import read_video, video_info, write_video

    rng = np.random.default_rng(0)
    frames = (rng.random((6, 24, 32)) * 255).astype(np.uint8)  # (T, H, W) grey
    src = write_video(frames, tmp_path / "clip.mkv", fps=12.5)
    vid = load_bundle(make_tiny_video_bundle(tmp_path), device="cpu")
    pred = vid.predict(src, output_dir=tmp_path / "out")
    saved = tmp_path / "out" / "clip_seg.mkv"
    assert Path(pred.meta["saved_to"]) == saved and tuple(pred.shape) == (1, 6, 24, 32)
    assert video_info(saved)["fps"] == pytest.approx(12.5)
    labels, meta = read_video(saved)  # (T, H, W) grey; .mkv (FFV1) is lossless
    assert labels.shape[:3] == (6, 24, 32) and meta["fps"] == pytest.approx(12.5)
    np.testing.assert_array_equal(labels.reshape(6, 24, 32), pred[0].numpy().astype(np.uint8))
    assert vid.predict(src, output_dir=tmp_path / "out", return_predictions=False) == saved
    assert vid.last_skipped == [str(src)]
    # an array (C, T, H, W) goes through a temporary lossless video: the same labels as the file
    arr = vid.predict(frames[None].astype(np.float32))
    np.testing.assert_array_equal(arr.numpy(), pred.numpy())


def test_several_outputs_per_input(t1, tmp_path):
    def edit(cfg):
        second = dict(cfg["postprocessing"]["transforms"][-1], output_postfix="mask", output_ext=".nii")
        cfg["postprocessing"]["transforms"].append(second)

    two = load_bundle(_edit_config(make_tiny_bundle(tmp_path, name="two_outputs"), edit), device="cpu")
    out = tmp_path / "out"
    paths = two.predict(t1, output_dir=out, return_predictions=False)
    assert paths == [out / "anatomical_seg.nii.gz", out / "anatomical_mask.nii"]
    assert all(p.is_file() for p in paths)
    assert two.predict(t1, output_dir=out, return_predictions=False) == paths and two.last_predicted == []
    paths[1].unlink()  # one output missing: the input is predicted again
    two.predict(t1, output_dir=out)
    assert two.last_predicted == [str(t1)] and paths[1].is_file()


def test_4d_scan_keeps_time_spacing(sample, tmp_path):
    from _tiny_bundle import make_tiny_4d_bundle

    src = sample("fmri_functional")  # 17 x 21 x 3 x 20 frames, TR 2 s
    four_d = load_bundle(make_tiny_4d_bundle(tmp_path), device="cpu")
    pred = four_d.predict(src, output_dir=tmp_path / "out")
    img, out = nib.load(src), nib.load(tmp_path / "out" / "functional_seg.nii.gz")
    # Invertd undoes ChannelToTimed: (T, X, Y, Z) in memory, (X, Y, Z, T) on disk with the input's TR
    assert tuple(pred.shape) == (20, 17, 21, 3) and out.shape == img.shape
    assert out.header.get_zooms() == pytest.approx(img.header.get_zooms())
    np.testing.assert_allclose(out.affine, img.affine, atol=1e-5)
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1}
    # an array is (T, X, Y, Z) for such a bundle, as EnsureChannelFirstd leaves a 4D NIfTI
    arr = MetaTensor(np.moveaxis(np.asarray(img.dataobj, dtype=np.float32), -1, 0), affine=torch.as_tensor(img.affine))
    np.testing.assert_array_equal(four_d.predict(arr).numpy(), pred.numpy())
    with pytest.raises(ValueError, match="frames first"):
        four_d.predict(arr[0])
    with pytest.raises(ValueError, match=r"a 3D image .*expects .* 4 axes after the channel"):
        four_d.predict(sample("anatomical_t1"))


def _bundle_with_side_output(root):
    """The tiny bundle whose postprocessing also writes ``@output_dir/<name>_@marker_suffix`` after its NIfTI (like
    an overlay PNG)."""

    def edit(cfg):
        cfg["marker_suffix"] = "marker.txt"
        writer = ("$lambda d: (open(os.path.join(@output_dir, os.path.basename(str(d['pred'].meta['filename_or_obj']))"
                  ".split('.')[0] + '_' + @marker_suffix), 'w').write('x'), d)[1]")
        cfg["postprocessing"]["transforms"].append({"_target_": "Lambda", "func": writer})
        cfg["imports"].append("$import os")

    return _edit_config(make_tiny_bundle(root, name="side_output"), edit)


def test_side_outputs_count_and_config_overrides(t1, tmp_path, monkeypatch):
    bundle = _bundle_with_side_output(tmp_path / "bundles")
    monkeypatch.chdir(tmp_path)
    b = load_bundle(bundle, device="cpu")
    b.predict(t1)  # no output_dir: the side output goes to a temporary folder that is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundles"] and not (bundle / "eval").exists()
    out = tmp_path / "out"
    paths = b.predict(t1, output_dir=out, return_predictions=False)
    assert paths == [out / "anatomical_seg.nii.gz", out / "anatomical_marker.txt"]
    paths[1].unlink()  # the NIfTI without its side output (a run killed between the two) is not finished
    b.predict(t1, output_dir=out)
    assert b.last_predicted == [str(t1)] and paths[1].is_file()
    renamed = load_bundle(bundle, device="cpu", config_overrides={"marker_suffix": "other.txt"})
    renamed.predict(t1, output_dir=tmp_path / "out2")
    assert _visible(tmp_path / "out2") == ["anatomical_other.txt", "anatomical_seg.nii.gz"]


def test_failed_overwrite_is_recognised_as_unfinished(t1, tmp_path):
    bundle = _bundle_with_side_output(tmp_path / "bundles")
    out = tmp_path / "out"
    load_bundle(bundle, device="cpu").predict(t1, output_dir=out)
    broken = load_bundle(bundle, device="cpu", config_overrides={"marker_suffix": "no/such/folder.txt"})
    with pytest.raises(PredictError, match="anatomical.nii: bundle side_output failed on this input"):
        broken.predict(t1, output_dir=out, overwrite=True)  # the NIfTI is rewritten, then the side output fails
    again = load_bundle(bundle, device="cpu")
    again.predict(t1, output_dir=out)
    assert again.last_predicted == [str(t1)]  # not skipped: the failed redo left it unfinished


def test_writer_errors_say_why(t1, tmp_path):
    """SaveImage folds each writer's error into 'cannot find a suitable writer': the reason must still show."""
    from medst.bundle.runner import error_chain

    def edit(cfg):
        cfg["postprocessing"]["transforms"][-1].update({"output_postfix": "", "output_ext": ".nii"})

    same_name = load_bundle(_edit_config(make_tiny_bundle(tmp_path, name="same_name"), edit), device="cpu")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(t1, data / "scan.nii")
    before = (data / "scan.nii").read_bytes()
    with pytest.raises(PredictError, match="scan.nii: bundle same_name failed") as info:
        same_name.predict(data / "scan.nii", output_dir=data)
    chain = " | ".join(error_chain(info.value))
    assert "cannot find a suitable writer" in chain and "overwrite" in chain and "input" in chain, chain
    assert (data / "scan.nii").read_bytes() == before


def test_on_error_skip_goes_on(seg, t1, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(t1, data / "a.nii")
    (data / "broken.nii.gz").write_bytes(b"not a nifti")
    shutil.copy(t1, data / "c.nii")
    with pytest.raises(PredictError, match="broken.nii.gz: bundle tiny_seg failed on this input"):
        seg.predict(data, output_dir=tmp_path / "out0", num_workers=1)
    preds = seg.predict(data, output_dir=tmp_path / "out", num_workers=1, on_error="skip")
    assert preds[1] is None and tuple(preds[0].shape) == tuple(preds[2].shape) == (1, 33, 41, 25)
    assert list(seg.last_errors) == [str(data / "broken.nii.gz")]
    assert _visible(tmp_path / "out") == ["a_seg.nii.gz", "c_seg.nii.gz"]
    with pytest.raises(ValueError, match="on_error"):
        seg.predict(t1, on_error="ignore")


# ------------------------------------------------------------------------------------------------ shipped bundles
REPO_BUNDLES = find_bundles(WORKTREE / "bundles")


def _small_input(bundle: Path, folder: Path) -> Path:
    """A small input each shipped bundle takes, so that three runs of it stay fast."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if bundle.name.startswith("brain_"):  # a crop of ITK's KmeansTest head (2 x 2 x 3 mm), its affine moved along
        img = nib.load(WORKTREE / "bundles" / "brain_extraction_unetr" / "sample" / "itk_kmeanstest_t1.nii.gz")
        start = np.array([40, 40, 20])
        affine = img.affine.copy()
        affine[:3, 3] = img.affine[:3, :3] @ start + img.affine[:3, 3]
        crop = np.asarray(img.dataobj)[40:88, 40:88, 20:44]
        path = folder / "head_crop.nii.gz"
        nib.save(nib.Nifti1Image(crop, affine, img.header), str(path))
        return path
    if bundle.name.startswith("cardiac_"):
        return next((bundle / "sample").glob("*.nii.gz"))
    frames = np.zeros((10, 64, 64), np.uint8)  # a bright square moving right over a faint background
    for t in range(10):
        frames[t, 20:36, 4 + 3 * t : 20 + 3 * t] = 230
    frames += rng.integers(0, 20, frames.shape, dtype=np.uint8)
    if bundle.name == "moving_digits_convlstm_prediction":
        path = folder / "square.npy"
        np.save(path, frames)
        return path
    from medst.data import write_video

    return write_video(frames, folder / "square.mkv", fps=10.0)


def _read_any(path: Path):
    from PIL import Image

    from medst.api import VIDEO_SUFFIXES, _suffix
    from medst.data import read_video

    s = _suffix(path)
    if s in (".nii", ".nii.gz"):
        img = nib.load(path)
        return np.asarray(img.dataobj), img.affine, img.header.get_zooms()
    if s in VIDEO_SUFFIXES:
        frames, meta = read_video(path)
        return frames, meta["fps"]
    if s == ".png":
        return np.asarray(Image.open(path))
    return path.read_bytes()


def _assert_same_outputs(ref: Path, other: Path) -> None:
    """Every output decoded and compared exactly; a lossy video (.mp4, .webm, .mov: H.264 / VP9, whose multi-threaded
    encoders do not give the same bits twice, even for the same frames in one process) to within 3 grey levels on
    average, with the same frame count and rate."""
    names = _visible(ref)
    assert names and _visible(other) == names, (names, _visible(other))
    for name in names:
        a, b = _read_any(ref / name), _read_any(other / name)
        if name.endswith((".mp4", ".webm", ".mov")):
            assert a[0].shape == b[0].shape and a[1] == b[1], f"{other / name}: frames or rate differ"
            diff = np.abs(a[0].astype(np.int16) - b[0].astype(np.int16)).mean()
            assert diff < 3.0, f"{other / name} differs by {diff:.2f} grey levels on average"
            continue
        for x, y in zip(a, b) if isinstance(a, tuple) else [(a, b)]:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{other / name} differs")


@pytest.mark.parametrize("bundle", REPO_BUNDLES, ids=[b.name for b in REPO_BUNDLES])
def test_api_cli_and_monai_bundle_run_agree(bundle, tmp_path, monkeypatch):
    """One runner: ``python -m monai.bundle run``, ``medst predict`` and ``load_bundle().predict`` write the same
    outputs (every file the bundle writes: NIfTI, videos, PNGs), decoded and compared exactly."""
    from medst.cli import main

    src = _small_input(bundle, tmp_path / "in")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the monai.bundle subprocess: the same float reductions everywhere
    try:
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
               "--meta_file", str(bundle / "configs" / "metadata.json"), "--logging_file", "False",
               "--bundle_root", str(bundle), "--datalist", repr([str(src)]), "--output_dir", str(tmp_path / "monai"),
               "--device", "$torch.device('cpu')"]
        env = dict(os.environ, PYTHONPATH=str(WORKTREE), OMP_NUM_THREADS="1")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert main(["predict", "-b", str(bundle), str(src), "-o", str(tmp_path / "cli"), "--device", "cpu",
                     "--no-progress"]) == 0
        b = load_bundle(bundle, device="cpu")
        pred = b.predict(src, output_dir=tmp_path / "api")
        assert isinstance(pred, ClassPrediction if b.is_classifier else MetaTensor) and b.last_predicted == [str(src)]
        if src.suffix == ".npy":  # (1, T, H, W), as the bundle's EnsureChannelFirstd(channel_dim="no_channel") gives
            loaded = np.load(src)[None].astype(np.float32)
        else:
            loaded = LoadImage(image_only=True, ensure_channel_first=True)(str(src))
        arr = b.predict(loaded)
    finally:
        torch.set_num_threads(threads)
    _assert_same_outputs(tmp_path / "monai", tmp_path / "cli")
    _assert_same_outputs(tmp_path / "monai", tmp_path / "api")
    # an array input runs the whole bundle too (the brain bundles' overlay step included): the same answer
    if b.is_classifier:
        assert arr.name == pred.name
        np.testing.assert_allclose(list(arr.probabilities.values()), list(pred.probabilities.values()), atol=1e-6)
    else:
        np.testing.assert_array_equal(arr.numpy(), pred.numpy())
    b.predict(src, output_dir=tmp_path / "api")
    assert b.last_skipped == [str(src)]  # every output there: finished


def _three_inputs(bundle: Path, folder: Path) -> list[str]:
    src = _small_input(bundle, folder)
    suffix = "".join(src.suffixes[-2:]) if src.name.endswith(".nii.gz") else src.suffix
    inputs = []
    for n in ("a", "b", "c"):
        shutil.copy(src, folder / f"{n}{suffix}")
        inputs.append(str(folder / f"{n}{suffix}"))
    return inputs


def _torchrun(bundle: Path, inputs: list[str], out: Path) -> list[list[str]]:
    """``multi_gpu_inference.json`` over ``inference.json`` with two gloo ranks; returns each rank's input count."""
    configs = [str(bundle / "configs" / f) for f in ("inference.json", "multi_gpu_inference.json")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           "run", "--config_file", repr(configs), "--meta_file", str(bundle / "configs" / "metadata.json"),
           "--logging_file", "False", "--bundle_root", str(bundle), "--datalist", repr(inputs),
           "--output_dir", str(out),
           # each rank writes how many inputs it got (the ranks' stdout lines can be lost or interleaved), then the
           # config's own finalize
           "--finalize", repr(["$open(os.path.join(@output_dir, '.rank%d-inputs' % dist.get_rank()), 'w')"
                               ".write(str(len(@todo_dataset.data)))",
                               *json.loads((bundle / "configs" / "multi_gpu_inference.json").read_text())["finalize"]])]
    env = dict(os.environ, PYTHONPATH=str(WORKTREE), OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    shares = sorted([f.name[len(".rank"):-len("-inputs")], "inputs", f.read_text()] for f in out.glob(".rank*-inputs"))
    for f in out.glob(".rank*-inputs"):
        f.unlink()
    return shares


# the bundles with a multi-GPU inference config (the classification bundle has none: its ranks would share one CSV)
MULTI_GPU_BUNDLES = [b for b in REPO_BUNDLES if (b / "configs" / "multi_gpu_inference.json").is_file()]


@pytest.mark.parametrize("bundle", MULTI_GPU_BUNDLES, ids=[b.name for b in MULTI_GPU_BUNDLES])
def test_multi_gpu_inference_with_two_cpu_processes(bundle, tmp_path):
    """``configs/multi_gpu_inference.json`` under torchrun: a DistributedSampler gives each of the two (gloo) ranks
    its share of three inputs; every input's outputs are written once, as one process writes them."""
    inputs = _three_inputs(bundle, tmp_path / "in")
    assert _torchrun(bundle, inputs, tmp_path / "dist") == [["0", "inputs", "2"], ["1", "inputs", "1"]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_bundle(bundle, device="cpu").predict(inputs[0], output_dir=tmp_path / "one")
    finally:
        torch.set_num_threads(threads)
    one = _visible(tmp_path / "one")
    written = _visible(tmp_path / "dist")
    assert written == sorted(n.replace("a", m, 1) for m in "abc" for n in one), written
    for name in one:  # rank 0's first input, as one process writes it
        a, b = _read_any(tmp_path / "one" / name), _read_any(tmp_path / "dist" / name)
        if not name.endswith((".mp4", ".webm", ".mov")):
            for x, y in zip(a, b) if isinstance(a, tuple) else [(a, b)]:
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


def test_multi_gpu_inference_skips_finished_outputs_across_ranks(tmp_path):
    bundle = WORKTREE / "bundles" / "cardiac_phantom_convlstm4d_segmentation"
    inputs = _three_inputs(bundle, tmp_path / "in")
    out = tmp_path / "dist"
    assert _torchrun(bundle, inputs, out) == [["0", "inputs", "2"], ["1", "inputs", "1"]]
    assert sorted(p.name for p in out.glob(".medst-outputs-rank*.json")) == [
        ".medst-outputs-rank0.json", ".medst-outputs-rank1.json"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*_seg.nii.gz")}
    assert _torchrun(bundle, inputs, out) == [["0", "inputs", "0"], ["1", "inputs", "0"]]  # all finished
    (out / "b_seg.nii.gz").unlink()
    assert _torchrun(bundle, inputs, out) == [["0", "inputs", "1"], ["1", "inputs", "0"]]  # only b again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_seg.nii.gz") if p.name != "b_seg.nii.gz"} == {
        k: v for k, v in stamps.items() if k != "b_seg.nii.gz"}
    # one process reads the ranks' records: nothing left to do; it folds them into its own record
    b = load_bundle(bundle, device="cpu")
    b.predict(inputs, output_dir=out, return_predictions=False)
    assert b.last_predicted == [] and len(b.last_skipped) == 3
    (out / "c_seg.nii.gz").unlink()
    b.predict(inputs, output_dir=out, return_predictions=False)
    assert b.last_predicted == [inputs[2]] and not list(out.glob(".medst-outputs-rank*.json"))


def test_a_named_readers_error_reaches_the_user(tmp_path):
    """A bundle that names its reader (VideoReader): MONAI's "cannot find a suitable reader" gets the reason."""
    from medst.bundle.runner import error_chain

    vid = load_bundle(make_tiny_video_bundle(tmp_path), device="cpu")
    bad = tmp_path / "clip.mkv"
    bad.write_bytes(b"\x1aE\xdf\xa3 not really matroska")
    with pytest.raises(PredictError, match="clip.mkv: bundle tiny_video_seg failed on this input") as info:
        vid.predict(bad)
    chain = error_chain(info.value)
    # the named reader's own error is raised (MONAI does not go on to its other readers and say it found none)
    assert not any("cannot find a suitable reader" in line for line in chain), chain
    assert any("clip.mkv" in line and "cannot open as a video" in line for line in chain), chain


@pytest.mark.parametrize("name", ["brain_extraction_unetr", "cardiac_phantom_convlstm4d_segmentation"])
def test_a_nan_voxel_is_refused_at_inference(name, tmp_path):
    """One NaN voxel would make the whole segmentation empty (every window and normalisation it touches is NaN):
    the bundles' inference configs refuse it, naming the file, and write nothing."""
    bundle = WORKTREE / "bundles" / name
    src = _small_input(bundle, tmp_path / "in")
    img = nib.load(src)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[(1,) * data.ndim] = np.nan
    bad = tmp_path / "in" / "nan_scan.nii.gz"
    header = img.header.copy()
    header.set_data_dtype(np.float32)  # the ITK head is uint8, where a NaN would become 0
    nib.save(nib.Nifti1Image(data, img.affine, header), str(bad))
    with pytest.raises(PredictError) as info:
        load_bundle(bundle, device="cpu").predict(bad, output_dir=tmp_path / "out")
    from medst.bundle.runner import error_chain

    chain = error_chain(info.value)
    assert any("nan_scan.nii.gz" in line and "NaN" in line for line in chain), chain
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_widen_input_channels_keeps_the_trained_network_and_zeroes_the_new_channels():
    from medst.api import widen_input_channels
    from medst.networks import create_network

    torch.manual_seed(0)
    kwargs = dict(out_channels=2, img_size=(16, 16, 16), feature_size=4, hidden_size=24, mlp_dim=48, num_heads=2)
    one = create_network("unetr_small", in_channels=1, **kwargs).eval()
    two = create_network("unetr_small", in_channels=2, **kwargs).eval()
    two.load_state_dict(widen_input_channels(one.state_dict(), two))
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        ref = one(x)
        for extra in (torch.zeros_like(x), torch.rand_like(x)):
            torch.testing.assert_close(two(torch.cat([x, extra], 1)), ref)
    with pytest.raises(ValueError, match="only\nmore input channels|only more input channels"):
        widen_input_channels(two.state_dict(), one)
    with pytest.raises(ValueError, match="keys do not match"):
        widen_input_channels({"nonsense": torch.zeros(1)}, one)
