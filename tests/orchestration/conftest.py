"""One Prefect test server for the whole session (prefect_test_harness), with Prefect's home in a temp folder."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="olmix-prefect-home-")
_PREFECT_ENV = {
    "PREFECT_HOME": _HOME,  # keep ~/.prefect untouched (profiles, local result storage, ephemeral DB)
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}
if "prefect" not in sys.modules:  # Prefect reads its settings on import
    for _k, _v in _PREFECT_ENV.items():
        os.environ.setdefault(_k, _v)


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect server (SQLite in a temp folder) for every flow test of the session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings(updates={PREFECT_HOME: _HOME}):
        with prefect_test_harness(server_startup_timeout=120):
            yield str(PREFECT_API_URL.value())



@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """`prefect server start` on a free port + `make serve` (deployments.serve) against it, for the slow tests."""
    from tests.orchestration._server import prefect_served

    with prefect_served(tmp_path_factory.mktemp("served")) as s:
        yield s
