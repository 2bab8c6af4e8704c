"""`qcl bench soak` (scripts/bench_soak.py) for a few seconds at a low rate, on `qcl dev` and on
`qcl worker` + `qcl serve` (PostgreSQL): every check is made, the correctness checks pass, and the
soak section is written into the given copy of BENCHMARKS.md, the other sections untouched. The statistical checks (p99 and memory stable, growth with the data) mean
something over minutes on a quiet machine, not over 18 s beside other tests: here they must only be
there (the 10-minute run's figures are in BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("deployment", ["dev", "split"])
def test_a_short_soak_passes_its_checks_and_writes_its_section(deployment: str, tmp_path: Path) -> None:
    key = "soak" if deployment == "dev" else "soak-split"
    original = (ROOT / "BENCHMARKS.md").read_text()
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(original)
    command = [sys.executable, str(ROOT / "scripts" / "bench_soak.py"), "--minutes", "0.3", "--interval", "2"]
    command += ["--release-rate", "4", "--grant-rate", "2", "--read-rate", "2", "--subjects", "3"]
    command += ["--deployment", deployment, "--postgres", PG_ADMIN_URL]
    done = subprocess.run([*command, "--output", str(output)], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode in (0, 1), done.stdout[-4000:] + done.stderr[-4000:]  # 1: a check failed

    text = output.read_text()
    section = re.search(rf"<!-- {key}:start -->\n(.*?)<!-- {key}:end -->\n", text, re.S)
    assert section is not None
    body = section.group(1)
    assert body.startswith("## Soak: a steady load for 0.3 minutes (scripts/bench_soak.py)")
    checks = dict(re.findall(r"^\| ([^|]+?) \| (pass|\*\*FAIL\*\*) \|", body, re.M))
    # the service's processes each have their memory checked: the API, and in a split deployment the worker
    services = ["API"] if deployment == "dev" else ["API", "worker"]
    assert [name for name in checks if name.endswith(" resident memory")] == [f"{s} resident memory" for s in services]
    assert len(checks) == 8 + len(services), checks
    statistical = {name for name in checks if "stable" in name or "memory" in name or "grows" in name}
    assert len(statistical) == 4 + len(services), checks
    assert all(checks[name] == "pass" for name in checks.keys() - statistical), checks
    assert done.returncode == (0 if all(result == "pass" for result in checks.values()) else 1)
    assert re.search(r"\| 0 errors \|", body)
    assert "18 s |" in body  # the last row of the table: the run's end
    # everything else is as it was, and the section comes after RELIABILITY
    assert text.replace(section.group(0), "").rstrip("\n") == re.sub(
        rf"<!-- {key}:start -->.*?<!-- {key}:end -->\n", "", original, flags=re.S
    ).rstrip("\n")
    assert text.index("<!-- reliability:end -->") < text.index(f"<!-- {key}:start -->")
    # each row: the CPU of the processes that do the work
    assert re.search(r"\| \d+ / \d+ " + (r"/ \d+ " if deployment == "split" else "") + r"\| [\d.]+ \| [\d,]+ \|", body)
    assert (ROOT / "BENCHMARKS.md").read_text() == original
