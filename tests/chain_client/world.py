"""A small cast on a fresh deployment: a provider, a citizen, two departments, an auditor."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_client import Ledger, Role, eip712
from chain_client.ids import new_nonce, new_request_ids, purpose_id, resource_id
from chain_client.types import GrantTerms
from tests.conftest import Deployed

ID_CARD = resource_id("id_card")  # sensitivity 3: must be named
TAX = resource_id("tax_record")  # sensitivity 2: covered by the wildcard
BIOMETRIC = resource_id("biometric")  # sensitivity 4
LOAN = purpose_id("loan-application")


@dataclass
class World:
    deployed: Deployed
    provider: LocalAccount
    citizen: LocalAccount
    dept: LocalAccount
    other_dept: LocalAccount
    auditor: LocalAccount

    @property
    def ledger(self) -> Ledger:
        return self.deployed.ledger

    def now(self) -> int:
        return self.ledger.block_timestamp()

    def terms(
        self,
        *,
        resources: tuple[bytes, ...] = (ID_CARD,),
        valid_from: int | None = None,
        valid_until: int | None = None,
        max_uses: int = 0,
        grantee: str | None = None,
        subject: str | None = None,
        deadline: int | None = None,
    ) -> GrantTerms:
        now = self.now()
        return GrantTerms(
            subject=subject or self.citizen.address,
            grantee=grantee or self.dept.address,
            resources=resources,
            purpose=LOAN,
            valid_from=now - 60 if valid_from is None else valid_from,
            valid_until=now + 3600 if valid_until is None else valid_until,
            max_uses=max_uses,
            nonce=new_nonce(),
            deadline=now + 600 if deadline is None else deadline,
        )

    def sign_grant(self, terms: GrantTerms, key: bytes | None = None) -> bytes:
        return eip712.sign(self.ledger.domain(), "Grant", terms.message(), key or self.citizen.key)

    def grant(self, **kwargs: object) -> tuple[GrantTerms, bytes]:
        terms = self.terms(**kwargs)  # type: ignore[arg-type]
        return terms, self.ledger.record_grant(terms, self.sign_grant(terms)).grant_id

    def release_request(
        self,
        grant_id: bytes,
        resource: bytes = ID_CARD,
        *,
        key: bytes | None = None,
        request_id: bytes | None = None,
        deadline: int | None = None,
    ) -> tuple[bytes, int, bytes]:
        request_id = request_id or new_request_ids(1)[0]
        deadline = self.now() + 600 if deadline is None else deadline
        message = {"grantId": grant_id, "resource": resource, "requestId": request_id, "deadline": deadline}
        signature = eip712.sign(self.ledger.domain(), "ReleaseRequest", message, key or self.dept.key)
        return request_id, deadline, signature

    def release(self, terms: GrantTerms, grant_id: bytes, resource: bytes = ID_CARD, **kwargs: object):  # type: ignore[no-untyped-def]
        request_id, deadline, signature = self.release_request(grant_id, resource, **kwargs)  # type: ignore[arg-type]
        return self.ledger.record_release(terms, resource, request_id, deadline, signature)

    def revoke(self, grant_id: bytes, *, key: bytes | None = None, gas: int | None = None):  # type: ignore[no-untyped-def]
        nonce, deadline = new_nonce(), self.now() + 600
        message = {"grantId": grant_id, "nonce": nonce, "deadline": deadline}
        signature = eip712.sign(self.ledger.domain(), "Revoke", message, key or self.citizen.key)
        return self.ledger.revoke(grant_id, nonce, deadline, signature, gas=gas)

    def pause_message(
        self, grant_id: bytes, paused: bool, *, sequence: int | None = None, nonce: int | None = None
    ) -> dict[str, object]:
        """A ``SetPaused`` message; ``sequence`` defaults to the grant's next one."""
        return {
            "grantId": grant_id,
            "paused": paused,
            "sequence": self.ledger.pause_sequence(grant_id) + 1 if sequence is None else sequence,
            "nonce": new_nonce() if nonce is None else nonce,
            "deadline": self.now() + 600,
        }

    def apply_paused(self, message: dict[str, object], *, key: bytes | None = None):  # type: ignore[no-untyped-def]
        signature = eip712.sign(self.ledger.domain(), "SetPaused", message, key or self.citizen.key)
        m = message
        return self.ledger.set_paused(m["grantId"], m["paused"], m["sequence"], m["nonce"], m["deadline"], signature)  # type: ignore[arg-type]

    def set_paused(  # type: ignore[no-untyped-def]
        self,
        grant_id: bytes,
        paused: bool,
        *,
        nonce: int | None = None,
        sequence: int | None = None,
        key: bytes | None = None,
    ):
        return self.apply_paused(self.pause_message(grant_id, paused, sequence=sequence, nonce=nonce), key=key)

    def enrolment(
        self, account: str, *, approver: LocalAccount | None = None, nonce: int | None = None
    ) -> tuple[int, int, bytes]:
        """An ``AuditorEnrolment`` approval of ``account`` signed by ``approver`` (the first auditor)."""
        nonce = new_nonce() if nonce is None else nonce
        deadline = self.now() + 600
        message = {"account": account, "nonce": nonce, "deadline": deadline}
        signer = approver or self.auditor
        return nonce, deadline, eip712.sign(self.ledger.domain(), "AuditorEnrolment", message, signer.key)


def make_world(deployed: Deployed) -> World:
    ledger = deployed.ledger
    provider, citizen, dept, other = (Account.create() for _ in range(4))
    auditor = deployed.auditor  # named by the deployment: an ADMIN alone cannot enrol one
    ledger.onboard(provider.address, Role.PROVIDER, org_code="370100-public-security")
    ledger.onboard(citizen.address, Role.SUBJECT)
    ledger.onboard(dept.address, Role.CONSUMER, org_code="370100-housing", hpke_key=bytes(range(32)))
    ledger.onboard(other.address, Role.CONSUMER, hpke_key=bytes(32))
    ledger.register_resource("id_card", "Resident identity card", provider.address, 3)
    ledger.register_resource("tax_record", "Tax payment record", provider.address, 2)
    ledger.register_resource("biometric", "Biometric template", provider.address, 4)
    return World(deployed, provider, citizen, dept, other, auditor)
