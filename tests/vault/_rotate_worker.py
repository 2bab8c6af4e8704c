"""Subprocess of test_rotation_crash: run ``Vault.rotate()`` on a SQLite store and a FileKeyRing.

Usage: python -m tests.vault._rotate_worker DB_PATH KEYRING_PATH PASSPHRASE SLEEP_PER_DOCUMENT

Prints ``ready`` just before the rotation starts (the test kills the process some time after
that line) and ``done <version> <rewrapped> <retired...>`` if it is allowed to finish.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    db_path, keyring_path, passphrase, pause = Path(argv[1]), Path(argv[2]), argv[3], float(argv[4])
    from db.store import Store
    from vault import FileKeyRing, Vault

    store = Store.sqlite(db_path)
    keyring = FileKeyRing(keyring_path, passphrase, create=False)
    vault = Vault(store=store, keyring=keyring, ledger=None)  # rotation never asks the chain

    def progress(_done: int, _total: int) -> None:
        time.sleep(pause)  # slow the rotation down so that kills land in the middle of it

    print("ready", flush=True)
    report = vault.rotate(progress=progress, batch=10)
    print("done", report.version, report.rewrapped, *report.retired, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
