"""Settings refuse what production must not run with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import DEV_PASSPHRASE, Settings

GOOD = {
    "env": "production",
    "chain": "https://besu.example.internal:8545",
    "operator_key": "0x" + "12" * 32,
    "relayer_key": "0x" + "34" * 32,
    "manifest": "/etc/qcl/deployment.json",
    "vault_passphrase": "correct horse battery staple 2026",
    "database_url": "postgresql+psycopg://qcl@db/qcl",
    "jwt_secret": "k" * 48,
}


def test_production_settings_accepted() -> None:
    settings = Settings(**GOOD)  # type: ignore[arg-type]
    assert settings.vault_database_url == GOOD["database_url"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"vault_passphrase": DEV_PASSPHRASE}, "QCL_VAULT_PASSPHRASE"),
        ({"vault_passphrase": "short"}, "QCL_VAULT_PASSPHRASE"),
        ({"operator_key": None}, "QCL_OPERATOR_KEY"),
        (
            {"operator_key": "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"},
            "well-known development key",
        ),
        ({"chain": "anvil"}, "JSON-RPC URL"),
        ({"manifest": None}, "QCL_MANIFEST"),
        ({"database_url": None}, "QCL_DATABASE_URL"),
        ({"jwt_secret": "short"}, "QCL_JWT_SECRET"),
    ],
)
def test_production_refuses_dev_values(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{**GOOD, **change})  # type: ignore[arg-type]


def test_dev_defaults_and_unknown_chain() -> None:
    settings = Settings(env="dev")
    assert settings.vault_database_url.startswith("sqlite:///") and settings.crypto_profile == "aes-256-gcm"
    with pytest.raises(ValidationError, match="QCL_CHAIN must be one of"):
        Settings(chain="geth")
