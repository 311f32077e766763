"""Fixtures of the launcher and orchestration tests, for reuse updates through `olmix swarm` and the flow."""

from tests.launch.conftest import fake_env  # noqa: F401
from tests.orchestration.conftest import prefect_api  # noqa: F401
