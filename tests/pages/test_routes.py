"""The pages' routes without a browser: HTML with a same-origin policy, docs from local files."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.pages import PAGES, VENDOR
from api.settings import Settings
from tests.conftest import Deployed


def _client(deployed: Deployed, tmp_path: Path) -> TestClient:
    settings = Settings(env="test", data_dir=tmp_path)
    return TestClient(create_app(settings, ledger=deployed.ledger), raise_server_exceptions=False)


def test_pages_and_docs_reference_only_local_assets(deployed: Deployed, tmp_path: Path) -> None:
    http = _client(deployed, tmp_path)
    for path in [*PAGES, "/docs", "/redoc"]:
        response = http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        if path in PAGES:  # the shared head and site header are included, no marker left
            assert "<!--#include" not in response.text, path
            assert '<meta charset="utf-8">' in response.text and 'id="lang-switch"' in response.text, path
        sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert sources, path
        for source in sources:
            assert source.startswith(("/", "#")), f"{path} loads {source}"
            if source.startswith("/static/"):
                assert http.get(source).status_code == 200, f"{path}: {source} is not served"
    assert (VENDOR / "versions.json").is_file()
    assert "cdn.redoc.ly" not in (VENDOR / "redoc" / "redoc.standalone.js").read_text()
    assert "/openapi.json" in http.get("/docs").text
    assert http.get("/static/vendor/nothing.js").status_code == 404
