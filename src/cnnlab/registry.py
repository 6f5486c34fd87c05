"""One strict model registry: a name maps to a builder and the ModelCard that documents it (counts, and the
rules that load torchvision's or timm's weights)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import nn

SOURCES = ("torchvision", "timm")


@dataclass(frozen=True)
class Counts:
    """Reference parameter and multiply-add (MAC) counts of one configuration, with their source."""

    params: int
    macs: int | None
    source: str
    options: Mapping[str, object] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Converter:
    """How a reference model's state dict maps onto a cnnlab model: ``(regex, replacement)`` rules applied to
    every key (first match wins), then ``fn`` for what renaming cannot express; ``options`` are the
    ``create_model`` options that give the reference's layout (see ``cnnlab.models.convert``)."""

    rules: tuple[tuple[str, str], ...] = ()
    fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    reference_name: str = ""  # the model's name in the source library, when it differs from cnnlab's


@dataclass(frozen=True)
class ModelCard:
    """What a zoo entry is: the paper, the input it expects, and the counts it must reproduce.

    ``reference`` holds the counts of the default configuration (``create_model(name)`` at
    ``num_classes``); ``variants`` holds counts for named options (e.g. torchvision's layout).
    Counts are MACs of convolution and linear layers only, batch 1, at ``input_size``.
    ``converters`` maps a source library (one of ``SOURCES``) to the rules that load its weights.
    """

    name: str
    paper: str
    input_size: tuple[int, int, int]
    reference: Counts
    num_classes: int = 1000
    follows: str = ""
    differences: str = ""
    variants: Mapping[str, Counts] = field(default_factory=dict)
    min_input_size: int | None = None
    family: str = ""
    tags: tuple[str, ...] = ()
    converters: Mapping[str, Converter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for source in self.converters:
            if source not in SOURCES:
                raise ValueError(f"converter source must be one of {SOURCES}, got {source!r}")

    def to_dict(self) -> dict:
        """A JSON-ready dict of the card."""

        def counts(c: Counts) -> dict:
            return {"params": c.params, "macs": c.macs, "source": c.source, "options": dict(c.options),
                    "note": c.note}

        return {
            "name": self.name, "paper": self.paper, "family": self.family, "input_size": list(self.input_size),
            "num_classes": self.num_classes, "follows": self.follows, "differences": self.differences,
            "reference": counts(self.reference),
            "variants": {k: counts(v) for k, v in self.variants.items()},
            "min_input_size": self.min_input_size, "tags": list(self.tags),
            "converts_from": {source: c.reference_name or self.name for source, c in self.converters.items()},
        }


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., nn.Module]
    card: ModelCard
    spec: Callable[..., object] | None = None  # same options as builder -> the model's NetworkSpec


class UnknownModelError(KeyError):
    """Raised for a name the registry does not hold; the message suggests the closest names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class Registry:
    """Name -> (builder, card). Registering a name twice raises: one name, one network."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def register(self, card: ModelCard, builder: Callable[..., nn.Module], *,
                 spec: Callable[..., object] | None = None) -> None:
        """Add a model; ``builder(num_classes=..., **options)`` must return the network, and ``spec`` (for a
        model declared in ``cnnlab.models.spec``'s dialect) its spec for the same options."""
        if card.name in self._entries:
            raise ValueError(f"model {card.name!r} is already registered; choose another name")
        self._entries[card.name] = Entry(card.name, builder, card, spec)

    def add_converter(self, name: str, source: str, converter: Converter) -> None:
        """Give the registered model ``name`` the rules that load ``source``'s weights (one per source)."""
        entry = self.get(name)
        if source in entry.card.converters:
            raise ValueError(f"a {source} converter for {name!r} is already registered")
        card = replace(entry.card, converters={**entry.card.converters, source: converter})
        self._entries[name] = replace(entry, card=card)

    def get(self, name: str) -> Entry:
        """The entry for ``name``; unknown names raise UnknownModelError with suggestions."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownModelError(
                f"unknown model {name!r}{hint} (cnnlab.list_models() lists all {len(self._entries)})") from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names in registration order, filtered by a shell-style ``pattern``."""
        return [n for n in self._entries if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


MODELS = Registry()
