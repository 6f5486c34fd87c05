"""cnnlab transform: the report, --check, -o (safetensors / .pt state dict + recipe JSON, rebuilt), errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.design import load_transformed
from cnnlab.models import UntrustedCodeError

# resnet20 layer1: six 16 -> 16 3x3 convs on 32x32 maps; 1x3 + 3x1 keeps 6 of 9 weights and adds one BN (2 x 16)
# between the two factors
LAYER1_SAVED = 6 * ((9 - 6) * 16 * 16 - 2 * 16)
LAYER1_MACS_SAVED = 32 * 32 * 6 * (9 - 6) * 16 * 16


def test_transform_prints_report_and_checks_shapes(capsys):
    code = main(["transform", "resnet20", "--factorize", "asymmetric", "--min-kernel", "3", "--where", "layer1.*",
                 "--check"])
    out = capsys.readouterr().out
    assert code == 0
    assert "factorize(style='asymmetric', min_kernel=3, where='layer1.*') at 3x32x32: 6 layer(s) replaced" in out
    assert f"({-LAYER1_SAVED:+,})" in out and f"({-LAYER1_MACS_SAVED:+,})" in out
    assert "81x81 -> 81x81" in out and "(unchanged)" in out  # 3 + 6*2 + (2 + 5*4) + (4 + 5*8)
    assert "check: input (1, 3, 32, 32) -> before (1, 10), after (1, 10): OK" in out


def test_transform_chain_json(capsys):
    assert main(["transform", "plain20", "--residual", "--preact", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["transform"] for r in data["reports"]] == ["to_residual", "to_preactivation"]
    assert data["reports"][0]["before"]["params"] == data["reports"][0]["after"]["params"]  # option A is free
    assert data["reports"][1]["changed"] is True


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_output_saves_weights_and_recipe_that_rebuild_the_model(tmp_path, capsys, monkeypatch, suffix):
    out = tmp_path / f"model{suffix}"
    code = main(["transform", "resnet20", "--bottleneck", "4", "--where", "layer3.*", "--num-classes", "7",
                 "-o", str(out)])
    assert code == 0 and out.is_file()
    recipe = json.loads((tmp_path / "model.json").read_text())
    assert recipe["model"] == "resnet20" and recipe["model_options"] == {"num_classes": 7}
    assert recipe["transforms"] == [{"name": "add_bottleneck", "args": {"reduction": 4, "where": "layer3.*"}}]
    if suffix == ".pt":  # a plain tensor dict: loadable without unpickling any code
        assert isinstance(torch.load(out, weights_only=True), dict)
    # replaying a recipe to load weights transforms only: nothing is measured
    monkeypatch.setattr("cnnlab.design.report.analyze", lambda *a, **k: pytest.fail("load_transformed analysed"))
    model = load_transformed(out)
    assert sum(p.numel() for p in model.parameters()) == recipe["params"]
    assert model.layer3[0].conv1.reduce.conv.out_channels == 32 // 4
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    assert "saved weights" in capsys.readouterr().out


def five_by_five_net(num_classes: int = 3) -> nn.Module:
    """A user network for the package.module:callable form: one 5x5 conv (8 -> 8) worth factorizing."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 5, padding=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def test_transform_a_user_callable_and_rebuild_it(tmp_path, capsys):
    spec, out = f"{__name__}:five_by_five_net", tmp_path / "mine.safetensors"
    assert main(["transform", spec, "--factorize", "stack3x3", "--input", "3x12x12", "--num-classes", "4",
                 "--check", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    # the 5x5 (8*8*25 weights + 8 bias) becomes two 3x3 (2 * 8*8*9 weights, each with its bias): 1600 -> 1152
    assert "1 layer(s) replaced" in text and f"({2 * (8 * 8 * 9 + 8) - (8 * 8 * 25 + 8):+,})" in text
    assert "OK" in text
    with pytest.raises(UntrustedCodeError, match=spec):  # a recipe never imports code on its own word
        load_transformed(out)
    model = load_transformed(out, model=spec)
    assert json.loads((tmp_path / "mine.json").read_text())["model"] == spec
    assert model(torch.randn(2, 3, 12, 12)).shape == (2, 4)


def test_gap_head_on_a_model_without_flatten_head_is_not_an_error(capsys):
    assert main(["transform", "resnet20", "--gap-head", "--input", "3x16x16"]) == 0
    out = capsys.readouterr().out
    assert "nothing replaced" in out and "model unchanged" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["transform", "resnet20"], "no transform requested"),
    (["transform", "resnet20", "--factorize", "stack3x3", "--where", "re:("], "malformed where pattern 're:('"),
    (["transform", "resnet20", "--factorize", "stack3x3", "--input", "3x32"], "--input must be CxHxW"),
    (["transform", "resnet20", "--gap-head", "-o", "model.pkl"], "must end in one of"),
    (["transform", "resnet20", "--preact", "--where", "layer1.*"], "--where selects layers"),
    (["transform", "tests.nowhere:net", "--preact"], "cannot import 'tests.nowhere'"),
    (["transform", "torch.nn:functional", "--preact"], "not a callable that returns an nn.Module"),
])
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
