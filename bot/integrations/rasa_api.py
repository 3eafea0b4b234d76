"""The API a Rasa assistant's action server calls: FAQ answers, handoffs to agents, and agents' replies."""

from __future__ import annotations

import asyncio
import hmac
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, Field

from bot.adapters.base import Channel, DeliveryTarget
from bot.app import SupportBot
from bot.messages import IncomingMessage, OutgoingReply
from bot.nlu.language import choose_language
from bot.phrases import PHRASES, phrase

CHANNEL = "rasa"  # the supportbot channel a Rasa assistant's customers are stored on (by sender_id)
HANDOFF_REASON = "rasa_handoff"


class RasaChannel(Channel):
    """Replies to Rasa customers (agents') are kept for the assistant to fetch: GET /api/v1/rasa/messages."""

    name = CHANNEL

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        return None  # stored is delivered: the Rasa side reads them from the chat view


class AnswerIn(BaseModel):
    text: str = Field(max_length=4000)
    language: str | None = None  # the tracker's language; detected from the text when absent
    sender_id: str | None = None


class AnswerOut(BaseModel):
    """A confident KB answer (or a conversational reply), or answered false with the reason."""

    answered: bool
    text: str | None = None
    entry: str | None = None  # the KB entry or intent
    decision: str
    score: float
    language: str


class Turn(BaseModel):
    sender: Literal["customer", "bot", "agent"]
    text: str = ""
    at: float | None = None  # a Unix timestamp, as Rasa's events carry


class HandoffIn(BaseModel):
    sender_id: str = Field(min_length=1, max_length=128)
    text: str = Field(default="", max_length=4000)  # the customer's last message
    language: str | None = None
    name: str | None = None  # the customer's name, for the agent
    reason: str = Field(default=HANDOFF_REASON, max_length=64)
    transcript: list[Turn] = Field(default=[], max_length=200)  # the Rasa tracker's user and bot turns


class HandoffOut(BaseModel):
    conversation_id: int | None
    state: str
    text: str  # what to tell the customer: their place in the queue


def install_rasa_api(app: FastAPI, bot: SupportBot) -> None:
    """Serve /api/v1/rasa when rasa.api_token is set, and keep agents' replies to Rasa customers."""
    token = bot.settings.rasa.api_token
    if not token:
        return
    if CHANNEL not in bot.channels:
        bot.add_channel(RasaChannel())
    app.include_router(_router(bot, token))


def _router(bot: SupportBot, token: str) -> APIRouter:
    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "a Bearer token equal to rasa.api_token is required")

    router = APIRouter(prefix="/api/v1/rasa", tags=["rasa"], dependencies=[Depends(authorised)])

    @router.post("/answer", summary="Answer a question from the knowledge base (nothing is stored)")
    async def answer(body: AnswerIn) -> AnswerOut:
        kb = bot.settings.kb
        language = body.language if body.language in kb.languages else None  # the assistant's choice wins
        language = language or choose_language(body.text, None, None, kb.languages, kb.default_language)
        matcher = bot.matcher()
        decision = await asyncio.get_running_loop().run_in_executor(
            bot.executor, matcher.understand, body.text
        )
        text = None
        if decision.kind == "answer" and decision.label and (entry := matcher.kb.get(decision.label)):
            text = entry.answer_in(language, kb.default_language) or None
        elif decision.kind == "respond" and decision.label in PHRASES:
            text = phrase(decision.label, language)
        return AnswerOut(
            answered=text is not None,
            text=text,
            entry=decision.label,
            decision=decision.kind if text is None else decision.public_kind,
            score=round(decision.score, 4),
            language=language,
        )

    @router.post(
        "/handoff", summary="Put a Rasa conversation in the live-agent queue, its transcript on the card"
    )
    async def handoff(body: HandoffIn) -> HandoffOut:
        message = IncomingMessage(
            channel=CHANNEL,
            chat_id=body.sender_id,
            customer_id=body.sender_id,
            text=body.text,
            display_name=body.name,
            language_hint=body.language,
            platform_message_id=f"handoff-{uuid.uuid4().hex}",
        )
        now = datetime.now(UTC).timestamp()
        history = [
            (
                "customer" if turn.sender == "customer" else "bot",
                turn.text,
                datetime.fromtimestamp(turn.at or now, UTC),
            )
            for turn in body.transcript
            if turn.text.strip()
        ]
        if history and history[-1] == ("customer", body.text, history[-1][2]):
            history.pop()  # the last user turn is the message itself
        result = await bot.engine.hand_off_from_outside(message, body.reason, history)
        said = result.replies[-1][1].text if result.replies else ""
        return HandoffOut(conversation_id=result.conversation_id, state=result.state, text=said)

    @router.get("/messages", summary="What the Rasa customer's chat shows: agents' replies after `after`")
    async def messages(
        sender_id: Annotated[str, Query(min_length=1)], after: Annotated[int, Query(ge=0)] = 0
    ) -> dict[str, Any]:
        return await bot.chat_view(CHANNEL, sender_id, after)

    return router
