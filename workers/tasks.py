"""Worker tasks. Each takes ids, reloads rows, records failure on the row (see CONVENTIONS.md)."""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import text

from models.db import get_app_engine
from workers.app import celery_app


@celery_app.task(name="workers.ping")
def ping() -> dict[str, Any]:
    """Prove a worker is consuming and can reach the database as the application role."""
    with get_app_engine().connect() as conn:
        role = conn.execute(text("SELECT current_user")).scalar_one()
    return {"worker": socket.gethostname(), "db_role": role}
