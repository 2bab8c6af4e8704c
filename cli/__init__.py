"""The ``qcl`` command line: one module per group (dev and serve in :mod:`cli.main`, admin,
client and demo in :mod:`cli.members`, audit in :mod:`cli.audit`)."""
