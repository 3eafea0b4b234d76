"""Tests of bot/content: the knowledge base, kb check, edits and the misses report."""
