"""Tests that need PostgreSQL or Redis skip with one summary line when it is down, and fail in CI instead."""

from __future__ import annotations

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow

DOWN = "postgresql+asyncpg://postgres@127.0.0.1:5999/test"  # nothing listens on 5999 (nor on 5998 below)
TINY_SUITE = """
import pytest

@pytest.mark.redis
def test_marked_by_hand():
    pass

async def test_on_both_databases(database):
    pass  # its postgres run is marked by tests/conftest.py, its sqlite run needs no server

def test_needs_nothing():
    pass
"""


@pytest.fixture
def tiny(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A tiny suite run with our conftest, PostgreSQL and Redis pointed at ports where nothing listens."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("SUPPORTBOT_TEST_POSTGRES_URL", DOWN)
    monkeypatch.setenv("SUPPORTBOT_TEST_REDIS_URL", "redis://127.0.0.1:5998/0")
    monkeypatch.delenv("SUPPORTBOT_TEST_REQUIRE_SERVICES", raising=False)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    postgres\n    redis\n    browser\n"
    )
    pytester.makepyfile(test_tiny=TINY_SUITE)
    return pytester


def run(tiny: pytest.Pytester) -> pytest.RunResult:
    return tiny.runpytest_subprocess("-p", "tests.conftest", "-rs", "-p", "no:cacheprovider")


def test_a_service_that_is_down_skips_its_tests_with_one_line_each(tiny: pytest.Pytester) -> None:
    result = run(tiny)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "supportbot: skipped 1 postgres tests: PostgreSQL not reachable at "
            "postgresql://postgres@127.0.0.1:5999/test: * (start it, or set SUPPORTBOT_TEST_POSTGRES_URL)",
            "supportbot: skipped 1 redis tests: Redis not reachable at redis://127.0.0.1:5998/0: * "
            "(start it, or set SUPPORTBOT_TEST_REDIS_URL)",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED [[]1] *conftest.py:*: Redis not reachable at *"])  # with -rs


def test_with_require_services_set_a_service_that_is_down_fails_its_tests(
    tiny: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORTBOT_TEST_REQUIRE_SERVICES", "1")
    result = run(tiny)
    result.assert_outcomes(passed=2, errors=2)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*PostgreSQL not reachable at postgresql://postgres@127.0.0.1:5999/test: * "
            "[[]SUPPORTBOT_TEST_REQUIRE_SERVICES is set]",  # [[] is a literal [
            "supportbot: failed 1 postgres tests: PostgreSQL not reachable at *",
            "supportbot: failed 1 redis tests: Redis not reachable at *",
        ]
    )
