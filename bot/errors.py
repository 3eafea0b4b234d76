"""One exception hierarchy; messages say what was wrong and how to fix it."""

from __future__ import annotations


class SupportBotError(Exception):
    """Base class for every error supportbot raises on purpose."""


class ConfigError(SupportBotError):
    """The configuration file or an environment override is invalid."""


class ContentError(SupportBotError):
    """A knowledge-base or intents file is invalid; carries file:line problems."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class EncoderError(SupportBotError):
    """The embedding back end could not be loaded."""


class StorageError(SupportBotError):
    """The database is unreachable or in an unexpected state."""


class SpoolError(SupportBotError):
    """A spooled webhook an operator named does not exist, or is done and cannot be replayed."""


class ChannelError(SupportBotError):
    """A messenger adapter failed to parse or send."""


class SendError(ChannelError):
    """Sending failed; `retry_after` is set when the platform asked us to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class RateLimited(SendError):
    """The platform asked us to wait `retry_after` seconds (HTTP 429, flood control) before trying again."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)


class RecipientUnavailable(SendError):
    """The recipient cannot be written to (they blocked the bot, or the chat is gone): never retried.

    The outbox marks the customer blocked, which fails their other pending replies; their next message
    clears the mark.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class OutsideMessagingWindow(SupportBotError):
    """The channel allows free-form messages only for a while after the customer's last message."""
