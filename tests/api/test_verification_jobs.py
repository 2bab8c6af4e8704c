"""Verification jobs live in the database: one queued through the API is read back by another API
process, and a job a crashed worker left running runs again when a worker starts."""

from __future__ import annotations

import time

from api.background import VerificationJobs, verification_runner
from db.models import VerificationJobRow
from tests.api.conftest import Platform


def _wait_done(jobs: VerificationJobs, job_id: str, timeout: float = 60.0) -> str:
    deadline = time.time() + timeout
    while (job := jobs.get(job_id)) is not None and job.status in ("queued", "running"):
        assert time.time() < deadline, "the job never finished"
        time.sleep(0.05)
    assert job is not None
    return job.status


def test_a_job_left_running_by_a_crashed_worker_runs_again(platform: Platform) -> None:
    p = platform
    jobs: VerificationJobs = p.http.app.state.verifications  # type: ignore[attr-defined]
    jobs.stop()  # the worker is down
    job = jobs.start(owner=p.auditor.address, from_block=0, to_block=p.deployed.ledger.head_block(), total_events=None)
    assert job is not None
    with p.vault.store.session() as s:  # it had started when the worker was killed
        row = s.get(VerificationJobRow, job.id)
        assert row is not None
        row.status, row.started_at = "running", time.time()
    # another process's view (a second API process): the same row
    other = VerificationJobs(store=p.vault.store)
    assert other.get(job.id).status == "running"  # type: ignore[union-attr]
    restarted = VerificationJobs(
        store=p.vault.store,
        run=verification_runner(
            ledger=p.deployed.ledger,
            vault=p.vault,
            indexer=p.http.app.state.indexer,
            workers=1,  # type: ignore[attr-defined]
        ),
    )
    restarted.start_runner()
    try:
        assert _wait_done(restarted, job.id) == "done"
    finally:
        restarted.stop()
    answer = p.auditor.call("GET", f"/v1/audit/verifications/{job.id}")
    assert answer["status"] == "done" and answer["report"]["ok"] is True
