"""Tests of bot/nlu: encoders, the index, language detection, calibration and the decision policy."""
