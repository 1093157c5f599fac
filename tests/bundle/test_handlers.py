from __future__ import annotations

import os
import stat

import pytest
import torch
from ignite.engine import Engine, Events

from medst.bundle import ClipGradNorm, ResumeCheckpoint, atomic_torch_save


def _trainer(model, optimizer):
    def step(engine, batch):
        optimizer.zero_grad()
        loss = (model(batch) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    return Engine(step)


def _run(tmp_path, epochs, stop_after_epoch=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    trainer = _trainer(model, optimizer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: scheduler.step())
    handler = ResumeCheckpoint(
        tmp_path / "last.pt",
        {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler, "trainer": trainer},
        model_path=tmp_path / "model.pt",
    )
    handler.attach(trainer)
    if stop_after_epoch is not None:  # a kill right after the epoch's state was saved

        def kill(engine):
            raise KeyboardInterrupt

        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after_epoch), kill)
    data = [torch.full((4, 3), float(i)) for i in range(1, 4)]
    try:
        trainer.run(data, max_epochs=epochs)
    except KeyboardInterrupt:
        pass
    return model, trainer, handler, scheduler


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    whole, trainer, handler, _ = _run(tmp_path / "whole", epochs=4)
    assert handler.resumed_from_epoch is None and trainer.state.epoch == 4

    _, _, first, _ = _run(tmp_path / "split", epochs=4, stop_after_epoch=2)  # "killed" after epoch 2
    assert torch.load(tmp_path / "split" / "last.pt", weights_only=True)["trainer"]["iteration"] == 2 * 3
    resumed, trainer2, second, scheduler2 = _run(tmp_path / "split", epochs=4)
    assert second.resumed_from_epoch == 2
    assert trainer2.state.epoch == 4
    assert scheduler2.last_epoch == 4  # the scheduler went on from its saved step
    for a, b in zip(whole.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)  # optimiser momentum restored too, else these differ
    weights = torch.load(tmp_path / "split" / "model.pt", weights_only=True)
    torch.testing.assert_close(weights["weight"], resumed.weight)


def test_atomic_save_keeps_the_old_file_when_saving_fails(tmp_path):
    path = tmp_path / "state.pt"
    atomic_torch_save({"a": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left


def test_atomic_save_gives_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_torch_save({"a": torch.ones(1)}, tmp_path / "model.pt")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"save_dict": {}}, "at least one"),
        ({"save_dict": {"model": torch.nn.Linear(1, 1)}, "save_interval": 0}, "positive"),
        ({"save_dict": {"net": torch.nn.Linear(1, 1)}, "model_path": "m.pt"}, "model_path needs"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResumeCheckpoint("last.pt", **kwargs)


def _sgd_step(max_norm):
    """One SupervisedTrainer step of a linear model on a large loss, with or without ClipGradNorm."""
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    start = [p.detach().clone() for p in net.parameters()]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[{"image": torch.full((2, 3), 10.0), "label": torch.full((2, 1), -100.0)}],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
        loss_function=torch.nn.MSELoss(),
        train_handlers=[ClipGradNorm(max_norm)] if max_norm else None,
    )
    trainer.run()
    step = torch.cat([(p.detach() - s).flatten() for p, s in zip(net.parameters(), start)])
    return step, trainer


def test_clip_grad_norm_clips_before_the_optimiser_steps():
    free, _ = _sgd_step(None)
    assert free.norm() > 100  # the unclipped gradient is large
    clipped, _ = _sgd_step(0.5)
    assert float(clipped.norm()) == pytest.approx(0.5, rel=1e-4)  # SGD lr 1: the step is the clipped gradient
    torch.testing.assert_close(clipped / clipped.norm(), free / free.norm())  # same direction


def test_clip_grad_norm_records_the_norm_and_checks_arguments():
    handler = ClipGradNorm(0.5)
    net = torch.nn.Linear(2, 1)
    (net(torch.ones(1, 2)) * 100).sum().backward()

    class FakeEngine:
        network, amp = net, False

    handler(FakeEngine())
    assert float(handler.last_norm) > 0.5
    assert float(torch.cat([p.grad.flatten() for p in net.parameters()]).norm()) == pytest.approx(0.5, rel=1e-4)
    # parameters given as a generator (``net.parameters()`` in a config) are clipped at every call, not only the first
    given = ClipGradNorm(0.5, parameters=net.parameters())
    for _ in range(2):
        (net(torch.ones(1, 2)) * 100).sum().backward()
        given(FakeEngine())
        assert float(torch.cat([p.grad.flatten() for p in net.parameters()]).norm()) == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(ValueError, match="max_norm"):
        ClipGradNorm(0.0)


def test_resume_checkpoint_saves_through_ignite_and_keeps_the_old_file_while_writing(tmp_path, monkeypatch):
    """Saving is ignite's Checkpoint (DataParallel unwrapped); the previous file stays until the new one is in place."""
    import medst.bundle.handlers as handlers

    model = torch.nn.Linear(3, 2)
    trainer = _trainer(model, torch.optim.SGD(model.parameters(), lr=0.1))
    handler = ResumeCheckpoint(tmp_path / "last{1}.pt", {"model": torch.nn.DataParallel(model), "trainer": trainer},
                               model_path=tmp_path / "model.pt")
    handler.attach(trainer)
    seen = []
    real_save = handlers.atomic_torch_save

    def save(obj, path):  # each write finds the file of the epoch before still there
        seen.append((path.name, path.exists()))
        return real_save(obj, path)

    monkeypatch.setattr(handlers, "atomic_torch_save", save)
    trainer.run([torch.ones(2, 3)] * 2, max_epochs=3)
    assert seen[:2] == [("last{1}.pt", False), ("model.pt", False)] and all(e for _, e in seen[2:])
    state = torch.load(tmp_path / "last{1}.pt", weights_only=True)
    assert sorted(state) == ["model", "trainer"] and sorted(state["model"]) == ["bias", "weight"]  # no "module."
    assert state["trainer"]["iteration"] == 3 * 2
    torch.testing.assert_close(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], model.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last{1}.pt", "model.pt"]


def test_confusion_matrix_saver_counts_each_epoch_and_writes_csv_and_png(tmp_path):
    from PIL import Image

    from medst.bundle import ConfusionMatrixSaver

    # per input: scores (K,) and a label (an index, 0-d, or one-hot), as a MONAI evaluator leaves them decollated
    batches = [
        [{"pred": torch.tensor([0.9, 0.1, 0.0]), "label": torch.tensor(0)},
         {"pred": torch.tensor([0.1, 0.8, 0.1]), "label": torch.tensor([2])}],
        [{"pred": torch.tensor([0.0, 0.2, 0.8]), "label": torch.tensor([0.0, 0.0, 1.0])}],
    ]
    engine = Engine(lambda e, batch: batch)
    saver = ConfusionMatrixSaver(tmp_path, ["a", "b", "c"], prefix="test_")
    saver.attach(engine)
    engine.run(batches, max_epochs=2)  # counts restart every epoch
    assert saver.matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    assert saver.accuracy == pytest.approx(2 / 3)
    assert (tmp_path / "test_confusion_matrix.csv").read_text().splitlines() == [
        "true\\predicted,a,b,c", "a,1,0,0", "b,0,0,0", "c,0,1,1"]
    assert Image.open(tmp_path / "test_confusion_matrix.png").size[0] > 100
    with pytest.raises(ValueError, match="at least 2 classes"):
        ConfusionMatrixSaver(tmp_path, ["only"])
    bad = Engine(lambda e, batch: batch)
    ConfusionMatrixSaver(tmp_path, ["a", "b"]).attach(bad)
    with pytest.raises(ValueError, match="not a class index"):
        bad.run([[{"pred": torch.tensor([0.5, 0.5]), "label": torch.tensor(5)}]])
