"""Where the checkout is: the shipped config.yaml, kb/ and intents/ the tests run on."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
