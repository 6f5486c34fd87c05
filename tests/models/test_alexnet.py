"""AlexNet (torchvision's single-tower layout): closed-form counts, shapes, card honesty."""

import pytest
import torch
from torch import nn

import cnnlab

# torchvision 0.29.1 alexnet rows: (in, out, kernel, stride, padding, 3x3/2 max-pool after)
ROWS = [(3, 64, 11, 4, 2, True), (64, 192, 5, 1, 2, True), (192, 384, 3, 1, 1, False),
        (384, 256, 3, 1, 1, False), (256, 256, 3, 1, 1, True)]
FC = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]


def meta_model(**kwargs) -> nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model("alexnet", **kwargs)


def test_params_and_macs_in_closed_form():
    size, params, macs = 224, 0, 0
    for c_in, c_out, k, s, p, pool in ROWS:
        size = (size + 2 * p - k) // s + 1
        params += k * k * c_in * c_out + c_out
        macs += size * size * k * k * c_in * c_out
        if pool:
            size = (size - 3) // 2 + 1
    assert size == 6
    params += sum(f_in * f_out + f_out for f_in, f_out in FC)
    macs += sum(f_in * f_out for f_in, f_out in FC)
    card = cnnlab.model_card("alexnet")
    assert sum(p.numel() for p in meta_model().parameters()) == params == card.reference.params == 61_100_840
    assert macs == card.reference.macs == 714_188_480


def test_layout():
    model = meta_model().eval()
    assert model.stage_names == ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"]
    features, _ = model.forward_features(torch.empty(1, 3, 224, 224, device="meta"))
    assert features.shape == (1, 256, 6, 6)
    # torchvision's placement: dropout before fc6 and before fc7
    assert [n for n, _ in model.head.named_children()][2:] == [
        "drop6", "fc6", "act6", "drop7", "fc7", "act7", "fc"]


def test_card_says_it_is_not_the_2012_network():
    card = cnnlab.model_card("alexnet")
    assert "two-GPU" in card.differences and "one weird trick" in card.paper.lower()
    assert card.min_input_size == 63


def test_min_input_size_is_tight():
    model = meta_model().eval()
    assert model(torch.empty(1, 3, 63, 63, device="meta")).shape == (1, 1000)
    with pytest.raises(ValueError, match="63x63"):
        model(torch.empty(1, 3, 62, 62, device="meta"))
    x = torch.empty(1, 3, 62, 62, device="meta")
    with pytest.raises(RuntimeError):  # without the check, the last pool would get a 2x2 map
        for name in model.stage_names:
            x = getattr(model, name)(x)


def test_num_classes_changes_only_the_classifier():
    assert meta_model(num_classes=10).head.fc.weight.shape == (10, 4096)
    delta = sum(p.numel() for p in meta_model().parameters()) - sum(
        p.numel() for p in meta_model(num_classes=10).parameters())
    assert delta == (1000 - 10) * (4096 + 1)
