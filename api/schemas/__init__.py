"""Request and response bodies (pydantic), one module per area of the API (SPEC §6)."""
