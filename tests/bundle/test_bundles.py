"""Every bundle in bundles/ passes the model zoo's own checks, offline on the CPU.

Each bundle is trained for one epoch on a few tiny samples that its data script writes to a temporary folder,
merged with its evaluate config, run for inference, exported to TorchScript, trained with two processes (gloo),
and killed and resumed.
"""

from __future__ import annotations

import json
import logging.config
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

from medst.bundle import find_bundles, missing_files, read_metadata, run_workflow, verify_bundle_metadata

REPO = Path(__file__).resolve().parents[2]
BUNDLES = find_bundles(REPO / "bundles")
IDS = [b.name for b in BUNDLES]
bundle_param = pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)


def _configs(bundle: Path, *names: str) -> list[str]:
    return [str(bundle / "configs" / f"{n}.json") for n in names]


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """``tiny_data(bundle)`` -> a folder with the bundle's data in MSD layout, made once per session."""
    made: dict[str, Path] = {}

    def make(bundle: Path) -> Path:
        if bundle.name not in made:
            out = tmp_path_factory.mktemp(f"{bundle.name}_data")
            script = REPO / "data_scripts" / f"{bundle.name}.py"
            assert script.is_file(), f"{bundle.name} has no data script {script}"
            subprocess.run(
                [sys.executable, str(script), "--output-dir", str(out), "--tiny"], check=True, cwd=REPO, timeout=300
            )
            assert (out / "dataset.json").is_file(), f"{script} --tiny wrote no dataset.json"
            made[bundle.name] = out
        return made[bundle.name]

    return make


def _test_images(data_dir: Path) -> list[str]:
    spec = json.loads((data_dir / "dataset.json").read_text())
    items = spec.get("test") or spec.get("validation") or spec["training"]
    paths = [i["image"] if isinstance(i, dict) else i for i in items]
    return [str(p if Path(p).is_absolute() else (data_dir / p).resolve()) for p in paths]


def _train_overrides(bundle: Path, data_dir: Path, work: Path, epochs: int = 1) -> dict:
    return {
        "bundle_root": str(bundle),
        "dataset_dir": str(data_dir),
        "ckpt_dir": str(work / "ckpt"),
        "output_dir": str(work / "out"),
        "epochs": epochs,
        "num_workers": 0,
        "val_interval": 1,
    }


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory):
    """``trained(bundle)`` -> the folder of a one-epoch training run on tiny data, made once per session."""
    done: dict[str, Path] = {}

    def train(bundle: Path) -> Path:
        if bundle.name not in done:
            work = tmp_path_factory.mktemp(f"{bundle.name}_train")
            run_workflow(_configs(bundle, "train"), "train", **_train_overrides(bundle, tiny_data(bundle), work))
            done[bundle.name] = work
        return done[bundle.name]

    return train


def test_there_are_bundles():
    assert IDS, "no bundle found under bundles/"


@bundle_param
def test_layout_and_metadata(bundle):
    assert missing_files(bundle) == []
    verify_bundle_metadata(bundle)
    meta = read_metadata(bundle)
    assert meta["name"], "metadata needs a name"
    # the bundle's README states how well the shipped weights do
    readme = (bundle / "docs" / "README.md").read_text()
    for section in ("Data", "Training", "Performance", "References", "License"):
        assert section.lower() in readme.lower(), f"docs/README.md lacks a {section!r} section"
    # weights stay small enough for the repository (the UNETR bundle's float32 weights are the largest, 9.4 MiB)
    assert (bundle / "models" / "model.pt").stat().st_size < 10 * 2**20


@bundle_param
def test_logging_conf_loads(bundle):
    logging.config.fileConfig(bundle / "configs" / "logging.conf", disable_existing_loggers=False)


@bundle_param
def test_shipped_weights_load_without_pickle(bundle):
    parser = ConfigParser()
    parser.read_config(_configs(bundle, "inference"))
    parser["bundle_root"] = str(bundle)
    net = parser.get_parsed_content("network_def")
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("model", state) if isinstance(state, dict) and "model" in state else state)


@bundle_param
def test_verify_net_in_out(bundle):
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=_configs(bundle, "inference")[0],
        device="cpu",
        n=1,
        p=1,
        any=1,
        bundle_root=str(bundle),
    )


@bundle_param
def test_ckpt_export(bundle, tmp_path):
    export = dict(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(bundle / "models" / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=_configs(bundle, "inference")[0],
        bundle_root=str(bundle),
    )
    if read_metadata(bundle).get("scriptable", True) is False:
        # the README says why; check that the claim is true
        assert "torchscript" in (bundle / "docs" / "README.md").read_text().lower()
        with pytest.raises(Exception):
            ckpt_export(**export)
        return
    ckpt_export(**export)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    assert sum(p.numel() for p in scripted.parameters()) > 0


@bundle_param
def test_train_one_epoch(bundle, trained):
    work = trained(bundle)
    ckpt = work / "ckpt"
    last = torch.load(ckpt / "last.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "trainer"} <= set(last)
    assert (ckpt / "model.pt").is_file(), "train.json should write the model's weights to ckpt_dir/model.pt"


@bundle_param
def test_train_and_evaluate(bundle, tiny_data, trained):
    work = trained(bundle)
    workflow = run_workflow(
        _configs(bundle, "train", "evaluate"), "train", **_train_overrides(bundle, tiny_data(bundle), work)
    )
    metrics = workflow.parser.get_parsed_content("validate#evaluator").state.metrics
    assert metrics, "the evaluator computed no metric"
    for name, value in metrics.items():
        assert value == value, f"metric {name} is NaN"


def _is_classifier(bundle: Path) -> bool:
    pred = read_metadata(bundle)["network_data_format"]["outputs"]["pred"]
    return pred.get("format") in ("classification", "classes")


@bundle_param
def test_inference(bundle, tiny_data, tmp_path):
    images = _test_images(tiny_data(bundle))[:2]
    out = tmp_path / "out"
    run_workflow(_configs(bundle, "inference"), "infer", bundle_root=str(bundle), datalist=images, output_dir=str(out))
    written = [p for p in out.rglob("*") if p.is_file()]
    if _is_classifier(bundle):  # one CSV, a row per input: the class and every class's probability
        from medst.transforms import read_classification_csv

        names = read_metadata(bundle)["network_data_format"]["outputs"]["pred"]["channel_def"]
        rows = read_classification_csv(out / "predictions.csv")
        assert [r["file"] for r in rows] == images
        for row in rows:
            assert list(row["probabilities"]) == [names[k] for k in sorted(names, key=int)]
            assert abs(sum(row["probabilities"].values()) - 1.0) < 1e-4
            assert row["class"] == max(row["probabilities"], key=row["probabilities"].get)
        return
    assert len(written) >= len(images), f"inference wrote {written} for {len(images)} inputs"


@pytest.mark.parametrize("network", ["composite_convlstm_small", "contextvp_small", "composite_lstm_fc_small"])
def test_prediction_alternatives_train_and_evaluate_with_the_bundle_configs(network, tiny_data, tmp_path):
    """The README's alternative predictors train and evaluate with the bundle's own configs and one override (the
    trainer's return_context targets, its MONAI MetaTensor batches, the evaluation's flips)."""
    bundle = REPO / "bundles" / "moving_digits_convlstm_prediction"
    overrides = dict(_train_overrides(bundle, tiny_data(bundle), tmp_path),
                     network_def=f"$medst.networks.create_network('{network}', hidden_channels=(8,))")
    run_workflow(_configs(bundle, "train"), "train", **overrides)
    assert (tmp_path / "ckpt" / "model.pt").is_file()
    workflow = run_workflow(_configs(bundle, "train", "evaluate"), "train", **overrides)
    metrics = workflow.parser.get_parsed_content("validate#evaluator").state.metrics
    assert metrics["model_frame_mse"] == metrics["model_frame_mse"] and metrics["model_frame_mse"] > 0


def test_classification_evaluation_writes_metrics_and_confusion_matrix(tiny_data, trained):
    bundle = REPO / "bundles" / "moving_digits_motion_classification"
    data, work = tiny_data(bundle), trained(bundle)
    run_workflow(_configs(bundle, "train", "evaluate"), "train", **_train_overrides(bundle, data, work))
    out = work / "out"
    metrics = dict(line.split(",", 1) for line in (out / "metrics.csv").read_text().splitlines())
    assert set(metrics) == {"test_accuracy", "test_auc"}
    counts = np.loadtxt(out / "test_confusion_matrix.csv", delimiter=",", skiprows=1, usecols=range(1, 9))
    num_test = len(json.loads((data / "dataset.json").read_text())["test"])
    assert counts.shape == (8, 8) and counts.sum() == num_test
    assert abs(np.trace(counts) / num_test - float(metrics["test_accuracy"])) < 1e-6
    assert (out / "test_confusion_matrix.png").stat().st_size > 0


def test_prediction_inference_writes_nifti_video_and_filmstrip(tiny_data, tmp_path):
    from PIL import Image

    bundle = REPO / "bundles" / "moving_digits_convlstm_prediction"
    images = _test_images(tiny_data(bundle))[:2]
    out = tmp_path / "out"
    run_workflow(_configs(bundle, "inference"), "infer", bundle_root=str(bundle), datalist=images, output_dir=str(out))
    for image in images:
        stem = Path(image).name.split(".")[0]
        for ext in (".nii.gz", ".mp4", ".png"):
            assert (out / f"{stem}_pred{ext}").is_file(), f"no {stem}_pred{ext} in {sorted(out.iterdir())}"
        # the picture: a row of the 10 input frames over a row of the 10 forecast frames, 2-pixel gaps
        strip = np.asarray(Image.open(out / f"{stem}_pred.png"))
        h, w = np.load(image).shape[1:]
        assert strip.shape == (2 * h + 2, 10 * w + 18)


@bundle_param
def test_multi_gpu_train_with_two_cpu_processes(bundle, tiny_data, tmp_path):
    overrides = _train_overrides(bundle, tiny_data(bundle), tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           "run", "--config_file", str(_configs(bundle, "train", "multi_gpu_train"))]
    cmd += [a for k, v in overrides.items() for a in (f"--{k}", str(v))]
    proc = subprocess.run(cmd, cwd=bundle, env=_subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "ckpt" / "last.pt").is_file()


@bundle_param
def test_killed_training_resumes(bundle, tiny_data, tmp_path):
    """Kill a training run once it has saved its first epoch; the same command then goes on from there."""
    overrides = _train_overrides(bundle, tiny_data(bundle), tmp_path, epochs=1000)
    last = tmp_path / "ckpt" / "last.pt"

    def command(epochs):
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", _configs(bundle, "train")[0]]
        cmd += [a for k, v in dict(overrides, epochs=epochs).items() for a in (f"--{k}", str(v))]
        return cmd

    proc = subprocess.Popen(command(1000), cwd=bundle, env=_subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not last.is_file():
            assert proc.poll() is None, "training stopped before saving its first epoch"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = torch.load(last, map_location="cpu", weights_only=True)["trainer"]
    epochs_done = saved["iteration"] // saved["epoch_length"]
    assert epochs_done >= 1

    rerun = subprocess.run(command(epochs_done + 1), cwd=bundle, env=_subprocess_env(), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resumed from" in rerun.stdout + rerun.stderr
    final = torch.load(last, map_location="cpu", weights_only=True)["trainer"]
    assert final["iteration"] == (epochs_done + 1) * final["epoch_length"]
