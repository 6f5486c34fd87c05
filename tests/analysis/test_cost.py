"""Cost analyser: closed-form counts on hand-built nets, FlopCounterMode agreement, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.analysis import CostReport, analyze, smallest_input


def conv_out(size: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def flop_counter_macs(model: nn.Module, input_size: tuple[int, ...], batch: int = 1) -> int:
    """Independent reference: torch's FlopCounterMode on a meta copy of the model, FLOPs / 2."""
    meta = cnnlab.analysis.meta_copy(model)
    meta.train(model.training)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.empty(batch, *input_size, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("c_in,c_out,k,s,p,d,g,size", [
    (3, 16, 5, 2, 2, 1, 1, 32),    # strided 5x5
    (8, 8, 3, 1, 1, 1, 8, 17),     # depthwise
    (8, 12, 3, 1, 2, 2, 4, 20),    # grouped + dilated
    (16, 4, 1, 1, 0, 1, 1, 9),     # 1x1 reduction
])
def test_conv_macs_and_params_closed_form(c_in, c_out, k, s, p, d, g, size):
    net = nn.Conv2d(c_in, c_out, k, s, p, d, g, bias=True)
    rep = analyze(net, (c_in, size, size), batch_size=2)
    h = conv_out(size, k, s, p, d)
    assert rep.macs == 2 * h * h * c_out * (c_in // g) * k * k
    assert rep.flops == 2 * rep.macs
    assert rep.params == c_out * (c_in // g) * k * k + c_out
    assert rep.other_ops_by_kind == {"bias": 2 * c_out * h * h}
    assert rep.layers[0].output_shape == [2, c_out, h, h]
    assert rep.activation_bytes == 2 * c_out * h * h * 4


def test_asymmetric_conv_linear_and_conv1d():
    net = nn.Sequential(nn.Conv2d(4, 6, (1, 7), padding=(0, 3), bias=False),
                        nn.Conv2d(6, 6, (7, 1), padding=(3, 0), bias=False))
    rep = analyze(net, (4, 12, 10))
    assert rep.macs == 12 * 10 * 6 * 4 * 7 + 12 * 10 * 6 * 6 * 7
    lin = analyze(nn.Linear(20, 30), (20,), batch_size=5)
    assert lin.macs == 5 * 20 * 30 and lin.other_ops_by_kind == {"bias": 5 * 30}
    c1 = analyze(nn.Conv1d(3, 5, 3, stride=2), (3, 11))
    assert c1.macs == conv_out(11, 3, 2) * 5 * 3 * 3


def test_transposed_conv_counts_per_input_position():
    net = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, bias=False)
    rep = analyze(net, (6, 7, 7))
    assert rep.macs == 7 * 7 * 6 * 4 * 4 * 4
    assert rep.macs == flop_counter_macs(net, (6, 7, 7))


class Functional(nn.Module):
    """Only functional ops between two convolutions: cat, +, relu, adaptive pool, flatten, matmul."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(3, 4, 1, bias=False)
        self.proj = nn.Parameter(torch.zeros(8, 5))

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], dim=1)  # 8 channels
        y = F.relu(y + y)
        y = F.adaptive_avg_pool2d(y, 1)
        return torch.flatten(y, 1) @ self.proj


def test_functional_ops_are_seen_and_attributed_to_the_container():
    rep = analyze(Functional(), (3, 6, 6))
    hw = 36
    assert rep.macs == hw * 4 * 3 * 9 + hw * 4 * 3 + 8 * 5
    kinds = rep.other_ops_by_kind
    assert kinds["elementwise"] == 8 * hw      # y + y
    assert kinds["activation"] == 8 * hw       # relu
    assert kinds.get("pool", 0) + kinds.get("reduction", 0) == 8 * hw  # global pooling reads every input
    root = rep.layer("")
    assert root.self_macs == 8 * 5 and root.macs == rep.macs
    assert rep.layer("a").macs == hw * 4 * 3 * 9
    assert rep.params == 4 * 3 * 9 + 4 * 3 + 40


def test_batch_norm_pool_and_params_trainable_frozen():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 3 * 3, 10))
    for p in net[0].parameters():
        p.requires_grad_(False)
    rep = analyze(net, (3, 8, 8))
    assert rep.params == 8 * 27 + 16 + 72 * 10 + 10
    assert rep.trainable_params == rep.params - 8 * 27
    assert rep.layer("0").trainable_params == 0 and rep.layer("0").params == 216
    assert rep.layer("1").other_ops_by_kind == {"norm": 2 * 8 * 36}
    assert rep.layer("3").other_ops_by_kind == {"pool": 8 * 9 * 4}
    assert rep.layer("3").geometry == {"op": "max_pool", "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]}
    assert rep.layer("0").geometry["kernel"] == [3, 3]


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)  # relu reused, as torchvision does


def test_containers_have_totals_depth_and_execution_order():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Sequential(Block(4), Block(4)))
    rep = analyze(net, (3, 5, 5))
    names = [r.name for r in rep.layers]
    assert names == ["", "0", "1", "1.0", "1.0.conv1", "1.0.relu", "1.0.conv2", "1.1", "1.1.conv1", "1.1.relu",
                     "1.1.conv2"]
    assert [r.depth for r in rep.layers[:4]] == [0, 1, 1, 2]
    block = rep.layer("1.0")
    assert block.macs == 2 * 25 * 4 * 4 * 9 and block.self_other_ops == 4 * 25  # the residual add
    assert rep.layer("1.0.relu").calls == 2
    assert rep.layer("1").macs == 2 * block.macs
    assert [r.name for r in rep.at_depth(1)] == ["0", "1"]
    assert rep.macs == sum(r.macs for r in rep.at_depth(1))


def test_report_to_dict_schema():
    rep = analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8))
    d = rep.to_dict()
    assert isinstance(rep, CostReport)
    assert set(d) >= {"model", "input_size", "conventions", "total", "layers", "unknown_ops"}
    assert set(d["total"]) >= {"params", "trainable_params", "macs", "flops", "other_ops", "activation_bytes"}
    layer = d["layers"][1]
    assert set(layer) >= {"name", "type", "depth", "input_shape", "output_shape", "params", "macs", "flops",
                          "activation_bytes", "rf"}
    assert layer["rf"] == {"size": [3, 3], "jump": [1, 1], "start": [1, 1]}
    assert d["input_size"] == [3, 8, 8] and d["total"]["macs"] == 6 * 6 * 4 * 27


def test_user_module_is_not_modified():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    analyze(net, (3, 8, 8), training=True)
    assert not net.training and all(not m.training for m in net.modules())
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].device.type == "cpu" for k in before)


@pytest.mark.parametrize("training", [False, True])
def test_macs_equal_flop_counter_mode_on_mixed_net(training):
    net = nn.Sequential(nn.Conv2d(3, 8, 5, 2, 2), nn.BatchNorm2d(8), nn.ReLU(), Block(8), nn.Conv2d(8, 8, 3, groups=4),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 7))
    net.train(training)
    assert analyze(net, (3, 33, 33), batch_size=3).macs == flop_counter_macs(net, (3, 33, 33), batch=3)


def zoo_params() -> list:
    """Every registered model; those 100 layers deep or more are marked slow (FlopCounterMode is ~1 ms/op)."""
    params = []
    for name in cnnlab.list_models():
        depth = int("".join(ch for ch in name.split("_")[-1] if ch.isdigit()) or 0)
        params.append(pytest.param(name, marks=pytest.mark.slow) if depth >= 100 else name)
    return params


@pytest.mark.parametrize("name", zoo_params())
def test_zoo_model_macs_equal_flop_counter_mode(name):
    card = cnnlab.model_card(name)
    with torch.device("meta"):
        model = cnnlab.create_model(name).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, *card.input_size, device="meta"))
    rep = analyze(name)
    assert rep.macs == counter.get_total_flops() // 2
    assert rep.params == sum(p.numel() for p in model.parameters())
    assert not rep.unknown_ops, rep.unknown_ops


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 7, stride=2)          # valid conv: out = (H - 7) // 2 + 1
        self.pool = nn.MaxPool2d(3, stride=2)            # out = (H - 3) // 2 + 1
        self.conv = nn.Conv2d(4, 4, 3)                   # out = H - 2

    def forward(self, x):
        return self.conv(self.pool(self.stem(x)))


def test_input_too_small_names_layer_and_smallest_size():
    def valid(h: int) -> bool:
        a = (h - 7) // 2 + 1 if h >= 7 else 0
        b = (a - 3) // 2 + 1 if a >= 3 else 0
        return b - 2 >= 1

    smallest = next(h for h in range(1, 200) if valid(h))
    with pytest.raises(ValueError) as info:
        analyze(TinyNet(), (3, 12, 12))
    message = str(info.value)
    # 12 -> stem 3 -> pool 1 -> conv fails: the first layer whose output would be empty is "conv"
    assert "'conv'" in message and f"{smallest}x{smallest}" in message
    assert smallest_input(cnnlab.analysis.meta_copy(TinyNet()), (3, 12, 12)) == smallest
    analyze(TinyNet(), (3, smallest, smallest))


def test_train_mode_batch_norm_at_batch_one_names_the_batch_not_only_a_size():
    # the aux head of inception_v3 reaches a 1x1 map at 299: train-mode BN has one value per channel at batch 1
    with pytest.raises(ValueError, match=r"batch_size=2 \(--batch 2\), in eval mode, or at 347x347") as info:
        analyze("inception_v3", 299, training=True)
    assert "aux_heads.Mixed_6e.conv1.bn" in str(info.value)
    assert analyze("inception_v3", 299, training=True, batch_size=2).macs > 0


class Cumulative(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1) * 2


def test_unknown_op_is_reported_not_dropped():
    rep = analyze(nn.Sequential(nn.Conv2d(3, 3, 1), Cumulative()), (3, 4, 4))
    assert [u["op"] for u in rep.unknown_ops] == ["aten.cumsum.default"]
    assert rep.unknown_ops[0]["cost"] == "unknown cost" and rep.unknown_ops[0]["layer"] == "1"
    assert "unknown cost" in rep.to_table() and "unknown cost" in rep.to_csv()
    assert rep.layer("1").unknown_ops == ["aten.cumsum.default"]
    assert rep.layer("1").other_ops_by_kind == {"elementwise": 3 * 16}


def test_op_without_meta_kernel_runs_on_cpu_and_is_reported():
    lib = torch.library.Library("cnnlab_test", "FRAGMENT")  # noqa: TOR901 (a test-only op)
    lib.define("twice(Tensor x) -> Tensor")
    lib.impl("twice", lambda x: x * 2, "CPU")

    class Twice(nn.Module):
        def forward(self, x):
            return torch.ops.cnnlab_test.twice(x)

    rep = analyze(nn.Sequential(nn.Conv2d(3, 3, 1), Twice()), (3, 4, 4))
    assert rep.layer("1").output_shape == [1, 3, 4, 4]
    assert rep.unknown_ops[0]["op"] == "cnnlab_test.twice.default"


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        analyze(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        analyze(nn.Conv2d(3, 3, 1), (3, 0, 4))
    with pytest.raises(ValueError, match="batch_size"):
        analyze(nn.Conv2d(3, 3, 1), (3, 4, 4), batch_size=0)


def test_meta_copy_is_cheap_for_large_models():
    # a 1000-layer model is analysed without materialising weights: the copy holds only meta tensors
    net = nn.Sequential(*[nn.Conv2d(64, 64, 3, padding=1) for _ in range(1000)])
    rep = analyze(net, (64, 8, 8))
    assert rep.macs == 1000 * 64 * 64 * 9 * 64
    assert math.isclose(rep.param_bytes, 1000 * (64 * 64 * 9 + 64) * 4)


def test_dtype_sets_parameter_and_activation_bytes():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    half = analyze(net, (3, 8, 8), dtype=torch.float16)
    full = analyze(net, (3, 8, 8))
    assert half.param_bytes * 2 == full.param_bytes == (4 * 27 + 4 + 8) * 4
    assert half.layer("0").activation_bytes == 4 * 6 * 6 * 2
    assert half.macs == full.macs and half.dtype == "float16"
    assert next(net.parameters()).dtype == torch.float32


def test_matrix_vector_products_are_counted():
    class PowerStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(6, 5))

        def forward(self, v):
            return torch.dot(self.w @ v[0], self.w @ v[0])  # two mv (6*5 each) and one dot (6)

    assert analyze(PowerStep(), (5,)).macs == 2 * 6 * 5 + 6


def test_top_level_api_is_lazy_and_exported():
    assert cnnlab.analyze is analyze
    assert cnnlab.CostReport is CostReport


@pytest.mark.skipif("googlenet" not in cnnlab.list_models(), reason="googlenet not registered")
def test_aux_heads_counted_in_training_mode_only():
    eval_rep, train_rep = analyze("googlenet"), analyze("googlenet", training=True)
    aux = [r for r in train_rep.layers if r.depth == 2 and r.name.startswith("aux_heads.")]
    assert aux and all(r.calls == 1 for r in aux)
    assert train_rep.macs == eval_rep.macs + sum(r.macs for r in aux)
    assert eval_rep.unused_params == sum(r.params for r in aux) and train_rep.unused_params == 0


def test_unused_params_of_nested_holders():
    class Holders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleDict({"a": nn.ModuleDict({"x": nn.Conv2d(3, 3, 1)}),
                                        "b": nn.ModuleList([nn.Conv2d(3, 3, 1)])})
            self.spare = nn.ModuleList([nn.Linear(2, 2), nn.ModuleDict({"z": nn.Linear(2, 2)})])

        def forward(self, x):
            return self.heads["a"]["x"](x)  # heads.a ran through its child; heads.b and spare never ran

    rep = analyze(Holders(), (3, 4, 4))
    assert rep.layer("heads").calls == rep.layer("heads.a").calls == 1 and rep.layer("heads.b").calls == 0
    assert rep.unused_params == rep.layer("heads.b").params + rep.layer("spare").params == 12 + 12


def test_network_declared_minimum_and_first_empty_layer():
    from cnnlab.models.network import Network

    def make() -> Network:
        # conv 3x3 valid: H - 2; pool 4: (H - 2) // 4 >= 1 needs H >= 6; the network declares 10
        return Network([("conv", nn.Conv2d(3, 4, 3)), ("pool", nn.MaxPool2d(4))], head=nn.Flatten(),
                       min_input_size=10, name="tiny")

    with pytest.raises(ValueError) as info:
        analyze(make(), (3, 8, 8))  # layers would work; only the declared minimum refuses
    assert "smallest valid size is 10x10" in str(info.value) and "layer" not in str(info.value)
    with pytest.raises(ValueError) as info:
        analyze(make(), (3, 4, 4))
    assert "layer 'pool' (MaxPool2d)" in str(info.value) and "10x10" in str(info.value)
    net = make()
    analyze(net, (3, 10, 10))
    assert net.min_input_size == (10, 10)


def test_aux_heads_need_their_own_minimum_only_in_training():
    # the main path of Inception-v3 runs at 224 (eval); its aux head (5x5/3 pool, 5x5 conv) needs more in training
    assert analyze("inception_v3", (3, 224, 224)).macs > 0
    with pytest.raises(ValueError, match=r"aux_heads\.Mixed_6e\.conv1\.conv") as info:
        analyze("inception_v3", (3, 224, 224), training=True)
    assert "smallest valid size is" in str(info.value)


def test_input_sizes_as_torchinfo_users_type_them():
    """(N, C, H, W) with the batch, and one int for a square image with the model's input channels."""
    base = analyze("resnet20")
    for size, batch in (((1, 3, 32, 32), 1), (32, 1), ((4, 3, 32, 32), 4)):
        rep = analyze("resnet20", size)
        assert (rep.input_size, rep.batch_size, rep.macs) == ((3, 32, 32), batch, base.macs * batch)
    assert analyze(nn.Sequential(nn.Conv2d(1, 4, 3)), 8).input_size == (1, 8, 8)  # channels from the first conv
    assert analyze(nn.Sequential(nn.Conv1d(2, 4, 3)), (5, 2, 16)).batch_size == 5
    volume = analyze(nn.Sequential(nn.Conv3d(1, 4, 3)), (1, 8, 8, 8))  # (C, D, H, W): no batch in it
    assert (volume.input_size, volume.batch_size) == ((1, 8, 8, 8), 1)
    assert analyze(nn.Sequential(nn.Linear(20, 5)), (7, 20)).batch_size == 7
    with pytest.raises(ValueError, match="includes a batch of 4 but batch_size=2"):
        analyze("resnet20", (4, 3, 32, 32), batch_size=2)


def _snapshot(model: nn.Module) -> dict:
    """Every module's attributes (dicts by their items) and every tensor's own attributes, by identity."""
    state = {}
    for name, m in model.named_modules():
        state[name] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(m).items()}
        for key, t in [*m._parameters.items(), *m._buffers.items()]:
            if t is not None:
                state[f"{name}:{key}"] = (t, t.shape, t.dtype, t.requires_grad, dict(vars(t)))
    return state


def _same(before: dict, after: dict) -> bool:
    def equal(a, b) -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(a[k] is b[k] or equal(a[k], b[k]) for k in a)
        if isinstance(a, tuple) and isinstance(b, tuple):
            return len(a) == len(b) and all(x is y or equal(x, y) for x, y in zip(a, b))
        return a is b or (not isinstance(a, torch.Tensor) and a == b)

    return before.keys() == after.keys() and all(equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("size", [(3, 10, 10), (3, 4, 4)])  # (3, 4, 4): too small, the error path runs too
def test_neither_the_model_nor_its_copy_is_changed(monkeypatch, size):
    from cnnlab.analysis import cost, input_size
    from cnnlab.models.network import Network

    copies = []

    def recording_copy(*args, **kwargs):
        copy = cnnlab.analysis.meta_copy(*args, **kwargs)
        copies.append((copy, _snapshot(copy)))
        return copy

    monkeypatch.setattr(cost, "meta_copy", recording_copy)
    monkeypatch.setattr(input_size, "meta_copy", recording_copy)
    net = Network([("conv", nn.Conv2d(3, 4, 3)), ("bn", nn.BatchNorm2d(4)), ("pool", nn.MaxPool2d(4))],
                  head=nn.Flatten(), min_input_size=10, name="tiny")
    before = _snapshot(net)
    try:
        analyze(net, size, training=True)
    except ValueError as exc:
        assert "layer 'pool' (MaxPool2d)" in str(exc)  # found on a second copy built without the declared check
    assert _same(before, _snapshot(net)) and net.training
    assert len(copies) == (1 if size[1] == 10 else 2) and all(_same(snap, _snapshot(c)) for c, snap in copies)
    assert copies[0][0].min_input_size == (10, 10) and copies[0][0].training


def test_a_holder_of_aux_heads_runs_when_its_heads_do():
    # aux_heads is a ModuleDict: never called itself, but its heads run in training mode
    model = cnnlab.create_model("googlenet")
    train = analyze(model, (3, 224, 224), training=True)
    top = [r for r in train.layers if r.depth == 1]
    assert sum(r.macs for r in top) == train.macs
    heads = next(r for r in top if r.name == "aux_heads")
    assert heads.calls == 1 and heads.macs == 8_372_224 and "not run" not in str(train)
    held = next(r for r in analyze(model, (3, 224, 224), training=False).layers if r.name == "aux_heads")
    assert held.calls == 0 and held.macs == 0  # eval mode: the heads do not run
