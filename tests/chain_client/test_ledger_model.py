"""The consent ledger's grant rules, checked against the contract on anvil through the client.

The model is :mod:`audit.rules` (the one model of the ledger's rules, also used by the verifier and
the differential test in tests/audit/test_rules_differential.py). Hypothesis drives random sequences
of grants (well-formed or not, and re-submissions of them), sequenced pauses and resumes (also
stale sequences), revocations, single, grouped and replayed releases (also under tampered terms,
i.e. unknown grant ids, and signed by the wrong member), time jumps (also onto grant-window edges)
and member suspensions/reinstatements against a fresh deployment per example, through
:class:`chain_client.Ledger`. The rules predict every outcome — the error the contract reverts with
(the check order decides which error wins), the typed exception the client raises for it — and
after every step the stored state and the status of each recorded grant are compared with the
model's; the nonce and request-id bitmaps are checked where they change.

Time: each transaction is mined in its own block (automine) and sees that block's timestamp, so
before every state-changing call the machine pins the next block's timestamp with
``anvil_setNextBlockTimestamp`` and the model judges the call at exactly that time. Views
(``grant_state``, ``grant_status``) run on the latest block, whose timestamp the model tracks.
The machine runs on an anvil of its own, since it moves the chain's clock far ahead.

Gas estimation: the client estimates gas before sending, and anvil runs that simulation on the
latest block (its timestamp, not the pinned one). A call refused there raises without anything
being mined; one that passes is mined at the pinned time and may still revert there (for instance
when its deadline falls between the two timestamps), and the client then decodes the error from
the mined transaction. The model follows both phases. Releases are sent with explicit gas, so they
are always mined and judged at the pinned time; before each, ``Ledger.check_release`` (an
``eth_call`` on the latest block) is checked against the model at the latest block's timestamp.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from audit import rules
from audit.rules import Sig
from chain_client import CompilationResult, Node, Role, eip712, start_node
from chain_client.errors import REVERT_CLASSES, ContractRevert
from chain_client.ids import WILDCARD, purpose_id, resource_id
from chain_client.types import GrantStatus, GrantTerms, ReleaseItem
from tests.conftest import deploy_fresh

#: The cast. Keys are fixed (each example has a fresh deployment, so reusing them is fine).
CAST = {"s1": Role.SUBJECT, "s2": Role.SUBJECT, "c1": Role.CONSUMER, "c2": Role.CONSUMER, "p": Role.PROVIDER}
ACCOUNTS: dict[str, LocalAccount] = {name: Account.from_key(keccak(text=f"qcl-ledger-model/{name}")) for name in CAST}
NAME_OF: dict[str, str] = {str(account.address): name for name, account in ACCOUNTS.items()}
SUBJECTS = ("s1", "s2")
CONSUMERS = ("c1", "c2")

R2 = resource_id("model/sensitivity-2")  # covered by the wildcard
R3 = resource_id("model/sensitivity-3")  # must be named
RX = resource_id("model/not-in-catalog")
SENSITIVITY = {R2: 2, R3: 3}
PURPOSES = (purpose_id("loan-application"), purpose_id("tax-check"))

#: Request ids: bits 0, 1 and 255 of one bitmap word and bit 0 of another. None draws a fresh id.
_WORD_A = int.from_bytes(keccak(text="model/request-word-a"), "big") >> 8 << 8
_WORD_B = int.from_bytes(keccak(text="model/request-word-b"), "big") >> 8 << 8
REQUEST_POOL = [(w | bit).to_bytes(32, "big") for w, bit in ((_WORD_A, 0), (_WORD_A, 1), (_WORD_A, 255), (_WORD_B, 0))]
#: SetPaused nonces: words 0 and 1, and the last bit of the last word. None draws a fresh nonce.
NONCE_POOL = [0, 1, 255, 256, 2**256 - 1]

MAX_GRANTS = 10  # grants tried per example (recorded or refused); bounds the invariant's cost
MAX_SUSPENSIONS = 6  # suspension changes tried per example (so that they do not crowd out the rest)
MAX_REVOCATIONS = 3  # revocations tried per example (revocation is final)
RELEASE_GAS = 400_000
BATCH_GAS = 1_500_000


def rarely(n: int = 10) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (shrinks to False)."""
    return st.sampled_from([False] * (n - 1) + [True])


steps = st.integers(1, 5)  # seconds from the latest block to the block of the next transaction
deadline_offsets = st.integers(-3, 40)  # a message deadline relative to that block (negative: passed)
# Windows relative to the grant's block: mostly already open and long enough to be used a few times;
# sometimes opening later, short, empty (validFrom == validUntil) or inverted.
from_offsets = st.one_of(st.integers(-5, 0), st.integers(-5, 0), st.integers(-5, 0), st.integers(1, 60))
durations = st.one_of(*[st.integers(30, 200)] * 5, st.integers(-1, 30))
requests = st.one_of(st.none(), st.sampled_from(REQUEST_POOL))
nonces = st.one_of(st.none(), st.sampled_from(NONCE_POOL))
release_resources = st.sampled_from([R2, R2, R3, R3, RX, WILDCARD])
grant_resources = st.lists(st.sampled_from([R2, R2, R2, R3, R3, R3, WILDCARD, WILDCARD, RX]), min_size=1, max_size=3)

Expected = str | None  # None, or the contract's error name
Op = Callable[[rules.State], Expected]


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _rterms(terms: GrantTerms) -> rules.GrantTerms:
    """The client's grant terms as the rules model takes them."""
    return rules.GrantTerms(
        subject=terms.subject,
        grantee=terms.grantee,
        resources=tuple(_hex(r) for r in terms.resources),
        valid_from=terms.valid_from,
        valid_until=terms.valid_until,
        max_uses=terms.max_uses,
    )


class LedgerMachine(RuleBasedStateMachine):
    grants = Bundle("grants")  # terms of grants that were recorded

    def __init__(self, node: Node, compiled: CompilationResult) -> None:
        super().__init__()
        self.node = node
        self.ledger = deploy_fresh(node, compiled).ledger
        for name, role in CAST.items():
            self.ledger.onboard(ACCOUNTS[name].address, role, hpke_key=bytes(32) if role == Role.CONSUMER else b"")
        self.ledger.register_resource("model/sensitivity-2", "level 2", ACCOUNTS["p"].address, 2)
        self.ledger.register_resource("model/sensitivity-3", "level 3", ACCOUNTS["p"].address, 3)
        self.domain = self.ledger.domain()
        self.admin = str(self.ledger.tx.account.address)
        # ---- the model: audit.rules over the ledger's state
        self.now = self.ledger.block_timestamp()  # timestamp of the latest block
        self.state = rules.State(threshold=self.ledger.emergency_threshold())
        for name, role in CAST.items():
            rules.apply_member(self.state, str(ACCOUNTS[name].address), int(role))
        for resource, sensitivity in SENSITIVITY.items():
            rules.apply_resource(self.state, _hex(resource), sensitivity)
        self.tried: dict[bytes, GrantTerms] = {}  # every grant id tried, recorded or not
        self.refused: list[GrantTerms] = []  # terms refused when first submitted
        self._counter = 0
        self._suspensions = 0
        self._revocations = 0
        self.released: list[ReleaseItem] = []  # signed requests that were recorded

    # ---- the rules, as the model sees them ------------------------------------------------------

    def _fresh(self) -> int:
        self._counter += 1
        return 2**128 + self._counter

    def _gid(self, terms: GrantTerms) -> bytes:
        return eip712.digest(self.domain, "Grant", terms.message())

    def suspended(self, account: str) -> bool:
        return self.state.members[account].suspended

    @staticmethod
    def _key(expected_signer: str, wrong: bool, pair: tuple[str, str]) -> bytes:
        """The expected signer's key, or (``wrong``) another member's."""
        if not wrong:
            return bytes(ACCOUNTS[NAME_OF[expected_signer]].key)
        first, second = (ACCOUNTS[n] for n in pair)
        return bytes((second if expected_signer == first.address else first).key)

    def _outcome(self, op: Op, at: int, *, commit: bool = False) -> Expected:
        """What the rules say of ``op`` in the next block at time ``at`` (applied to the model if ``commit``)."""
        state = self.state if commit else copy.deepcopy(self.state)
        state.timestamp, state.block = at, self.ledger.head_block() + 1
        return op(state)

    def _recorded(self, gid: bytes) -> rules.Grant | None:
        g = self.state.grants.get(_hex(gid))
        return g if g is not None and g.terms is not None else None

    def _status(self, gid: bytes, terms: GrantTerms, t: int) -> GrantStatus:
        """grantStatus precedence: Unknown, Revoked, Expired, Exhausted, Paused, NotYetValid, Active."""
        g = self.state.grants.get(_hex(gid))
        if g is None:
            return GrantStatus.UNKNOWN
        if g.revoked:
            return GrantStatus.REVOKED
        if t >= terms.valid_until:
            return GrantStatus.EXPIRED
        if terms.max_uses != 0 and g.uses >= terms.max_uses:
            return GrantStatus.EXHAUSTED
        if g.paused:
            return GrantStatus.PAUSED
        if t < terms.valid_from:
            return GrantStatus.NOT_YET_VALID
        return GrantStatus.ACTIVE

    # ---- talking to the chain -------------------------------------------------------------------

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self.node.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        assert "error" not in response, response
        return response.get("result")

    def _pin(self, dt: int) -> int:
        """Pin the next block's timestamp to ``now + dt`` and return it."""
        t = self.now + dt
        self._rpc("anvil_setNextBlockTimestamp", [t])
        return t

    def _run(self, label: str, send: Callable[[], Any], op: Op, t: int, *, estimated: bool = True) -> Any:
        """Send one transaction pinned at ``t``; check its outcome. Returns its result, or None if refused.

        An ``estimated`` transaction is first simulated on the latest block (timestamp ``now``): a
        refusal there raises before anything is sent. Otherwise it is mined at ``t`` and judged there.
        """
        if estimated:
            at_estimate = self._outcome(op, self.now)
            if at_estimate is not None:
                self._expect_refusal(label, send, at_estimate, mined=False, t=t)
                return None
        expected = self._outcome(op, t)
        if expected is not None:
            self._expect_refusal(label, send, expected, mined=True, t=t)
            return None
        try:
            result = send()
        except ContractRevert as unexpected:
            raise AssertionError(f"{label}: the model expected success at {t}, got {unexpected!r}") from None
        receipt = getattr(result, "receipt", result)
        assert self.ledger.block_timestamp(receipt.block_number) == t
        assert self.ledger.head_block() == receipt.block_number
        self.state.timestamp, self.state.block = t, receipt.block_number
        assert op(self.state) is None  # the model records it too
        self.now = t
        return result

    def _expect_refusal(self, label: str, send: Callable[[], Any], expected: str, *, mined: bool, t: int) -> None:
        with pytest.raises(ContractRevert) as refused:
            send()
        where = "in its block" if mined else "at gas estimation"
        assert refused.value.error == expected, f"{label}: expected {expected} {where}, got {refused.value!r}"
        assert type(refused.value) is REVERT_CLASSES[expected]  # the client's typed exception
        head = self.ledger.block_timestamp()
        if mined:  # reverted in the pinned block; the client decoded the mined transaction
            assert head == t and refused.value.tx_hash is not None, (head, t, refused.value.tx_hash)
            self.now = t
        else:
            assert head == self.now and refused.value.tx_hash is None, (head, self.now, refused.value.tx_hash)

    # ---- grants ---------------------------------------------------------------------------------

    def _submit_grant(self, terms: GrantTerms, wrong: bool, dt: int) -> bool:
        t = self._pin(dt)
        gid = self._gid(terms)
        signature = eip712.sign(self.domain, "Grant", terms.message(), self._key(terms.subject, wrong, SUBJECTS))
        sig = Sig.INVALID if wrong else Sig.OK
        result = self._run(
            "record_grant",
            lambda: self.ledger.record_grant(terms, signature),
            lambda s: rules.record_grant(s, _hex(gid), _rterms(terms), terms.nonce, terms.deadline, sig),
            t,
        )
        self.tried.setdefault(gid, terms)
        if result is None:
            self._check_grant(gid, terms)  # the invariant checks recorded grants only
            return False
        assert result.grant_id == gid
        return True

    @precondition(lambda self: len(self.tried) < MAX_GRANTS)
    @rule(
        target=grants,
        subject=st.sampled_from(["s1", "s2"] * 5 + ["c1"]),
        grantee=st.sampled_from(["c1", "c2"] * 5 + ["s1"]),
        resources=grant_resources,
        no_resources=rarely(20),
        purpose=st.sampled_from(PURPOSES),
        from_offset=from_offsets,
        duration=durations,
        max_uses=st.integers(0, 3),
        deadline_offset=deadline_offsets,
        wrong=rarely(),
        dt=steps,
    )
    def record_grant(
        self,
        subject: str,
        grantee: str,
        resources: list[bytes],
        no_resources: bool,
        purpose: bytes,
        from_offset: int,
        duration: int,
        max_uses: int,
        deadline_offset: int,
        wrong: bool,
        dt: int,
    ) -> Any:
        t = self.now + dt
        terms = GrantTerms(
            subject=ACCOUNTS[subject].address,
            grantee=ACCOUNTS[grantee].address,
            resources=() if no_resources else tuple(resources),
            purpose=purpose,
            valid_from=t + from_offset,
            valid_until=t + from_offset + duration,
            max_uses=max_uses,
            nonce=self._fresh(),
            deadline=t + deadline_offset,
        )
        if self._submit_grant(terms, wrong, dt):
            return terms
        self.refused.append(terms)
        return multiple()

    @initialize(
        target=grants,
        cast=st.lists(st.tuples(st.sampled_from(SUBJECTS), st.sampled_from(CONSUMERS)), min_size=2, max_size=2),
        resources=st.lists(
            st.lists(st.sampled_from([R2, R3, WILDCARD]), min_size=1, max_size=2), min_size=2, max_size=2
        ),
        durations=st.lists(st.integers(20, 200), min_size=2, max_size=2),
        max_uses=st.lists(st.integers(0, 3), min_size=2, max_size=2),
    )
    def two_grants(
        self, cast: list[tuple[str, str]], resources: list[list[bytes]], durations: list[int], max_uses: list[int]
    ) -> Any:
        """Start with two well-formed grants, already open, so that every rule has something to act on."""
        recorded = []
        for (subject, grantee), listed, duration, uses in zip(cast, resources, durations, max_uses, strict=True):
            t = self.now + 1
            terms = GrantTerms(
                subject=ACCOUNTS[subject].address,
                grantee=ACCOUNTS[grantee].address,
                resources=tuple(listed),
                purpose=PURPOSES[0],
                valid_from=t,
                valid_until=t + duration,
                max_uses=uses,
                nonce=self._fresh(),
                deadline=t,
            )
            assert self._submit_grant(terms, False, 1)
            recorded.append(terms)
        return multiple(*recorded)

    @rule(terms=grants, dt=steps)
    def resubmit_recorded_grant(self, terms: GrantTerms, dt: int) -> None:
        """The same signed terms again: NonceUsed (or ExpiredDeadline, checked first)."""
        assert not self._submit_grant(terms, False, dt)

    @precondition(lambda self: bool(self.refused))
    @rule(target=grants, data=st.data(), dt=steps)
    def resubmit_refused_grant(self, data: st.DataObject, dt: int) -> Any:
        """Refused terms again, with the subject's signature: re-checked (e.g. after a reinstatement)."""
        terms = data.draw(st.sampled_from(self.refused))
        if self._submit_grant(terms, False, dt):
            self.refused.remove(terms)
            return terms
        return multiple()

    # ---- revoke, pause, resume --------------------------------------------------------------------

    def _target(self, terms: GrantTerms, tamper: bool) -> tuple[GrantTerms, bytes]:
        """The terms (or, ``tamper``-ed, terms with one more allowed use: an unknown grant) and their id."""
        if tamper:
            terms = dataclasses.replace(terms, max_uses=terms.max_uses + 1)
        gid = self._gid(terms)
        assert not tamper or gid not in self.tried
        return terms, gid

    @precondition(lambda self: self._revocations < MAX_REVOCATIONS)
    @rule(
        terms=grants,
        tamper=rarely(),
        nonce=st.integers(0, 2**256 - 1),
        deadline_offset=deadline_offsets,
        wrong=rarely(),
        dt=steps,
    )
    def revoke(self, terms: GrantTerms, tamper: bool, nonce: int, deadline_offset: int, wrong: bool, dt: int) -> None:
        terms, gid = self._target(terms, tamper)
        t = self._pin(dt)
        deadline = t + deadline_offset
        key = self._key(terms.subject, wrong, SUBJECTS)
        signature = eip712.sign(self.domain, "Revoke", {"grantId": gid, "nonce": nonce, "deadline": deadline}, key)
        sig = Sig.INVALID if wrong else Sig.OK
        self._run(
            "revoke",
            lambda: self.ledger.revoke(gid, nonce, deadline, signature),
            lambda s: rules.revoke(s, _hex(gid), nonce, deadline, sig),
            t,
        )
        self._revocations += 1

    @rule(
        terms=grants,
        tamper=rarely(),
        toggle=st.sampled_from([True, True, True, False]),
        stale=rarely(),
        nonce=nonces,
        deadline_offset=deadline_offsets,
        wrong=rarely(),
        dt=steps,
    )
    def set_paused(
        self,
        terms: GrantTerms,
        tamper: bool,
        toggle: bool,
        stale: bool,
        nonce: int | None,
        deadline_offset: int,
        wrong: bool,
        dt: int,
    ) -> None:
        """A pause or resume with the grant's next sequence (``stale``: an old one); unchanged ones apply too."""
        terms, gid = self._target(terms, tamper)
        g = self._recorded(gid)
        paused = (not g.paused if toggle else g.paused) if g else toggle
        sequence = (g.pause_sequence if g else 0) + (0 if stale else 1)
        nonce = self._fresh() if nonce is None else nonce
        t = self._pin(dt)
        deadline = t + deadline_offset
        message = {"grantId": gid, "paused": paused, "sequence": sequence, "nonce": nonce, "deadline": deadline}
        signature = eip712.sign(self.domain, "SetPaused", message, self._key(terms.subject, wrong, SUBJECTS))
        sig = Sig.INVALID if wrong else Sig.OK
        self._run(
            "set_paused",
            lambda: self.ledger.set_paused(gid, paused, sequence, nonce, deadline, signature),
            lambda s: rules.set_paused(s, _hex(gid), paused, sequence, nonce, deadline, sig),
            t,
        )
        assert self.ledger.pause_sequence(gid) == (g.pause_sequence if g else 0)
        self._check_nonces(terms.subject, nonce)

    # ---- releases -------------------------------------------------------------------------------

    def _release_item(
        self, terms: GrantTerms, gid: bytes, resource: bytes, request: bytes | None, deadline: int, wrong: bool
    ) -> ReleaseItem:
        request_id = self._fresh().to_bytes(32, "big") if request is None else request
        message = {"grantId": gid, "resource": resource, "requestId": request_id, "deadline": deadline}
        key = self._key(terms.grantee, wrong, CONSUMERS)
        signature = eip712.sign(self.domain, "ReleaseRequest", message, key)
        return ReleaseItem(terms, resource, request_id, deadline, signature)

    def _release(
        self,
        terms: GrantTerms,
        gid: bytes,
        resource: bytes,
        request: bytes | None,
        deadline_offset: int,
        wrong: bool,
        dt: int,
    ) -> bool:
        t = self._pin(dt)
        item = self._release_item(terms, gid, resource, request, t + deadline_offset, wrong)
        return self._send_release(item, gid, not wrong, t)

    @staticmethod
    def _model_item(item: ReleaseItem, gid: bytes, by_grantee: bool) -> rules.ReleaseItem:
        sig = Sig.OK if by_grantee else Sig.INVALID
        return rules.ReleaseItem(_hex(gid), _hex(item.resource), _hex(item.request_id), item.deadline, sig)

    def _send_release(self, item: ReleaseItem, gid: bytes, by_grantee: bool, t: int) -> bool:
        terms = item.grant
        args = (terms, item.resource, item.request_id, item.deadline, item.signature)
        model_item = self._model_item(item, gid, by_grantee)
        # check_release simulates on the latest block (timestamp ``now``), not on the block at t.
        simulated = self._outcome(lambda s: rules.check_release(s, model_item), self.now)
        if simulated is None:
            self.ledger.check_release(*args)
        else:
            with pytest.raises(ContractRevert) as refused:
                self.ledger.check_release(*args)
            assert refused.value.error == simulated, f"check_release: {refused.value!r}"
        receipt = self._run(  # explicit gas: not estimated, always mined and judged at t
            "record_release",
            lambda: self.ledger.record_release(*args, gas=RELEASE_GAS),
            lambda s: rules.record_release(s, model_item),
            t,
            estimated=False,
        )
        if receipt is not None:
            g = self.state.grants[_hex(gid)]
            self.released.append(item)
            (recorded,) = self.ledger.consent.events.ReleaseRecorded().process_receipt(receipt.raw)
            assert (bytes(recorded.args.grantId), recorded.args.grantee, bytes(recorded.args.resource)) == (
                gid,
                terms.grantee,
                item.resource,
            )
            assert (bytes(recorded.args.requestId), recorded.args.uses) == (item.request_id, g.uses)
        self._check_requests(terms.grantee, item.request_id)
        return receipt is not None

    @precondition(lambda self: bool(self.released))
    @rule(data=st.data(), dt=st.integers(1, 3))
    def replay_release(self, data: st.DataObject, dt: int) -> None:
        """A recorded release request sent again as it was: RequestUsed, unless an earlier check fails."""
        item = data.draw(st.sampled_from(self.released))
        self._send_release(item, self._gid(item.grant), True, self._pin(dt))

    @rule(
        terms=grants,
        tamper=rarely(),
        resource=release_resources,
        request=requests,
        deadline_offset=deadline_offsets,
        wrong=rarely(),
        dt=steps,
    )
    def record_release(
        self,
        terms: GrantTerms,
        tamper: bool,
        resource: bytes,
        request: bytes | None,
        deadline_offset: int,
        wrong: bool,
        dt: int,
    ) -> None:
        """Any release request, including for RX (not in the catalog) and for the WILDCARD id itself."""
        terms, gid = self._target(terms, tamper)
        self._release(terms, gid, resource, request, deadline_offset, wrong, dt)

    @rule(
        terms=grants,
        data=st.data(),
        request=st.sampled_from([None, *REQUEST_POOL[:2]]),
        deadline_offset=st.integers(0, 40),
        dt=steps,
    )
    def release_granted_resource(
        self, terms: GrantTerms, data: st.DataObject, request: bytes | None, deadline_offset: int, dt: int
    ) -> None:
        """A well-formed request for a resource the grant covers, so that uses add up to maxUses."""
        resource = data.draw(st.sampled_from(terms.resources))
        resource = R2 if resource == WILDCARD else resource
        self._release(terms, self._gid(terms), resource, request, deadline_offset, False, dt)

    @rule(terms=grants, dt=steps)
    def release_until_refused(self, terms: GrantTerms, dt: int) -> None:
        """Well-formed releases in consecutive blocks until one is refused (or four went through)."""
        resource = next((r for r in terms.resources if r != WILDCARD), R2)
        for _ in range(4):
            if not self._release(terms, self._gid(terms), resource, None, 30, False, dt):
                break
            dt = 1

    @precondition(lambda self: bool(self.bundle("grants")))
    @rule(
        items=st.lists(
            st.tuples(grants, rarely(), release_resources, requests, deadline_offsets, rarely()), min_size=1, max_size=3
        ),
        dt=steps,
    )
    def record_releases(self, items: list[tuple[GrantTerms, bool, bytes, bytes | None, int, bool]], dt: int) -> None:
        """A grouped release: each item is judged on the state the items before it left."""
        t = self._pin(dt)
        batch: list[ReleaseItem] = []
        model_items: list[rules.ReleaseItem] = []
        for terms, tamper, resource, request, deadline_offset, wrong in items:
            terms, gid = self._target(terms, tamper)
            item = self._release_item(terms, gid, resource, request, t + deadline_offset, wrong)
            batch.append(item)
            model_items.append(self._model_item(item, gid, not wrong))
        outcomes = self._outcome(lambda s: rules.record_releases(s, model_items), t, commit=True)  # type: ignore[arg-type,return-value]
        unsigned = ("ConsentLedgerNotGrantee", "ConsentLedgerMalleableSignature")
        result = self.ledger.record_releases(batch, gas=BATCH_GAS)
        assert self.ledger.block_timestamp(result.receipt.block_number) == t
        self.now = t
        assert result.recorded == [i for i, o in enumerate(outcomes) if o is None]  # type: ignore[arg-type]
        assert result.skipped == [i for i, o in enumerate(outcomes) if o in unsigned]  # type: ignore[arg-type]
        assert {i: (e.error, _hex(e.args_by_name["grantId"])) for i, e in result.rejected.items()} == {
            i: (o, m.grant_id)
            for i, (o, m) in enumerate(zip(outcomes, model_items, strict=True))  # type: ignore[arg-type]
            if o is not None and o not in unsigned
        }
        self.released.extend(b for b, o in zip(batch, outcomes, strict=True) if o is None)  # type: ignore[arg-type]
        for item in batch:
            self._check_requests(item.grant.grantee, item.request_id)

    # ---- members and time -----------------------------------------------------------------------

    @precondition(lambda self: bool(self.tried) and self._suspensions < MAX_SUSPENSIONS)
    @rule(
        who=st.sampled_from([*SUBJECTS, *CONSUMERS] * 2 + ["p"]),
        toggle=st.sampled_from([True, True, True, False]),
        dt=steps,
    )
    def set_suspended(self, who: str, toggle: bool, dt: int) -> None:
        account = str(ACCOUNTS[who].address)
        suspended = not self.suspended(account) if toggle else self.suspended(account)
        t = self._pin(dt)
        self._run(
            "set_suspended",
            lambda: self.ledger.set_suspended(account, suspended),
            lambda s: rules.set_suspended(s, account, suspended, by=self.admin),
            t,
        )
        self._suspensions += 1

    @rule(terms=grants, party=st.sampled_from(["subject", "grantee"]), reinstate=st.booleans(), dt=steps)
    def release_while_suspended(self, terms: GrantTerms, party: str, reinstate: bool, dt: int) -> None:
        """Suspend the grant's subject or grantee, try a well-formed release, perhaps reinstate."""
        who = NAME_OF[getattr(terms, party)]
        if not self.suspended(str(ACCOUNTS[who].address)):
            self.set_suspended(who, True, dt)
        resource = next((r for r in terms.resources if r != WILDCARD), R2)
        self._release(terms, self._gid(terms), resource, None, 30, False, 1)
        if reinstate:
            self.set_suspended(who, True, 1)

    @precondition(lambda self: bool(self.tried))
    @rule(seconds=st.integers(1, 150))
    def time_passes(self, seconds: int) -> None:
        t = self._pin(seconds)
        self._rpc("evm_mine", [])
        assert self.ledger.block_timestamp() == t
        self.now = t

    @rule(terms=grants, edge=st.sampled_from(["valid_from", "valid_until"]), delta=st.integers(-2, 0))
    def time_to_window_edge(self, terms: GrantTerms, edge: str, delta: int) -> None:
        """Mine an empty block just before a grant's window edge, so the next steps land on it."""
        target = getattr(terms, edge) + delta
        if target > self.now:
            self.time_passes(target - self.now)

    # ---- checks ---------------------------------------------------------------------------------

    @invariant()
    def chain_matches_model(self) -> None:
        assert self.ledger.block_timestamp() == self.now
        for gid, terms in self.tried.items():
            if self._recorded(gid) is not None:
                self._check_grant(gid, terms)

    def _check_grant(self, gid: bytes, terms: GrantTerms) -> None:
        """The grant's stored state, and its status at the latest block."""
        g = self.state.grants.get(_hex(gid))
        state = self.ledger.grant_state(gid)
        if g is not None:
            assert (state.subject, state.uses, state.revoked, state.paused, state.recorded_at) == (
                terms.subject,
                g.uses,
                g.revoked,
                g.paused,
                g.recorded_at,
            ), NAME_OF[terms.subject]
            assert self.ledger.pause_sequence(gid) == g.pause_sequence
        else:
            assert not state.exists and (state.uses, state.revoked, state.paused) == (0, False, False)
        assert self.ledger.grant_status(terms) == self._status(gid, terms, self.now)

    def _check_nonces(self, subject: str, nonce: int) -> None:
        for n in {nonce, *NONCE_POOL} if nonce in NONCE_POOL else {nonce}:  # the pool shares bitmap words
            assert self.ledger.nonce_used(subject, n) == ((subject, n) in self.state.nonces), n

    def _check_requests(self, grantee: str, request_id: bytes) -> None:
        for r in {request_id, *REQUEST_POOL} if request_id in REQUEST_POOL else {request_id}:
            assert self.ledger.request_used(grantee, r) == ((grantee, _hex(r)) in self.state.requests), r.hex()


SETTINGS = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    database=None,  # write nothing into the tree; a failure prints its seed and steps
    report_multiple_bugs=False,  # shrink one counterexample (each example deploys afresh: shrinking is slow)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def own_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """An anvil of this module's own: the machine moves its clock hours ahead of the wall clock."""
    node = start_node("anvil", log_dir=tmp_path_factory.mktemp("ledger-model-anvil"))
    yield node
    node.stop()


def test_ledger_matches_model(own_anvil: Node, compiled: CompilationResult) -> None:
    run_state_machine_as_test(lambda: LedgerMachine(own_anvil, compiled), settings=SETTINGS)  # type: ignore[arg-type]
