"""Use cases shared by the HTTP routers and the ``qcl`` command: they take typed values, raise
domain errors (mapped to problem+json in :mod:`api.errors`), and know nothing of HTTP."""
