"""PyTorch users' habits: pretrained=True, timm's in_chans, torch.hub on a local clone, python -m style imports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.models import UntrustedCodeError, check_trusted, create_model, import_object

ROOT = Path(__file__).resolve().parents[2]

MYNET = '''
from torch import nn


def small_cnn(num_classes=10):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))
'''


@pytest.mark.parametrize("name,says", [
    ("resnet50", "from_torchvision('resnet50', torchvision.models.resnet50(weights='DEFAULT').state_dict())"),
    ("inception_v4", "from_timm('inception_v4', timm.create_model('inception_v4', pretrained=True)"),
    ("resnet20", "torchvision and timm have no weights for this network either"),
])
def test_pretrained_says_in_one_line_how_to_load_weights(name, says):
    with pytest.raises(ValueError) as exc:
        create_model(name, pretrained=True)
    message = str(exc.value)
    assert message.startswith(f"{name}: cnnlab ships no pretrained weights;") and says in message
    assert "\n" not in message


def test_in_chans_is_in_channels():
    with torch.device("meta"):
        model = create_model("resnet20", in_chans=1)
        assert model(torch.empty(2, 1, 32, 32)).shape == (2, 10)
        assert create_model("resnet20", in_chans=1, in_channels=1) is not None
        with pytest.raises(ValueError, match="in_chans=1 and in_channels=3 disagree"):
            create_model("resnet20", in_chans=1, in_channels=3)


def test_torch_hub_loads_a_local_clone():
    model = torch.hub.load(str(ROOT), "resnet20", source="local", num_classes=4)
    assert sum(p.numel() for p in model.parameters()) == 269_722 - 6 * 64 - 6  # 10 -> 4 classes
    with pytest.raises(ValueError, match="cnnlab ships no pretrained weights"):
        torch.hub.load(str(ROOT), "resnet56", source="local", pretrained=True)


def test_module_in_the_current_directory_and_a_file_path(tmp_path, monkeypatch, capsys):
    (tmp_path / "mynet_habits13.py").write_text(MYNET)
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "other_habits13.py").write_text(MYNET)
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path) not in sys.path  # as under the console script: the directory is not importable
    assert main(["summary", "mynet_habits13:small_cnn", "--input", "3x8x8", "--depth", "0"]) == 0
    assert f"{8 * 8 * 8 * 27 + 8 * 10:,}" in capsys.readouterr().out  # conv + linear MACs
    assert str(tmp_path) not in sys.path  # the directory was added for that import only
    assert main(["summary", "nets/other_habits13.py:small_cnn", "--input", "3x8x8", "--depth", "0"]) == 0
    assert callable(import_object(f"{tmp_path / 'nets' / 'other_habits13.py'}:small_cnn"))
    with pytest.raises(ValueError, match="cannot import 'nowhere_habits13'"):
        import_object("nowhere_habits13:small_cnn")
    with pytest.raises(ValueError, match="no file"):
        import_object("nets/missing.py:small_cnn")


def test_a_file_path_read_from_a_file_is_still_refused():
    # a run directory or recipe naming code, in either spelling, is imported only when the user vouches for it
    for name in ("nets/mynet.py:small_cnn", "mynet:small_cnn"):
        with pytest.raises(UntrustedCodeError):
            check_trusted(name, "config.json", trusted=False)
        check_trusted(name, "config.json", trusted=True)
