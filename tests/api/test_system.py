"""GET /health and GET /v1/chain exactly as SPEC §6; problem+json errors; fail closed."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from chain_client import CompilationResult, start_node
from tests.conftest import Deployed, deploy_fresh


def _client(deployed: Deployed, tmp_path: Path) -> TestClient:
    settings = Settings(env="test", data_dir=tmp_path)
    return TestClient(create_app(settings, ledger=deployed.ledger), raise_server_exceptions=False)


def test_health_reports_chain_and_contracts(deployed: Deployed, tmp_path: Path) -> None:
    response = _client(deployed, tmp_path).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["chain_id"] == deployed.node.chain_id
    assert body["head_block"] == deployed.node.w3.eth.block_number
    assert body["contracts"] == deployed.ledger.deployment.contracts
    assert set(body["contracts"]) == {"ConsentLedger", "AuditAnchor"}


def test_chain_serves_the_eip712_domain(deployed: Deployed, tmp_path: Path) -> None:
    body = _client(deployed, tmp_path).get("/v1/chain").json()
    assert body == {
        "chain_id": deployed.node.chain_id,
        "contracts": deployed.ledger.deployment.contracts,
        "domain": {
            "name": "Quanchenglian",
            "version": "1",
            "chainId": deployed.node.chain_id,
            "verifyingContract": deployed.ledger.deployment.contracts["ConsentLedger"],
        },
    }


def test_unknown_path_is_problem_json(deployed: Deployed, tmp_path: Path) -> None:
    response = _client(deployed, tmp_path).get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_openapi_lists_the_system_routes(deployed: Deployed, tmp_path: Path) -> None:
    paths = _client(deployed, tmp_path).get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/chain"} <= set(paths)


def test_health_is_503_when_the_chain_is_gone(compiled: CompilationResult, tmp_path: Path) -> None:
    node = start_node("anvil", log_dir=tmp_path)
    deployed = deploy_fresh(node, compiled)
    client = _client(deployed, tmp_path)
    assert client.get("/health").status_code == 200
    node.stop()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "chain_unavailable" and body["status"] == 503
    assert "Traceback" not in response.text


def test_the_routers_matched_first_share_no_path_with_the_others() -> None:
    """create_app includes the release and grant routers first (fewer patterns tried per request):
    sound only while no path one of them serves is matched by another router's route, nor the reverse."""
    from api.app import DOCUMENTED, HOT

    def sample(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "0x" + "ab" * 32, path)

    hot = [route for router in HOT for route in router.routes if isinstance(route, APIRoute)]
    others = [
        route for router in DOCUMENTED if router not in HOT for route in router.routes if isinstance(route, APIRoute)
    ]
    assert len(hot) >= 8 and len(others) >= 40
    for first in hot:
        for other in others:
            assert not first.path_regex.match(sample(other.path)), (first.path, other.path)
            assert not other.path_regex.match(sample(first.path)), (other.path, first.path)
