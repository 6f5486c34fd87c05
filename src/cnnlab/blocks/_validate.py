"""Argument checks shared by every block: one wording for every error."""

from __future__ import annotations

from collections.abc import Sequence


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """Return ``value`` as an (height, width) pair; a bare int means a square."""
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")


def check_positive(value: int, name: str) -> int:
    """Raise unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value!r}")
    return value


def check_channels(in_channels: int, out_channels: int, groups: int = 1) -> None:
    """Channels must be positive and divisible by ``groups``."""
    check_positive(in_channels, "in_channels")
    check_positive(out_channels, "out_channels")
    check_positive(groups, "groups")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide both in_channels={in_channels} and out_channels={out_channels}; "
            f"allowed values are common divisors of the two"
        )


def check_odd_kernel(kernel_size: tuple[int, int], name: str = "kernel_size") -> None:
    """Same-size padding at stride 1 needs odd kernels."""
    for k in kernel_size:
        check_positive(k, name)
        if k % 2 == 0:
            raise ValueError(
                f"{name} must be odd (1, 3, 5, 7, ...) so that padding keeps the spatial size, got {kernel_size}"
            )


def check_probability(value: float, name: str) -> float:
    """A dropout rate or a gate value must lie in [0, 1)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)
