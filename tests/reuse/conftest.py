"""The launcher tests' fixtures, for the reuse update through `olmix swarm`."""

from tests.launch.conftest import fake_env  # noqa: F401
