"""The auditor (SPEC §7): the ledger's rules, verification over any trail source, the release
log's Merkle tree, proofs and checkpoints. Reads the chain (``chain_client``) and the platform
database (``db``); never the vault's keys or documents."""
