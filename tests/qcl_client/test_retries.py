"""The SDK sends an idempotent request again after a lost connection or a 503, and nothing else."""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account

import qcl_client
from qcl_client import ApiError, QclClient


def _client(answers: list[object], monkeypatch: pytest.MonkeyPatch) -> tuple[QclClient, list[bytes]]:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    monkeypatch.setattr(qcl_client.time, "sleep", lambda _s: None)
    http = httpx.Client(base_url="http://qcl.test", transport=httpx.MockTransport(handler))
    return QclClient(http=http, account=Account.create()), seen


def test_lost_connections_and_503_are_sent_again_with_the_same_body(monkeypatch: pytest.MonkeyPatch) -> None:
    client, seen = _client(
        [
            httpx.ReadError("connection closed"),
            httpx.Response(503, json={"code": "release_pending", "detail": "send the same signed request again"}),
            httpx.Response(201, json={"release_id": "0x01"}),
        ],
        monkeypatch,
    )
    assert client.call_idempotent("POST", "/v1/releases", json={"message": {"requestId": "0x02"}}) == {
        "release_id": "0x01"
    }
    assert len(seen) == 3 and len(set(seen)) == 1


def test_a_refusal_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    client, seen = _client([httpx.Response(403, json={"code": "grant_revoked", "detail": "revoked"})], monkeypatch)
    with pytest.raises(ApiError) as refused:
        client.call_idempotent("POST", "/v1/releases", json={})
    assert (refused.value.status, refused.value.code, len(seen)) == (403, "grant_revoked", 1)


def test_gives_up_after_the_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    client, seen = _client([httpx.ReadError("closed")] * 3, monkeypatch)
    with pytest.raises(httpx.ReadError):
        client.call_idempotent("GET", "/v1/releases/0x01", attempts=3)
    assert len(seen) == 3
