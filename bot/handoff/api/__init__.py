"""The agent API under /api/v1: log in, go online, see the queue and the card, answer, move, resolve.

One router per resource: auth.py (log-in, log-out, event tickets), agents.py, queue.py, conversations.py
and events.py (the live stream); deps.py holds what they depend on, schemas.py what they answer.
Every endpoint but login needs `Authorization: Bearer <token>` (401 without a valid one) and checks the
role (403): agents see the queue and their own conversations; supervisors see and move everything; admins
also manage agents. Domain errors come back as {"detail": {"code": ..., "message": ...}}.
"""

from __future__ import annotations

from fastapi import APIRouter

from bot.handoff.api import agents, auth, conversations, events, queue
from bot.web.errors import errors

router = APIRouter(prefix="/api/v1", tags=["agents"], responses=errors(401, 403))
for resource in (auth, agents, queue, conversations, events):
    router.include_router(resource.router)
