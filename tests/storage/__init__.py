"""Tests of bot/storage: repositories, migrations and the SQLite driver on both databases."""
