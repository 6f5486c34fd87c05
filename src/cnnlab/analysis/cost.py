"""Exact per-layer cost of any ``nn.Module``: parameters, multiply-adds, other ops, memory, receptive field.

How it works: the model's structure is copied onto the ``meta`` device (``cnnlab.analysis.meta``: shapes,
no data), one forward pass runs under a ``TorchDispatchMode`` that sees every aten op (``F.relu``,
``torch.cat``, ``x + y`` and ``torch.flatten`` as well as modules) and costs it by the table in
``cnnlab.analysis.ops`` (convention: docs/analysis.md, "How it counts"), and forward hooks on the private copy
attribute each op to the module stack it ran in. Neither the user's module nor the copy is ever changed
(hooks are removed after the pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnnlab._gc import gc_paused
from cnnlab.analysis.input_size import EmptyOutputError, raise_too_small, resolve_sizes
from cnnlab.analysis.meta import FAST, meta_copy, run_on_cpu, shapes, tensors
from cnnlab.analysis.ops import OTHER_KINDS, Cost, ModuleRule, geometry, module_cost, rule_for
from cnnlab.analysis.receptive_field import FieldTracker, ReceptiveField
from cnnlab.analysis.report import CostReport, LayerCost


@dataclass(slots=True, eq=False)
class _Record:
    """Mutable counters of one module while tracing."""

    name: str
    module: nn.Module
    calls: int = 0
    input_shape: Any = None
    output_shape: Any = None
    macs: int = 0
    other: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OTHER_KINDS, 0))
    self_macs: int = 0
    self_other: int = 0
    out_bytes: int = 0
    rf: ReceptiveField | None = None
    geometry: dict[str, Any] | None = None
    unknown: list[str] = field(default_factory=list)


class _Tracer(TorchDispatchMode):
    """Sees every aten op of one forward pass; costs it, attributes it, propagates receptive fields."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # this mode never runs under torch.compile; without this, torch wraps every dispatch call in a
        # dynamo-disable guard that costs ~0.1 ms an op (a third of the trace time of a 1000-layer net)
        return False

    def __init__(self, state_ids: set[int], fields: FieldTracker, op_rules: dict[str, Callable] | None) -> None:
        super().__init__()
        self.stack: list[_Record] = []
        self.state_ids = state_ids
        self.fields = fields
        self.op_rules = op_rules
        self.unknown: dict[tuple[str, str], dict] = {}
        self.total_macs = 0
        self.total_other = dict.fromkeys(OTHER_KINDS, 0)
        self.alloc_bytes = 0
        self.kinds: dict[Any, tuple] = {}
        self.ruled = 0  # > 0 inside a module costed by a user's module rule: its ops are not counted again

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        kwargs = kwargs or {}
        info = self.kinds.get(func)
        if info is None:  # per op overload, once: its rule, fast path, whether it allocates
            rule = rule_for(func, self.op_rules)
            # an in-place update of a parameter or buffer (num_batches_tracked += 1) is bookkeeping
            bookkeeping = rule.kind in ("activation", "elementwise") and func._schema.is_mutable
            info = self.kinds[func] = (rule.kind, rule.formula, FAST.get(func._opname),
                                       not func.is_view and not func._schema.is_mutable, bookkeeping)
        kind, formula, fast, allocates, bookkeeping = info
        if fast is not None:
            out = fast(func, args, kwargs)
        else:
            try:
                out = func(*args, **kwargs)
            except NotImplementedError:
                out = run_on_cpu(func, args, kwargs)
        record = self.stack[-1] if self.stack else None
        if not self.ruled:
            if not (bookkeeping and args and isinstance(args[0], torch.Tensor) and id(args[0]) in self.state_ids):
                self.add(formula(args, kwargs, out), record)
            if kind == "unknown":
                self._note_unknown(func, record, out)
        if kind in ("conv", "max_pool", "avg_pool") and record is not None and record.geometry is None:
            record.geometry = geometry(kind, args, kwargs)
        if allocates:
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    self.alloc_bytes += t.numel() * t.element_size()
        self.fields.propagate(kind, args, kwargs, out)
        return out

    def add(self, cost: Cost, record: _Record | None) -> None:
        """Count ``cost`` in the totals, in every module on the stack, and as ``record``'s own."""
        macs, kind, other = cost
        if not (macs or other):
            return
        self.total_macs += macs
        if other:
            self.total_other[kind] += other
        for r in self.stack:
            r.macs += macs
            if other:
                r.other[kind] += other
        if record is not None:
            record.self_macs += macs
            record.self_other += other

    def _note_unknown(self, func, record: _Record | None, out: Any) -> None:  # noqa: ANN001
        layer = record.name if record is not None else ""
        key = (str(func), layer)
        entry = self.unknown.get(key)
        if entry is None:
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            shape = list(first.shape) if isinstance(first, torch.Tensor) else None
            entry = self.unknown[key] = {"op": str(func), "layer": layer, "count": 0, "cost": "unknown cost",
                                         "output_shape": shape}
            if record is not None:
                record.unknown.append(str(func))
        entry["count"] += 1


def analyze(model_or_name: nn.Module | str, input_size: Sequence[int] | int | None = None, batch_size: int = 1,
            dtype: torch.dtype = torch.float32, training: bool | None = None,
            op_rules: dict[type[nn.Module] | str, Callable] | None = None) -> CostReport:
    """Per-layer parameters, MACs, other ops, activation memory and receptive field, on the meta device.

    ``model_or_name``: any ``nn.Module`` (left untouched) or a zoo name (built on meta directly).
    ``input_size``: (C, H, W) without the batch; default the zoo card's size, else 3x224x224. The sizes
    torchinfo users type work too: with the batch, ``(1, 3, 224, 224)`` (the first entry becomes
    ``batch_size``), and one int, ``224``, for a square image with the model's input channels. A tuple is
    taken to include the batch when it is one entry longer than the model's first convolution (or linear
    layer) takes: Conv2d 4, Conv1d 3, Conv3d 5, Linear 2.
    ``training``: analyse in training mode (auxiliary heads run and are counted); default: the module's
    current mode, eval for zoo names.
    ``op_rules``: rules for this call only (fvcore's ``set_op_handle``). A module type maps to
    ``rule(module, inputs, output) -> Cost | int`` that replaces the MACs and other ops of everything inside
    each module of that type (subclasses included); an aten op name (``"aten.cumsum"``) maps to
    ``formula(args, kwargs, out) -> Cost | int``. An int is MACs; ``Cost`` is ``cnnlab.analysis.ops.Cost``.
    """
    module_rules, formulas = _split_rules(op_rules)
    with gc_paused():
        model, name, default_size, training = _resolve(model_or_name, training, dtype)
        input_size, batch_size = resolve_sizes(model, input_size, batch_size)
        size = tuple(int(v) for v in (input_size if input_size is not None else default_size or (3, 224, 224)))
        if len(size) < 1 or any(v <= 0 for v in size):
            raise ValueError(f"input_size must be (C, H, W) (or (features,), (C, L), (C, D, H, W)) of positive "
                             f"ints without the batch, got {size}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return _trace(model, name, size, batch_size, dtype, training, module_rules, formulas)


def _split_rules(op_rules: dict | None) -> tuple[dict[type, ModuleRule], dict[str, Callable]]:
    """(rules by module type, formulas by op name), each checked."""
    module_rules, formulas = {}, {}
    for key, rule in (op_rules or {}).items():
        if not callable(rule):
            raise TypeError(f"op_rules[{key!r}] must be a function returning a Cost or an int, got "
                            f"{type(rule).__name__}")
        if isinstance(key, type) and issubclass(key, nn.Module):
            module_rules[key] = rule
        elif isinstance(key, str):
            formulas[key] = rule
        else:
            raise TypeError(f"op_rules keys are nn.Module subclasses or aten op names ('aten.cumsum'), got {key!r}")
    return module_rules, formulas


def _resolve(model_or_name: nn.Module | str, training: bool | None,
             dtype: torch.dtype) -> tuple[nn.Module, str, tuple[int, ...] | None, bool]:
    """(private meta copy in the analysed mode and dtype, display name, default input size or None, mode)."""
    if isinstance(model_or_name, str):
        from cnnlab.models import create_model, model_card

        card = model_card(model_or_name)
        try:
            with torch.device("meta"):
                model = create_model(model_or_name)
        except (NotImplementedError, RuntimeError):
            model = create_model(model_or_name)  # an init that needs data: build on CPU, then copy
        training = bool(training)
        return meta_copy(model, training, dtype), model_or_name, tuple(card.input_size), training
    if not isinstance(model_or_name, nn.Module):
        raise TypeError(f"analyze expects an nn.Module or a zoo model name, got {type(model_or_name).__name__}")
    name = getattr(model_or_name, "model_name", "") or type(model_or_name).__name__
    training = model_or_name.training if training is None else training
    return meta_copy(model_or_name, training, dtype), name, None, training


def _trace(model: nn.Module, name: str, size: tuple[int, ...], batch_size: int, dtype: torch.dtype,
           training: bool, module_rules: dict[type, ModuleRule], formulas: dict[str, Callable]) -> CostReport:
    names = {m: n for n, m in model.named_modules(remove_duplicate=True)}
    records: dict[str, _Record] = {}
    order: list[_Record] = []
    state_ids = set()
    for m in names:  # one walk over the plain dicts: ~5x cheaper than parameters() + buffers() generators
        state_ids.update(id(t) for t in m._parameters.values() if t is not None)
        state_ids.update(id(t) for t in m._buffers.values() if t is not None)
    ruled = {m: rule for m in names for rule in (_module_rule(m, module_rules),) if rule is not None}
    x = torch.empty(batch_size, *size, device="meta", dtype=dtype)
    fields = FieldTracker(x, len(size) - 1)
    tracer = _Tracer(state_ids, fields, formulas)

    def pre_hook(module: nn.Module, inputs: Any) -> None:
        qual = names[module]
        record = records.get(qual)
        if record is None:
            record = records[qual] = _Record(qual, module)
            order.append(record)
            record.input_shape = shapes(inputs)
        record.calls += 1
        tracer.stack.append(record)
        fields.enter(module, inputs)
        if module in ruled:
            tracer.ruled += 1

    def post_hook(module: nn.Module, inputs: Any, output: Any) -> None:
        record = tracer.stack.pop()
        outs = tensors(output)
        if record.calls == 1:
            record.output_shape = shapes(output)
            record.out_bytes = sum(t.numel() * t.element_size() for t in outs)
        if outs and all(t.numel() == 0 for t in outs) and any(t.numel() for t in tensors(inputs)):
            # a layer that turns a non-empty input into nothing: the input is too small
            raise EmptyOutputError(record.name, f"layer {record.name or '(model)'} ({type(module).__name__}) "
                                                f"produces an empty output {list(outs[0].shape)}")
        if module in ruled:
            tracer.ruled -= 1
            if not tracer.ruled:  # an outer ruled module's rule covers the inner ones
                tracer.stack.append(record)
                tracer.add(module_cost(ruled[module], module, inputs, output), record)
                tracer.stack.pop()
        rf = fields.leave(module, outs[0] if outs else None)
        if rf is not None and (record.rf is None or max(rf.size) >= max(record.rf.size)):
            record.rf = rf

    handles = []
    failure: tuple[str, str, Exception] | None = None
    try:
        for module in names:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
        with torch.no_grad(), tracer:
            model(x)
    except EmptyOutputError as exc:
        failure = (exc.layer, str(exc), exc)
    except (RuntimeError, ValueError, IndexError) as exc:
        failure = (tracer.stack[-1].name if tracer.stack else "", str(exc).split("\n")[0], exc)
    finally:
        for h in handles:
            h.remove()
    if failure is not None:
        raise_too_small(model, name, size, batch_size, dtype, *failure)
    return _build_report(model, name, size, batch_size, dtype, training, names, order, tracer)


def _module_rule(module: nn.Module, rules: dict[type, ModuleRule]) -> ModuleRule | None:
    """The user's rule for ``module``'s own class, else for its nearest base class that has one."""
    if rules:
        for cls in type(module).__mro__:
            if cls in rules:
                return rules[cls]
    return None


def _build_report(model: nn.Module, name: str, size: tuple[int, ...], batch_size: int, dtype: torch.dtype,
                  training: bool, names: dict[nn.Module, str], order: list[_Record], tracer: _Tracer) -> CostReport:
    # parameters per module (recursive), bottom-up over the pre-order walk; shared tensors counted once
    own: dict[str, list[int]] = {}
    seen_params: set[int] = set()
    total = trainable = param_bytes = 0
    for module, qual in names.items():
        counts = own[qual] = [0, 0]
        for p in module._parameters.values():
            if p is None:
                continue
            n = p.numel()
            counts[0] += n
            counts[1] += n if p.requires_grad else 0
            if id(p) not in seen_params:
                seen_params.add(id(p))
                total += n
                trainable += n if p.requires_grad else 0
                param_bytes += n * p.element_size()
    for qual in reversed(list(own)):
        if qual:
            parent = own[qual.rpartition(".")[0]]
            parent[0] += own[qual][0]
            parent[1] += own[qual][1]
    rows = []
    for r in order + _uncalled_containers(names, order):
        qual = r.name
        rows.append(LayerCost(
            name=qual, type=type(r.module).__name__, depth=0 if qual == "" else qual.count(".") + 1,
            calls=r.calls, input_shape=r.input_shape, output_shape=r.output_shape,
            params=own[qual][0], trainable_params=own[qual][1], macs=r.macs,
            other_ops_by_kind={k: v for k, v in r.other.items() if v}, activation_bytes=r.out_bytes, rf=r.rf,
            is_leaf=not r.module._modules, self_macs=r.self_macs, self_other_ops=r.self_other,
            geometry=r.geometry, unknown_ops=r.unknown))
    return CostReport(
        model=name, input_size=size, batch_size=batch_size, dtype=str(dtype).replace("torch.", ""),
        training=training, layers=rows, params=total, trainable_params=trainable, macs=tracer.total_macs,
        other_ops_by_kind={k: v for k, v in tracer.total_other.items() if v},
        activation_bytes=tracer.alloc_bytes, param_bytes=param_bytes, unknown_ops=list(tracer.unknown.values()))


def _uncalled_containers(names: dict[nn.Module, str], order: list[_Record]) -> list[_Record]:
    """Records of modules never called themselves. A container that is only a holder (a ModuleDict of aux heads)
    ran if its children did: it gets their sums and their call count, so no row says "not run" for code that ran
    and the rows of one depth add up to the total."""
    records = {r.name: r for r in order}
    extra = [_Record(n, m) for m, n in names.items() if n not in records]  # never the root: the pass calls it
    records.update((r.name, r) for r in extra)
    for r in reversed(extra):  # pre-order walk reversed: children are complete before their parent
        # a shared child is listed under its first name, elsewhere
        children = (records.get(f"{r.name}.{c}") for c in r.module._modules)
        ran = [c for c in children if c is not None and c.calls]
        if ran:
            r.calls = max(c.calls for c in ran)
            r.macs = sum(c.macs for c in ran)
            for c in ran:
                for kind, n in c.other.items():
                    r.other[kind] += n
    return extra
