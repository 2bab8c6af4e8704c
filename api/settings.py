"""Configuration: the one place that reads the environment (prefix ``QCL_``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chain_client import LOCAL_KINDS
from chain_client.relayer import PIPELINE_DEPTH
from vault.keyring import DEV_PASSPHRASES

DEV_PASSPHRASE = "dev-only-insecure-passphrase"


class Settings(BaseSettings):
    """Every setting of the service. See the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="QCL_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "production"] = Field("dev", description="deployment mode")
    chain: str = Field("anvil", description="anvil | hardhat | ganache | eth-tester | http(s):// JSON-RPC URL")
    chain_host: str = Field("127.0.0.1", description="interface the embedded chain listens on")
    chain_port: int = Field(8545, ge=1, le=65535, description="port of the embedded chain")
    chain_id: int = Field(31337, ge=1, description="chain id of the embedded anvil chain")
    api_host: str = Field("127.0.0.1", description="interface the API listens on")
    api_port: int = Field(8000, ge=1, le=65535, description="port of the API")
    data_dir: Path = Field(Path(".qcl/dev"), description="where the dev deployment keeps its files")
    manifest: Path | None = Field(None, description="deployment manifest (default: <data_dir>/deployment.json)")
    operator_key: SecretStr | None = Field(None, description="private key of the ADMIN operator account")
    relayer_key: SecretStr | None = Field(None, description="private key of the relayer account")
    release_key: SecretStr | None = Field(
        None, description="private key of the release relayer's account (dev: generated into accounts.json)"
    )
    first_auditors: list[str] = Field(
        default_factory=list,
        description="addresses of the first AUDITORs a new deployment names (SPEC §9.8; dev: the auditor of "
        "accounts.json); later auditors are enrolled only with an existing auditor's signature",
    )
    persist_chain: bool = Field(True, description="dev: keep anvil's state in <data_dir> between runs")
    database_url: str | None = Field(None, description="vault database URL (default: SQLite <data_dir>/vault.db)")
    keyring_path: Path | None = Field(None, description="key ring file (default: <data_dir>/keyring.json)")
    vault_passphrase: SecretStr = Field(SecretStr(DEV_PASSPHRASE), description="passphrase sealing the key ring")
    crypto_profile: Literal["aes-256-gcm", "sm4-gcm-sm3"] = Field("aes-256-gcm", description="vault cipher profile")
    public_url: str = Field(
        "",
        description="the service's public URL (its host is the SIWE domain); default http://<api_host>:<api_port>",
    )
    jwt_secret: SecretStr | None = Field(None, description="HMAC key of access tokens (dev: generated in <data_dir>)")
    member_cache_seconds: float = Field(
        1.0, ge=0, le=60, description="how long a member's roles read from the chain are reused per process"
    )
    token_ttl: int = Field(900, ge=60, le=3600, description="access token lifetime, seconds")
    checkpoint_interval: float = Field(
        5.0, gt=0, description="anchor the release log's root this many seconds after it grew"
    )
    checkpoint_every: int = Field(100, ge=1, description="…or as soon as this many entries are unanchored")
    checkpoints: bool = Field(True, description="run the checkpoint thread in the API process")
    indexer: bool = Field(
        True, description="follow the chain's events into the database; the audit trail and verify read it"
    )
    index_confirmations: int = Field(0, ge=0, le=1000, description="blocks the indexer stays behind the head")
    index_follow: bool = Field(
        True, description="follow the chain in a background thread of this process (qcl serve never does)"
    )
    index_interval: float = Field(2.0, gt=0, description="seconds between the indexer's polls of the chain")
    verify_workers: int | None = Field(None, ge=1, le=64, description="processes checking signatures (default: CPUs)")
    release_timeout: float = Field(
        30.0, gt=0, le=600, description="seconds a release request waits for its block before 503 release_pending"
    )
    relayer: bool = Field(True, description="record releases in this process (qcl dev; qcl serve never does)")
    pipeline_depth: int = Field(
        PIPELINE_DEPTH,
        ge=1,
        le=50,
        description="grouped transactions each relayer (releases; grants, revocations and pauses) keeps in flight "
        "at once; 1: wait for each one's block (a node whose pool keeps fewer transactions per sender)",
    )
    malloc_arenas: int = Field(
        2,
        ge=0,
        le=64,
        description="malloc arenas a service process's threads share (glibc; 0: glibc's default of 8 per core; "
        "the environment's MALLOC_ARENA_MAX wins)",
    )
    heap_trim_interval: float = Field(
        60.0,
        ge=0,
        description="seconds between handing a service process's free heap pages back to the system "
        "(glibc's malloc_trim; 0: never)",
    )
    shutdown_timeout: float = Field(
        2.0, gt=0, le=120, description="seconds a stopping process gives open requests, then its background loops"
    )
    rpc_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds one JSON-RPC call may take before the chain counts as unavailable"
    )
    chain_restart: bool = Field(True, description="qcl dev: restart the embedded chain node when it dies")
    state_interval: int = Field(
        1, ge=0, le=3600, description="qcl dev: seconds between anvil's state dumps (0: only on a clean exit)"
    )
    max_body_bytes: int = Field(24 * 1024 * 1024, ge=1024, description="largest request body accepted")
    max_json_depth: int = Field(64, ge=4, le=1000, description="deepest nesting of arrays/objects in a request body")
    max_json_containers: int = Field(
        10_000, ge=100, description="most arrays/objects (opening brackets) in one request body"
    )
    body_timeout: float = Field(60.0, gt=0, description="seconds a client has to send its whole request body")
    keep_alive_timeout: int = Field(5, ge=1, le=300, description="seconds an idle keep-alive connection stays open")
    recursion_limit: int = Field(
        1000, ge=500, le=20_000, description="Python recursion limit restored after imports that raise it"
    )
    redis_url: str | None = Field(
        None, description="redis:// URL for the rate-limit counters (shared by API processes); default in memory"
    )
    rate_limit_challenge_address: str = Field(
        "10/minute", description="login challenges per address (limits notation: N/second|minute|hour|day)"
    )
    rate_limit_challenge_ip: str = Field("60/minute", description="login challenges per client IP")
    rate_limit_token_ip: str = Field("60/minute", description="token exchanges (signature checks) per client IP")
    rate_limit_public_ip: str = Field("600/minute", description="calls of /health and /v1/chain per client IP")
    rate_limits: bool = Field(True, description="enforce the rate limits (off only for load tests)")
    webhook_private_urls: bool | None = Field(
        None,
        description="let webhooks reach loopback/private/link-local addresses (default: yes unless production; SSRF)",
    )
    webhook_poll: float = Field(0.25, gt=0, le=10, description="seconds between the webhook deliverer's polls")

    @field_validator("chain")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        if value in LOCAL_KINDS or value.startswith(("http://", "https://")):
            return value
        raise ValueError(f"QCL_CHAIN must be one of {', '.join(LOCAL_KINDS)} or an http(s):// URL, got {value!r}")

    @field_validator(
        "rate_limit_challenge_address", "rate_limit_challenge_ip", "rate_limit_token_ip", "rate_limit_public_ip"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"not a rate limit such as '10/minute' or '5/second;100/hour': {value!r}") from None
        return value

    @model_validator(mode="after")
    def _public_url_follows_api(self) -> Settings:
        """Unless QCL_PUBLIC_URL is set, the public URL is where the API listens (QCL_API_HOST/PORT)."""
        if not self.public_url:
            host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
            host = f"[{host}]" if ":" in host else host
            self.public_url = f"http://{host}:{self.api_port}"
        return self

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env != "production":
            return self
        if not self.chain.startswith(("http://", "https://")):
            raise ValueError("production needs QCL_CHAIN set to the network's JSON-RPC URL")
        for name in ("operator_key", "relayer_key"):
            secret = getattr(self, name)
            if secret is None or not secret.get_secret_value().strip():
                raise ValueError(f"production needs QCL_{name.upper()}")
            if secret.get_secret_value().lower().removeprefix("0x") in _KNOWN_DEV_KEYS:
                raise ValueError(f"QCL_{name.upper()} is a well-known development key; refusing to start")
        release = self.release_key.get_secret_value().lower().removeprefix("0x") if self.release_key else None
        if release in _KNOWN_DEV_KEYS:
            raise ValueError("QCL_RELEASE_KEY is a well-known development key; refusing to start")
        if self.manifest is None:
            raise ValueError("production needs QCL_MANIFEST, the deployment manifest of the network")
        passphrase = self.vault_passphrase.get_secret_value()
        if passphrase in DEV_PASSPHRASES or len(passphrase) < 16:
            raise ValueError("production needs QCL_VAULT_PASSPHRASE: a real passphrase of 16 characters or more")
        if self.database_url is None:
            raise ValueError("production needs QCL_DATABASE_URL (PostgreSQL)")
        if self.jwt_secret is None or len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("production needs QCL_JWT_SECRET of 32 characters or more")
        return self

    @cached_property
    def manifest_path(self) -> Path:
        return self.manifest or self.data_dir / "deployment.json"

    @property
    def vault_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'vault.db'}"

    @property
    def vault_keyring_path(self) -> Path:
        return self.keyring_path or self.data_dir / "keyring.json"

    @property
    def siwe_domain(self) -> str:
        """The EIP-4361 domain: the authority (host[:port]) of the public URL."""
        return self.public_url.split("://", 1)[-1].split("/", 1)[0]

    def uvicorn_options(self) -> dict[str, object]:
        """Keyword arguments of ``uvicorn.run`` that bound what one connection may hold."""
        return {
            "host": self.api_host,
            "port": self.api_port,
            "timeout_keep_alive": self.keep_alive_timeout,
            # requests still waiting (e.g. on a chain that is down) are cut after this on a stop
            "timeout_graceful_shutdown": max(1, round(self.shutdown_timeout)),
        }

    @property
    def webhooks_reach_private(self) -> bool:
        """Whether webhook URLs may name private addresses (SSRF guard off): dev and test by default."""
        return self.env != "production" if self.webhook_private_urls is None else self.webhook_private_urls

    @property
    def accounts_path(self) -> Path:
        """SPEC §8: the dev deployment's ADMIN and relayer keys."""
        return self.data_dir / "accounts.json"


def default_api_url() -> str:
    """The API a command talks to by default: QCL_PUBLIC_URL, else http://QCL_API_HOST:QCL_API_PORT
    (the same settings ``qcl dev`` listens on), else the SPEC §8 default."""
    try:
        return Settings().public_url.rstrip("/")
    except ValueError:
        return "http://127.0.0.1:8000"


#: Keys printed by every local node on start (anvil/hardhat's and ganache's first accounts);
#: a production deployment must never use them.
_KNOWN_DEV_KEYS = {
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d",
}
