"""How the desk's refusals answer over HTTP: each domain error as the API's error body with its status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.errors import OutsideMessagingWindow
from bot.handoff.agents import AgentError, DuplicateAgent
from bot.handoff.assignment import HandoffConflict
from bot.handoff.moves import Forbidden, NotFound
from bot.web.errors import api_error


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the desk's refusals in the block into 404, 403, 409 or 422 answers with their codes."""
    try:
        yield
    except NotFound as exc:
        raise api_error(404, "not_found", str(exc)) from exc
    except Forbidden as exc:
        raise api_error(403, "forbidden", str(exc)) from exc
    except OutsideMessagingWindow as exc:
        raise api_error(409, "outside_messaging_window", str(exc)) from exc
    except HandoffConflict as exc:
        raise api_error(409, "conflict", str(exc)) from exc
    except DuplicateAgent as exc:
        raise api_error(409, "duplicate_agent", str(exc)) from exc
    except AgentError as exc:
        raise api_error(422, "invalid_agent", str(exc)) from exc
