"""Tests of bot/insights: the numbers, answers, CSAT, CSV exports and the Insights API."""
