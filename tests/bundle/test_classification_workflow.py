"""The classification workflow on volumes: MONAI's trainer and evaluator, random slabs for training, several slabs
averaged at test time, MONAI's accuracy and ROC AUC, with the dilated 3D classifier on tiny random volumes."""

from __future__ import annotations

import numpy as np
import torch
from ignite.metrics import Accuracy
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import ROCAUC, from_engine
from monai.inferers import SimpleInferer
from monai.transforms import AsDiscreted, Compose, CopyItemsd, EnsureTyped
from monai.utils import set_determinism

from medst.bundle import ConfusionMatrixSaver
from medst.inferers import MultiClipInferer
from medst.networks import create_network
from medst.transforms import RandTemporalCropd


def _volumes(n: int, seed: int) -> list[dict]:
    """(1, 12, 8, 8) noise volumes; label 1 has a bright 3x3x3 cube somewhere, label 0 none (a learnable label
    that any slab of 6 along the first axis shows only when the cube is inside it; the whole volume always does)."""
    rng = np.random.default_rng(seed)
    data = []
    for i in range(n):
        vol = rng.normal(0.0, 0.3, (1, 12, 8, 8)).astype(np.float32)
        label = i % 2
        if label:
            x, y, z = rng.integers(0, 12 - 3), rng.integers(0, 5), rng.integers(0, 5)
            vol[0, x : x + 3, y : y + 3, z : z + 3] += 2.0
        data.append({"image": vol, "label": label})
    return data


def test_volume_classification_trains_and_evaluates(tmp_path):
    set_determinism(seed=0)
    net = create_network("dilated_classifier", out_channels=2, channels=(8, 16), dilations=(1, 2), dropout=0.0)
    train = Dataset(_volumes(64, 0), Compose([EnsureTyped("image", track_meta=False),
                                             RandTemporalCropd("image", num_frames=8)]))  # random slabs of 8 (axis 1)
    test = Dataset(_volumes(32, 1), EnsureTyped("image", track_meta=False))
    post = Compose([CopyItemsd("label", names="label_onehot"), AsDiscreted("label_onehot", to_onehot=2)])
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=DataLoader(test, batch_size=8), network=net,
        inferer=MultiClipInferer(clip_frames=8, num_clips=3, axis=0), postprocessing=post,
        key_val_metric={"accuracy": Accuracy(output_transform=from_engine(["pred", "label"]))},
        additional_metrics={"auc": ROCAUC(output_transform=from_engine(["pred", "label_onehot"]))},
        val_handlers=[ConfusionMatrixSaver(tmp_path, ["none", "cube"])],
    )
    evaluator.run()
    before = evaluator.state.metrics["accuracy"]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=6, train_data_loader=DataLoader(train, batch_size=16, shuffle=True),
        network=net, optimizer=torch.optim.Adam(net.parameters(), 3e-3), loss_function=torch.nn.CrossEntropyLoss(),
        inferer=SimpleInferer(),
    )
    trainer.run()  # 24 steps
    evaluator.run()
    metrics = evaluator.state.metrics
    assert metrics["accuracy"] >= 0.9, (before, metrics)
    assert metrics["auc"] >= 0.9, (before, metrics)
    counts = np.loadtxt(tmp_path / "confusion_matrix.csv", delimiter=",", skiprows=1, usecols=(1, 2))
    assert counts.sum() == 32 and np.trace(counts) / 32 == metrics["accuracy"]
