# TEMPORARY (not to commit): a persistent index cache for quick iterations
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def index_cache() -> Path:
    return Path("/tmp/listen_index_cache")
