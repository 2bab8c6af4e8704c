"""Sample a running process with py-spy during one phase of a benchmark and summarise where its time went.

py-spy writes collapsed stacks (``frame;frame;frame count``); the summary counts, for each function, the
samples in which it is on the stack (inclusive) and those in which it is the innermost frame (self).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sampled(pid: int, out: Path, rate: int = 100, *, subprocesses: bool = False) -> Iterator[None]:
    """Record ``pid`` with py-spy into ``out`` while the block runs: only the thread holding the GIL,
    so the samples show where the process spends CPU, not where its threads wait (with
    ``subprocesses``, its child processes too: the API processes of `qcl serve --workers N`)."""
    spy = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy")
    proc = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(out), "--gil"]
        + (["--subprocesses"] if subprocesses else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def summarise(raw: Path, top: int = 15) -> tuple[int, list[tuple[str, int, int]]]:
    """Total samples and the ``top`` functions by inclusive samples: (function, inclusive, self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        total += n
        for f in set(frames[1:]):  # the first frame is the thread
            inclusive[f] += n
        own[frames[-1]] += n
    rows = [(f, n, own.get(f, 0)) for f, n in inclusive.most_common(top * 3)]
    return total, rows[:top]


def top_self(raw: Path, top: int = 15) -> list[tuple[str, int]]:
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            own[_frame(stack.split(";")[-1])] += int(count)
    return own.most_common(top)


_FRAMEWORK = "\0framework"
_OURS = ("(api/", "(vault/", "(db/", "(chain_client/", "(audit/", "(qcl_client/")


def _framework_only(stack: str) -> bool:
    """A request's sample in which no frame of this project runs except the body-size guard."""
    if "httptools_impl" not in stack:
        return False
    return not any(tag in frame for frame in stack.split(";") for tag in _OURS if "api/middleware.py" not in frame)


#: Where a request's CPU goes, by the frame that names the step (first match on the stack wins
#: for the step's share; the shares of nested steps are not subtracted from their parents; "a|b"
#: matches either frame).
STEPS = [
    ("HTTP and ASGI alone (uvicorn, Starlette, FastAPI: parsing, routing, validation, JSON)", _FRAMEWORK),
    ("dependencies: login and roles (`current_member`)", "authenticate"),
    ("release: checks before the intent (`prepare_release`: signature, document)", "prepare_release"),
    ("database group commit (release intents, grant terms)", "_commit (db/batch"),
    ("release relayer: one grouped transaction (`_record_group`, its thread)", "_record_group"),
    ("  of which: receipt applied, log appended (`_apply`)", "_apply (vault"),
    ("release: document sealed to the grantee (`deliver`)", "deliver (vault"),
    ("grant relayed (`record` route: terms, calldata, digest, terms kept)", "record (api/routers/grants"),
    ("grants/revocations/pauses: group commit thread", "_run (chain_client/relayer/group"),
    (
        "worker threads: hops to a thread (anyio's `to_thread`, `api.threads.in_thread`)",
        "run_sync_in_worker_thread|in_thread (api/threads",
    ),
    ("background: indexer, checkpoints, clocks", "_run (api/background"),
]


def steps(raw: Path) -> tuple[int, list[tuple[str, float]]]:
    """Total samples and the share (%) of each of :data:`STEPS` in them."""
    total = 0
    counts = dict.fromkeys((label for label, _ in STEPS), 0)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for label, key in STEPS:
            if (key == _FRAMEWORK and _framework_only(stack)) or (
                key != _FRAMEWORK and any(k in stack for k in key.split("|"))
            ):
                counts[label] += int(count)
    return total, [(label, 100 * n / total if total else 0.0) for label, n in counts.items()]
