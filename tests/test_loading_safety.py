"""Loading never executes code: run directories, checkpoint headers, transform recipes, config files and data
files are read as data. A network named as ``package.module:callable`` by a file is imported only when the user
names it again or passes --trust-run-code (issue 11, "Security")."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from cnnlab.cli import main
from cnnlab.data.formats import CorruptDataError, load_cifar_python, load_npz
from cnnlab.design import load_transformed, save_transformed
from cnnlab.models import UntrustedCodeError, check_trusted
from cnnlab.train import TrainConfig, Trainer, evaluate_run, load_checkpoint, load_config_file

# importing this module leaves a marker file: the proof that a loader ran code it should not have
EVIL = '''
from pathlib import Path
Path(__file__).with_name("PWNED").write_text("imported")

from torch import nn


def net(num_classes=4, **options):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
'''

TINY = '''
from torch import nn


def tiny(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, num_classes))
'''

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """tmp_path on sys.path with a harmless user network (tinynet_safety) and a malicious one (evilnet_safety)."""
    (tmp_path / "tinynet_safety.py").write_text(TINY)
    (tmp_path / "evilnet_safety.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    rng = np.random.default_rng(0)
    for name, n in (("train", 32), ("test", 16)):
        np.savez(tmp_path / f"{name}.npz", x=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                 y=rng.integers(0, 4, n), classes=np.array(["a", "b", "c", "d"]))
    yield tmp_path
    sys.modules.pop("evilnet_safety", None)


def _pwned(work: Path) -> bool:
    return (work / "PWNED").exists()


def _train_tiny(out: str = "run") -> None:
    assert main(["train", "tinynet_safety:tiny", "--data", "npz", "--train-file", "train.npz", "--test-file",
                 "test.npz", "--out", out, "--batch-size", "16", "--epochs", "1", "--set", "precision=fp32",
                 "--quiet"]) == 0


def _rename_model(run: Path, name: str) -> None:
    """What a hostile sender does: point config.json and both checkpoint headers at another callable."""
    stored = json.loads((run / "config.json").read_text())
    stored["config"]["model"] = name
    (run / "config.json").write_text(json.dumps(stored))
    for ckpt in (run / "checkpoints").glob("*.safetensors"):
        tensors, meta = load_checkpoint(ckpt)
        meta["config"]["model"] = name
        ckpt.write_bytes(st_save(tensors, metadata={"cnnlab": json.dumps(meta)}))


def _one_line_error(capsys, argv: list[str], *patterns: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert all(p in err for p in patterns), err
    return err


def test_check_trusted_rule():
    check_trusted("resnet20", "x.json", trusted=False)  # registry names build cnnlab's own code
    check_trusted("pkg.mod:net", "x.json", trusted=True)
    with pytest.raises(UntrustedCodeError, match="x.json names the network 'pkg.mod:net'"):
        check_trusted("pkg.mod:net", "x.json", trusted=False)


@pytest.mark.parametrize("name", ["evilnet_safety:net", "torch.hub:load"])
def test_eval_of_an_edited_run_imports_nothing(work, capsys, name):
    _train_tiny()
    _rename_model(work / "run", name)
    _one_line_error(capsys, ["eval", "run"], name, "--trust-run-code", "--model")
    _one_line_error(capsys, ["train", "--resume", "run", "--epochs", "2"], name, "--trust-run-code")
    with pytest.raises(UntrustedCodeError):
        evaluate_run(work / "run")
    assert not _pwned(work)
    assert json.loads((work / "run" / "summary.json").read_text())["step"] == 2  # the refused resume changed nothing


def test_the_user_vouches_by_naming_the_callable_or_trusting_the_run(work, capsys):
    _train_tiny()
    _one_line_error(capsys, ["eval", "run"], "tinynet_safety:tiny", "--trust-run-code")
    assert main(["eval", "run", "--json", "--model", "tinynet_safety:tiny"]) == 0
    by_name = json.loads(capsys.readouterr().out)
    assert main(["eval", "run", "--json", "--trust-run-code"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == by_name["accuracy"]
    assert evaluate_run(work / "run", model="tinynet_safety:tiny")["images"] == 16
    # resuming: the same MODEL typed again, or --trust-run-code; Python: model= or trust_code=True
    assert main(["train", "tinynet_safety:tiny", "--resume", "run", "--epochs", "2", "--quiet"]) == 0
    assert main(["train", "--resume", "run", "--epochs", "3", "--quiet", "--trust-run-code"]) == 0
    stored = TrainConfig(**json.loads((work / "run" / "config.json").read_text())["config"])
    with pytest.raises(UntrustedCodeError):
        Trainer(stored.replace(epochs=4), work / "run", resume=True, progress=False)
    assert Trainer(stored.replace(epochs=4), work / "run", resume=True, progress=False,
                   trust_code=True).fit()["step"] == 8


def test_a_registry_run_needs_no_trust(work, capsys):
    assert main(["train", "resnet20", "--data", "npz", "--train-file", "train.npz", "--test-file", "test.npz",
                 "--out", "zoo", "--batch-size", "16", "--max-steps", "1", "--set", "precision=fp32"]) == 0
    capsys.readouterr()
    assert main(["eval", "zoo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 16


def test_config_file_naming_a_callable_needs_trust(work, capsys):
    (work / "c.yaml").write_text("model: evilnet_safety:net\nepochs: 1\n")
    args = ["train", "--config", "c.yaml", "--data", "npz", "--train-file", "train.npz", "--test-file",
            "test.npz", "--out", "c"]
    _one_line_error(capsys, args, "config file c.yaml", "evilnet_safety:net")
    assert not _pwned(work) and not (work / "c").exists()
    (work / "t.yaml").write_text("model: tinynet_safety:tiny\nepochs: 1\nbatch_size: 16\nprecision: fp32\n")
    assert main(["train", "--config", "t.yaml", *args[3:-1], "t", "--trust-run-code"]) == 0
    assert main(["train", "tinynet_safety:tiny", "--config", "t.yaml", *args[3:-1], "t2"]) == 0
    # a YAML file cannot build Python objects either (safe_load)
    (work / "obj.yaml").write_text("lr: !!python/object/apply:os.system ['touch PWNED']\n")
    with pytest.raises(ValueError, match="cannot be parsed"):
        load_config_file(work / "obj.yaml")
    assert not _pwned(work)


def test_transform_recipe_naming_a_callable(work):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    recipe = save_transformed(model, work / "m.safetensors", {"model": "evilnet_safety:net", "transforms": []})
    with pytest.raises(UntrustedCodeError, match="evilnet_safety:net"):
        load_transformed(work / "m.safetensors")
    assert not _pwned(work)
    with pytest.raises(ValueError, match="was made from 'evilnet_safety:net'"):
        load_transformed(work / "m.safetensors", model="tinynet_safety:tiny")
    assert recipe.is_file()


def test_pt_weights_and_data_pickles_refuse_code(work):
    class Boom:
        def __reduce__(self):
            return (Path.write_text, (work / "PWNED", "unpickled"))

    # a .pt "state dict" carrying an object: torch.load(weights_only=True) refuses it
    torch.save({"w": torch.zeros(1), "boom": Boom()}, work / "m.pt")
    (work / "m.json").write_text(json.dumps({"format": "cnnlab-transform-recipe/1", "model": "resnet20"}))
    with pytest.raises(pickle.UnpicklingError):
        load_transformed(work / "m.pt")
    # a CIFAR python batch carrying an object: the restricted unpickler refuses it
    (work / "data_batch_1").write_bytes(pickle.dumps({b"data": Boom(), b"labels": [0]}))
    with pytest.raises(CorruptDataError, match="refusing to load"):
        load_cifar_python([work / "data_batch_1"], None)
    # an npz holding an object array is refused (allow_pickle=False)
    np.savez(work / "obj.npz", x=np.array([Boom()], dtype=object), y=np.zeros(1, dtype=np.int64))
    with pytest.raises(CorruptDataError):
        load_npz(work / "obj.npz")
    assert not _pwned(work)
