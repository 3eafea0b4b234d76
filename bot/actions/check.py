"""Which custom actions the content names, and whether the configured runner has them (`kb check`)."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from bot.actions.runner import ActionServer, InProcessActions
from bot.config import Settings
from bot.content.intents import IntentSet
from bot.content.knowledge import KnowledgeBase


def named_actions(settings: Settings, kb: KnowledgeBase) -> dict[str, str]:
    """Return every custom action the content names, with where: a KB entry's source or the config key."""
    named = {entry.action: entry.source for entry in kb.entries if entry.action}
    for intent, action in settings.intents.actions.items():
        if action not in ("respond", "handoff"):
            named.setdefault(action, f"config.yaml intents.actions.{intent}")
    return named


def registered_actions(settings: Settings) -> tuple[set[str] | None, str]:
    """Return the configured runner's action names (None when they cannot be listed) and where they are."""
    if settings.actions.package:
        runner = InProcessActions(
            settings.actions.package, settings.actions.timeout_seconds, settings.base_dir
        )
        return set(runner.load().actions), runner.where
    if settings.actions.url:
        server = ActionServer(settings.actions.url, settings.actions.timeout_seconds)
        try:
            listed = httpx.get(server.sibling("actions"), timeout=min(server.timeout, 5.0)).json()
            return {str(item["name"]) for item in listed}, server.where
        except (httpx.HTTPError, ValueError, TypeError, KeyError):
            return None, server.where
    return set(), "nowhere (actions.url and actions.package are empty)"


def check_actions(settings: Settings, kb: KnowledgeBase, intents: IntentSet) -> tuple[list[str], list[str]]:
    """Return (problems, warnings) about the custom actions the content names."""
    named = named_actions(settings, kb)
    if not named:
        return [], []
    problems: list[str] = []
    warnings: list[str] = []
    known, where = registered_actions(settings)
    if known is None:
        warnings.append(
            f"the action server at {where} did not list its actions; not checked: {_names(named)}"
        )
        return problems, warnings
    fallback = {entry.action for entry in kb.entries if entry.action and entry.answer}
    for action, source in sorted(named.items()):
        if action in known:
            continue
        if not settings.actions.url and not settings.actions.package and action in fallback:
            warnings.append(
                f"{source}: action {action!r} does not run (no actions configured): the entry's answer is used"
            )
            continue
        problems.append(
            f"{source}: action {action!r} is not among the actions of {where} ({_names(known) or 'none'}); "
            "fix the name, or set actions.url / actions.package"
        )
    return problems, warnings


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))
