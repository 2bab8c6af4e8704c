"""Schemathesis (v4) against the app on a live anvil chain: no 5xx, every response as documented.

* ``test_fuzz`` runs every operation of ``/openapi.json`` (none is excluded) as ADMIN, as the
  citizen (SUBJECT) and as the auditor, on a ``platform`` seeded with a document, a grant, an
  access request, an active emergency, two releases and a checkpoint, so that lists and proofs
  have something to show. Schemathesis's phases are its defaults (explicit examples, coverage
  cases, then Hypothesis fuzzing, positive and negative), bounded by ``max_examples``. Besides
  conformance, the negative-data check (schema-invalid input must be refused with a 4xx) and the
  positive-data check (schema-valid input must not be refused as invalid) run on every answer.
  The bearer token is added to every request (the schema models ``Authorization`` as an optional
  header parameter, so a generated value would only ever test the 401 path).
* ``test_stateful`` is the stateful phase: Schemathesis follows the OpenAPI links
  (api/openapi_links.py) from a created object to the operations that take its id (documents ->
  read/delete, access requests -> read/answer, grants -> pause/revoke, emergencies -> approve ->
  release, members -> read/suspend, verifications -> poll), with the use-after-free and
  resource-availability checks on top of the others. Fuzzing cannot forge EIP-712 signatures or
  pick member addresses, so ``Workflow.before_call`` signs the signed bodies and names real
  members (the stateless ``test_fuzz`` fuzzes those bodies); each call carries the token of the
  member whose call it is. Each scenario has a citizen and a department of its own, so that a
  replay of the same choices meets the same answers (``scenario_members``).
* ``make test`` runs a short seeded pass (``MAX_EXAMPLES``, fixed seed, ``derandomize``, no example
  database); ``make fuzz`` a longer one with a random seed (``QCL_FUZZ_EXAMPLES``,
  ``QCL_FUZZ_SEED=random``; a failure prints the seed to rerun it with ``QCL_FUZZ_SEED=<seed>``,
  which seeds the stateful phase too).
* The 2xx answers of the signed operations are also validated by ``test_documented_success_responses``.
* Failures that are open API bugs (``KNOWN_BUGS``, empty today) are set aside narrowly, by
  failure kind and status or content type, each with a ``strict`` xfail reproducer.
"""

from __future__ import annotations

import base64
import copy
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import jsonschema_rs
import pytest
import schemathesis
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from pydantic import SecretStr
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.python.asgi import get_client
from schemathesis.specs.openapi.checks import (
    ensure_resource_availability,
    negative_data_rejection,
    positive_data_acceptance,
    use_after_free,
)
from sqlalchemy import func, select
from web3 import Web3

from api.app import create_app
from api.settings import Settings
from api.types import ADDRESS_FORMAT
from audit.checkpoints import anchor_checkpoint
from chain_client import eip712
from chain_client.ids import purpose_id, resource_id
from db.models import VerificationJobRow
from qcl_client import QclClient
from tests.api.conftest import Platform

pytestmark = pytest.mark.slow

#: Examples per operation (``make test``: 15; ``make fuzz`` sets ``QCL_FUZZ_EXAMPLES``).
MAX_EXAMPLES = int(os.environ.get("QCL_FUZZ_EXAMPLES", "15"))
#: The seed: fixed for ``make test``; ``QCL_FUZZ_SEED=random`` (``make fuzz``) draws one, printed.
_SEED_SETTING = os.environ.get("QCL_FUZZ_SEED", "20260611")
SEED = secrets.randbits(32) if _SEED_SETTING == "random" else int(_SEED_SETTING)
DETERMINISTIC = _SEED_SETTING != "random"
ROLES = ("admin", "citizen", "auditor")
CARD = b"Resident identity card of Zhang San, 370102199001011234"


def _described_app() -> Any:
    """The app as its OpenAPI document sees it: the routes, with no chain or vault behind them.

    The schema is taken from ``app.openapi()`` rather than ``from_asgi("/openapi.json", app)``,
    because fetching over ASGI would start the app's lifespan (the checkpoint thread) on mocks;
    ``test_the_schema_is_the_live_apps`` checks it is the live app's ``/openapi.json``.
    """
    settings = Settings(env="test", data_dir=Path("/nonexistent"), jwt_secret=SecretStr("x" * 32), indexer=False)
    return create_app(settings, ledger=mock.Mock(), vault=mock.Mock())


#: Addresses as the schema's format describes them: any case, checksummed when mixed.
schemathesis.openapi.format(
    ADDRESS_FORMAT,
    st.binary(min_size=20, max_size=20).flatmap(
        lambda raw: st.sampled_from(
            ["0x" + raw.hex(), "0x" + raw.hex().upper(), Web3.to_checksum_address("0x" + raw.hex())]
        )
    ),
)

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"deterministic": DETERMINISTIC, "database": "none"},
        # Schema-valid requests may also meet 410 Gone: a shredded document stays gone (SPEC §4).
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]
            }
        },
    }
)
#: The app's OpenAPI document as generated; Schemathesis gets a copy (its link inference adds to it).
DESCRIBED = _described_app().openapi()
schema = schemathesis.openapi.from_dict(copy.deepcopy(DESCRIBED), config=CONFIG)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]
#: The stateful phase's extra checks: a deleted object is gone (no 2xx after its DELETE), a created
#: one is there (no 404 for the id its POST returned).
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**53:
        return str(value)  # SPEC §6.1: uint256 values as decimal strings
    return value


def signed(signer: QclClient, primary: str, message: dict[str, Any]) -> dict[str, Any]:
    """``{"message", "signature"}`` with ``signer``'s EIP-712 signature (SPEC §6.1)."""
    signature = eip712.sign(signer.domain(), primary, message, signer.account.key)
    return {"message": {k: _json(v) for k, v in message.items()}, "signature": "0x" + signature.hex()}


def grant_message(p: Platform, *, resources: list[str], purpose: str, valid_for: int = 86400) -> dict[str, Any]:
    now = int(time.time())
    return {
        "subject": p.citizen.address,
        "grantee": p.dept.address,
        "resources": [resource_id(code) for code in resources],
        "purpose": purpose_id(purpose),
        "validFrom": now - 60,
        "validUntil": now - 60 + valid_for,
        "maxUses": 0,
        "nonce": secrets.randbits(256),
        "deadline": now + 600,
    }


# ---- API bugs found here and reported (not fixed here) ------------------------------------------


def _problem_code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


@dataclass(frozen=True)
class KnownBug:
    key: str
    reason: str
    matches: Callable[[Case, Any, Failure], bool]


#: API bugs whose fuzzing failures are set aside while they are open, each with a strict xfail
#: reproducer. The earlier ones (undocumented 400/409/410/413, auth errors
#: documented as application/json) are fixed and their reproducers below are regression tests.
def _refused_because(case: Case, response: Any, failure: Failure, label: str, words: str) -> bool:
    if case.operation.label != label or response.status_code != 422:
        return False
    return type(failure).__name__ == "RejectedPositiveData" and words in response.text


KNOWN_BUGS: list[KnownBug] = []  # the three found last (see test_a_cross_field_rule_is_in_the_schema) are fixed
SET_ASIDE: Counter[str] = Counter()
SEEN: Counter[str] = Counter()
STATEFUL: Counter[str] = Counter()  # "<operation> -> <status>" in the stateful phase
SEMANTIC: Counter[str] = Counter()  # schema-valid input refused by a rule the schema cannot state


def _semantic_refusal(response: Any, failure: Failure) -> str | None:
    """The code of a 422 that refuses schema-valid input for a rule the schema cannot state, else None.

    The positive-data check expects schema-valid input to be accepted. The API refuses some such
    input on purpose, for rules across fields or against the ledger (the id in the body is not
    the one in the path, a signature is not the signer's, a deadline has passed): those 422
    problems carry no ``errors`` list. A 422 *with* one is a field the validators refuse although
    the schema allows it, a disagreement between the two, and stays a failure.
    """
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 422:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or "errors" in body:
        return None
    return str(body.get("code"))


def _beyond_uint64(response: Any, failure: Failure) -> bool:
    """A 422 for an integer the generator pushed past a maximum of 2^64-1 or 2^63: it reads the
    schema's ``maximum`` as a float and sends e.g. 18446744073709552000, which the API rightly
    refuses. Not an API bug."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 422:
        return False
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    bounds = ("must be between 0 and 2^64-1", "less than or equal to 9223372036854775808")
    return bool(errors) and all(any(b in str(e.get("msg")) for b in bounds) for e in errors)


def _unsent_unknown_query(case: Case, response: Any, failure: Failure) -> bool:
    """Negative data "accepted" although nothing negative was sent: the generator adds a query key
    the operation does not declare with an empty array as its value, which serialises to no query
    item at all (the API refuses undeclared keys it does receive: 422 ``unknown_parameter``)."""
    if type(failure).__name__ != "AcceptedNegativeData" or not isinstance(case.query, dict):
        return False
    path, method = case.operation.path, case.method.lower()
    declared = {p["name"] for p in DESCRIBED["paths"][path][method].get("parameters", []) if p.get("in") == "query"}
    unknown = {k: v for k, v in case.query.items() if k not in declared}
    url = getattr(getattr(response, "request", None), "url", None)
    sent = set(httpx.URL(str(url)).params.keys()) if url is not None else set()
    return bool(unknown) and all(v in ([], None) for v in unknown.values()) and not sent & unknown.keys()


def _relayed_not_readable(case: Case, response: Any, failure: Failure) -> bool:
    """Any member may relay a subject's signed grant (POST /v1/grants), but only the subject, the
    grantee and auditors may read it (SPEC §6): the resource-availability check, which expects the
    creator to read what it created, does not hold for a relaying member, by design."""
    return (
        type(failure).__name__ == "EnsureResourceAvailability"
        and case.operation.label == "GET /v1/grants/{grant_id}"
        and response.status_code == 404
        and _problem_code(response) == "grant_not_found"
    )


def validate(case: Case, response: Any, checks: list[Any] = CHECKS, recorder: Any = None) -> None:
    """``case.validate_response`` with the known bugs' failures set aside (and counted), and the
    positive-data check's semantic refusals (``_semantic_refusal``) counted, not failed."""
    __tracebackhide__ = True
    try:
        case.validate_response(response, checks=checks, recorder=recorder)
    except FailureGroup as group:
        left = []
        for failure in group.exceptions:
            bug = next((b for b in KNOWN_BUGS if b.matches(case, response, failure)), None)
            semantic = _semantic_refusal(response, failure)
            if _relayed_not_readable(case, response, failure):
                SEMANTIC[f"{case.operation.label} -> 404 a relaying member may not read the grant (by design)"] += 1
            elif _unsent_unknown_query(case, response, failure):
                SEMANTIC[f"{case.operation.label} -> undeclared query key with an empty array: nothing sent"] += 1
            elif _beyond_uint64(response, failure):
                SEMANTIC[f"{case.operation.label} -> 422 uint64 past 2^64-1 (generator)"] += 1
            elif semantic is not None:
                SEMANTIC[f"{case.operation.label} -> 422 {semantic}"] += 1
            elif bug is None:
                left.append(failure)
            else:
                SET_ASIDE[f"{bug.key}: {case.operation.label} -> {response.status_code}"] += 1
        if left:
            failed = FailureGroup(left)
            body = case.body if not isinstance(case.body, bytes) else case.body[:200]
            text = response.text if hasattr(response, "text") else ""
            failed.add_note(
                f"(seed {SEED}) {case.method.upper()} {case.formatted_path} query={case.query!r} body={str(body)[:400]}"
                f" -> {response.status_code} {text[:400]}"
            )
            raise failed from None


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    operations = {key.rsplit(" as ", 1)[0] for key in SEEN}
    print(
        f"\nschemathesis (seed {SEED}): {sum(SEEN.values())} requests, {len(operations)} operations x {len(ROLES)} roles"
    )
    for key, count in sorted(STATEFUL.items()):
        print(f"  stateful {key}: {count}")
    for key, count in sorted(SEMANTIC.items()):
        print(f"  semantic refusal {key}: {count}")
    for key, count in sorted(SET_ASIDE.items()):
        print(f"  set aside (known bug) {key}: {count}")


# ---- the fuzzing run ----------------------------------------------------------------------------


@pytest.fixture
def seeded(platform: Platform) -> Platform:
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD, metadata={"issuer_ref": "PSB-1"})
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.request_access(p.citizen.address, ["id_card"], "loan-application", note="seed")
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response")
    emergency_id = p.admin.propose_emergency(message, "Flood response")["emergency_id"]
    p.auditor.approve_emergency(message)
    p.dept.release(grant_id, "id_card", p.dept_key)
    p.dept.emergency_release(emergency_id, p.citizen.address, "id_card", p.dept_key)
    anchor_checkpoint(p.vault.ledger, p.vault.store)
    return p


@pytest.fixture
def asgi(seeded: Platform) -> Iterator[Any]:
    """An un-entered ASGI client of the live app: requests reach the app in-process without starting
    its lifespan (the checkpoint thread); one per test, closed after it."""
    client = get_client(seeded.http.app)  # type: ignore[arg-type]  # Starlette types its ASGI app more loosely
    yield client
    client.close()


def test_the_schema_is_the_live_apps(platform: Platform) -> None:
    assert platform.http.get("/openapi.json").json() == DESCRIBED


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=DETERMINISTIC,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzz(case: Case, seeded: Platform, asgi: Any) -> None:
    """Each generated request is sent once per role (a fresh ``platform`` per operation, not per
    operation and role: its setup dominates the run time)."""
    __tracebackhide__ = True
    for role in ROLES:
        token = getattr(seeded, role).token
        response = case.call(app=seeded.http.app, session=asgi, headers={"Authorization": f"Bearer {token}"})
        SEEN[f"{case.operation.label} as {role}"] += 1
        try:
            validate(case, response)
        except FailureGroup as failed:
            failed.add_note(f"sent with the bearer token of {role!r}")
            raise


# ---- the stateful phase: links from created objects to the operations on them -------------------

#: Whose call each operation is in the workflow (any other: ADMIN's).
CALLER = {
    ("POST", "/v1/documents"): "provider",
    ("GET", "/v1/documents/{document_id}"): "citizen",
    ("DELETE", "/v1/documents/{document_id}"): "citizen",
    ("GET", "/v1/documents"): "citizen",
    ("POST", "/v1/access-requests"): "dept",
    ("GET", "/v1/access-requests/{request_id}"): "dept",
    ("GET", "/v1/access-requests"): "dept",
    ("POST", "/v1/access-requests/{request_id}/answer"): "citizen",
    ("POST", "/v1/grants"): "dept",
    ("POST", "/v1/grants/{grant_id}/pause"): "dept",
    ("POST", "/v1/grants/{grant_id}/revoke"): "dept",
    ("POST", "/v1/emergencies/{emergency_id}/approve"): "auditor",
    ("POST", "/v1/emergencies/{emergency_id}/releases"): "dept",
    ("GET", "/v1/emergencies"): "dept",
    ("POST", "/v1/releases"): "dept",
    ("POST", "/v1/audit/verifications"): "auditor",
    ("GET", "/v1/audit/verifications/{job_id}"): "auditor",
    ("GET", "/v1/audit/proofs/inclusion"): "auditor",
}


def _id_bytes(case: Case, name: str) -> bytes:
    """The 32 bytes of a ``0x``-hex id path parameter (zeros if the fuzzer's value is not one)."""
    value = str((case.path_parameters or {}).get(name, ""))
    try:
        raw = bytes.fromhex(value[2:]) if value.startswith("0x") else b""
    except ValueError:
        raw = b""
    return raw if len(raw) == 32 else bytes(32)


def _plain_body(p: Platform, key: tuple[str, str]) -> dict[str, Any] | None:
    if key == ("POST", "/v1/documents"):
        content = base64.b64encode(CARD + secrets.token_bytes(4)).decode()
        return {"subject": p.citizen.address, "resource": "id_card", "content": content}
    if key == ("POST", "/v1/access-requests"):
        return {
            "subject": p.citizen.address,
            "resources": ["id_card"],
            "purpose": "loan-application",
            "valid_for": 3600,
        }
    if key == ("POST", "/v1/access-requests/{request_id}/answer"):
        return {"decision": "reject", "reason": "not now"}
    if key == ("POST", "/v1/members"):
        return {"address": Account.create().address, "roles": ["SUBJECT"], "name": "Citizen Wang"}
    return None


def _signed_body(p: Platform, key: tuple[str, str], case: Case, scope: dict[str, Any] | None) -> dict[str, Any] | None:
    """The signed bodies: a grant, its pause and revocation, an emergency's approval and release."""
    deadline = int(time.time()) + 600
    if key == ("POST", "/v1/grants"):
        return signed(p.citizen, "Grant", grant_message(p, resources=["id_card"], purpose="loan-application"))
    if key == ("POST", "/v1/grants/{grant_id}/pause"):
        # SPEC §9.8: a SetPaused carries a sequence above the grant's (a fresh one each time)
        message = {"grantId": _id_bytes(case, "grant_id"), "paused": True, "sequence": time.time_ns() // 1000}
        return signed(p.citizen, "SetPaused", message | {"nonce": secrets.randbits(256), "deadline": deadline})
    if key == ("POST", "/v1/grants/{grant_id}/revoke"):
        message = {"grantId": _id_bytes(case, "grant_id"), "nonce": secrets.randbits(256)}
        return signed(p.citizen, "Revoke", message | {"deadline": deadline})
    if key == ("POST", "/v1/emergencies/{emergency_id}/approve") and scope:
        return signed(p.auditor, "Emergency", scope)
    if key == ("POST", "/v1/emergencies/{emergency_id}/releases") and scope:
        request = {
            "emergencyId": _id_bytes(case, "emergency_id"),
            "subject": p.citizen.address,
            "resource": resource_id("id_card"),
            "requestId": secrets.token_bytes(32),
            "deadline": deadline,
        }
        return signed(p.dept, "EmergencyReleaseRequest", request)
    return None


def scenario_members(p: Platform) -> Platform:
    """``p`` with a citizen (holding an identity card) and a department of the scenario's own.

    Schemathesis also follows links it infers from lists (``GET /v1/documents`` -> the first
    document -> ``DELETE``; the department's access requests and emergencies -> answer, approve,
    release). On members shared by every scenario those lists keep what earlier scenarios did (a
    document deleted, a request answered), so the same choices met other answers (200, then 410
    or 409), other rules became possible, and Hypothesis stopped with ``FlakyStrategyDefinition``.
    """
    citizen, dept = QclClient(http=p.http, account=Account.create()), QclClient(http=p.http, account=Account.create())
    p.admin.onboard(citizen.address, ["SUBJECT"], "Citizen Wang")
    hpke = p.dept_key.public_key().public_bytes_raw()
    p.admin.onboard(dept.address, ["CONSUMER"], "Civil Affairs Bureau", hpke_public_key=hpke)
    citizen.login()
    dept.login()
    p.provider.store_document(citizen.address, "id_card", CARD)
    return replace(p, citizen=citizen, dept=dept)


def _verifications_settled(p: Platform, timeout: float = 30.0) -> None:
    """Wait until no verification job is queued or running, so that starting one answers 202, not
    429 ``too_many_verifications`` depending on how fast the earlier ones ran."""
    jobs = p.http.app.state.verifications  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        with jobs.store.session() as s:
            busy = s.scalar(
                select(func.count())
                .select_from(VerificationJobRow)
                .where(VerificationJobRow.status.in_(("queued", "running")))
            )
        if not busy or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def workflow_for(shared: Platform, asgi: Any) -> type:
    """The schema's state machine on ``shared``: real members' tokens, valid signatures where the
    API wants them, and each scenario's own citizen and department (:func:`scenario_members`)."""
    base = schema.as_state_machine()
    emergencies: dict[str, dict[str, Any]] = {}  # emergency id -> the signed scope

    class Workflow(base):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            self.p = scenario_members(shared)

        def before_call(self, case: Case) -> None:
            key = (case.method.upper(), case.path)
            case.headers = {
                **(case.headers or {}),
                "Authorization": f"Bearer {getattr(self.p, CALLER.get(key, 'admin')).token}",
            }
            body = self._body(key, case)
            if body is not None:
                case.body = body
            if key == ("POST", "/v1/audit/verifications"):
                _verifications_settled(self.p)

        def _body(self, key: tuple[str, str], case: Case) -> dict[str, Any] | None:
            """A valid body for the producers and for the signed operations; None keeps the generated one."""
            p = self.p
            if key == ("POST", "/v1/emergencies"):
                self._scope = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response")
                salt = p.admin._reason_salts[self._scope["emergencyId"]]  # SPEC §9.8: the reason's salt
                body = {"reason_text": "Flood response", "reason_salt": "0x" + salt.hex()}
                return signed(p.admin, "Emergency", self._scope) | body
            scope = emergencies.get(str((case.path_parameters or {}).get("emergency_id")))
            return _plain_body(p, key) or _signed_body(p, key, case, scope)

        def call(self, case: Case, **kwargs: Any) -> Any:
            response = case.call(app=shared.http.app, session=asgi, **kwargs)
            SEEN[f"{case.operation.label} (stateful)"] += 1
            STATEFUL[f"{case.operation.label} -> {response.status_code}"] += 1
            if (case.method.upper(), case.path) == ("POST", "/v1/emergencies") and response.status_code == 201:
                emergencies[response.json()["emergency_id"]] = self._scope
            return response

        def validate_response(self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any) -> None:
            __tracebackhide__ = True
            try:
                validate(case, response, STATEFUL_CHECKS, recorder=self.recorder)
            except FailureGroup as failed:
                FAILED.append(failed)  # kept: a replay that cannot repeat it must not hide it
                raise

        def teardown(self) -> None:
            SCENARIOS.append(len(self.recorder.cases))
            super().teardown()

    return Workflow


#: Stateful scenarios completed (their step counts), the check failures met, and the runs that
#: ended on a replay the live app did not repeat (Hypothesis' ``Flaky``; see ``test_stateful``).
SCENARIOS: list[int] = []
FAILED: list[FailureGroup] = []
UNREPEATED: list[str] = []


def test_stateful(seeded: Platform, asgi: Any) -> None:
    """Chains of calls along the OpenAPI links, each answer checked (STATEFUL_CHECKS).

    Hypothesis assumes that the same choices draw the same data; here the rules a step may take
    depend on the live app's earlier answers (a link is followed from a 2xx). Each scenario
    therefore has members of its own (``scenario_members``) and starts a verification only when
    none is running, so a replay meets the same answers. Should a replay still differ (Hypothesis'
    ``Flaky``), the run ends as Schemathesis' own runner ends it: passed unless a check failed
    before (that failure is raised, never hidden), and the scenarios left run under the next
    seed; such runs are printed (``UNREPEATED``). The rate limits are off meanwhile: the members
    each scenario logs in would exceed the login challenges allowed per client (60 a minute, one
    address for every caller here), and a 429 that depends on the clock is no repeatable answer
    either (the limits have their own tests, ``test_hostile.py``).
    """
    limiter = seeded.http.app.state.rate_limiter  # type: ignore[attr-defined]
    limiter.enabled, enabled = False, limiter.enabled
    try:
        _run_stateful(seeded, asgi)
    finally:
        limiter.enabled = enabled


def _run_stateful(seeded: Platform, asgi: Any) -> None:
    workflow = workflow_for(seeded, asgi)
    budget = max(MAX_EXAMPLES, 10)
    SCENARIOS.clear()
    FAILED.clear()
    UNREPEATED.clear()
    finished = False
    for attempt in range(8):
        left = budget - len(SCENARIOS)
        if left <= 0:
            break
        try:
            seed(SEED + attempt)(workflow).run(
                settings=settings(
                    max_examples=left,
                    stateful_step_count=10,
                    derandomize=DETERMINISTIC,
                    database=None,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
            finished = True
            break
        except Flaky as exc:
            if FAILED:
                FAILED[0].add_note(f"(seed {SEED + attempt}) found before Hypothesis stopped on: {exc!r}"[:600])
                raise FAILED[0] from exc
            UNREPEATED.append(f"seed {SEED + attempt} after {len(SCENARIOS)} scenarios: {type(exc).__name__}")
    print(f"\nstateful: {len(SCENARIOS)} scenarios, {sum(SCENARIOS)} steps; replays not repeated: {UNREPEATED}")
    assert finished or len(SCENARIOS) >= budget, (SCENARIOS, UNREPEATED)
    # the links were followed: objects created in the run were used by their ids, successfully
    linked = [key for key in STATEFUL if "{" in key and " -> 2" in key]
    assert linked, STATEFUL


# ---- 2xx answers the fuzzer cannot reach (signed bodies), validated against the schema ------------


def case_for(template: str, method: str, response: httpx.Response) -> Case:
    """A case of the operation ``template`` with the path parameters of the request ``response`` answers."""
    names, parts = template.split("/"), response.request.url.path.split("/")
    assert len(names) == len(parts), (template, response.request.url.path)
    parameters = {n[1:-1]: p for n, p in zip(names, parts, strict=True) if n.startswith("{")}
    return schema[template][method].Case(path_parameters=parameters)


def _conforms(template: str, method: str, response: httpx.Response) -> None:
    __tracebackhide__ = True
    assert response.status_code < 400, (template, response.status_code, response.text)
    validate(case_for(template, method, response), response)


def test_documented_success_responses(platform: Platform) -> None:
    """The whole story over raw HTTP; every 2xx answer must match its documented schema."""
    p, http = platform, platform.http

    def call(who: Any, method: str, template: str, path: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {who.token}"} if who is not None else {}
        response = http.request(method, path or template, headers=headers, **kwargs)
        _conforms(template, method, response)
        return response.json() if response.headers["content-type"].startswith("application/json") else None

    call(None, "GET", "/health")
    call(None, "GET", "/v1/chain")
    challenge = call(None, "POST", "/v1/auth/challenge", json={"address": p.citizen.address})
    signature = Account.sign_message(encode_defunct(text=challenge["message"]), p.citizen.account.key).signature
    call(None, "POST", "/v1/auth/token", json={"message": challenge["message"], "signature": "0x" + signature.hex()})

    newcomer = Account.create().address
    call(p.admin, "POST", "/v1/members", json={"address": newcomer, "roles": ["SUBJECT"], "name": "Citizen Wang"})
    call(p.citizen, "GET", "/v1/members/{address}", f"/v1/members/{p.dept.address}")
    call(p.admin, "POST", "/v1/members/{address}/suspend", f"/v1/members/{newcomer}/suspend", json={"suspended": True})
    body = {"code": "social_insurance", "name": "Social insurance", "provider": p.provider.address, "sensitivity": 2}
    call(p.admin, "POST", "/v1/catalog", json=body)
    call(p.citizen, "GET", "/v1/catalog")

    content = base64.b64encode(CARD).decode()
    body = {"subject": p.citizen.address, "resource": "id_card", "content": content, "metadata": {"ref": "PSB-1"}}
    doc_id = call(p.provider, "POST", "/v1/documents", json=body)["document_id"]
    call(p.citizen, "GET", "/v1/documents")
    call(p.citizen, "GET", "/v1/documents/{document_id}", f"/v1/documents/{doc_id}")

    # the subject's signed Grant, relayed by the dept
    grant_body = signed(p.citizen, "Grant", grant_message(p, resources=["id_card"], purpose="loan-application"))
    grant_id = call(p.dept, "POST", "/v1/grants", json=grant_body)["grant_id"]
    call(p.dept, "GET", "/v1/grants", params={"grantee": p.dept.address})
    release = p.dept.release_request(grant_id, "id_card")
    release_id = call(p.dept, "POST", "/v1/releases", json=release)["release_id"]
    call(p.citizen, "GET", "/v1/subjects/{address}/access-log", f"/v1/subjects/{p.citizen.address}/access-log")

    asked = call(
        p.dept,
        "POST",
        "/v1/access-requests",
        json={"subject": p.citizen.address, "resources": ["id_card"], "purpose": "credit-check", "valid_for": 3600},
    )
    call(p.citizen, "GET", "/v1/access-requests")
    call(p.dept, "GET", "/v1/access-requests/{request_id}", f"/v1/access-requests/{asked['id']}")
    grant = signed(p.citizen, "Grant", grant_message(p, resources=["id_card"], purpose="credit-check", valid_for=3600))
    path = f"/v1/access-requests/{asked['id']}/answer"
    answered = call(
        p.citizen, "POST", "/v1/access-requests/{request_id}/answer", path, json={"decision": "grant", "grant": grant}
    )
    assert answered["status"] == "granted"
    rejected = p.dept.request_access(p.citizen.address, ["tax_record"], "credit-check")
    call(
        p.citizen,
        "POST",
        "/v1/access-requests/{request_id}/answer",
        f"/v1/access-requests/{rejected['id']}/answer",
        json={"decision": "reject", "reason": "not needed"},
    )

    paused = signed(
        p.citizen,
        "SetPaused",
        {
            "grantId": bytes.fromhex(grant_id[2:]),
            "paused": True,
            "sequence": 1,
            "nonce": secrets.randbits(256),
            "deadline": 2**40,
        },
    )
    call(p.dept, "POST", "/v1/grants/{grant_id}/pause", f"/v1/grants/{grant_id}/pause", json=paused)
    revoked = signed(
        p.citizen, "Revoke", {"grantId": bytes.fromhex(grant_id[2:]), "nonce": secrets.randbits(256), "deadline": 2**40}
    )
    call(p.dept, "POST", "/v1/grants/{grant_id}/revoke", f"/v1/grants/{grant_id}/revoke", json=revoked)

    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Chemical spill")
    salt = p.admin._reason_salts[message["emergencyId"]]  # the client's salt of this reason (SPEC §9.8)
    proposal = signed(p.admin, "Emergency", message) | {
        "reason_text": "Chemical spill",
        "reason_salt": "0x" + salt.hex(),
    }
    emergency_id = call(p.admin, "POST", "/v1/emergencies", json=proposal)["emergency_id"]
    approval = signed(p.auditor, "Emergency", message)
    path = f"/v1/emergencies/{emergency_id}/approve"
    assert call(p.auditor, "POST", "/v1/emergencies/{emergency_id}/approve", path, json=approval)["active"] is True
    call(p.dept, "GET", "/v1/emergencies")
    request = {
        "emergencyId": bytes.fromhex(emergency_id[2:]),
        "subject": p.citizen.address,
        "resource": resource_id("id_card"),
        "requestId": secrets.token_bytes(32),
        "deadline": int(time.time()) + 600,
    }
    path = f"/v1/emergencies/{emergency_id}/releases"
    call(
        p.dept,
        "POST",
        "/v1/emergencies/{emergency_id}/releases",
        path,
        json=signed(p.dept, "EmergencyReleaseRequest", request),
    )

    anchor_checkpoint(p.vault.ledger, p.vault.store)
    call(p.auditor, "GET", "/v1/audit/trail", params={"subject": p.citizen.address})
    call(p.auditor, "POST", "/v1/audit/verify", json={})
    call(p.auditor, "GET", "/v1/audit/reports", params={"subject": p.citizen.address})
    call(p.auditor, "GET", "/v1/audit/reports", params={"department": p.dept.address, "format": "html"})
    call(p.auditor, "GET", "/v1/audit/checkpoints")
    call(p.auditor, "GET", "/v1/audit/proofs/inclusion", params={"release_id": release_id})
    call(p.auditor, "GET", "/v1/audit/proofs/consistency", params={"first": 1, "second": 2})

    call(p.citizen, "DELETE", "/v1/documents/{document_id}", f"/v1/documents/{doc_id}")


# ---- regression tests of the bugs found (were strict-xfail reproducers) -------------------------

JSON_BODY_OPERATIONS = sorted(
    (path, method.upper())
    for path, item in DESCRIBED["paths"].items()
    for method, operation in item.items()
    if "application/json" in operation.get("requestBody", {}).get("content", {})
)


def _documented(template: str, method: str, response: httpx.Response) -> None:
    """Plain ``validate_response`` (nothing set aside)."""
    case_for(template, method, response).validate_response(response, checks=CHECKS)


@pytest.mark.parametrize(("template", "method"), JSON_BODY_OPERATIONS)
def test_non_utf8_json_body_is_422_as_documented(platform: Platform, template: str, method: str) -> None:
    """A body that is not UTF-8 is malformed input: 422 ``invalid_input``, as documented (was 400)."""
    path = template.replace("{address}", platform.citizen.address).replace("{", "").replace("}", "")
    response = platform.http.request(
        method,
        path,
        content=b"\xff",
        headers={"Authorization": f"Bearer {platform.admin.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert _problem_code(response) == "invalid_input"
    _documented(template, method, response)


def _replayed_grant(p: Platform) -> tuple[str, str, httpx.Response]:
    body = signed(p.citizen, "Grant", grant_message(p, resources=["id_card"], purpose="loan-application"))
    headers = {"Authorization": f"Bearer {p.citizen.token}"}
    assert p.http.post("/v1/grants", json=body, headers=headers).status_code == 201
    return "/v1/grants", "POST", p.http.post("/v1/grants", json=body, headers=headers)


def _replayed_release(p: Platform) -> tuple[str, str, httpx.Response]:
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    body = p.dept.release_request(grant_id, "id_card")
    headers = {"Authorization": f"Bearer {p.dept.token}"}
    assert p.http.post("/v1/releases", json=body, headers=headers).status_code == 201
    assert p.http.post("/v1/releases", json=body, headers=headers).status_code == 200  # the same request (§9.7)
    other = p.dept.release_request(grant_id, "id_card", request_id=bytes.fromhex(body["message"]["requestId"][2:]))
    other = p.dept._signed(  # another request (a later deadline) under the used request id
        "ReleaseRequest",
        {
            "grantId": bytes.fromhex(grant_id[2:]),
            "resource": bytes.fromhex(other["message"]["resource"][2:]),
            "requestId": bytes.fromhex(body["message"]["requestId"][2:]),
            "deadline": int(body["message"]["deadline"]) + 1,
        },
    )
    return "/v1/releases", "POST", p.http.post("/v1/releases", json=other, headers=headers)


def _member_exists(p: Platform) -> tuple[str, str, httpx.Response]:
    body = {"address": p.citizen.address, "roles": ["SUBJECT"], "name": "Citizen Zhang"}
    return (
        "/v1/members",
        "POST",
        p.http.post("/v1/members", json=body, headers={"Authorization": f"Bearer {p.admin.token}"}),
    )


def _shredded_document(p: Platform) -> tuple[str, str, httpx.Response]:
    doc_id = p.provider.store_document(p.citizen.address, "id_card", CARD)["document_id"]
    p.citizen.delete_document(doc_id)
    response = p.http.get(f"/v1/documents/{doc_id}", headers={"Authorization": f"Bearer {p.citizen.token}"})
    return "/v1/documents/{document_id}", "GET", response


def _huge_body(p: Platform) -> tuple[str, str, httpx.Response]:
    limit = p.http.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    response = p.http.post(
        "/v1/documents",
        content=b"{" + b" " * limit + b"}",
        headers={"Authorization": f"Bearer {p.citizen.token}", "Content-Type": "application/json"},
    )
    return "/v1/documents", "POST", response


def _auth_error(p: Platform) -> tuple[str, str, httpx.Response]:
    return (
        "/v1/auth/token",
        "POST",
        p.http.post("/v1/auth/token", json={"message": "hello", "signature": "0x" + "11" * 65}),
    )


UNDOCUMENTED_410 = "410 document_deleted is documented on no operation (GET/DELETE /v1/documents/{id}, releases)"
UNDOCUMENTED_413 = "413 body_too_large is documented on no operation that takes a body"

#: label -> (scenario, the answer the SPEC prescribes, why it is an API bug)
UNDOCUMENTED: dict[str, tuple[Callable[[Platform], tuple[str, str, httpx.Response]], tuple[int, str], str]] = {
    "409 nonce_used (POST /v1/grants, replayed)": (
        _replayed_grant,
        (409, "nonce_used"),
        "409 conflicts are documented",
    ),
    "409 request_used (POST /v1/releases, another request under a used id)": (
        _replayed_release,
        (409, "request_used"),
        "409 conflicts are documented",
    ),
    "409 member_exists (POST /v1/members)": (_member_exists, (409, "member_exists"), "409 conflicts are documented"),
    "410 document_deleted (GET /v1/documents/{id})": (_shredded_document, (410, "document_deleted"), UNDOCUMENTED_410),
    "413 body_too_large (POST /v1/documents)": (_huge_body, (413, "body_too_large"), UNDOCUMENTED_413),
    "401 siwe_malformed (POST /v1/auth/token)": (
        _auth_error,
        (401, "siwe_malformed"),
        "/v1/auth errors are documented as problem+json",
    ),
}


@pytest.mark.parametrize("label", list(UNDOCUMENTED))
def test_error_answers_are_documented(platform: Platform, label: str) -> None:
    """Answers the SPEC prescribes are described by the OpenAPI document (they were not, once)."""
    scenario, expected, _ = UNDOCUMENTED[label]
    template, method, response = scenario(platform)
    assert (response.status_code, _problem_code(response)) == expected, response.text
    assert response.headers["content-type"] == "application/problem+json"
    _documented(template, method, response)


@pytest.mark.parametrize("path", ["/v1/audit/verify", "/v1/audit/verifications"])
def test_a_boolean_block_number_is_refused(platform: Platform, path: str) -> None:
    """Found by `make fuzz` (negative data accepted): ``{"to_block": false}`` was taken as block 0."""
    headers = {"Authorization": f"Bearer {platform.auditor.token}"}
    response = platform.http.post(path, json={"from_block": 0, "to_block": False}, headers=headers)
    assert (response.status_code, _problem_code(response)) == (422, "invalid_input"), response.text


def _request_schema(label: str) -> Any:
    """A validator of the JSON request body of ``label`` ("POST /v1/members"), as the OpenAPI document states it."""
    method, path = label.split(" ", 1)
    body = DESCRIBED["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**body, "components": DESCRIBED["components"]})


#: Bodies refused by a rule across fields or items, which the schema once did not state (Schemathesis'
#: positive-data check failed on them: schema-valid input refused). Each: label, a body the rule
#: refuses, the message, and a body it takes.
CROSS_FIELD: dict[str, tuple[str, Callable[[Platform], dict[str, Any]], str, Callable[[Platform], dict[str, Any]]]] = {
    "roles-unique": (
        "POST /v1/members",
        lambda p: {"address": Account.create().address, "roles": ["SUBJECT", "SUBJECT"], "name": "Citizen Wang"},
        "roles must not repeat",
        lambda p: {"address": Account.create().address, "roles": ["SUBJECT", "PROVIDER"], "name": "Citizen Wang"},
    ),
    "grant-answer-needs-grant": (
        "POST /v1/access-requests/{request_id}/answer",
        lambda p: {"decision": "grant", "grant": None},
        "a grant answer needs the signed grant",
        lambda p: {"decision": "reject", "reason": "not now"},
    ),
    "rejection-carries-no-grant": (
        "POST /v1/access-requests/{request_id}/answer",
        lambda p: {
            "decision": "reject",
            "grant": signed(p.citizen, "Grant", grant_message(p, resources=["id_card"], purpose="credit-check")),
        },
        "a rejection carries no grant",
        lambda p: {"decision": "reject", "grant": None},
    ),
    "correction-rejection-content": (
        "POST /v1/corrections/{correction_id}/resolve",
        lambda p: {"outcome": "rejected", "reason": "no error found", "content": "Y2FyZA=="},
        "a rejection carries no content",
        lambda p: {"outcome": "rejected", "reason": "no error found"},
    ),
    "correction-needs-content": (
        "POST /v1/corrections/{correction_id}/resolve",
        lambda p: {"outcome": "corrected", "reason": "fixed", "content": ""},
        "a corrected outcome needs the corrected content",
        lambda p: {"outcome": "corrected", "reason": "fixed", "content": "Y2FyZA=="},
    ),
}


@pytest.mark.parametrize("bug", list(CROSS_FIELD))
def test_a_cross_field_rule_is_in_the_schema(platform: Platform, bug: str) -> None:
    """Found by Schemathesis (were strict xfails): the API refused schema-valid bodies by a rule the
    schema did not state. Now the schema states it (``uniqueItems``, a ``oneOf`` on the decision or
    outcome): the refused body is schema-invalid and answered 422 with the rule's message, and a
    body the rule takes is schema-valid."""
    p = platform
    label, refused, message, taken = CROSS_FIELD[bug]
    validator = _request_schema(label)
    body, good = refused(p), taken(p)
    assert not validator.is_valid(body), f"the schema takes {body}"
    assert validator.is_valid(good), f"the schema refuses {good}"
    if label == "POST /v1/members":
        path, token = "/v1/members", p.admin.token
    elif label.startswith("POST /v1/access-requests"):
        asked = p.dept.request_access(p.citizen.address, ["id_card"], "credit-check")
        path, token = f"/v1/access-requests/{asked['id']}/answer", p.citizen.token
    else:
        doc = p.provider.store_document(p.citizen.address, "id_card", b"card")
        opened = p.citizen.call("POST", "/v1/corrections", json={"document_id": doc["document_id"], "claim": "typo"})
        path, token = f"/v1/corrections/{opened['correction_id']}/resolve", p.provider.token
    response = p.http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, _problem_code(response)) == (422, "invalid_input"), response.text
    assert message in response.text
    answered = p.http.post(path, json=good, headers={"Authorization": f"Bearer {token}"})
    assert answered.status_code in (200, 201), answered.text


def test_an_unknown_query_parameter_is_refused(platform: Platform) -> None:
    """Found by Schemathesis (negative data accepted): ``GET /v1/catalog?<anything>`` answered 200.
    A parameter the operation does not declare is refused like an unknown body field, so that a
    misspelt filter never widens a list; declared ones, the dependencies' included, still work."""
    headers = {"Authorization": f"Bearer {platform.auditor.token}"}
    response = platform.http.get("/v1/catalog", params={"sensitivty": "3"}, headers=headers)
    assert (response.status_code, _problem_code(response)) == (422, "unknown_parameter"), response.text
    assert response.json()["errors"] == [{"loc": ["query", "sensitivty"], "msg": "not a parameter of this operation"}]
    _documented("/v1/catalog", "GET", response)
    assert platform.http.get("/v1/catalog", headers=headers).status_code == 200
    listed = platform.http.get("/v1/grants", params={"offset": 0, "limit": 5}, headers=headers)
    assert listed.status_code == 200, listed.text
    subject = platform.citizen.address
    report = platform.http.get("/v1/audit/reports", params={"subject": subject, "format": "html"}, headers=headers)
    assert report.status_code == 200, report.text
    typo = platform.http.get("/v1/audit/reports", params={"subjcet": subject}, headers=headers)
    assert (typo.status_code, _problem_code(typo)) == (422, "unknown_parameter")
