"""Argument checks shared by the library: one wording for every bad number.

Messages name the owner (class or function), the argument and the value, e.g.
``SparsityRegularizer: `gamma` must be in (0, 1], got 2.0.``
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_number(value) -> bool:
    """A finite real number (``bool`` is not one)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def interval(low, high, low_open: bool, high_open: bool) -> str:
    """``(low, high]`` and friends, for messages."""
    return f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def inside(value: float, low, high, low_open: bool, high_open: bool) -> bool:
    return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


def number_in(value, argument: str, owner: str, low, high, low_open=True, high_open=True) -> float:
    """``value`` as a float if it is a finite number in the interval; else ValueError."""
    if not is_number(value):
        raise ValueError(f"{owner}: `{argument}` must be a finite number, got {value!r}.")
    if not inside(float(value), low, high, low_open, high_open):
        raise ValueError(
            f"{owner}: `{argument}` must be in {interval(low, high, low_open, high_open)}, got {value!r}."
        )
    return float(value)


def positive_or_none(value, argument: str):
    """``None`` or a finite number > 0 (as a float); else ValueError."""
    if value is None:
        return None
    if not is_number(value) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive number or None, got {value!r}.")
    return float(value)
