"""A real Celery worker consumes from the embedded Redis and reaches Postgres as the application role."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

from workers.app import QUEUES, celery_app
from workers.tasks import ping

pytestmark = pytest.mark.integration


def test_worker_runs_a_task_through_redis_and_postgres() -> None:
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        result = ping.delay().get(timeout=30)
    assert result["db_role"] == "leadpilot_app"


def test_tasks_are_acknowledged_late_and_routed_to_named_queues() -> None:
    conf = celery_app.conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert {q.name for q in conf.task_queues} == {"agent", "outbound", "workflows", "campaigns", "default"}
