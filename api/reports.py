"""Auditors' reports: releases of a subject, a department or a period, as JSON and as HTML.

The HTML page is self-contained (no scripts, no external assets): tables of grants and releases
and an inline SVG chart of releases per day per department.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from db.release_log import LogEntry

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


@dataclass
class Report:
    title: str
    generated_at: int
    scope: dict[str, Any]
    releases: list[dict[str, Any]] = field(default_factory=list)
    by_department: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, dict[str, int]] = field(default_factory=dict)
    emergency_releases: int = 0
    verification: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build(
    entries: list[LogEntry],
    *,
    names: dict[str, str],
    subject: str | None = None,
    department: str | None = None,
    from_time: int | None = None,
    to_time: int | None = None,
    verification: dict[str, Any] | None = None,
    now: int | None = None,
) -> Report:
    """Select releases by subject, department (grantee) and period, and summarise them."""
    chosen = [
        e
        for e in entries
        if (subject is None or e.subject == subject)
        and (department is None or e.grantee == department)
        and (from_time is None or e.released_at >= from_time)
        and (to_time is None or e.released_at < to_time)
    ]
    what = [
        f"subject {names.get(subject, subject)}" if subject else "",
        f"department {names.get(department, department)}" if department else "",
    ]
    title = "Release report" + (": " + ", ".join(w for w in what if w) if any(what) else "")
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    for e in chosen:
        day = datetime.fromtimestamp(e.released_at, UTC).strftime("%Y-%m-%d")
        by_day[day][names.get(e.grantee, e.grantee)] += 1
    return Report(
        title=title,
        generated_at=int(now if now is not None else datetime.now(UTC).timestamp()),
        scope={"subject": subject, "department": department, "from_time": from_time, "to_time": to_time},
        releases=[
            asdict(e) | {"grantee_name": names.get(e.grantee), "subject_name": names.get(e.subject)} for e in chosen
        ],
        by_department=dict(Counter(names.get(e.grantee, e.grantee) for e in chosen)),
        by_day={day: dict(counts) for day, counts in sorted(by_day.items())},
        emergency_releases=sum(e.kind == "emergency" for e in chosen),
        verification=verification,
    )


def _chart(by_day: dict[str, dict[str, int]]) -> str:
    """Grouped bars: one group per day, one bar per department."""
    days = list(by_day)
    departments = sorted({d for counts in by_day.values() for d in counts})
    if not days:
        return "<p>No releases in this scope.</p>"
    peak = max(max(c.values()) for c in by_day.values())
    width, height, pad = max(360, 70 * len(days)), 220, 40
    group = (width - pad) / len(days)
    bar = max(4.0, (group - 10) / max(1, len(departments)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 60}" role="img" '
        f'aria-label="Releases per day per department">',
        f'<line x1="{pad}" y1="{height}" x2="{width}" y2="{height}" stroke="#333"/>',
        f'<text x="4" y="14" font-size="11">{peak}</text><text x="4" y="{height}" font-size="11">0</text>',
    ]
    for i, day in enumerate(days):
        x0 = pad + i * group + 5
        for j, dept in enumerate(departments):
            count = by_day[day].get(dept, 0)
            h = (height - 20) * count / peak
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                f'fill="{_PALETTE[j % len(_PALETTE)]}"><title>{html.escape(dept)}: {count}</title></rect>'
            )
        parts.append(f'<text x="{x0:.1f}" y="{height + 14}" font-size="10">{html.escape(day)}</text>')
    for j, dept in enumerate(departments):
        y = height + 30 + 12 * (j % 2)
        x = pad + (j // 2) * 220
        parts.append(
            f'<rect x="{x}" y="{y - 8}" width="8" height="8" fill="{_PALETTE[j % len(_PALETTE)]}"/>'
            f'<text x="{x + 12}" y="{y}" font-size="10">{html.escape(dept)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{datetime.fromtimestamp(r['released_at'], UTC):%Y-%m-%d %H:%M:%S}</td>"
        f"<td>{esc(r['grantee_name'] or r['grantee'])}</td><td>{esc(r['subject_name'] or r['subject'])}</td>"
        f"<td>{esc(r['kind'])}</td><td><code>{esc(r['resource'][:10])}…</code></td>"
        f"<td><code>{esc(r['tx_hash'][:12])}…</code></td></tr>"
        for r in report.releases
    )
    depts = "".join(f"<tr><td>{esc(d)}</td><td>{n}</td></tr>" for d, n in sorted(report.by_department.items()))
    verdict = ""
    if report.verification is not None:
        ok = report.verification.get("ok")
        verdict = (
            f"<p class='{'ok' if ok else 'bad'}'>Verification: "
            f"{'no violation found' if ok else str(len(report.verification.get('violations', []))) + ' violation(s)'}"
            f" ({report.verification.get('releases', 0)} releases checked)</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(report.title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}th{{background:#f3f3f3}}.ok{{color:#2a7}}.bad{{color:#c22}}</style>
</head><body>
<h1>{esc(report.title)}</h1>
<p>Generated {datetime.fromtimestamp(report.generated_at, UTC):%Y-%m-%d %H:%M UTC} by the Quanchenglian audit service.
{len(report.releases)} release(s), {report.emergency_releases} under emergency access.</p>
{verdict}
<h2>Releases over time, per department</h2>
{_chart(report.by_day)}
<h2>Per department</h2>
<table><tr><th>department</th><th>releases</th></tr>{depts}</table>
<h2>Releases</h2>
<table><tr><th>time (UTC)</th><th>department</th><th>subject</th><th>under</th><th>resource</th><th>transaction</th></tr>
{rows}</table>
</body></html>
"""
