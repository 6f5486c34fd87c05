"""One strict model registry: a name maps to a builder and the ModelCard that documents it."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class Counts:
    """Reference parameter and multiply-add (MAC) counts of one configuration, with their source."""

    params: int
    macs: int | None
    source: str
    options: Mapping[str, object] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class ModelCard:
    """What a zoo entry is: the paper, the input it expects, and the counts it must reproduce.

    ``reference`` holds the counts of the default configuration (``create_model(name)`` at
    ``num_classes``); ``variants`` holds counts for named options (e.g. torchvision's layout).
    Counts are MACs of convolution and linear layers only, batch 1, at ``input_size``.
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
