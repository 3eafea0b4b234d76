"""Tests of bot/handoff: the queue, assignment, providers and the agent API."""
