"""The ``qcl`` command line: one module per group (dev and serve in :mod:`cli.main`, :mod:`cli.admin`,
:mod:`cli.client`, :mod:`cli.demo` on :mod:`cli._common`, audit in :mod:`cli.audit`, the worker in
:mod:`cli.worker`)."""
