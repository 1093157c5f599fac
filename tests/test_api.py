from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _tiny_bundle import make_tiny_bundle
from monai.data import MetaTensor
from monai.transforms import LoadImage

import medst
from medst.api import Bundle, bundle_info, find_bundles, load_bundle, load_weights


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def seg(bundle_dir):
    return load_bundle(bundle_dir, device="cpu")


@pytest.fixture
def t1(sample):
    return sample("anatomical_t1")


class _Counter:
    """Counts the network's forward calls (each sliding window batch is one call)."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.calls += 1

    def remove(self):
        self._handle.remove()


def test_predict_path_lands_in_input_space(seg, t1, tmp_path):
    pred = seg.predict(t1, output_dir=tmp_path)
    src = nib.load(t1)
    saved = tmp_path / "anatomical_seg.nii.gz"
    assert saved.is_file() and Path(pred.meta["saved_to"]) == saved
    out = nib.load(saved)
    # the bundle resamples to 2 mm in LPS; Invertd must restore shape, affine, orientation and spacing
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert isinstance(pred, MetaTensor) and tuple(pred.shape) == (1, *src.shape)
    np.testing.assert_allclose(pred.affine.numpy(), src.affine, atol=1e-5)
    labels = np.unique(out.get_fdata())
    assert set(labels) <= {0.0, 1.0} and len(labels) == 2  # a real two-class answer, not a constant
    np.testing.assert_array_equal(np.asarray(out.dataobj), pred[0].numpy().astype(np.uint8))


def test_predict_without_output_dir_writes_nothing(seg, t1, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pred = seg.predict(t1)
    assert tuple(pred.shape) == (1, 33, 41, 25)
    assert "saved_to" not in pred.meta
    assert list(tmp_path.iterdir()) == []
    assert not (seg.path / "eval").exists()


def test_skip_existing_and_overwrite(seg, t1, tmp_path):
    first = seg.predict(t1, output_dir=tmp_path)
    saved = tmp_path / "anatomical_seg.nii.gz"
    counter = _Counter(seg.network)
    try:
        again = seg.predict(t1, output_dir=tmp_path)  # skipped before inference, read back from disk
        assert counter.calls == 0
        np.testing.assert_array_equal(again.numpy(), first.numpy())
        np.testing.assert_allclose(again.affine.numpy(), first.affine.numpy(), atol=1e-5)
        assert seg.predict(t1, output_dir=tmp_path, return_predictions=False) == saved
        assert counter.calls == 0
        saved.write_bytes(b"")  # make the old output detectable
        seg.predict(t1, output_dir=tmp_path, overwrite=True)
        assert counter.calls > 0 and saved.stat().st_size > 0
    finally:
        counter.remove()


def test_folder_and_list_resume(seg, t1, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.nii", "b.nii", "c.nii"):
        shutil.copy(t1, data / name)
    (data / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    # a batch "killed" after its first input: only the other two are predicted on the next run
    seg.predict(str(data / "a.nii"), output_dir=out)
    counter = _Counter(seg.network)
    try:
        preds = seg.predict(data, output_dir=out, num_workers=1)
        per_input = counter.calls // 2
        assert counter.calls > 0 and counter.calls == 2 * per_input
    finally:
        counter.remove()
    assert len(preds) == 3 and all(tuple(p.shape) == (1, 33, 41, 25) for p in preds)
    assert sorted(p.name for p in out.iterdir()) == ["a_seg.nii.gz", "b_seg.nii.gz", "c_seg.nii.gz"]
    # the same data, same network: same labels for every copy
    np.testing.assert_array_equal(preds[1].numpy(), preds[2].numpy())
    paths = seg.predict([data / "c.nii", str(data / "b.nii")], output_dir=out, return_predictions=False)
    assert paths == [out / "c_seg.nii.gz", out / "b_seg.nii.gz"]


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
    assert tuple(a.shape) == (1, *arr.shape)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_allclose(a.affine.numpy(), np.eye(4), atol=1e-6)
    both = seg.predict([arr, t1])
    assert isinstance(both, list) and len(both) == 2
    np.testing.assert_array_equal(both[1].numpy(), from_path.numpy())


def test_array_output_names(seg, tmp_path):
    arr = np.random.default_rng(0).normal(size=(20, 18, 16)).astype(np.float32)
    seg.predict([arr, arr], output_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["array_0_seg.nii.gz", "array_1_seg.nii.gz"]


@pytest.mark.parametrize(
    "inputs, error, match",
    [
        (123, TypeError, "unsupported input of type int"),
        ([{"image": "x"}], TypeError, "unsupported input of type dict"),
        ("/no/such/scan.nii.gz", FileNotFoundError, "does not exist"),
        ([], ValueError, "empty"),
        (np.zeros((2, 3, 4, 5, 6), np.float32), ValueError, "fits neither"),
    ],
)
def test_predict_errors(seg, inputs, error, match):
    with pytest.raises(error, match=match):
        seg.predict(inputs)


def test_same_output_name_is_refused(seg, t1, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(t1, tmp_path / sub / "scan.nii")
    with pytest.raises(ValueError, match="would both be written to"):
        seg.predict([tmp_path / "a", tmp_path / "b"], output_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "scan_seg.nii.gz").exists()


def test_empty_folder(seg, tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="no supported file"):
        seg.predict(tmp_path)


def test_bundle_without_invert_or_save(t1, tmp_path):
    bare = load_bundle(make_tiny_bundle(tmp_path, name="bare", bare=True), device="cpu")
    pred = bare.predict(t1, output_dir=tmp_path / "out")
    out = nib.load(tmp_path / "out" / "anatomical_seg.nii.gz")
    src = nib.load(t1)
    assert out.shape == src.shape and tuple(pred.shape) == (1, *src.shape)
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert set(np.unique(out.get_fdata())) <= {0.0, 1.0}


def test_overrides_reach_the_inferer(bundle_dir, t1):
    s = load_bundle(bundle_dir, device="cpu", roi_size=8, overlap=0.5, sw_batch_size=4)
    assert tuple(s.inferer.roi_size) == (8, 8, 8) and s.inferer.overlap == 0.5 and s.inferer.sw_batch_size == 4
    ref = load_bundle(bundle_dir, device="cpu").predict(t1)
    bf16 = load_bundle(bundle_dir, device="cpu", precision="bf16")
    assert bf16._autocast_dtype == torch.bfloat16  # SlidingWindowInferer takes no precision: autocast instead
    agree = (bf16.predict(t1) == ref).float().mean().item()
    assert agree > 0.99


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"precision": "fp8"}, "precision must be one of"),
        ({"overlap": 1.5}, "overlap must be in"),
    ],
)
def test_load_errors(bundle_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
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


def test_weights_only(tmp_path, t1):
    wrapped = load_bundle(make_tiny_bundle(tmp_path, name="wrapped", checkpoint="wrapped"), device="cpu")
    plain = load_bundle(make_tiny_bundle(tmp_path, name="plain"), device="cpu")
    for k, v in plain.network.state_dict().items():
        torch.testing.assert_close(wrapped.network.state_dict()[k], v)
    state = torch.nn.Conv3d(1, 2, 3, padding=1).state_dict()
    evil = make_tiny_bundle(tmp_path, name="evil", checkpoint={"model": state, "extra": Evil()})
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_bundle(evil, device="cpu")
    torch.save(torch.nn.Conv3d(1, 2, 3), tmp_path / "whole_model.pt")  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_weights(tmp_path / "whole_model.pt")
    torch.save({"module.weight": torch.ones(1)}, tmp_path / "ddp.pt")
    assert list(load_weights(tmp_path / "ddp.pt")) == ["weight"]
    torch.save({"weight": torch.ones(1)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="does not fit"):
        Bundle(make_tiny_bundle(tmp_path, name="wrong"), device="cpu", weights=tmp_path / "wrong.pt")


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
    from _tiny_bundle import make_tiny_video_bundle

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
    counter = _Counter(vid.network)
    try:
        assert vid.predict(src, output_dir=tmp_path / "out", return_predictions=False) == saved
        assert counter.calls == 0
    finally:
        counter.remove()


def test_same_answer_as_monai_bundle_run(seg, bundle_dir, t1, tmp_path):
    """The tiny bundle is a real bundle: MONAI's own ConfigWorkflow writes the labels that predict returns."""
    from monai.bundle import ConfigWorkflow

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(t1, data / "scan.nii")
    workflow = ConfigWorkflow(
        config_file=str(bundle_dir / "configs" / "inference.json"),
        meta_file=str(bundle_dir / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type="infer",
        bundle_root=str(bundle_dir),
        dataset_dir=str(data),
        output_dir=str(tmp_path / "monai"),
        device="$torch.device('cpu')",
    )
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    workflow.run()
    workflow.finalize()
    theirs = np.asarray(nib.load(tmp_path / "monai" / "scan_seg.nii.gz").dataobj)
    ours = seg.predict(data / "scan.nii", output_dir=tmp_path / "medst")
    np.testing.assert_array_equal(ours[0].numpy().astype(np.uint8), theirs)


def test_several_outputs_per_input(t1, tmp_path):
    import json

    bundle = make_tiny_bundle(tmp_path, name="two_outputs")
    cfg = json.loads((bundle / "configs" / "inference.json").read_text())
    second = dict(cfg["postprocessing"]["transforms"][-1], output_postfix="mask", output_ext=".nii")
    cfg["postprocessing"]["transforms"].append(second)
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg))
    two = load_bundle(bundle, device="cpu")
    out = tmp_path / "out"
    paths = two.predict(t1, output_dir=out, return_predictions=False)
    assert paths == [out / "anatomical_seg.nii.gz", out / "anatomical_mask.nii"]
    assert all(p.is_file() for p in paths)
    counter = _Counter(two.network)
    try:
        assert two.predict(t1, output_dir=out, return_predictions=False) == paths
        assert counter.calls == 0
        paths[1].unlink()  # one output missing: the input is predicted again
        two.predict(t1, output_dir=out)
        assert counter.calls > 0 and paths[1].is_file()
    finally:
        counter.remove()


def _real_bundles() -> list:
    from medst.api import default_bundles_dir

    return find_bundles(default_bundles_dir())


def _real_bundle_params() -> list:
    bundles = _real_bundles()
    if not bundles:
        return [pytest.param(None, id="none")]
    return [pytest.param(b, id=b.name) for b in bundles]


@pytest.mark.parametrize("bundle", _real_bundle_params())
def test_real_bundle(bundle, sample, tmp_path):
    """Every bundle of the repository that has weights predicts in its input's space and resumes."""
    from medst.api import SUPPORTED_SUFFIXES, VIDEO_SUFFIXES, _suffix

    needed = ("models/model.pt", "configs/metadata.json", "configs/inference.json")
    if bundle is None or not all((bundle / f).is_file() for f in needed):
        pytest.skip(f"no complete bundle ({', '.join(needed)}) in bundles/ yet")
    samples = sorted(f for f in (bundle / "sample").glob("*") if _suffix(f) in SUPPORTED_SUFFIXES)
    spec = bundle_info(bundle)["inputs"].get("image", {})
    if samples:
        src = samples[0]
    elif spec.get("type", "image") == "image":  # a 3D scan, or a 4D one when four axes follow the channel
        src = sample("fmri_functional" if len(spec.get("spatial_shape", ())) == 4 else "anatomical_t1")
    else:
        pytest.skip(f"{bundle.name}: no sample input in {bundle / 'sample'}")
    b = load_bundle(bundle, device="cpu")
    out = tmp_path / "out"
    pred = b.predict(src, output_dir=out)
    image = LoadImage(image_only=True, ensure_channel_first=True)(str(src))
    assert isinstance(pred, MetaTensor) and tuple(pred.shape[1:]) == tuple(image.shape[1:])
    written = sorted(out.rglob("*.*"))
    assert written, f"{bundle.name} wrote nothing to {out}"
    for f in written:
        if _suffix(f) in (".nii", ".nii.gz") and _suffix(src) in (".nii", ".nii.gz"):
            np.testing.assert_allclose(nib.load(f).affine, nib.load(src).affine, atol=1e-4)
        if _suffix(f) in VIDEO_SUFFIXES and _suffix(src) in VIDEO_SUFFIXES:
            from medst.data import video_info

            assert video_info(f)["fps"] == pytest.approx(video_info(src)["fps"], rel=1e-3)
    counter = _Counter(b.network)
    try:
        b.predict(src, output_dir=out, return_predictions=False)
        assert counter.calls == 0
    finally:
        counter.remove()


def test_precision_goes_to_a_medst_inferer(t1, tmp_path):
    import json

    pytest.importorskip("medst.inferers")
    bundle = make_tiny_bundle(tmp_path, name="volume_inferer")
    cfg = json.loads((bundle / "configs" / "inference.json").read_text())
    cfg["inferer"] = {"_target_": "medst.inferers.VolumeInferer", "roi_size": [16, 16, 16], "overlap": 0.25}
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg))
    ref = load_bundle(bundle, device="cpu", precision="fp32", roi_size=12)
    bf16 = load_bundle(bundle, device="cpu", precision="bf16", roi_size=12)
    assert ref.inferer.precision == "fp32" and bf16.inferer.precision == "bf16"
    assert bf16._autocast_dtype is None and tuple(bf16.inferer.roi_size) == (12, 12, 12)
    a, b = ref.predict(t1), bf16.predict(t1)
    assert a.shape == b.shape == (1, 33, 41, 25)
    assert (a == b).float().mean().item() > 0.99  # random weights: a few near-tie voxels may flip


def test_4d_scan_keeps_time_spacing(sample, tmp_path):
    from _tiny_bundle import make_tiny_4d_bundle

    pytest.importorskip("medst.transforms")
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
    arr = np.moveaxis(np.asarray(img.dataobj, dtype=np.float32), -1, 0)
    np.testing.assert_array_equal(four_d.predict(arr).numpy(), pred.numpy())
    with pytest.raises(ValueError, match="frames first"):
        four_d.predict(arr[0])


def test_bundle_that_moves_time_back_itself(sample, tmp_path):
    """No Invertd, but TimeToChanneld in the postprocessing: medst must not invert ChannelToTimed a second time."""
    import json

    from _tiny_bundle import make_tiny_4d_bundle

    pytest.importorskip("medst.transforms")
    bundle = make_tiny_4d_bundle(tmp_path, name="own_inverse")
    cfg = json.loads((bundle / "configs" / "inference.json").read_text())
    activation, discrete, _, save = cfg["postprocessing"]["transforms"]
    cfg["postprocessing"]["transforms"] = [
        activation,
        discrete,
        {"_target_": "medst.transforms.TimeToChanneld", "keys": "pred"},
        save,
    ]
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg))
    src = sample("fmri_functional")
    pred = load_bundle(bundle, device="cpu").predict(src, output_dir=tmp_path / "out")
    assert tuple(pred.shape) == (20, 17, 21, 3)
    assert nib.load(tmp_path / "out" / "functional_seg.nii.gz").shape == nib.load(src).shape


def _bundle_with_side_output(root):
    """The tiny bundle whose postprocessing also writes ``@output_dir/@marker_name`` (like an overlay PNG)."""
    import json

    bundle = make_tiny_bundle(root, name="side_output")
    cfg = json.loads((bundle / "configs" / "inference.json").read_text())
    cfg["marker_name"] = "marker.txt"
    writer = "$lambda d: (open(os.path.join(@output_dir, @marker_name), 'w').write('x'), d)[1]"
    cfg["postprocessing"]["transforms"].append({"_target_": "Lambda", "func": writer})
    cfg["imports"].append("$import os")
    (bundle / "configs" / "inference.json").write_text(json.dumps(cfg))
    return bundle


def test_side_outputs_and_config_overrides(t1, tmp_path, monkeypatch):
    bundle = _bundle_with_side_output(tmp_path / "bundles")
    monkeypatch.chdir(tmp_path)
    b = load_bundle(bundle, device="cpu")
    b.predict(t1)  # no output_dir: the side output goes to a scratch folder that is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundles"] and not (bundle / "eval").exists()
    b.predict(t1, output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "marker.txt").is_file()
    renamed = load_bundle(bundle, device="cpu", config_overrides={"marker_name": "other.txt"})
    renamed.predict(t1, output_dir=tmp_path / "out2")
    assert (tmp_path / "out2" / "other.txt").is_file() and not (tmp_path / "out2" / "marker.txt").exists()
    with pytest.raises(ValueError, match="not config_overrides"):
        load_bundle(bundle, config_overrides={"output_dir": "x"})


def test_on_error_skip_goes_on(seg, t1, tmp_path):
    num_workers = 1  # the error is caught in a worker process (the CLI test covers num_workers=0)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(t1, data / "a.nii")
    (data / "broken.nii.gz").write_bytes(b"not a nifti")
    shutil.copy(t1, data / "c.nii")
    with pytest.raises(Exception):
        seg.predict(data, output_dir=tmp_path / "out0", num_workers=num_workers)
    preds = seg.predict(data, output_dir=tmp_path / "out", num_workers=num_workers, on_error="skip")
    assert preds[1] is None and tuple(preds[0].shape) == tuple(preds[2].shape) == (1, 33, 41, 25)
    assert list(seg.last_errors) == [str(data / "broken.nii.gz")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_seg.nii.gz", "c_seg.nii.gz"]
    with pytest.raises(ValueError, match="on_error"):
        seg.predict(t1, on_error="ignore")
