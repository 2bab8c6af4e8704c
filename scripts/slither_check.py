"""Slither on the Hardhat build output, as the security review ran it; a finding not in the
checked-in triage file (contracts/slither-triage.json) fails `make lint`.

Usage: .venv-slither/bin/python scripts/slither_check.py [--update]
(`--update` writes every current finding into the triage file with an empty reason, to be filled
in by hand; a reviewer must say why each accepted finding is harmless.)

Slither runs in its own virtual environment (.venv-slither, pinned by constraints-slither.txt)
because it requires web3 < 8 while the project uses web3 8. Test contracts, mocks and
OpenZeppelin are not analysed (--filter-paths).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "contracts" / "slither-triage.json"
ARTIFACTS = "build/hardhat/artifacts"
FILTER = "node_modules|contracts/test|contracts/mocks"


def _key(result: dict) -> str:
    """A finding's stable key: its detector and its description without line numbers."""
    text = re.sub(r"#\d+(-\d+)?", "", result.get("description", "")).strip()
    return f"{result.get('check')}: {' '.join(text.split())}"


def _latest_build(scratch: Path) -> Path:
    """A copy of the Hardhat artifacts holding only the newest build-info (older builds of other
    sources stay in the directory and would be analysed too)."""
    source = ROOT / ARTIFACTS
    infos = sorted((source / "build-info").glob("*.output.json"), key=lambda f: f.stat().st_mtime)
    if not infos:
        raise SystemExit("no Hardhat build in build/hardhat (run `hardhat build`)")
    newest = infos[-1].name.removesuffix(".output.json")
    target = scratch / "artifacts"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("build-info"))
    (target / "build-info").mkdir()
    for suffix in (".json", ".output.json"):
        shutil.copy2(source / "build-info" / (newest + suffix), target / "build-info" / (newest + suffix))
    return target


def main() -> int:
    slither = str(Path(sys.executable).with_name("slither"))
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            slither,
            ".",
            "--hardhat-ignore-compile",
            "--hardhat-artifacts-directory",
            str(_latest_build(Path(scratch))),
            "--filter-paths",
            FILTER,
            "--json",
            "-",
        ]
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    try:
        output = json.loads(run.stdout)
    except ValueError:
        print(run.stdout[-2000:], run.stderr[-4000:], sep="\n")
        print("slither did not produce a report (is the Hardhat build in build/hardhat?)")
        return 2
    if not output.get("success"):
        print(output.get("error"))
        return 2
    findings = {_key(r): r for r in output.get("results", {}).get("detectors", [])}
    triage: dict[str, str] = json.loads(TRIAGE.read_text()) if TRIAGE.is_file() else {}
    if "--update" in sys.argv:
        merged = {k: triage.get(k, "") for k in sorted(findings)}
        TRIAGE.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
        print(f"{len(merged)} findings written to {TRIAGE.relative_to(ROOT)}")
        return 0
    new = sorted(set(findings) - set(triage))
    stale = sorted(set(triage) - set(findings))
    unexplained = sorted(k for k in findings if k in triage and not triage[k].strip())
    print(f"slither: {len(findings)} findings, {len(findings) - len(new)} triaged")
    for key in stale:
        print(f"  (no longer found; remove from the triage file) {key}")
    for key in unexplained:
        print(f"  UNEXPLAINED (give a reason in the triage file): {key}")
    for key in new:
        result = findings[key]
        print(f"  NEW [{result.get('impact')}/{result.get('confidence')}] {result.get('description', '').strip()}")
    return 1 if new or unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
