"""The CLI runs against the API fixture of tests/api."""

from tests.api.conftest import api_database, platform  # noqa: F401  (the fixtures, shared)
