"""The running service as a route dependency, for the routes beside the agent API (console, insights).

bot/web/app.py puts the service in `app.state.bot`; the agent API's own dependencies (the desk, the
agent behind a bearer token, the role checks) are in bot/handoff/api/deps.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bot.app import SupportBot


def running_bot(request: Request) -> SupportBot:
    bot: SupportBot = request.app.state.bot
    return bot


BotDep = Annotated[SupportBot, Depends(running_bot)]
