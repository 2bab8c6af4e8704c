"""A release relayer in a process of its own (what `qcl worker` runs), for tests that kill it:
``python _relayer_child.py '<json spec>'`` prints "ready" and records releases until killed."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eth_account import Account

from chain_client import Deployment, Ledger, compile_contracts
from chain_client.nodes import connect
from chain_client.relayer import RawSender
from db.store import Store
from vault.releases import ReleaseRelayer

spec = json.loads(sys.argv[1])
node = connect(spec["url"])
ledger = Ledger(
    w3=node.w3,
    deployment=Deployment.from_json(spec["deployment"]),
    compiled=compile_contracts(),
    operator=Account.from_key(spec["operator"]),
)
sender = RawSender(w3=node.w3, account=Account.from_key(spec["key"]), chain_id=ledger.chain_id)
relayer = ReleaseRelayer(store=Store(spec["db"], migrate=False), ledger=ledger, sender=sender)
relayer.start()
print("ready", flush=True)
threading.Event().wait()
