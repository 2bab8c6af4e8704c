"""audit.rules against the contract's recorded outcomes, without a chain.

``tests/audit/data/rules_golden.json`` holds operation sequences of the differential test
(test_rules_differential.py) with the outcome ConsentLedger gave each on anvil (recorded with
``QCL_DIFF_RECORD``). Each sequence is replayed here against :mod:`audit.rules`: every outcome must
be the recorded one. The differential test keeps the contract and the rules in step on a chain;
this replay is the same comparison in a few seconds, so that ``make mutation`` can run it against
every mutant of ``audit/rules.py`` (the differential test takes a minute per run).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audit import test_rules_differential as diff

GOLDEN = Path(__file__).with_name("data") / "rules_golden.json"


class RecordedChain:
    """The chain side of a sequence, as recorded: each call answers with the next recorded outcome."""

    def __init__(self, separator: bytes, outcomes: list[Any]) -> None:
        self.separator = separator
        self._outcomes: Iterator[Any] = iter(outcomes)

    def data(self, fn: str, *args: Any) -> bytes:
        return fn.encode()

    def call(self, data: bytes, at: int) -> Any:
        return next(self._outcomes)

    def releases(self, items: list[tuple[Any, ...]], at: int) -> Any:
        return next(self._outcomes)


RECORDED = json.loads(GOLDEN.read_text())
WORLD = RECORDED["world"]
SEQUENCES = RECORDED["sequences"]
MODEL = diff.setup_model(WORLD["catalog_blocks"])


def replay(sequence: dict[str, Any]) -> diff.Run:
    chain = RecordedChain(bytes.fromhex(WORLD["separator"][2:]), diff.decode_json(sequence["chain"]))
    run = diff.Run(chain, copy.deepcopy(MODEL), WORLD["time"], WORLD["block"])  # type: ignore[arg-type]
    for op in diff.decode_json(sequence["ops"]):
        diff.DO[op[0]](run, op)  # Run.check: the rules' outcome is the contract's
    assert len(run.outcomes) == len(sequence["chain"])
    return run


@pytest.mark.parametrize("chunk", range(10))
def test_the_rules_give_the_recorded_contract_outcomes(chunk: int) -> None:
    for sequence in SEQUENCES[chunk::10]:
        replay(sequence)


def test_the_recording_reaches_every_outcome_of_the_rules() -> None:
    """The recording is worth replaying: it holds every refusal audit.rules can give (the ones the
    differential test's generator can reach), and recorded operations of every kind."""
    seen: Counter[str] = Counter()
    for sequence in SEQUENCES:
        for outcome in diff.decode_json(sequence["chain"]):
            for one in outcome if isinstance(outcome, list) else [outcome]:
                seen[one or "recorded"] += 1
    kinds = Counter(op[0] for sequence in SEQUENCES for op in sequence["ops"])
    assert set(kinds) == set(diff.DO)
    assert seen["recorded"] > 0
    errors = {name for name in seen if name.startswith(("ConsentLedger", "MemberRegistry"))}
    assert len(errors) >= 20, sorted(errors)


def test_a_changed_outcome_is_noticed() -> None:
    """The replay compares: one recorded outcome changed makes it fail."""
    sequence = copy.deepcopy(SEQUENCES[-1])  # the hand-written sequence (recorded last)
    sequence["chain"][1] = "ConsentLedgerGrantPaused"  # the covered release, now said to be refused
    with pytest.raises(AssertionError, match="contract 'ConsentLedgerGrantPaused', rules None"):
        replay(sequence)
