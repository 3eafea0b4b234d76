"""Tests of bot/adapters: each messenger channel against recorded payloads and a stand-in platform API."""
