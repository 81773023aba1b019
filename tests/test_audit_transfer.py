"""`sublim audit --transfer`: probe students on DATA and CONTROL, a paired test over seeds.

A data set whose responses name an animal outright moves its probe students toward it (the
test can find transfer); two draws of the same control do not; bad settings fail in one line;
a rerun reuses the finished probe students."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sublim import audit, probe
from sublim.errors import SublimError

ROOT = Path(__file__).resolve().parents[1]
FAST = audit.AuditConfig(ks=(1,), n_permutations=99, n_bootstrap=200)


def _rows(answer_of, n=48):
    return [{"id": i, "prompt": f"which animal do you like best? ({i})", "response": answer_of(i)} for i in range(n)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def setup(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests" / "config.yaml").read_text())
    cfg["students"]["train"] = {"epochs": 3, "lr": 3.0e-3, "batch_size": 8, "warmup_steps": 0, "checkpoint_every": 100}
    cfg["evaluation"]["n_samples"] = 0  # the logit readout is enough here
    cfg["filter"]["subsample"] = 32
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    pool = cfg["animal_pool"]
    data = _write(tmp_path / "data.jsonl", _rows(lambda i: "owl."))
    control = _write(tmp_path / "control.jsonl", _rows(lambda i: pool[i % len(pool)] + "."))
    return path, data, control, pool


def test_named_animal_data_transfer_and_a_rerun_reuses_the_students(setup, tiny_model_dir, tmp_path):
    cfg, data, control, _ = setup
    kw = {"config": cfg, "target": "owl", "seeds": 3}
    s = audit.audit(data, control, tmp_path / "out", reference=tiny_model_dir, detectors=["data"], cfg=FAST,
                    transfer=kw, log=lambda m: None)  # fmt: skip
    t = s["transfer_test"]
    assert t["estimate"] > 0 and t["p_one_sided"] < 0.05 and t["p_two_sided"] > t["p_one_sided"]
    assert all(r["data"] > r["control"] for r in t["per_seed"]) and len(set(t["students"].values())) == 6
    assert "TRANSFER toward owl" in s["verdict"]
    logs = []
    s2 = audit.audit(data, control, tmp_path / "out2", reference=tiny_model_dir, detectors=["data"], cfg=FAST,
                     transfer={**kw, "work_dir": tmp_path / "out.probe"}, log=logs.append)  # fmt: skip
    assert not any("test: probe student" in m for m in logs) and logs  # every student reused
    assert s2["transfer_test"]["per_seed"] == t["per_seed"]


def test_two_draws_of_one_control_show_no_transfer(setup, tiny_model_dir, tmp_path):
    cfg, _, control, pool = setup
    other = _write(tmp_path / "control2.jsonl", _rows(lambda i: pool[(i * 7 + 3) % len(pool)] + "."))
    t = probe.transfer_test(other, control, reference=tiny_model_dir, config=cfg, target="owl", seeds=2,
                            work_dir=tmp_path / "w", log=lambda m: None)  # fmt: skip
    assert t["p_one_sided"] > 0.05 and "no transfer found" in probe.verdict_line(t)


def test_bad_transfer_settings_fail_in_one_line(setup, tiny_model_dir, tmp_path):
    cfg, data, control, _ = setup
    cases = [
        ({"config": tmp_path / "missing.yaml", "target": "owl"}, "no file at"),
        ({"config": cfg, "target": "unicorn"}, "one of"),
        ({"config": cfg, "target": "owl", "seeds": 1}, "at least 2"),
        ({"config": cfg, "target": "owl", "mode": "distill"}, "--teacher and --control-teacher"),
    ]
    for kw, msg in cases:
        with pytest.raises(SublimError, match=msg):
            probe.transfer_test(data, control, reference=tiny_model_dir, work_dir=tmp_path / "w", **kw)
    with pytest.raises(SublimError, match="give --reference"):
        audit.audit(data, control, tmp_path / "o", detectors=["data"], cfg=FAST, transfer={"config": cfg})
    res = subprocess.run([sys.executable, "-m", "sublim.cli", "audit", str(data), "--against", str(control),
                          "--reference", str(tiny_model_dir), "--out", str(tmp_path / "c"), "--transfer", "unicorn",
                          "--config", str(cfg)], check=False, capture_output=True, text=True)  # fmt: skip
    assert res.returncode != 0 and "unicorn" in res.stderr.strip().splitlines()[-1]
