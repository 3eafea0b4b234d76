"""Keep secrets out of our logs: bearer tokens, event tickets and web chat visitor ids in request URLs.

uvicorn's access log prints every request line with its query string. The console and the widget never
put a secret in a URL, but an old client may (`/api/v1/events?token=...`, `/api/v1/webchat/<visitor id>/...`),
so `install_access_log_redaction()` (called by bot/web/app.py) rewrites those parts of each access-log line
before it is written: `token=***`, `ticket=***`, and the visitor id replaced by a short digest that still
tells one visitor's requests from another's.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

from bot.web.ratelimit import digest

SECRET_PARAMS = frozenset({"token", "ticket", "access_token"})
_WEBCHAT_PATH = re.compile(r"^(/api/v1/webchat/)([^/?#]+)(?=/)")
_NOT_VISITOR_IDS = frozenset({"messages", "events"})


def redact_url(url: str) -> str:
    """Return a request path (with query) with token, ticket and visitor-id values replaced."""
    path, sep, query = url.partition("?")
    match = _WEBCHAT_PATH.match(path)
    if match and match.group(2) not in _NOT_VISITOR_IDS:
        path = f"{match.group(1)}~{digest(match.group(2))[:8]}{path[match.end() :]}"
    if sep and query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
            query = urlencode(
                [(name, "***" if name.lower() in SECRET_PARAMS else value) for name, value in pairs],
                safe="*",
            )
    return path + sep + query


class AccessLogRedactor(logging.Filter):
    """A filter for the `uvicorn.access` logger: its records carry the path as the third argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def install_access_log_redaction(logger_name: str = "uvicorn.access") -> None:
    """Add the redactor to the access logger once (idempotent; logging's dictConfig keeps it)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
        logger.addFilter(AccessLogRedactor())
