"""The shipped weights reach, on the bundle's held-out data, the metric that its metadata and README state.

The held-out data are made again by the bundle's own deterministic data script, and the numbers are measured by the
bundle's own evaluate config (merged over train.json) with the weights in ``models/model.pt``, as the bundle's
README says they were (about 80 s for the five bundles on 2 cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medst.bundle import read_metadata, run_workflow

REPO = Path(__file__).resolve().parents[2]

# bundle -> (metric in the evaluator's state, key of the stated value in metadata's eval_metrics, tolerance
#            (absolute, or "N%" of the stated value), higher is better)
SHIPPED = {
    "brain_extraction_unetr": ("val_mean_dice", "heldout_itk_mni152_with_atlas_prior_val_mean_dice", 0.005, True),
    "brain_tissue_dilated3d": ("val_mean_dice", "heldout_right_hemisphere_val_mean_dice", 0.005, True),
    "moving_digits_convlstm_segmentation": ("test_mean_dice", "test_mean_dice", 0.005, True),
    "cardiac_phantom_convlstm4d_segmentation": ("test_mean_dice", "test_mean_dice", 0.005, True),
    "moving_digits_convlstm_prediction": ("model_frame_mse", "model_frame_mse", "2%", False),
    # 0.01: 4 of its 400 test clips (x264 does not always encode the same frames to the same bits)
    "moving_digits_motion_classification": ("test_accuracy", "test_accuracy", 0.01, True),
}

# the evaluation needs only the held-out split: fewer training sequences, same test sequences (see the script)
DATA_ARGS = {"moving_digits_convlstm_prediction": ["--num-train", "3000"], "brain_extraction_unetr": ["--test-only"],
             "moving_digits_motion_classification": ["--num-train", "8"]}  # its test clips do not depend on it


@pytest.mark.parametrize("name", [n for n in SHIPPED if (REPO / "bundles" / n / "configs" / "metadata.json").is_file()])
def test_shipped_weights_reach_the_stated_metric(name, tmp_path):
    bundle = REPO / "bundles" / name
    metric, key, tolerance, higher_is_better = SHIPPED[name]
    stated = read_metadata(bundle)["eval_metrics"][key]
    if isinstance(tolerance, str):  # relative, e.g. "2%" of the stated value
        tolerance = abs(stated) * float(tolerance.rstrip("%")) / 100.0

    data = tmp_path / "data"
    subprocess.run([sys.executable, str(REPO / "data_scripts" / f"{name}.py"), "--output-dir", str(data),
                    *DATA_ARGS.get(name, [])], check=True, cwd=REPO, timeout=900)
    configs = [str(bundle / "configs" / f"{c}.json") for c in ("train", "evaluate")]
    workflow = run_workflow(configs, "train", bundle_root=str(bundle), dataset_dir=str(data),
                            output_dir=str(tmp_path / "eval"), num_workers=0)
    measured = float(workflow.parser.get_parsed_content("validate#evaluator").state.metrics[metric])
    assert measured == pytest.approx(stated, abs=tolerance), f"{name}: measured {metric} {measured}, stated {stated}"
    # and the README carries the same figure
    readme = (bundle / "docs" / "README.md").read_text()
    decimals = (3, 4) if abs(stated) < 1 else (1, 2)  # a Dice to 3 or 4 places; an MSE of ~100 to 1 or 2
    assert any(f"{stated:.{d}f}" in readme for d in decimals), f"{name}: README does not state {stated}"


@pytest.mark.slow
def test_prediction_shipped_weights_on_the_unseen_source(tmp_path):
    """The prediction bundle's second test set (scikit-learn's digits, another source than its training digits)."""
    name = "moving_digits_convlstm_prediction"
    bundle = REPO / "bundles" / name
    stated = read_metadata(bundle)["eval_metrics"]["sklearn_test_model_frame_mse"]
    data = tmp_path / "data"
    subprocess.run([sys.executable, str(REPO / "data_scripts" / f"{name}.py"), "--output-dir", str(data),
                    *DATA_ARGS[name], "--sklearn-test", "200"], check=True, cwd=REPO, timeout=900)
    configs = [str(bundle / "configs" / f"{c}.json") for c in ("train", "evaluate")]
    workflow = run_workflow(configs, "train", bundle_root=str(bundle), dataset_dir=str(data),
                            output_dir=str(tmp_path / "eval"), num_workers=0, test_split="test_sklearn")
    measured = float(workflow.parser.get_parsed_content("validate#evaluator").state.metrics["model_frame_mse"])
    assert measured == pytest.approx(stated, rel=0.02)
    assert f"{stated:.2f}" in (bundle / "docs" / "README.md").read_text()
