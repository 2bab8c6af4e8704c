"""The safe-deposit box end to end on a real chain, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from chain_client import ChainUnavailable, errors
from chain_client.ids import new_request_ids
from qcl_client import CommitmentMismatch, generate_hybrid_key, open_release, open_sealed
from qcl_client import DecryptionError as OpenFailed
from tests.chain_client.world import ID_CARD, TAX, World
from vault import (
    DecryptionError,
    DocumentDeleted,
    DocumentNotFound,
    InvalidInput,
    NoCurrentDocument,
    ReleaseRefused,
    Vault,
)
from vault.crypto import commitment


def _store_id_card(vault: Vault, world: World, content: bytes = b"Resident ID 370102199001011234") -> str:
    stored = vault.store_document(
        subject=world.citizen.address,
        resource="id_card",
        content=content,
        issuer=world.provider.address,
        metadata={"issued_by": "Jinan PSB"},
    )
    return stored.document.document_id


def _answer(release) -> dict:  # type: ignore[no-untyped-def]
    doc = release.document
    return {
        "sealed": base64.b64encode(release.sealed).decode(),
        "document": {"document_id": doc.document_id, "salt": doc.salt, "commitment": doc.commitment},
    }


def test_store_anchors_the_commitment_and_issuer(vault: Vault, world: World) -> None:
    content = b"%PDF-1.7 household register"
    stored = vault.store_document(
        subject=world.citizen.address,
        resource="household_register" if False else "tax_record",
        content=content,
        issuer=world.citizen.address,
    )
    doc = stored.document
    on_chain = world.ledger.document(bytes.fromhex(doc.document_id[2:]))
    assert on_chain.commitment == bytes.fromhex(doc.commitment[2:]) == commitment(bytes.fromhex(doc.salt[2:]), content)
    assert on_chain.issuer == world.citizen.address and on_chain.subject == world.citizen.address
    assert stored.tx_hash == doc.anchor_tx and doc.state == "current"
    opened = vault.read_document(doc.document_id, subject=world.citizen.address)
    assert opened.content == content and opened.metadata is None


def test_provider_issues_and_owner_reads(vault: Vault, world: World) -> None:
    doc_id = _store_id_card(vault, world)
    opened = vault.read_document(doc_id, subject=world.citizen.address)
    assert opened.content.startswith(b"Resident ID") and opened.metadata == {"issued_by": "Jinan PSB"}
    assert [d.document_id for d in vault.list_documents(world.citizen.address)] == [doc_id]
    with pytest.raises(DocumentNotFound):  # someone else's document is "not found", not "forbidden"
        vault.read_document(doc_id, subject=world.dept.address)
    assert vault.list_documents(world.dept.address) == []


def test_only_the_resource_provider_or_the_subject_may_issue(vault: Vault, world: World) -> None:
    with pytest.raises(errors.InvalidIssuer):
        vault.store_document(
            subject=world.citizen.address, resource="id_card", content=b"forged", issuer=world.dept.address
        )
    assert vault.list_documents(world.citizen.address) == []  # nothing kept after the refusal
    with pytest.raises(errors.UnknownResource):
        vault.store_document(
            subject=world.citizen.address, resource="no_such_code", content=b"x", issuer=world.citizen.address
        )
    with pytest.raises(InvalidInput):
        vault.store_document(subject="0x1234", resource="id_card", content=b"x", issuer=world.provider.address)
    with pytest.raises(InvalidInput):
        vault.store_document(
            subject=world.citizen.address, resource="id_card", content=b"", issuer=world.provider.address
        )


def test_release_after_the_receipt_and_the_department_opens_it(
    vault: Vault, world: World, dept_key: x25519.X25519PrivateKey
) -> None:
    doc_id = _store_id_card(vault, world)
    terms, grant_id = world.grant(max_uses=1)
    request_id, deadline, signature = world.release_request(grant_id)
    release = vault.release(
        terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature
    )
    receipt = world.deployed.node.w3.eth.get_transaction_receipt(release.tx_hash)
    assert receipt["status"] == 1 and receipt["blockNumber"] == release.block_number
    opened = open_release(
        _answer(release),
        dept_key,
        grant_id=grant_id,
        request_id=request_id,
        anchored_commitment=world.ledger.document(bytes.fromhex(doc_id[2:])).commitment,
    )
    assert opened.content == b"Resident ID 370102199001011234" and opened.document_id == doc_id
    assert release.log_index == 0 and len(vault.release_log()) == 1
    with pytest.raises(errors.GrantExhausted):  # maxUses 1
        world_request = world.release_request(grant_id)
        vault.release(
            terms=terms,
            resource=ID_CARD,
            request_id=world_request[0],
            deadline=world_request[1],
            signature=world_request[2],
        )
    assert len(vault.release_log()) == 1


def test_tampered_answer_fails_the_commitment_check(
    vault: Vault, world: World, dept_key: x25519.X25519PrivateKey
) -> None:
    _store_id_card(vault, world)
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    release = vault.release(
        terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature
    )
    answer = _answer(release)
    answer["document"]["salt"] = "0x" + "11" * 32
    with pytest.raises(CommitmentMismatch):
        open_release(answer, dept_key, grant_id=grant_id, request_id=request_id)
    with pytest.raises(OpenFailed):
        open_release(_answer(release), x25519.X25519PrivateKey.generate(), grant_id=grant_id, request_id=request_id)


def test_release_delivers_the_current_document(vault: Vault, world: World, dept_key: x25519.X25519PrivateKey) -> None:
    _store_id_card(vault, world, b"old card")
    newest = _store_id_card(vault, world, b"renewed card")
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    release = vault.release(
        terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature
    )
    assert release.document.document_id == newest
    assert open_sealed(release.sealed, dept_key, grant_id, request_id) == b"renewed card"
    vault.delete_document(newest, subject=world.citizen.address)
    request_id, deadline, signature = world.release_request(grant_id)
    older = vault.release(terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature)
    assert open_sealed(older.sealed, dept_key, grant_id, request_id) == b"old card"


def test_refused_before_the_chain_is_asked(vault: Vault, world: World, dept_key: x25519.X25519PrivateKey) -> None:
    _store_id_card(vault, world)
    terms, grant_id = world.grant(resources=(ID_CARD, TAX))
    narrow_terms, narrow_id = world.grant(resources=(ID_CARD,))
    head = world.ledger.head_block()
    request_id, deadline, signature = world.release_request(grant_id, key=world.other_dept.key)
    with pytest.raises(ReleaseRefused) as refused:
        vault.release(terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature)
    assert refused.value.code == "not_grantee"
    request_id, deadline, signature = world.release_request(grant_id, TAX)  # granted, but no such document
    with pytest.raises(NoCurrentDocument):
        vault.release(terms=terms, resource=TAX, request_id=request_id, deadline=deadline, signature=signature)
    # not granted: refused by the chain's rules, whether or not a document exists (nothing leaks)
    request_id, deadline, signature = world.release_request(narrow_id, TAX)
    with pytest.raises(errors.ResourceNotGranted):
        vault.release(terms=narrow_terms, resource=TAX, request_id=request_id, deadline=deadline, signature=signature)
    assert world.ledger.head_block() == head  # no transaction was sent
    assert vault.release_log() == []


def test_crypto_shredding_stops_reads_and_releases(
    vault: Vault, world: World, dept_key: x25519.X25519PrivateKey
) -> None:
    doc_id = _store_id_card(vault, world)
    terms, grant_id = world.grant()
    tx = vault.delete_document(doc_id, subject=world.citizen.address)
    assert tx is not None and world.ledger.document(bytes.fromhex(doc_id[2:])).shredded
    with pytest.raises(DocumentDeleted):
        vault.read_document(doc_id, subject=world.citizen.address)
    with pytest.raises(DocumentDeleted):
        vault.delete_document(doc_id, subject=world.citizen.address)
    head = world.ledger.head_block()
    request_id, deadline, signature = world.release_request(grant_id)
    with pytest.raises(DocumentDeleted):
        vault.release(terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature)
    assert world.ledger.head_block() == head and vault.release_log() == []
    with vault.store.session() as s:  # the data key and the ciphertext are gone from the database
        from db.models import DocumentRow

        row = s.get(DocumentRow, doc_id)
        assert row is not None and row.wrapped_key is None and row.content == b"" and row.meta is None
    # not even a rotation brings it back
    vault.rotate()
    with pytest.raises(DocumentDeleted):
        vault.read_document(doc_id, subject=world.citizen.address)


@pytest.mark.parametrize(
    "failure",
    [
        ChainUnavailable("the chain did not answer: ConnectionError"),
        ChainUnavailable("the chain did not answer: TimeExhausted: receipt not found within 120 s"),
        errors.TransactionFailed("reverted (no revert data)"),
    ],
)
def test_chain_failure_releases_nothing(
    vault: Vault, world: World, dept_key: x25519.X25519PrivateKey, failure: Exception, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A send that never reaches the node, a receipt that never comes, a transaction that fails as
    a whole (out of gas, every attempt): nothing decrypted, released or logged."""
    from vault import releases

    _store_id_card(vault, world)
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    unwraps = []
    real_unwrap = vault.keyring.unwrap
    vault.keyring.unwrap = lambda *a: unwraps.append(a) or real_unwrap(*a)  # type: ignore[method-assign]
    sender = vault.relayer.sender
    calls = []
    if isinstance(failure, ChainUnavailable) and "ConnectionError" in str(failure):

        def send(tx):  # type: ignore[no-untyped-def]
            calls.append(tx)
            raise failure

        monkeypatch.setattr(sender, "send", send)
    elif isinstance(failure, ChainUnavailable):
        real_send = sender.send
        monkeypatch.setattr(sender, "send", lambda tx: calls.append(tx) or real_send(tx))

        def wait(tx_hash, **_kw):  # type: ignore[no-untyped-def]
            raise failure

        monkeypatch.setattr(sender, "wait", wait)  # the receipt never comes, though the node has it
        monkeypatch.setattr(sender, "receipt", lambda tx_hash: None)
        monkeypatch.setattr(sender, "known", lambda tx_hash: True)
        monkeypatch.setattr(vault.relayer, "receipt_timeout", 1.0)
        monkeypatch.setattr(releases, "GROUP_GAS_BASE", 30_000)  # and it would fail if mined
        monkeypatch.setattr(releases, "GROUP_GAS_PER_ITEM", 5_000)
    else:
        real_send = sender.send
        monkeypatch.setattr(sender, "send", lambda tx: calls.append(tx) or real_send(tx))
        monkeypatch.setattr(releases, "GROUP_GAS_BASE", 30_000)  # every attempt runs out of gas
        monkeypatch.setattr(releases, "GROUP_GAS_PER_ITEM", 5_000)
    with pytest.raises(type(failure)):
        vault.release(terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature)
    assert calls  # it did try
    assert unwraps == []  # no data key was unwrapped: nothing was decrypted
    assert vault.release_log() == []
    assert world.ledger.grant_state(grant_id).uses == 0


def test_chain_gone_mid_release_is_chain_unavailable(
    vault: Vault, world: World, dept_key: x25519.X25519PrivateKey, compiled
) -> None:  # type: ignore[no-untyped-def]
    """A real outage: the node stops after the off-chain checks."""
    from chain_client import start_node
    from tests.chain_client.world import make_world
    from tests.conftest import deploy_fresh

    node = start_node("anvil")
    try:
        other = make_world(deploy_fresh(node, compiled))
        key = x25519.X25519PrivateKey.generate()
        other.ledger.update_member(
            other.dept.address,
            other.ledger.member(other.dept.address).roles,
            hpke_key=key.public_key().public_bytes_raw(),
        )
        local = Vault(store=vault.store, keyring=vault.keyring, ledger=other.ledger)
        local.store_document(
            subject=other.citizen.address, resource="id_card", content=b"card", issuer=other.provider.address
        )
        terms, grant_id = other.grant()
        request_id, deadline, signature = other.release_request(grant_id)
        real_member = other.ledger.member

        def member_then_outage(account: str):  # type: ignore[no-untyped-def]
            found = real_member(account)
            node.stop()  # the chain goes away right after the last off-chain check
            return found

        other.ledger.member = member_then_outage  # type: ignore[method-assign]
        with pytest.raises(ChainUnavailable):
            local.release(terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature)
        assert local.release_log() == []
    finally:
        node.stop()


def test_emergency_release_is_logged_as_emergency(
    vault: Vault, world: World, dept_key: x25519.X25519PrivateKey
) -> None:
    import secrets

    from chain_client import eip712
    from chain_client.types import EmergencyScope
    from db.release_log import LogEntry

    _store_id_card(vault, world)
    now = world.now()
    scope = EmergencyScope(
        secrets.token_bytes(32),
        (ID_CARD,),
        (world.dept.address,),
        now - 10,
        now + 3600,
        eip712.keccak(text="earthquake"),
        now + 600,
    )
    ledger = world.ledger
    ledger.propose_emergency(
        scope, eip712.sign(ledger.domain(), "Emergency", scope.message(), world.deployed.admin.key)
    )
    ledger.approve_emergency(scope, eip712.sign(ledger.domain(), "Emergency", scope.message(), world.auditor.key))
    request_id, deadline = new_request_ids(1)[0], now + 600
    message = {
        "emergencyId": scope.emergency_id,
        "subject": world.citizen.address,
        "resource": ID_CARD,
        "requestId": request_id,
        "deadline": deadline,
    }
    signature = eip712.sign(ledger.domain(), "EmergencyReleaseRequest", message, world.dept.key)
    release = vault.emergency_release(
        scope=scope,
        consumer=world.dept.address,
        subject=world.citizen.address,
        resource=ID_CARD,
        request_id=request_id,
        deadline=deadline,
        signature=signature,
    )
    assert open_sealed(release.sealed, dept_key, scope.emergency_id, request_id).startswith(b"Resident ID")
    (entry,) = [LogEntry.parse(e) for e in vault.release_log()]
    assert entry.kind == "emergency" and entry.authority == "0x" + scope.emergency_id.hex()


def test_hybrid_post_quantum_key(vault: Vault, world: World) -> None:
    private, public = generate_hybrid_key()
    roles = world.ledger.member(world.dept.address).roles
    world.ledger.update_member(world.dept.address, roles, hpke_key=public)
    _store_id_card(vault, world)
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    release = vault.release(
        terms=terms, resource=ID_CARD, request_id=request_id, deadline=deadline, signature=signature
    )
    assert len(release.sealed) > 1120  # the hybrid encapsulation alone is 1120 bytes
    assert open_release(_answer(release), private, grant_id=grant_id, request_id=request_id).content.startswith(
        b"Resident"
    )


def test_rotation_keeps_every_document(vault: Vault, world: World) -> None:
    ids = [_store_id_card(vault, world, f"card {i}".encode()) for i in range(5)]
    first = vault.keyring.current_version()
    report = vault.rotate()
    assert report.version == first + 1 and report.rewrapped == 5 and report.retired == [first]
    assert vault.keyring.versions() == [first + 1]
    assert [vault.read_document(i, subject=world.citizen.address).content for i in ids] == [
        f"card {i}".encode() for i in range(5)
    ]
    newer = _store_id_card(vault, world, b"after rotation")
    assert vault.document_info(newer, subject=world.citizen.address).key_version == first + 1


def test_swapping_rows_between_subjects_fails_closed(vault: Vault, world: World) -> None:
    from sqlalchemy import update

    from db.models import DocumentRow

    doc_id = _store_id_card(vault, world)
    with vault.store.session() as s:  # an attacker with database access moves the row to another subject
        s.execute(update(DocumentRow).where(DocumentRow.id == doc_id).values(subject=world.dept.address))
    with pytest.raises(DecryptionError):
        vault.read_document(doc_id, subject=world.dept.address)


def test_document_stored_while_another_process_retires_its_key_version(vault: Vault, world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`qcl vault rotate` in another process retires the version a concurrent store just used."""
    from vault import FileKeyRing

    other = FileKeyRing(vault.keyring.path, "test passphrase")  # type: ignore[attr-defined]
    confirm = vault._confirm_key_version

    def rotate_in_between(row, data_key, doc_id):  # type: ignore[no-untyped-def]
        old = row.key_version
        other.add_version()
        other.retire(old)  # nothing else uses it, and this row is not counted by this handle
        return confirm(row, data_key, doc_id)

    vault._confirm_key_version = rotate_in_between  # type: ignore[method-assign]
    doc_id = _store_id_card(vault, world, b"stored during a rotation")
    assert vault.read_document(doc_id, subject=world.citizen.address).content == b"stored during a rotation"
    assert vault.document_info(doc_id, subject=world.citizen.address).key_version == other.current_version()
