"""``cnnlab export``: a safetensors state dict that plain ``load_state_dict`` loads into the zoo model the run names,
and an ONNX graph whose ONNX Runtime outputs match PyTorch's (where onnx and onnxruntime install); bad input is
one line; a run naming user code exports only when trusted."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import cnnlab
from cnnlab.cli import main
from cnnlab.data import ArrayDataset
from cnnlab.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

USER_NET = '''
from torch import nn


def net(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, num_classes))
'''


def _data(n: int, seed: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 5, n), tuple("abcde"))


def _train(out, model: str = "resnet20", **options) -> None:
    cfg = TrainConfig(model=model, data="npz", max_steps=2, batch_size=16, precision="fp32", seed=0,
                      model_options=options)
    Trainer(cfg, out, train_data=_data(32, 0), test_data=_data(16, 1), progress=False).fit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    _train(out, zero_init_residual=True)
    return out


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line_error(capsys, argv: list[str], pattern: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and pattern in err, err
    return err


def test_safetensors_loads_into_the_zoo_model_with_plain_load_state_dict(run, here, capsys):
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    path = here / "run-best.safetensors"  # default: the run's name and checkpoint, in the current directory
    assert out.startswith(f"run-best.safetensors: resnet20 (5 classes) from {run}/checkpoints/best.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["cnnlab_model"] == "resnet20" and json.loads(meta["model_options"]) == {"zero_init_residual": True}
    assert json.loads(meta["classes"]) == list("abcde") and json.loads(meta["image_shape"]) == [3, 8, 8]
    model = cnnlab.create_model(meta["cnnlab_model"], num_classes=int(meta["num_classes"]),
                                **json.loads(meta["model_options"]))
    model.load_state_dict(load_file(path))  # strict: every key, no extras
    reference = cnnlab.load_run(run)
    assert json.loads(meta["mean"]) == pytest.approx(reference.run_info.mean)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x))


def test_onnx_matches_pytorch_in_onnxruntime(run, here, capsys):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--format", "onnx", "--which", "last", "--out", "net.onnx"]) == 0
    assert capsys.readouterr().out.startswith("net.onnx: resnet20 (5 classes)")
    props = {p.key: p.value for p in onnx.load(str(here / "net.onnx")).metadata_props}
    assert props["cnnlab_model"] == "resnet20" and props["source"].endswith("last.safetensors (step 2)")
    session = ort.InferenceSession(str(here / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    reference = cnnlab.load_run(run, "last")
    x = reference.run_info.normalize(torch.from_numpy(_data(7, 2).x).permute(0, 3, 1, 2))  # a batch of 7, not 1
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), reference(x), rtol=1e-4, atol=1e-5)


def test_onnx_without_the_onnx_package_says_how_to_install_it(run, here, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    _one_line_error(capsys, ["export", str(run), "--format", "onnx"], "pip install 'cnnlab[onnx]'")
    assert not list(here.iterdir())


def test_bad_input_is_one_line(run, here, capsys):
    _one_line_error(capsys, ["export", str(here)], "is not a run directory (no checkpoints/)")
    _one_line_error(capsys, ["export", str(run), "--out", str(here)], "is a folder; give a file name")
    _one_line_error(capsys, ["export", str(run), "--out", str(here / "no" / "m.safetensors")], "does not exist")
    with pytest.raises(SystemExit) as exc:  # argparse: not one of the choices
        main(["export", str(run), "--format", "pickle"])
    assert exc.value.code == 2 and "invalid choice: 'pickle'" in capsys.readouterr().err


def test_user_code_exports_only_when_trusted(here, capsys, monkeypatch):
    (here / "usernet_export.py").write_text(USER_NET)
    monkeypatch.syspath_prepend(str(here))
    _train(here / "mine", model="usernet_export:net")
    _one_line_error(capsys, ["export", "mine"], "--trust-run-code")
    assert not (here / "mine-best.safetensors").exists()
    assert main(["export", "mine", "--trust-run-code"]) == 0
    assert main(["export", "mine", "--model", "usernet_export:net", "--out", "named.safetensors"]) == 0
    assert load_file(here / "named.safetensors").keys() == load_file(here / "mine-best.safetensors").keys()
