"""Embedded infrastructure: started once, reused by every later process, real URLs win."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from leadpilot.infra import ensure_infra, start_embedded_redis, stop_embedded_redis
from leadpilot.settings import Settings

pytestmark = pytest.mark.integration


def test_embedded_redis_starts_is_reused_and_stops(tmp_path: Path) -> None:
    url = start_embedded_redis(tmp_path)
    assert redis.Redis.from_url(url).ping()
    assert start_embedded_redis(tmp_path) == url
    assert stop_embedded_redis(tmp_path) is True
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_timeout=1).ping()


def test_embedded_redis_comes_back_on_its_port_with_its_queue(tmp_path: Path) -> None:
    """A restart keeps the URL every process already holds, and the tasks waiting in the broker."""
    url = start_embedded_redis(tmp_path)
    redis.Redis.from_url(url).lpush("agent", "turn-1", "turn-2")
    assert stop_embedded_redis(tmp_path) is True
    assert start_embedded_redis(tmp_path) == url
    client = redis.Redis.from_url(url)
    assert client.lrange("agent", 0, -1) == [b"turn-2", b"turn-1"]
    stop_embedded_redis(tmp_path)


def test_configured_urls_win_over_embedded_servers(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://u:p@db.example:5432/x", redis_url="redis://cache.example:6379/1",
                        leadpilot_state_dir=tmp_path)
    urls = ensure_infra(settings)
    assert (urls.database_url, urls.redis_url) == ("postgresql+psycopg://u:p@db.example:5432/x",
                                                   "redis://cache.example:6379/1")
    assert not (urls.embedded_postgres or urls.embedded_redis)
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_status_of_running_services() -> None:
    out = subprocess.run([sys.executable, "-m", "leadpilot.cli", "infra", "status"], capture_output=True, text=True,
                         check=True).stdout
    from alembic.script import ScriptDirectory

    from models.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert "postgres" in out and "18." in out and f"schema {head}" in out
