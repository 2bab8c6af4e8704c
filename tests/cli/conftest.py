"""The CLI runs against the API fixture of tests/api."""

from tests.api.conftest import platform  # noqa: F401  (the fixture, shared)
