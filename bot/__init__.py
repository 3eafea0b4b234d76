"""supportbot: customer-support bots for messengers."""

from __future__ import annotations

__version__ = "0.1.0"
