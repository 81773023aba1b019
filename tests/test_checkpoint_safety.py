"""Checkpoints are unpickled with ``weights_only=True``: a crafted checkpoint (from a shared
cluster directory or a DVC remote) cannot run code; it is ignored with one line and the run
starts fresh."""

import numpy as np
import pytest
import torch

from sublim import mnist, models, training


class Payload:
    """Unpickling this writes a marker file: it stands for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _craft(path, marker, **valid):
    """A checkpoint that looks like a real one but carries the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**valid, "rng": {"python": Payload(marker)}}, path)


def test_the_crafted_checkpoint_runs_code_under_unsafe_loading(tmp_path):
    """The control: what ``weights_only=False`` (the old loader) does with such a file."""
    marker = tmp_path / "pwned"
    _craft(tmp_path / "state.pt", marker)
    torch.load(tmp_path / "state.pt", weights_only=False)
    assert marker.exists()


def _run(fn):
    """Call ``fn``; return (result, exception) so that a test can first check the marker."""
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001
        return None, e


def _one_line(err: str, needle: str) -> str:
    lines = [ln for ln in err.splitlines() if needle in ln]
    assert len(lines) == 1, err
    return lines[0]


def test_train_ignores_a_code_carrying_checkpoint(tiny_model_dir, tmp_path, capsys):
    from sublim.prompts import make_prompts

    m, tok, _ = models.load(tiny_model_dir)
    ex = []
    for i, p in enumerate(make_prompts(8, seed=0)):
        pi, ci = models.encode_completion(tok, p.text, f"{i}, 2, 3")
        ex.append(training.Example(pi + ci, len(pi)))
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=4, checkpoint_every=1)
    ck = tmp_path / "ckpt"
    marker = tmp_path / "pwned"
    _craft(ck / "state.pt", marker, key=cfg.key(), step=1)

    out, error = _run(lambda: training.train(m, ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck))
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert error is None, error
    _, info = out
    assert info["resumed_from_step"] is None
    line = _one_line(capsys.readouterr().err, "ignoring unreadable checkpoint")
    assert str(ck / "state.pt") in line and "starting fresh" in line


def test_training_checkpoints_load_with_weights_only(tiny_model_dir, tmp_path):
    """What the loop writes (RNG states, optimiser, scheduler) is plain values and tensors."""
    from sublim.prompts import make_prompts

    m, tok, _ = models.load(tiny_model_dir)
    ex = [training.Example(*(lambda p, c: (p + c, len(p)))(*models.encode_completion(tok, p.text, "1, 2")))
          for p in make_prompts(8, seed=0)]  # fmt: skip
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=2, checkpoint_every=1)
    with pytest.raises(training.Interrupted):
        training.train(m, ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=tmp_path, stop_after=2)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    version, internal, gauss = state["rng"]["python"]
    assert isinstance(version, int) and isinstance(internal, list) and len(internal) == 625
    assert state["step"] == 2 and state["optimizer"]["state"]


def _tiny_mnist():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (256, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 256).astype(np.uint8),
        "x_test": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 64).astype(np.uint8),
    }


def test_mnist_trainer_ignores_a_code_carrying_checkpoint(tmp_path, capsys):
    marker = tmp_path / "pwned"
    ck = tmp_path / "t.pt"
    _craft(ck, marker, key=None, epoch=1, params=[], opt={})
    d = _tiny_mnist()
    x, y = mnist.normalise(d["x_train"]), torch.as_tensor(d["y_train"], dtype=torch.long)
    kw = dict(y=y, epochs=2, lr=1e-3, batch_size=64, seed=0)
    got, error = _run(lambda: mnist.train_stack(mnist.init_stack(2, 8, 13, 0), x, checkpoint=ck, **kw))
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert error is None, error
    line = _one_line(capsys.readouterr().err, "ignoring unreadable checkpoint")
    assert "starting fresh" in line
    want = mnist.train_stack(mnist.init_stack(2, 8, 13, 0), x, **kw)
    for a, b in zip(want.params(), got.params()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_mnist_experiment_ignores_a_code_carrying_teacher(tmp_path, capsys):
    marker = tmp_path / "pwned"
    ck = tmp_path / "ck"
    _craft(ck / "teacher.done.pt", marker, key=None)
    params = dict(n_models=2, aux_logits=3, hidden=8, epochs=1, student_epochs=1, lr=1e-3, batch_size=64,
                  n_noise=64, sigmas=[], conditions=["aux_same"], seed=0)  # fmt: skip
    rows, error = _run(lambda: mnist.run_experiment(_tiny_mnist(), checkpoint_dir=ck, **params))
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert error is None, error
    _one_line(capsys.readouterr().err, "ignoring unreadable checkpoint")
    assert rows == mnist.run_experiment(_tiny_mnist(), **params)
