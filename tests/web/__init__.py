"""Tests of bot/web: the HTTP service, console, security hardening, OpenAPI and the browser pages."""
