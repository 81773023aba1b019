import copy
from pathlib import Path

import pytest
import yaml

from sublim.config import validate
from sublim.errors import SublimError

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [ROOT / "config.yaml", ROOT / "tests" / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_validates(path):
    validate(yaml.safe_load(path.read_text()))


def _default():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_defaults_are_filled():
    cfg = validate({"animals": ["owl"], "students": {"matrix": [{"condition": "treatment", "modes": ["sft"]}]}})
    assert cfg["generation"]["temperature"] == 1.0
    assert cfg["students"]["train"]["lr"] == 3e-4
    assert cfg["reference"]["pretrain"]["batch_size"] == 32


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["students"].__setitem__("trian", {}), "students"),
        (lambda c: c["generation"].__setitem__("temperature", "hot"), "generation.temperature"),
        (lambda c: c["students"]["matrix"][0].__setitem__("modes", ["sfd"]), "students.matrix.0.modes.0"),
        (lambda c: c.__setitem__("animals", ["owl", "unicorn"]), "animals"),
        (lambda c: c["filter"].__setitem__("subsample", 10**9), "filter.subsample"),
        (lambda c: c["reference"].__setitem__("seeds", [0]), "reference.seeds"),
    ],
)
def test_bad_config_is_one_clear_line(mutate, key):
    cfg = _default()
    mutate(cfg)
    with pytest.raises(SublimError) as e:
        validate(cfg)
    msg = str(e.value)
    assert "\n" not in msg and f"'{key}'" in msg


def test_validation_does_not_share_default_objects():
    a = validate({"animals": ["owl"]})
    b = validate({"animals": ["owl"]})
    a["students"]["seeds"].append(99)
    assert 99 not in b["students"]["seeds"]
    assert copy.deepcopy(b) == b
