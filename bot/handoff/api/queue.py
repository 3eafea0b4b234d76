"""The queue as a whole: how many wait, who can take them, business hours, and the wait a newcomer is told."""

from __future__ import annotations

from fastapi import APIRouter

from bot.handoff.api.deps import DeskAgent, DeskDep
from bot.handoff.api.schemas import QueueOut

router = APIRouter()


@router.get(
    "/queue",
    response_model=QueueOut,
    summary="Queue length, staffing, business hours and the current wait estimate",
)
async def queue(_: DeskAgent, desk: DeskDep) -> QueueOut:
    return QueueOut.model_validate(await desk.queue_summary())
