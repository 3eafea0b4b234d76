"""Tests of bot/delivery: the outbox and the inbound spool."""
