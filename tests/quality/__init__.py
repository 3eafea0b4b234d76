"""Tests of bot/quality: `supportbot eval` on labelled messages."""
