"""Development webhook secrets for the embedded default: a Twilio auth token and a Stripe webhook secret made once
per state folder, so `leadpilot run` serves both webhooks and `leadpilot sms send` / `leadpilot stripe event` can
sign requests the way Twilio and Stripe do. They are handed only to the processes `leadpilot run` starts, and only
for what TWILIO_AUTH_TOKEN / STRIPE_WEBHOOK_SECRET leave unset: a real credential always wins."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from leadpilot.settings import Settings

FILE_NAME = "dev-secrets.json"
ENV = {"twilio_auth_token": "LEADPILOT_DEV_TWILIO_AUTH_TOKEN",
       "stripe_webhook_secret": "LEADPILOT_DEV_STRIPE_WEBHOOK_SECRET"}


def path(state_dir: Path) -> Path:
    """Where the state folder keeps them."""
    return state_dir / FILE_NAME


def load(state_dir: Path) -> dict[str, str]:
    """The stored development secrets ({} before `leadpilot run` first made them)."""
    try:
        found = json.loads(path(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in found.items() if k in ENV} if isinstance(found, dict) else {}


def load_or_create(state_dir: Path) -> dict[str, str]:
    """The stored development secrets, made (owner-readable only) on first use and the same ever after."""
    found = load(state_dir)
    if set(found) == set(ENV):
        return found
    made = {"twilio_auth_token": secrets.token_hex(16), "stripe_webhook_secret": f"whsec_dev_{secrets.token_hex(24)}",
            **found}
    state_dir.mkdir(parents=True, exist_ok=True)
    target = path(state_dir)
    fd = os.open(target.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(made, out, indent=2)
    os.replace(target.with_suffix(".tmp"), target)
    return made


def child_env(settings: Settings) -> dict[str, str]:
    """The environment `leadpilot run` adds for its API and worker: a development secret for each webhook
    credential the settings leave unset, none for one that is set."""
    unset = [name for name in ENV if not getattr(settings, name)]
    if not unset:
        return {}
    stored = load_or_create(settings.state_dir)
    return {ENV[name]: stored[name] for name in unset}


def signing_secrets(settings: Settings) -> dict[str, str | None]:
    """What a local request is signed with, as the server verifies it: the real credential, else the dev one."""
    stored = load(settings.state_dir)
    return {"twilio_auth_token": settings.twilio_webhook_token or stored.get("twilio_auth_token"),
            "stripe_webhook_secret": settings.stripe_signing_secret or stored.get("stripe_webhook_secret")}
