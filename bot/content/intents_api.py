"""The intents' examples in the knowledge workspace (/api/v1/kb/intents), for content editors: the Rasa NLU
files in intents/ edited as text like the KB entries (bot/content/intent_examples.py), with a version per
intent (If-Match, 412 when stale), `kb check` before writing (422), an audit event per save, and the
running service reloading its content right after."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field

from bot.app import SupportBot
from bot.content import changes
from bot.content.intent_examples import ExamplesBlock, StaleIntent, read_blocks, save_examples
from bot.content.workspace_api import MISSING_VERSION, REFUSED, refused, version_in
from bot.errors import ContentError
from bot.handoff.agents import actor
from bot.handoff.api.deps import EditorAgent
from bot.web.body import Body
from bot.web.deps import BotDep
from bot.web.errors import ApiError, api_error, errors

router = APIRouter(prefix="/api/v1/kb", tags=["knowledge"], responses=errors(401, 403))
IfMatch = Annotated[str | None, Header(description="The intent's etag, as GET gave it (or *)")]


class IntentOut(Body):
    name: str
    file: str
    line: int = Field(description="The line of its first example")
    examples: list[str]
    etag: str


class IntentsOut(Body):
    intents: list[IntentOut]


class ExamplesIn(BaseModel):
    examples: list[str] = Field(min_length=1, max_length=1000, description="One example per item")


@router.get(
    "/intents", response_model=IntentsOut, summary="Every intent's examples with its version (editors)"
)
async def list_intents(_: EditorAgent, bot: BotDep) -> IntentsOut:
    blocks = await asyncio.to_thread(read_blocks, bot.settings)
    return IntentsOut(intents=[_out(bot, block) for block in blocks])


@router.put(
    "/intents/{name}",
    response_model=IntentOut,
    summary="Save an intent's examples: If-Match its version (editors)",
    responses={
        **errors(404, 409),
        412: {"model": ApiError, "description": "The examples changed since you loaded them"},
        **REFUSED,
        **MISSING_VERSION,
    },
)
async def save_intent(
    name: str, body: ExamplesIn, agent: EditorAgent, bot: BotDep, response: Response, if_match: IfMatch = None
) -> IntentOut:
    version = version_in(if_match)
    try:
        before, after = await asyncio.to_thread(save_examples, bot.settings, name, body.examples, version)
    except StaleIntent as exc:
        raise api_error(412, "stale", f"{exc}; now:\n{exc.current}") from exc
    except ContentError as exc:
        if any(problem.startswith("no intent ") for problem in exc.problems):
            raise api_error(404, "not_found", exc.problems[0]) from exc
        raise refused(exc) from exc
    block = next(b for b in await asyncio.to_thread(read_blocks, bot.settings) if b.intent == name)
    await changes.record(
        bot.database,
        changes.INTENT_SAVED,
        actor(agent),
        agent.id,
        name,
        _file(bot, block),
        block.line,
        before,
        after,
    )
    bot.content_changed()
    response.headers["ETag"] = f'"{block.version}"'
    return _out(bot, block)


def _out(bot: SupportBot, block: ExamplesBlock) -> IntentOut:
    return IntentOut(
        name=block.intent,
        file=_file(bot, block),
        line=block.line,
        examples=block.examples,
        etag=block.version,
    )


def _file(bot: SupportBot, block: ExamplesBlock) -> str:
    try:
        return str(block.file.resolve().relative_to(bot.settings.base_dir.resolve()))
    except ValueError:
        return str(block.file)
