"""GET /healthz: does the database answer, is the knowledge base loaded, is the model not stuck."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import text

from bot import __version__
from bot.config import Settings
from bot.nlu.thresholds import read_calibration
from bot.web.body import Body
from bot.web.deps import BotDep

router = APIRouter()


class SpoolBacklog(Body):
    waiting: int = Field(description="Webhook bodies acknowledged but not processed yet")
    failed: int = Field(description="Those given up on (supportbot spool list)")


class ActionsHealth(Body):
    where: str = Field(description='Where custom actions run: "package NAME" or the action server URL')
    status: str = Field(description='"ok", or what is wrong (the server unreachable, the package broken)')


class ContentHealth(Body):
    state: str = Field(
        description='"loaded", "reloading" (since when), or "failed": the files on disk could not '
        "be loaded and the previous content is still in service (see error)"
    )
    since: str | None = Field(description="When the state began (ISO 8601, UTC)")
    entries: int = Field(description="KB entries in service")
    error: str | None = Field(description="Why the last reload failed: file:line and the problem")


class ExpectedFigures(Body):
    answer_rate: float = Field(description="Share of the questions the KB covers that get a direct answer")
    in_scope_accuracy: float = Field(description="... that get the right answer or the right options")
    answer_precision: float = Field(description="Share of direct answers that are right")
    oos_recall: float | None = Field(
        default=None, description="Share of messages without an entry that are declined (null: no evidence)"
    )
    utility: float


class CalibrationHealth(Body):
    state: str = Field(
        description='"calibrated", "anchored" (most KB entries are thin: thresholds anchored on the '
        'out-of-scope sets; see warnings), "defaults" (the calibration found degenerate thresholds; see '
        'fallback) or "none" (no calibration file: the model\'s defaults)'
    )
    fallback: str | None = Field(default=None, description="Why the defaults are used")
    expected: ExpectedFigures | None = Field(
        default=None, description="What calibration expects live, measured on held-out content"
    )
    warnings: list[str] = Field(
        default_factory=list, description="What to add to the content, in plain words"
    )


class Health(Body):
    """What each check found; a check that could not run leaves its fields out."""

    version: str
    database: str = Field(description='"ok", or "error: <exception>"')
    spool: SpoolBacklog | None = None
    kb_entries: int
    content: ContentHealth | None = Field(
        default=None, description="The content on disk (reported, not failed on)"
    )
    model: str | None = None
    longest_model_call_seconds: float | None = None
    model_state: str | None = Field(default=None, description='"stuck": a model call ran past its deadline')
    actions: ActionsHealth | None = Field(
        default=None, description="Custom actions (reported, never failed on)"
    )
    telegram_desk: dict[str, Any] | None = Field(
        default=None,
        description="The Telegram agent desk: its status (ok, the bot removed, topics deleted), posts pending or failed (reported, never failed on)",
    )
    calibration: CalibrationHealth | None = Field(
        default=None, description="The thresholds' calibration (reported, never failed on)"
    )
    status: str = Field(description='"ok", or "degraded" (with 503)')


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Degraded: restart the process"}},
)
async def healthz(bot: BotDep) -> JSONResponse:
    """Report whether the database answers, the knowledge base is loaded and the model is not stuck,
    and the spool's backlog; 503 when any of that fails, so an orchestrator restarts the process."""
    checks: dict[str, object] = {"version": __version__}
    healthy = True
    try:
        async with bot.database.session() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        # webhook bodies acknowledged but not processed yet, and those given up (docs/operations.md)
        counts = await bot.spool.counts()
        checks["spool"] = {"waiting": counts.waiting, "failed": counts.failed}
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        healthy = False
    try:
        matcher = bot.matcher()
        checks["kb_entries"] = len(matcher.kb.entries)
        checks["model"] = matcher.encoder.model_id
        # a model call running past the deadline is hung (messages meanwhile go to people): restart
        longest = bot.engine.longest_model_call_seconds()
        checks["longest_model_call_seconds"] = round(longest, 1)
        if longest > bot.settings.policy.understanding_timeout_seconds:
            checks["model_state"] = "stuck"
            healthy = False
    except RuntimeError:
        checks["kb_entries"] = 0
        healthy = False
    # reported, not failed on: a restart would not fix a broken file, and the previous content still serves
    checks["content"] = bot.content.state.as_dict()
    if bot.actions is not None:
        # reported, not failed on: a restart of supportbot would not bring an action server back
        checks["actions"] = {"where": bot.actions.where, "status": await bot.actions.health()}
    if bot.desk is not None:
        # reported, not failed on: a restart does not put the bot back into the group
        try:
            checks["telegram_desk"] = await bot.desk.health()
        except Exception as exc:
            checks["telegram_desk"] = {"status": f"error: {type(exc).__name__}"}
    checks["calibration"] = calibration_health(bot.settings)
    checks["status"] = "ok" if healthy else "degraded"
    return JSONResponse(checks, status_code=200 if healthy else 503)


def calibration_health(settings: Settings) -> dict[str, object]:
    """What the calibration file says: state, expected answer rate and precision, warnings."""
    data = read_calibration(settings)
    if data is None:
        return {"state": "none", "warnings": []}
    expected = data.get("expected") if isinstance(data.get("expected"), dict) else None
    return {
        "state": str(data.get("state") or ("defaults" if data.get("fallback") else "calibrated")),
        "fallback": data.get("fallback"),
        "expected": expected,
        "warnings": [str(w) for w in data.get("warnings") or []],
    }
