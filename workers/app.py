"""The Celery application: Redis broker, named queues, late acks, one task at a time per worker slot."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from leadpilot.infra import ensure_infra
from leadpilot.settings import get_settings

QUEUES = ("agent", "outbound", "workflows", "campaigns", "default")


def create_celery() -> Celery:
    """Build the Celery app against the configured (or embedded) Redis."""
    redis_url = ensure_infra().redis_url
    visibility = get_settings().celery_visibility_timeout
    app = Celery("leadpilot", broker=redis_url, backend=redis_url, include=["workers.tasks"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        # each task's queue is named here, in one place (agent turns, sends, workflow steps, campaign batches)
        task_routes={
            "workers.ping": {"queue": "default"},
            "workers.dispatch_outbox": {"queue": "default"},
            "workers.send_appointment_reminder": {"queue": "outbound"},
            "workers.deliver_due_reports": {"queue": "default"},
            "workers.ingest_source": {"queue": "default"},
            "workers.agent_turn": {"queue": "agent"},
            "workers.agent_turn_event": {"queue": "agent"},
            "workers.agent_turn_events": {"queue": "agent"},
            "workers.reactivate_handoff": {"queue": "agent"},
            "workers.reembed_knowledge_base": {"queue": "default"},
            "workers.send_message": {"queue": "outbound"},
            "workers.send_messages": {"queue": "outbound"},
            "workers.deliver_webhook": {"queue": "outbound"},
            "workers.campaign_batch": {"queue": "campaigns"},
            "workers.start_scheduled_campaigns": {"queue": "campaigns"},
            "workers.workflow_sweep": {"queue": "workflows"},
            "workers.workflow_dates": {"queue": "workflows"},
            "workers.sync_integration": {"queue": "default"},
            "workers.sync_due_integrations": {"queue": "default"},
        },
        # a task is acknowledged only after it finishes, so a worker dying mid-task hands it to another
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        # kombu's Redis transport, except that a worker outlives the broker going away (see workers/broker.py)
        broker_transport="workers.broker:Transport",
        # a worker process loads its models before it takes a task (workers.tasks.warm_up_process): allow it
        worker_proc_alive_timeout=120.0,
        # a task whose worker died is handed out again after the visibility timeout (swept every few seconds
        # when the timeout is short); every task is safe to run twice
        broker_transport_options={"visibility_timeout": visibility,
                                  **({"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
                                     if visibility < 60 else {})},
        beat_schedule={
            # hand-overs the broker refused and turns a dead worker held come back within seconds
            "dispatch-outbox": {"task": "workers.dispatch_outbox", "schedule": 5.0},
            "deliver-due-reports": {"task": "workers.deliver_due_reports", "schedule": 300.0},
            "workflow-sweep": {"task": "workers.workflow_sweep", "schedule": 30.0},
            "workflow-dates": {"task": "workers.workflow_dates", "schedule": 3600.0},
            "scheduled-campaigns": {"task": "workers.start_scheduled_campaigns", "schedule": 60.0},
            "sync-integrations": {"task": "workers.sync_due_integrations", "schedule": 900.0},
        },
    )
    return app


celery_app = create_celery()
