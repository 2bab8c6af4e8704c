"""Mutation testing (mutmut) of the modules where a silent bug is worst; `make mutation` runs it.

Usage: .venv/bin/python scripts/mutation.py [--jobs N] [--no-write] [--work DIR] [--pytest-args ARGS]
[--only GLOB...] [--isolation fork|forkserver] --tests TEST... -- MODULE...
(e.g. ``--tests tests/api/test_siwe.py tests/api/test_auth.py -- api/siwe.py api/auth.py``;
``--pytest-args "-k 'not real_chain'"`` keeps the slow tests of a file out of the run; ``--only
'vault.releases.*_finish*'`` tests only the mutants of the functions named).

mutmut reads its settings from ``pyproject.toml`` and writes its mutants next to it, so the run
happens in a scratch copy of the checkout (``build/mutation``, wiped first): the tracked and
untracked-but-not-ignored files are copied there and a ``[tool.mutmut]`` table naming exactly
``MODULE...`` (to mutate) and ``TEST...`` (to run against each mutant) is appended to the copy's
``pyproject.toml``. The tests run in fixed order, in one process per mutant (mutmut forks), with
no xdist.

Afterwards it prints, per module, the mutants killed, survived, timed out and with no test, the
score (killed + timed out over all mutants), every survivor with its diff, and writes the table and
the survivors into BENCHMARKS.md (section ``mutation``). A survivor that is equivalent to the
original (no test can tell them apart) is listed in ``EQUIVALENT`` below with the reason, and
shown with it; any other survivor is a missing test.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts._bench import ROOT, write_section

WORK = ROOT / "build" / "mutation"  # --work names another (one per module, to keep earlier runs)

#: mutmut's exit-code meaning (mutmut.stats.status_by_exit_code), grouped as the report counts them.
KILLED = {1, 3}
TIMEOUT = {-24, 24, 36, 152, 255}
SURVIVED = {0}

#: Survivors no test can kill, by mutant name, with the reason they behave exactly as the original.
EQUIVALENT: dict[str, str] = {
    "api.siwe.x__field_name__mutmut_3": '`tag.rstrip("XX :XX")`: rstrip takes a set of characters and no tag ends in X',
    "api.siwe.x__parse_time__mutmut_57": '`if fraction or True`: with no fraction, `int("".ljust(6, "0"))` is 0 as well',
    "api.siwe.x__signature_bytes__mutmut_35": "`int.from_bytes(raw[:32])`: big-endian is the default byte order (Python >= 3.11)",
    "api.siwe.x__signature_bytes__mutmut_42": "`int.from_bytes(raw[32:64])`: big-endian is the default byte order (Python >= 3.11)",
    "api.siwe.x__utc_now__mutmut_7": "`now.astimezone(None)`: the same instant in the local zone; every caller compares "
    "instants or passes it through SiweMessage, which converts it to UTC",
    "api.auth.xǁAuthenticatorǁauthenticate__mutmut_36": "`leeway=0` dropped: 0 is PyJWT's default leeway",
    "api.auth.xǁAuthenticatorǁtoken__mutmut_19": "`max_lifetime=CHALLENGE_LIFETIME` dropped: siwe.verify's default is the "
    "same 10 minutes (a test pins CHALLENGE_LIFETIME)",
    "api.auth.xǁAuthenticatorǁtoken__mutmut_98": '`algorithm="HS256"` dropped: HS256 is PyJWT\'s default (a test reads '
    "the token header)",
    "audit.rules.x__approval_error__mutmut_15": "the trial emergency's `terms=None`: `approved_now` reads only its "
    "approvers and the roles they approved in",
    "audit.rules.x_approved_now__mutmut_15": "`role != ADMIN`: swaps which of the two flags an approver sets; the "
    "answer needs both, so it is the same",
    "audit.rules.x_propose_emergency__mutmut_21": "`error = None` for the proposer's approval: one approval can never "
    "approve an emergency (an ADMIN and an AUDITOR are needed), is never a repeat and never the 17th, so "
    "`_approval_error` is always None there",
    "audit.rules.x_propose_emergency__mutmut_24": "`_approval_error(state, emergency, None)`: None for the same reason",
    "audit.verify.x__start_pool__mutmut_7": '`set_forkserver_preload(["XXaudit._sigcheckXX"])`: the forkserver skips a '
    "preload module it cannot import; preloading only spares each worker the import",
    "audit.verify.x__start_pool__mutmut_8": '`set_forkserver_preload(["AUDIT._SIGCHECK"])`: the same',
    "audit.verify.x_warm_up__mutmut_17": '`check_chunk(b"XXXX", [])`: a chunk of no jobs never reads the domain separator',
    "audit.verify.x__deadline_word__mutmut_4": "`to_bytes(32)`: big-endian is the default byte order (Python >= 3.11)",
    "audit.verify.xǁVerifierǁ_check_calldata__mutmut_6": "an automaton is built even with no texts: one of no "
    "needles finds nothing (None only spares the scan)",
    "audit.verify.xǁVerifierǁ_check_calldata__mutmut_67": "`size > SCAN_BYTES`: the calldata is cut into pieces one "
    "transaction later; where it is cut changes the memory used, not what is found (a text is only a finding "
    "inside one transaction)",
    "audit.verify.x__domain_separator__mutmut_18": '`"deadline": 1` in the sample message: the header '
    "(0x1901 || domain separator) taken from it does not depend on the message",
    "audit._sigcheck.x__recover__mutmut_17": "`key.format(compressed=None)`: coincurve tests the flag for truth "
    "(`33 if compressed else 65`), so None gives the same 65-byte uncompressed key",
    "audit._sigcheck.x__verified__mutmut_10": "`except ValueError: return True`: unreachable. `key.verify` raises "
    "ValueError only for a digest not of 32 bytes (keccak's always is) or DER that libsecp256k1 cannot parse, and "
    "`_der` always writes minimal DER integers of at most 33 bytes (an r or s at or above the curve order parses as 0 "
    "and verifies False); checked on all 169 pairs of r, s from 0, 1, 0x7f, 0x80, 0xff, 2^255 +/- 1, n - 1, n, n + 1, "
    "2^256 - 1, 1 << 247, 0x80 << 248 and 200,000 random ones: no ValueError",
    "audit.trail.xǁAuditorǁtrail__mutmut_1": "`from_block: int = 1`: block 0 (genesis) holds no ledger event, so "
    "skipping it skips nothing",
    "audit.trail.xǁAuditorǁverify__mutmut_1": "`from_block: int = 1`: block 0 (genesis) holds no ledger event or "
    "transaction",
    "audit.trail.xǁAuditorǁtrail__mutmut_62": '`args.get("grantId", None)` for an event without a grant id: the '
    "grants are keyed by the grant ids of GrantRecorded events (0x-hex strings), never None, so the lookup finds "
    "no grant either way",
    "audit.trail.xǁAuditorǁtrail__mutmut_64": '`args.get("grantId")` (default None): the same',
    "audit.trail.xǁAuditorǁtrail__mutmut_68": '`args.get("grantId", "XXXX")`: no grant id is "XXXX" (0x-hex '
    "strings), the same",
    "audit.trail.xǁAuditorǁ__init____mutmut_1": "`self.ledger = None`: no code reads `Auditor.ledger` (the trails "
    "are given the ledger directly)",
    "audit.merkle.x_root__mutmut_5": "`_leaf_hashes(leaves, len(leaves), None)`: the name is only in the error for a "
    "size above the number of leaves, and `root` asks for exactly that number",
    "audit.merkle.x_root__mutmut_9": '`_leaf_hashes(…, "XXsizeXX")`: the same',
    "audit.merkle.x_root__mutmut_10": '`_leaf_hashes(…, "SIZE")`: the same',
    "audit.merkle.x__subproof__mutmut_28": "`whole = None` where the recursion leaves the original tree: `whole` is "
    "only read as `not whole`, and None is as falsy as False",
    "audit.merkle.xǁMerkleLogǁextend__mutmut_33": "`if want >= have`: with `want == have` the range of pairs to hash "
    "is empty and `b''.join` of nothing adds nothing to the level",
    "audit.verify.xǁ_Replayǁapply__mutmut_10": "`timestamp=None` for the transition: the replay sets the time again "
    "before every check, and the one transition that reads it (an approval's `activated_at`) is compared only "
    "with 0 by the release check, which None is not either",
}


def copy_checkout() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = Path(raw.decode())
        source = ROOT / rel
        if rel.parts[0] in {"node_modules", ".venv"} or not source.is_file():
            continue
        target = WORK / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def configure(
    modules: list[str],
    tests: list[str],
    extra: list[str] = (),  # type: ignore[assignment]
    isolation: str = "fork",
    timeout_multiplier: float = 15.0,
) -> None:
    """Append mutmut's table: mutate ``modules``, run ``tests``, copy every other top-level entry.

    ``isolation``: where each mutant's process is forked from (mutmut's ``process_isolation``):
    ``fork``, mutmut's own process, which ran the tests once to map them to functions; ``forkserver``,
    a process that only imported them, so each mutant starts as a fresh process would (the
    verifier's check-2 pool is then started under each mutant by the same code as in production).

    ``timeout_multiplier``: mutmut stops a mutant (SIGXCPU, counted as timed out) after ``(t + 1) *
    timeout_multiplier`` seconds of wall time, ``t`` the time the tests of its function took unmutated (and
    twice that of CPU time). mutmut's default, 15, lets a mutant that loops forever in a function whose
    tests take 14 s run for almost 4 minutes.
    """
    source_paths = sorted({m.split("/", 1)[0] for m in modules})
    also_copy = sorted(p.name for p in WORK.iterdir() if p.name not in source_paths and p.name != "pyproject.toml")
    pytest_args = ["-p", "no:randomly", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", *extra]
    table = (
        "\n[tool.mutmut]\n"
        f"source_paths = {json.dumps(source_paths)}\n"
        f"only_mutate = {json.dumps(modules)}\n"
        f"also_copy = {json.dumps(also_copy)}\n"
        f"pytest_add_cli_args = {json.dumps(pytest_args)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"process_isolation = {json.dumps(isolation)}\n"
        f"timeout_multiplier = {float(timeout_multiplier)!r}\n"
    )
    with (WORK / "pyproject.toml").open("a") as fh:
        fh.write(table)


def load_results(modules: list[str]) -> dict[str, dict[str, int | None]]:
    """``{module: {mutant name: exit code}}`` from mutmut's ``mutants/<module>.meta`` files."""
    results: dict[str, dict[str, int | None]] = {}
    for module in modules:
        meta = WORK / "mutants" / (module + ".meta")
        data = json.loads(meta.read_text()) if meta.is_file() else {}
        results[module] = dict(data.get("exit_code_by_key", {}))
    return results


def forget_survivors(modules: list[str]) -> int:
    """Clear the result of every survivor and no-test mutant, so that ``mutmut run`` (which runs the
    mutants without a result) tests them again; how many it will run (also those a stopped run never
    reached)."""
    cleared = 0
    for module in modules:
        meta = WORK / "mutants" / (module + ".meta")
        if not meta.is_file():
            continue
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        for name, code in codes.items():
            if code in SURVIVED or code not in KILLED | TIMEOUT:
                codes[name] = None
                cleared += 1
        meta.write_text(json.dumps(data, indent=4))
    return cleared


def diff_of(name: str) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name], cwd=WORK, capture_output=True, text=True, check=False
    )
    return shown.stdout.strip()


def report(results: dict[str, dict[str, int | None]], seconds: float, tests: list[str]) -> tuple[str, list[str]]:
    rows = [
        "| module | mutants | killed | timed out | survived | no test / other | score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    survivors: list[str] = []
    for module, codes in results.items():
        counts: Counter[str] = Counter()
        for name, code in sorted(codes.items()):
            if code in KILLED:
                counts["killed"] += 1
            elif code in TIMEOUT:
                counts["timeout"] += 1
            elif code in SURVIVED:
                counts["survived"] += 1
                survivors.append(name)
            else:
                counts["other"] += 1
        total = sum(counts.values())
        score = (counts["killed"] + counts["timeout"]) / total * 100 if total else 0.0
        rows.append(
            f"| `{module}` | {total} | {counts['killed']} | {counts['timeout']} | {counts['survived']} "
            f"| {counts['other']} | {score:.1f}% |"
        )
    body = "\n".join(rows)
    body += f"\n\nTests run against each mutant: {', '.join(f'`{t}`' for t in tests)}; {seconds:.0f} s in all."
    if survivors:
        body += "\n\nSurvivors (each equivalent to the original, for the reason given):\n\n"
        body += "\n".join(
            f"* `{name}`: {EQUIVALENT.get(name, '**not explained: a missing test**')}" for name in survivors
        )
    else:
        body += "\n\nNo mutant survived."
    return body, survivors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--tests", nargs="+", required=True, help="test files run against every mutant")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="rerun only the previous run's survivors and no-test mutants (same modules), and those of every "
        "function edited since, against the current tests",
    )
    parser.add_argument("--work", help="scratch directory (default build/mutation)")
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, e.g. \"-k 'not slow'\"")
    parser.add_argument("--only", nargs="+", default=[], help="mutant name globs to test (default: all)")
    parser.add_argument(
        "--isolation",
        choices=["fork", "forkserver"],
        default="fork",
        help="fork each mutant from mutmut's process (fork) or from a clean fork server",
    )
    parser.add_argument(
        "--timeout-multiplier",
        type=float,
        default=15.0,
        help="a mutant is stopped as timed out after (its tests' unmutated time + 1 s) times this (mutmut: 15)",
    )
    parser.add_argument(
        "--test-timeout",
        type=float,
        help="fail any one test that runs longer than this many seconds (pytest-timeout, PYTEST_TIMEOUT): "
        "a mutant that loops forever is killed by the test it hangs in",
    )
    parser.add_argument("modules", nargs="+", help="source files to mutate, e.g. api/siwe.py")
    args = parser.parse_args()
    global WORK
    if args.work:
        WORK = (ROOT / args.work).resolve()
    extra = shlex.split(args.pytest_args)
    for path in [*args.modules, *args.tests]:
        if not (ROOT / path).is_file():
            parser.error(f"{path}: no such file")

    names: list[str] = list(args.only)
    if args.survivors:
        if not forget_survivors(args.modules):
            parser.error(f"no previous survivors or untested mutants in {WORK}")
        for test in args.tests:  # the new tests, into the copy and into mutmut's own copy of it
            for target in (WORK / test, WORK / "mutants" / test):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / test, target)
        for module in args.modules:  # a module edited since: mutmut redoes the mutants of its changed functions
            shutil.copy2(ROOT / module, WORK / module)
        pyproject = WORK / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().split("\n[tool.mutmut]\n", 1)[0])
        configure(args.modules, args.tests, extra, args.isolation, args.timeout_multiplier)
    else:
        copy_checkout()
        configure(args.modules, args.tests, extra, args.isolation, args.timeout_multiplier)
        os.makedirs(WORK / "mutants", exist_ok=True)
        (WORK / "mutants" / "node_modules").symlink_to(ROOT / "node_modules")
    env = dict(os.environ, QCL_PROJECT_ROOT=str(ROOT))
    if args.test_timeout is not None:  # read by each mutant's pytest; not part of mutmut's cached settings
        env["PYTEST_TIMEOUT"] = str(args.test_timeout)
    env.pop("PYTHONPATH", None)  # the mutants, not the checkout, must be what the tests import
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs), *names],
        cwd=WORK,
        env=env,
        check=False,
    )
    seconds = time.monotonic() - started
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
        return run.returncode

    results = load_results(args.modules)
    if args.only:  # the mutants not asked for were not run
        results = {
            module: {n: c for n, c in codes.items() if any(fnmatch.fnmatch(n, p) for p in args.only)}
            for module, codes in results.items()
        }
    body, survivors = report(results, seconds, args.tests)
    print(body)
    for name in survivors:
        print(f"\n# {name}\n{diff_of(name)}")
    if not args.no_write:
        write_section("mutation", "Mutation testing (`make mutation`, mutmut)", body)
    unexplained = [name for name in survivors if name not in EQUIVALENT]
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
