"""``cnnlab models`` / ``cnnlab list`` and ``cnnlab card``: table, JSON, filters, errors."""

import json

import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.cli.models import human


@pytest.mark.parametrize("count, unit, text", [(61_100_840, "M", "61.1M"), (714_188_480, "G", "0.71G"),
                                               (269_722, "M", "269.7K"), (15_470_264_320, "G", "15.47G"),
                                               (None, "G", "-"), (12, "M", "12")])
def test_human_counts(count, unit, text):
    assert human(count, unit) == text


def test_table_lists_every_model_with_its_counts(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "input", "params", "MACs", "counts", "from"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == cnnlab.list_models()
    assert rows["alexnet"][1:5] == ["alexnet", "3x224x224", "61.1M", "0.71G"]
    assert rows["vgg16"][3:5] == ["138.4M", "15.47G"]
    assert rows["squeezenet1_1"][3:5] == ["1.2M", "0.35G"]


@pytest.mark.parametrize("argv, expected", [
    (["models", "vgg1?"], ["vgg11", "vgg13", "vgg16", "vgg19"]),
    (["models", "squeezenet"], ["squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass"]),  # substring
    (["list", "alex*"], ["alexnet"]),
])
def test_pattern_filter(capsys, argv, expected):
    assert main(argv) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == expected


def test_json_is_a_list_of_cards(capsys):
    assert main(["models", "vgg16*", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in cards] == ["vgg16", "vgg16_bn"]
    assert cards[0] == cnnlab.model_card("vgg16").to_dict()
    assert cards[1]["reference"]["params"] == 138_365_992


def test_no_match_is_an_error(capsys):
    assert main(["models", "no_such_family"]) == 2
    err = capsys.readouterr().err
    assert "no model matches" in err and "Traceback" not in err


def test_card_text(capsys):
    assert main(["card", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "61,100,840 params, 714,188,480 MACs" in out
    assert "Krizhevsky" in out and "two-GPU" in out
    assert any(line.split()[:4] == ["min", "input", "size", "63"] for line in out.splitlines())
    assert any(line.split() == ["weights", "from", "torchvision", "alexnet"] for line in out.splitlines())


def test_card_text_leaves_out_weights_of_a_model_without_a_reference(capsys):
    assert main(["card", "resnet20"]) == 0
    assert "weights from" not in capsys.readouterr().out


def test_card_json(capsys):
    assert main(["card", "squeezenet1_0_bypass", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == cnnlab.model_card("squeezenet1_0_bypass").to_dict()


def test_card_unknown_name_suggests(capsys):
    assert main(["card", "vgg16bn"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'vgg16bn'" in err and "vgg16_bn" in err
