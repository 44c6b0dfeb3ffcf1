"""Checking values that come from outside (a run's zip, a checkpoint, a lesson, a script): one
sentence per fault that names where the value came from, the value, and what is allowed.

`where` is what the person can find: a knob's name, or a file and the key inside it
("run.zip/run.json: result.steps")."""

from __future__ import annotations

import math


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number(where: str, value, low: float | None = None, high: float | None = None, whole: bool = False):
    """`value` as an int (`whole`) or a float, finite and within [low, high]; else a ValueError."""
    kind = "a whole number" if whole else "a number"

    def bound(limit: float) -> str:
        return f"{int(limit):,}" if float(limit).is_integer() else f"{limit:g}"

    if low is not None and high is not None:
        allowed = f"{kind} from {bound(low)} to {bound(high)}"
    elif low is not None:
        allowed = f"{kind} of at least {bound(low)}"
    else:
        allowed = kind
    fault = ValueError(f"{where} must be {allowed}, got {_shown(value)}")
    if isinstance(value, bool) or value is None or value == "":
        raise fault
    try:
        checked = float(value)
    except (TypeError, ValueError, OverflowError):
        raise fault from None
    if not math.isfinite(checked) or (low is not None and checked < low) or (high is not None and checked > high):
        raise fault
    if whole:
        if checked != int(checked):
            raise fault
        return int(checked)
    return checked


def flag(where: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {_shown(value)}")
    return value


def sequence(where: str, value, longest: int) -> list:
    """`value` as a list of at most `longest` items (counted before anything is done with them)."""
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {_shown(value)}")
    if len(value) > longest:
        raise ValueError(f"{where} holds {len(value):,} items, more than the {longest:,} a run of this app can make")
    return value


def mapping(where: str, value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object ({{...}}), got {_shown(value)}")
    return value


def field(where: str, values: dict, key: str):
    """`values[key]`, or a ValueError naming the missing key."""
    if key not in values:
        raise ValueError(f"{where} has no {key}")
    return values[key]
