"""Python client of the Quanchenglian API for departments, apps and scripts.

Signs SPEC §3 messages locally with the member's key, logs in with Sign-In with Ethereum, calls
the HTTP API, and opens sealed releases (checking the commitment). The key never leaves the
process; the platform only relays signatures.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from chain_client import eip712
from chain_client.ids import NonceAllocator, RequestIdAllocator, purpose_id, resource_id
from chain_client.types import Eip712Domain

from ._open import (
    CommitmentMismatch,
    DecryptionError,
    OpenedRelease,
    PrivateKey,
    ReleaseError,
    generate_hybrid_key,
    open_release,
    open_sealed,
)
from ._qr import MAX_QR_WINDOW, QR_PREFIX, QrGrantError, check_counter_grant, decode_grant_qr, encode_grant_qr

__all__ = [
    "ApiError",
    "LoginRefused",
    "check_challenge",
    "CommitmentMismatch",
    "DecryptionError",
    "OpenedRelease",
    "PrivateKey",
    "QclClient",
    "ReleaseError",
    "generate_hybrid_key",
    "open_release",
    "open_sealed",
    "MAX_QR_WINDOW",
    "QR_PREFIX",
    "QrGrantError",
    "check_counter_grant",
    "decode_grant_qr",
    "encode_grant_qr",
]


class ApiError(Exception):
    """The API answered with a problem+json error."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('code')}: {body.get('detail')}")
        self.status = status
        self.code = str(body.get("code"))
        self.body = body


class LoginRefused(Exception):
    """The server's login challenge names another server or account than the one called."""


def _authority(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the scheme's default port made explicit."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), port


def check_challenge(message: str, base_url: str, address: str) -> None:
    """Check an EIP-4361 challenge before signing it: its domain and ``URI`` must be ``base_url``'s
    host and port, and its account ``address``; :class:`LoginRefused` otherwise."""
    lines = message.split("\n")
    suffix = " wants you to sign in with your Ethereum account:"
    if len(lines) < 2 or not lines[0].endswith(suffix):
        raise LoginRefused("the login challenge is not an EIP-4361 message")
    scheme, host, port = _authority(base_url)
    domain = lines[0][: -len(suffix)]
    try:
        named = _authority(domain if "://" in domain else f"{scheme}://{domain}")
    except (httpx.InvalidURL, ValueError):
        raise LoginRefused(f"the login challenge names an unreadable domain {domain!r}") from None
    if named != (scheme, host, port):
        raise LoginRefused(f"the login challenge is for {domain!r}, not for the server called ({base_url})")
    uris = [line[len("URI: ") :] for line in lines if line.startswith("URI: ")]
    if len(uris) != 1:
        raise LoginRefused("the login challenge has no single URI")
    try:
        uri = _authority(uris[0])
    except (httpx.InvalidURL, ValueError):
        raise LoginRefused(f"the login challenge's URI {uris[0]!r} is unreadable") from None
    if uri != (scheme, host, port):
        raise LoginRefused(f"the login challenge's URI {uris[0]!r} is not the server called ({base_url})")
    if lines[1].lower() != address.lower():
        raise LoginRefused("the login challenge names another account")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass
class QclClient:
    """One member's session with the API. ``http`` may be any httpx.Client (e.g. FastAPI's TestClient)."""

    http: httpx.Client
    account: LocalAccount
    token: str | None = None
    _domain: Eip712Domain | None = None

    @classmethod
    def connect(cls, base_url: str, private_key: str | bytes, *, timeout: float = 60.0) -> QclClient:
        return cls(http=httpx.Client(base_url=base_url, timeout=timeout), account=Account.from_key(private_key))

    def __post_init__(self) -> None:
        self._request_ids = RequestIdAllocator()
        #: Nonces of this account's Grant, Revoke, SetPaused and AuditorEnrolment messages: one
        #: nonce space on the ledger, consecutive nonces sharing a bitmap word (cheaper grants).
        self._nonces = NonceAllocator()
        #: Reason salts of the emergencies this client composed (SPEC §9.8), by emergency id.
        self._reason_salts: dict[bytes, bytes] = {}

    @property
    def address(self) -> str:
        return str(self.account.address)

    # ---- plumbing --------------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"code": "http_error", "detail": response.text}
            raise ApiError(response.status_code, body)
        return response.json() if response.content else None

    def call_idempotent(self, method: str, path: str, *, attempts: int = 4, **kwargs: Any) -> Any:
        """:meth:`call` for a request that may be sent again as it is (a GET, or a signed release
        request: SPEC §9.7): sent again after a lost connection (an HTTP/1.1 keep-alive connection
        the server closed as the request left) or a 503 saying so, with a short back-off."""
        for attempt in range(attempts):
            try:
                return self.call(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
            except ApiError as exc:
                if exc.status != 503 or attempt == attempts - 1:
                    raise
            time.sleep(min(2.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def domain(self) -> Eip712Domain:
        if self._domain is None:
            d = self.call("GET", "/v1/chain")["domain"]
            self._domain = Eip712Domain(d["name"], d["version"], int(d["chainId"]), d["verifyingContract"])
        return self._domain

    def _signed(self, primary: str, message: dict[str, Any]) -> dict[str, Any]:
        signature = eip712.sign(self.domain(), primary, message, self.account.key)
        return {"message": _jsonable(message), "signature": _hex(signature)}

    # ---- login -----------------------------------------------------------------------------------

    def login(self) -> list[str]:
        """Sign in (EIP-4361); returns the member's roles.

        Refuses (:class:`LoginRefused`) to sign a challenge that names another server than the one
        called, or another account: a signed login message is a credential for the server it names.
        """
        challenge = self.call("POST", "/v1/auth/challenge", json={"address": self.address})
        check_challenge(challenge["message"], str(self.http.base_url), self.address)
        signed = Account.sign_message(encode_defunct(text=challenge["message"]), self.account.key)
        answer = self.call(
            "POST", "/v1/auth/token", json={"message": challenge["message"], "signature": _hex(bytes(signed.signature))}
        )
        self.token = answer["access_token"]
        return list(answer["roles"])

    # ---- administration --------------------------------------------------------------------------

    def onboard(
        self,
        address: str,
        roles: list[str],
        name: str,
        *,
        org_code: str | None = None,
        hpke_public_key: bytes | None = None,
        auditor_approval: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Onboard a member (as ADMIN). Enrolling an AUDITOR needs ``auditor_approval``: the body
        :meth:`sign_auditor_enrolment` returns, signed by an existing auditor (SPEC §9.8)."""
        body: dict[str, Any] = {"address": address, "roles": roles, "name": name}
        if org_code:
            body["org_code"] = org_code
        if hpke_public_key:
            body["hpke_public_key"] = _hex(hpke_public_key)
        if auditor_approval is not None:
            body["auditor_approval"] = auditor_approval
        return dict(self.call("POST", "/v1/members", json=body))

    @staticmethod
    def auditor_enrolment_message(account: str, *, nonce: int | None = None, valid_for: int = 86400) -> dict[str, Any]:
        """The ``AuditorEnrolment`` message an existing auditor signs to approve ``account``
        (JSON form: what ``qcl admin onboard --role AUDITOR`` prints)."""
        return _jsonable(
            {
                "account": account,
                "nonce": NonceAllocator().next() if nonce is None else nonce,
                "deadline": int(time.time()) + valid_for,
            }
        )

    def sign_auditor_enrolment(self, message: dict[str, Any]) -> dict[str, Any]:
        """As an AUDITOR: sign an ``AuditorEnrolment`` message; returns ``{"message", "signature"}``,
        the ``auditor_approval`` of ``POST /v1/members``."""
        typed = {"account": message["account"], "nonce": int(message["nonce"]), "deadline": int(message["deadline"])}
        return self._signed("AuditorEnrolment", typed)

    def suspend(self, address: str, suspended: bool = True) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/members/{address}/suspend", json={"suspended": suspended}))

    def register_resource(
        self, code: str, name: str, provider: str, sensitivity: int, *, self_declared: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"code": code, "name": name, "provider": provider, "sensitivity": sensitivity}
        if self_declared:
            body["self_declared"] = True
        return dict(
            self.call(
                "POST",
                "/v1/catalog",
                json=body,
            )
        )

    # ---- documents -------------------------------------------------------------------------------

    def store_document(
        self, subject: str, resource: str, content: bytes, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": subject, "resource": resource, "content": base64.b64encode(content).decode()}
        if metadata is not None:
            body["metadata"] = metadata
        return dict(self.call("POST", "/v1/documents", json=body))

    def documents(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/documents")["items"])

    def read_document(self, document_id: str) -> bytes:
        return base64.b64decode(self.call("GET", f"/v1/documents/{document_id}")["content"])

    def delete_document(self, document_id: str) -> dict[str, Any]:
        return dict(self.call("DELETE", f"/v1/documents/{document_id}"))

    # ---- consent (the subject signs) -------------------------------------------------------------

    def grant(
        self,
        grantee: str,
        resources: list[str],
        purpose: str,
        *,
        valid_for: int = 30 * 86400,
        max_uses: int = 0,
        valid_from: int | None = None,
        deadline_in: int = 600,
    ) -> dict[str, Any]:
        """Sign a Grant for ``grantee`` over catalog ``resources`` (codes, or "*" for the wildcard)."""
        now = int(time.time())
        start = now - 60 if valid_from is None else valid_from
        message = {
            "subject": self.address,
            "grantee": grantee,
            "resources": [resource_id(code) for code in resources],
            "purpose": purpose_id(purpose),
            "validFrom": start,
            "validUntil": start + valid_for,
            "maxUses": max_uses,
            "nonce": self._nonces.next(),
            "deadline": now + deadline_in,
        }
        return dict(self.call("POST", "/v1/grants", json=self._signed("Grant", message)))

    def signed_grant(self, message: dict[str, Any]) -> dict[str, Any]:
        """The ``POST /v1/grants`` body of a Grant message (e.g. for a QR code, SPEC §9.6), unsent."""
        return self._signed("Grant", message)

    def grant_qr(
        self,
        grantee: str,
        resources: list[str],
        purpose: str,
        *,
        valid_for: int = 3600,
        max_uses: int = 1,
        deadline_in: int = 3600,
    ) -> str:
        """The ``qcl-grant:`` text of a signed, unsent counter grant (SPEC §9.6): one grantee,
        ``max_uses`` ≥ 1, a window of at most one day (QrGrantError otherwise)."""
        now = int(time.time())
        message = {
            "subject": self.address,
            "grantee": grantee,
            "resources": [resource_id(code) for code in resources],
            "purpose": purpose_id(purpose),
            "validFrom": now - 60,
            "validUntil": now - 60 + valid_for,
            "maxUses": max_uses,
            "nonce": self._nonces.next(),
            "deadline": now + deadline_in,
        }
        return encode_grant_qr(self.signed_grant(message))

    def relay_qr(self, text: str, *, for_me: bool = True) -> dict[str, Any]:
        """Relay a scanned ``qcl-grant:`` text as ``POST /v1/grants``; with ``for_me`` (a desk) only
        a grant addressed to this client's account, within the counter limits."""
        body = decode_grant_qr(text)
        check_counter_grant(body, grantee=self.address if for_me else None, now=int(time.time()))
        return dict(self.call("POST", "/v1/grants", json=body))

    def revoke_message(self, grant_id: str) -> dict[str, Any]:
        return {
            "grantId": bytes.fromhex(grant_id[2:]),
            "nonce": self._nonces.next(),
            "deadline": int(time.time()) + 600,
        }

    def revoke(self, grant_id: str, *, grant: dict[str, Any] | None = None) -> dict[str, Any]:
        """Revoke a grant (final). With ``grant`` (the signed Grant's ``message``, JSON form) it also
        revokes a grant never recorded (a lost QR code), which then can never be recorded."""
        body = self._signed("Revoke", self.revoke_message(grant_id))
        if grant is not None:
            body["grant"] = _jsonable(grant)
        return dict(self.call("POST", f"/v1/grants/{grant_id}/revoke", json=body))

    def grant_detail(self, grant_id: str) -> dict[str, Any]:
        """``GET /v1/grants/{grant_id}``: status, uses and ``pause_sequence``."""
        return dict(self.call("GET", f"/v1/grants/{grant_id}"))

    def pause_message(self, grant_id: str, paused: bool, *, sequence: int | None = None) -> dict[str, Any]:
        """A ``SetPaused`` message; ``sequence`` defaults to one above the grant's ``pause_sequence``."""
        if sequence is None:
            sequence = int(self.grant_detail(grant_id)["pause_sequence"]) + 1
        return {
            "grantId": bytes.fromhex(grant_id[2:]),
            "paused": paused,
            "sequence": sequence,
            "nonce": self._nonces.next(),
            "deadline": int(time.time()) + 600,
        }

    def signed_pause(self, message: dict[str, Any]) -> dict[str, Any]:
        """The ``POST /v1/grants/{id}/pause`` body of a SetPaused message (kept, e.g., to send later)."""
        return self._signed("SetPaused", message)

    def pause(self, grant_id: str, paused: bool = True, *, sequence: int | None = None) -> dict[str, Any]:
        """Pause (or, ``paused=False``, resume) a grant with the next sequence (SPEC §9.8)."""
        body = self.signed_pause(self.pause_message(grant_id, paused, sequence=sequence))
        return dict(self.call("POST", f"/v1/grants/{grant_id}/pause", json=body))

    def resume(self, grant_id: str, *, sequence: int | None = None) -> dict[str, Any]:
        return self.pause(grant_id, False, sequence=sequence)

    def grants(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/grants", params=filters)["items"])

    def access_log(self, subject: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/v1/subjects/{subject}/access-log")["items"])

    # ---- access requests -------------------------------------------------------------------------

    def request_access(
        self,
        subject: str,
        resources: list[str],
        purpose: str,
        *,
        valid_for: int = 30 * 86400,
        max_uses: int = 0,
        note: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "subject": subject,
            "resources": resources,
            "purpose": purpose,
            "valid_for": valid_for,
            "max_uses": max_uses,
        }
        if note:
            body["note"] = note
        return dict(self.call("POST", "/v1/access-requests", json=body))

    def access_requests(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/access-requests", params=filters)["items"])

    def answer_access_request(
        self, request: dict[str, Any], *, grant: bool, reason: str | None = None
    ) -> dict[str, Any]:
        """As the subject: sign a Grant matching ``request`` (or reject it)."""
        if not grant:
            return dict(
                self.call(
                    "POST", f"/v1/access-requests/{request['id']}/answer", json={"decision": "reject", "reason": reason}
                )
            )
        now = int(time.time())
        message = {
            "subject": self.address,
            "grantee": request["consumer"],
            "resources": [resource_id(code) for code in request["resources"]],
            "purpose": purpose_id(request["purpose"]),
            "validFrom": now - 60,
            "validUntil": now - 60 + int(request["valid_for"]),
            "maxUses": int(request["max_uses"]),
            "nonce": self._nonces.next(),
            "deadline": now + 600,
        }
        return dict(
            self.call(
                "POST",
                f"/v1/access-requests/{request['id']}/answer",
                json={"decision": "grant", "grant": self._signed("Grant", message)},
            )
        )

    # ---- emergencies -----------------------------------------------------------------------------

    def emergency_message(
        self,
        resources: list[str],
        consumers: list[str],
        reason_text: str,
        *,
        hours: float = 24,
        emergency_id: bytes | None = None,
        reason_salt: bytes | None = None,
    ) -> dict[str, Any]:
        """An ``Emergency`` message whose ``reason`` is ``keccak256(salt || utf8(reason_text))``
        with a random 32-byte salt (SPEC §9.8), remembered for :meth:`propose_emergency`."""
        now = int(time.time())
        salt = reason_salt or secrets.token_bytes(32)
        emergency_id = emergency_id or secrets.token_bytes(32)
        self._reason_salts[emergency_id] = salt
        return {
            "emergencyId": emergency_id,
            "resources": [resource_id(code) for code in resources],
            "consumers": consumers,
            "validFrom": now - 60,
            "validUntil": now - 60 + int(hours * 3600),
            "reason": keccak(salt + reason_text.encode()),
            "deadline": now + 3600,
        }

    def propose_emergency(
        self, message: dict[str, Any], reason_text: str, *, reason_salt: bytes | None = None
    ) -> dict[str, Any]:
        salt = reason_salt or self._reason_salts[message["emergencyId"]]
        body = self._signed("Emergency", message) | {"reason_text": reason_text, "reason_salt": _hex(salt)}
        return dict(self.call("POST", "/v1/emergencies", json=body))

    def cancel_emergency(self, emergency_id: str) -> dict[str, Any]:
        """As an ADMIN or AUDITOR: sign and send an ``EmergencyCancel``; the emergency ends at once."""
        message = {"emergencyId": bytes.fromhex(emergency_id[2:]), "deadline": int(time.time()) + 600}
        return dict(
            self.call("POST", f"/v1/emergencies/{emergency_id}/cancel", json=self._signed("EmergencyCancel", message))
        )

    def approve_emergency(self, message: dict[str, Any]) -> dict[str, Any]:
        emergency_id = _hex(message["emergencyId"])
        return dict(
            self.call("POST", f"/v1/emergencies/{emergency_id}/approve", json=self._signed("Emergency", message))
        )

    def emergencies(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/emergencies")["items"])

    def emergency_release(
        self, emergency_id: str, subject: str, resource: str, private_key: PrivateKey
    ) -> OpenedRelease:
        request_id = self._request_ids.next()
        message = {
            "emergencyId": bytes.fromhex(emergency_id[2:]),
            "subject": subject,
            "resource": resource_id(resource),
            "requestId": request_id,
            "deadline": int(time.time()) + 600,
        }
        answer = self.call(
            "POST", f"/v1/emergencies/{emergency_id}/releases", json=self._signed("EmergencyReleaseRequest", message)
        )
        return open_release(answer, private_key, grant_id=bytes.fromhex(emergency_id[2:]), request_id=request_id)

    # ---- releases (the department signs) ---------------------------------------------------------

    def release_request(self, grant_id: str, resource: str, *, request_id: bytes | None = None) -> dict[str, Any]:
        """The signed ReleaseRequest body (kept so that a replay can be demonstrated)."""
        message = {
            "grantId": bytes.fromhex(grant_id[2:]),
            "resource": resource_id(resource),
            "requestId": request_id or self._request_ids.next(),
            "deadline": int(time.time()) + 600,
        }
        return self._signed("ReleaseRequest", message)

    def release(
        self,
        grant_id: str,
        resource: str,
        private_key: PrivateKey,
        *,
        body: dict[str, Any] | None = None,
        anchored_commitment: bytes | None = None,
    ) -> OpenedRelease:
        """Request a release, then open it and check its commitment."""
        body = body or self.release_request(grant_id, resource)
        answer = self.call_idempotent("POST", "/v1/releases", json=body)
        return open_release(
            answer,
            private_key,
            grant_id=bytes.fromhex(grant_id[2:]),
            request_id=bytes.fromhex(body["message"]["requestId"][2:]),
            anchored_commitment=anchored_commitment,
        )


def _jsonable(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in message.items():
        if isinstance(value, bytes):
            out[key] = _hex(value)
        elif isinstance(value, list):
            out[key] = [_hex(v) if isinstance(v, bytes) else v for v in value]
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 2**53:
            out[key] = str(value)
        else:
            out[key] = value
    return out


def random_request_id() -> bytes:
    return secrets.token_bytes(32)
