"""Lenient readers for platform JSON: a field of the wrong type reads as empty, never raises."""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is an object, else {}."""
    return value if isinstance(value, dict) else {}


def dict_items(value: Any) -> list[dict[str, Any]]:
    """The objects in a list (anything else in it is skipped); [] when it is not a list."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def text_or_none(value: Any) -> str | None:
    """The value as text, or None when it is missing or empty."""
    return str(value) if value not in (None, "") else None


def keys_summary(value: dict[str, Any]) -> str:
    """The object's keys, for a log line about a payload we do not understand."""
    return ", ".join(sorted(value))[:200]
