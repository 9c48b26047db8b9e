"""Worker tasks. Each takes ids, reloads rows under the tenant's scope, records failure on the row and is safe
to run twice (see CONVENTIONS.md)."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis
from celery import Task
from celery.signals import worker_init, worker_process_init
from psycopg_pool import PoolTimeout
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from models.db import TenantScope, get_app_engine, owner_session, tenant_session, tenant_unit_of_work
from services import outbox, report_templates
from workers.app import celery_app

log = logging.getLogger("leadpilot.workers")
# a database restarting or a broker briefly away: the task is tried again with backoff, not lost as failed
TRANSIENT = (OperationalError, InterfaceError, PoolTimeout, redis.exceptions.ConnectionError)
RETRY_TRANSIENT: dict[str, Any] = {"autoretry_for": TRANSIENT, "retry_backoff": 1, "retry_backoff_max": 30,
                                   "retry_jitter": True, "max_retries": 12}


@worker_init.connect
def preload_models(**_: Any) -> None:
    """The worker's main process reads the model code and weights once, before its pool forks: every pool
    process starts with them in (shared) memory instead of each reading them again side by side, which made a
    fresh worker on a busy 2-core machine take 40 s to answer its first lead after a crash."""
    from agents.lead.runner import preload

    try:
        log.info("worker models preloaded", extra={"seconds": round(preload(), 2)})
    except Exception:  # each pool process still loads what it needs (warm_up_process)
        log.exception("worker preload failed")


@worker_process_init.connect
def warm_up_process(**_: Any) -> None:
    """Each worker process loads its models before it takes a task (see agents.lead.runner.warm_up)."""
    from agents.lead.runner import warm_up

    try:
        log.info("worker warmed up", extra={"seconds": round(warm_up(), 2)})
    except Exception:  # a worker that cannot warm up still works: its first turn loads what it needs
        log.exception("worker warm-up failed")


@celery_app.task(name="workers.ping")
def ping() -> dict[str, Any]:
    """Prove a worker is consuming and can reach the database as the application role."""
    with get_app_engine().connect() as conn:
        role = conn.execute(text("SELECT current_user")).scalar_one()
    return {"worker": socket.gethostname(), "db_role": role}


@celery_app.task(name="workers.dispatch_outbox")
def dispatch_outbox(event_ids: list[str] | None = None) -> list[str]:
    """Hand every due outbox event (or only those of `event_ids`) to the task for its topic, to run at its due
    time (Celery eta); what the broker refuses goes back to pending for the next pass. Returns the task ids."""
    with owner_session() as session:
        claimed = outbox.claim_due(session=session, busy=busy_conversations,
                                   event_ids=None if event_ids is None else [uuid.UUID(i) for i in event_ids])
    ids: list[str] = []
    for n, event in enumerate(claimed):
        task = TOPIC_TASKS.get(event.topic)
        if task is None:
            continue
        try:
            result = task.apply_async(args=[str(event.event_id), str(event.agency_id), str(event.sub_account_id)],
                                      eta=event.eta)
        except Exception:
            outbox.release(e.event_id for e in claimed[n:])
            raise
        ids.append(result.id)
    return ids


def busy_conversations(conversation_ids: set[str]) -> set[str]:
    """The conversations a live worker holds the turn lock of (see `conversation_lock`)."""
    ordered = sorted(conversation_ids)
    held = _redis().mget([f"leadpilot:turn:{c}" for c in ordered])
    return {c for c, token in zip(ordered, held, strict=True) if token is not None}


@celery_app.task(name="workers.send_appointment_reminder", bind=True, max_retries=5, default_retry_delay=30)
def send_appointment_reminder(self: Task, event_id: str, agency_id: str, sub_account_id: str) -> str | None:
    """Queue the reminder message of one appointment; retried with backoff, the error kept on the event."""
    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    try:
        with tenant_session(scope) as session:
            message = outbox.send_appointment_reminder(session=session, event_id=uuid.UUID(event_id))
            outbox.settle(session=session, event_id=uuid.UUID(event_id))
            return str(message.id) if message else None
    except Exception as exc:
        with tenant_session(scope) as session:
            outbox.settle(session=session, event_id=uuid.UUID(event_id), error=f"{type(exc).__name__}: {exc}")
        raise self.retry(exc=exc, countdown=30 * 2 ** self.request.retries) from exc


@celery_app.task(name="workers.deliver_due_reports")
def deliver_due_reports() -> int:
    """Deliver every recurring report whose time has come, each under its own tenant's scope."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    with owner_session() as session:
        due = report_templates.due_templates(session=session, now=now)
    delivered = 0
    for template_id, agency_id, sub_account_id in due:
        with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)) as session:
            delivered += report_templates.deliver(session=session, template_id=template_id, now=now)
    return delivered


@celery_app.task(name="workers.ingest_source")
def ingest_source(source_id: str, agency_id: str, sub_account_id: str) -> int:
    """Chunk and embed one large knowledge source, committing progress after every batch. Safe to run again:
    chunks already stored are skipped by their content hash. A failure is kept on the source row."""
    from knowledge import ingest

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    try:
        with tenant_unit_of_work(scope) as session:
            return ingest.process_source(session=session, source_id=uuid.UUID(source_id),
                                         commit=session.commit).chunk_count
    except Exception as exc:
        with tenant_session(scope) as session:
            ingest.fail_source(session=session, source_id=uuid.UUID(source_id), error=f"{type(exc).__name__}: {exc}")
        raise


@celery_app.task(name="workers.agent_turn")
def agent_turn(conversation_id: str, message_id: str, agency_id: str, sub_account_id: str) -> dict[str, Any]:
    """Answer one stored inbound message. Turns of one conversation run one at a time (a Redis lock per
    conversation). Redelivery is harmless: the reply is stored once, and a turn that died half-way continues
    from its checkpoint."""
    from agents.lead.runner import run_turn

    with conversation_lock(conversation_id):
        result = run_turn(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id),
                          conversation_id=uuid.UUID(conversation_id), message_id=uuid.UUID(message_id))
    return {"decision": result.decision, "reply_message_id": str(result.reply_message_id or "") or None}


LOCK_TTL_S = 15.0  # a dead worker's lock frees itself this soon; a live one keeps renewing it


@contextmanager
def conversation_lock(conversation_id: str) -> Iterator[None]:
    """One turn at a time per conversation, whichever worker runs it. The Redis lock is short-lived and
    renewed while the turn runs, so a worker killed mid-turn blocks the conversation for seconds, not
    minutes."""
    import threading

    import redis

    from leadpilot.infra import ensure_infra

    client = redis.Redis.from_url(ensure_infra().redis_url)
    lock = client.lock(f"leadpilot:turn:{conversation_id}", timeout=LOCK_TTL_S, blocking_timeout=300,
                       thread_local=False)  # the keeper thread renews the token the turn acquired
    if not lock.acquire():
        raise TimeoutError(f"conversation {conversation_id} stayed busy for 5 minutes")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LOCK_TTL_S / 3):
            try:
                lock.reacquire()
            except redis.exceptions.LockError:
                return

    keeper = threading.Thread(target=renew, daemon=True, name=f"turn-lock-{conversation_id[:8]}")
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
        # an expired lock (the turn outlived a lost renewal) is no error: the next turn proceeds either way
        with suppress(redis.exceptions.LockError):
            lock.release()


@celery_app.task(name="workers.reembed_knowledge_base")
def reembed_knowledge_base(kb_id: str, model: str, agency_id: str, sub_account_id: str) -> int:
    """Re-embed every chunk of a knowledge base with another model (committing as it goes)."""
    from knowledge import ingest

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    with tenant_unit_of_work(scope) as session:
        return ingest.reembed(session=session, kb_id=uuid.UUID(kb_id), model=model, commit=session.commit)


@celery_app.task(name="workers.agent_turn_event", **RETRY_TRANSIENT)
def agent_turn_event(event_id: str, agency_id: str, sub_account_id: str) -> dict[str, Any] | None:
    """The outbox's `agent.turn` event (written with the inbound message): run that turn, then settle it."""
    from models.conversations import OutboxEvent

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    with tenant_session(scope) as session:
        event = session.get(OutboxEvent, uuid.UUID(event_id))
        if event is None or event.status == "done":
            return None
        payload = dict(event.payload)
    result = agent_turn(payload["conversation_id"], payload["message_id"], agency_id, sub_account_id)
    with tenant_session(scope) as session:
        outbox.settle(session=session, event_id=uuid.UUID(event_id))
    return result


@celery_app.task(name="workers.agent_turn_events", ignore_result=True)
def agent_turn_events(turns: list[list[str]]) -> int:
    """The agent turns of one inbound batch, handed over in one broker message by the webhook (whose requests
    wait on it): each goes on here as its own `agent_turn_event`, so turns of different conversations run side
    by side on the workers and one conversation's turns still one at a time."""
    for event_id, agency_id, sub_account_id in turns:
        agent_turn_event.apply_async(args=[event_id, agency_id, sub_account_id])
    return len(turns)


@celery_app.task(name="workers.reactivate_handoff", **RETRY_TRANSIENT)
def reactivate_handoff(event_id: str, agency_id: str, sub_account_id: str) -> str:
    """The handoff's reactivation timer: if no person has answered the lead since the handoff opened, give
    the conversation back to the AI (the graph resumes). Safe to run twice."""
    from agents.lead.runner import return_to_ai
    from models.conversations import Handoff, OutboxEvent
    from services.handoff import human_replied_since

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    with tenant_session(scope) as session:
        event = session.get(OutboxEvent, uuid.UUID(event_id))
        handoff = session.get(Handoff, event.aggregate_id) if event else None
        if event is None or event.status == "done" or handoff is None or handoff.resolved_at is not None:
            outcome = "closed"
        elif human_replied_since(session=session, conversation_id=handoff.conversation_id,
                                 since=handoff.requested_at):
            outcome = "human_answered"
        else:
            outcome = "reactivate"
        conversation_id = handoff.conversation_id if handoff else None
    if outcome == "reactivate" and conversation_id is not None:
        return_to_ai(agency_id=scope.agency_id, sub_account_id=uuid.UUID(sub_account_id),
                     conversation_id=conversation_id, human_messages=[])
    with tenant_session(scope) as session:
        outbox.settle(session=session, event_id=uuid.UUID(event_id))
    return outcome


@celery_app.task(name="workers.send_message", bind=True, ignore_result=True, **{**RETRY_TRANSIENT, "max_retries": None})
def send_message(self: Task, event_id: str, agency_id: str, sub_account_id: str) -> str:
    """Send one queued outbound message (the outbox's `message.send` event) exactly once: see
    channels/outbound.py. Retried with exponential backoff; quiet hours put it off to their end."""
    outcome, later = _send_one(event_id, agency_id, sub_account_id)
    if outcome == "retry":
        raise self.retry(countdown=later)
    if outcome == "deferred":
        self.apply_async(args=[event_id, agency_id, sub_account_id], eta=later)
    return outcome


@celery_app.task(name="workers.send_messages", ignore_result=True)
def send_messages(event_ids: list[str], agency_id: str, sub_account_id: str) -> int:
    """A campaign batch's messages in one task (one broker hand-off for many sends): each sent exactly once as
    `send_message` sends it; one that must wait (a provider hiccup, quiet hours) goes on as its own
    `send_message`, so the others never wait for it."""
    sent = 0
    for event_id in event_ids:
        outcome, later = _send_one(event_id, agency_id, sub_account_id)
        if outcome == "retry":
            send_message.apply_async(args=[event_id, agency_id, sub_account_id], countdown=later)
        elif outcome == "deferred":
            send_message.apply_async(args=[event_id, agency_id, sub_account_id], eta=later)
        else:
            sent += 1
    return sent


def _send_one(event_id: str, agency_id: str, sub_account_id: str) -> tuple[str, Any]:
    """Deliver one outbox `message.send` event: (outcome, retry delay in seconds or the time to defer to)."""
    from channels import outbound
    from models.conversations import OutboxEvent

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    with tenant_session(scope) as session:
        event = session.get(OutboxEvent, uuid.UUID(event_id))
        if event is None or event.status == "done":
            return "done", None
        message_id = uuid.UUID(event.payload["message_id"])
    attempt = outbound.deliver(scope, message_id)
    if attempt.outcome == "retry":
        with tenant_session(scope) as session:
            outbox.settle(session=session, event_id=uuid.UUID(event_id), error=attempt.error, retry=True,
                          retry_in=attempt.retry_in or 0.0)
        return "retry", attempt.retry_in
    if attempt.outcome == "deferred" and attempt.not_before is not None:
        with tenant_session(scope) as session:
            outbox.postpone(session=session, event_id=uuid.UUID(event_id), until=attempt.not_before)
        return "deferred", attempt.not_before
    with tenant_session(scope) as session:
        outbox.settle(session=session, event_id=uuid.UUID(event_id))
    return attempt.status or attempt.outcome, None


@celery_app.task(name="workers.deliver_webhook")
def deliver_webhook(event_id: str, agency_id: str, sub_account_id: str, attempt: int = 1) -> str:
    """One attempt at one outbound webhook delivery; the next attempt is scheduled with backoff (see
    services/webhooks.py). Safe to run twice: a delivered event is done."""
    from services import webhooks

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    retry_in = webhooks.deliver(scope, uuid.UUID(event_id), attempt)
    if retry_in is not None:
        deliver_webhook.apply_async(args=[event_id, agency_id, sub_account_id, attempt + 1], countdown=retry_in)
        return "retrying"
    return "finished"


@celery_app.task(name="workers.campaign_batch")
def campaign_batch(campaign_id: str, agency_id: str, sub_account_id: str) -> int:
    """Render and store one batch of a campaign's messages, hand them to the outbound queue (after commit),
    then queue the next batch; the last, empty batch marks the campaign sent. Recipients already holding a
    message are skipped, so a redelivered batch sends nobody twice."""
    from services import campaigns

    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    with tenant_session(scope) as session:
        queued = campaigns.queue_batch(session=session, campaign_id=uuid.UUID(campaign_id))
        channel_type = campaigns.channel_of(session, uuid.UUID(campaign_id))
    if queued:  # the next batch once this one has gone out at the channel's rate (provider limits)
        campaign_batch.apply_async(args=[campaign_id, agency_id, sub_account_id],
                                   countdown=queued / campaigns.RATE_PER_S.get(channel_type, 50.0))
    return queued


@celery_app.task(name="workers.start_scheduled_campaigns")
def start_scheduled_campaigns() -> int:
    """Launch every scheduled campaign whose time has come (beat, every minute)."""
    from datetime import UTC, datetime

    from services import campaigns

    now = datetime.now(UTC)
    with owner_session() as session:
        due = campaigns.due_scheduled(session, now)
    for campaign_id, agency_id, sub_account_id in due:
        with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)) as session:
            campaigns.launch(session=session, campaign_id=campaign_id, now=now)
        campaign_batch.apply_async(args=[str(campaign_id), str(agency_id), str(sub_account_id)])
    return len(due)


@celery_app.task(name="workers.workflow_sweep")
def workflow_sweep(agency_id: str | None = None, sub_account_id: str | None = None) -> int:
    """Run the workflow steps that are due: of one sub-account (after a trigger), or of every sub-account
    (beat, every 30 s: waits that ended, retries, steps whose hand-off was lost, anything after a restart)."""
    from datetime import UTC, datetime

    from services import workflows

    now = datetime.now(UTC)
    if sub_account_id is None:
        with owner_session() as session:
            targets = workflows.due_sub_accounts(session, now)
    else:
        targets = [(uuid.UUID(str(agency_id)), uuid.UUID(sub_account_id))]
    ran = 0
    for agency, sub in targets:
        with tenant_session(TenantScope(agency_id=agency, sub_account_id=sub)) as session:
            ran += workflows.run_due(session, now)
    return ran


@celery_app.task(name="workers.workflow_dates")
def workflow_dates() -> int:
    """The date-driven triggers, custom date (birthdays and the like) and invoice overdue, for every sub-account
    with such a workflow (beat, hourly: safe to repeat, once per contact and date, once per invoice)."""
    from datetime import UTC, datetime

    from sqlalchemy import select as select_

    from models.tenancy import SubAccount
    from models.workflows import WorkflowTrigger
    from services import workflows

    now = datetime.now(UTC)
    with owner_session() as session:
        targets = session.execute(select_(SubAccount.agency_id, SubAccount.id).join(
            WorkflowTrigger, WorkflowTrigger.sub_account_id == SubAccount.id).where(
            WorkflowTrigger.trigger_type.in_(("custom_date", "invoice_overdue")), WorkflowTrigger.is_active)
            .distinct()).all()
    started = 0
    for agency_id, sub_account_id in targets:
        with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)) as session:
            started += len(workflows.fire_dates(session, sub_account_id, now))
            started += len(workflows.fire_overdue(session, sub_account_id, now))
            workflows.run_due(session, now)
    return started


SYNC_LOCK_TTL_S = 1800  # longer than any sync (paging plus bounded throttling waits)
SYNC_QUEUED_TTL_S = 3600  # the sweep queues an integration at most once an hour while its sync has not run


def _redis() -> Any:
    import redis

    from leadpilot.infra import ensure_infra

    return redis.Redis.from_url(ensure_infra().redis_url)


@celery_app.task(name="workers.sync_integration")
def sync_integration(integration_id: str, agency_id: str | None = None,
                     sub_account_id: str | None = None) -> dict[str, Any]:
    """Sync one integration (Meta ad spend) under its sub-account's scope; the outcome (up to date, delayed with
    a retry time, failed) is recorded on the row, where the sweep picks retries up. One run at a time per
    integration; a second one meanwhile returns `busy`. Safe to run twice: unchanged figures write nothing."""
    from models.activity import Integration
    from services.integrations import sync

    if agency_id is None or sub_account_id is None:
        with owner_session() as session:  # only the id was given: find its tenant first
            found = session.get(Integration, uuid.UUID(integration_id))
            if found is None or found.sub_account_id is None:
                return {"integration_id": integration_id, "status": "skipped", "error": "No such integration."}
            agency_id, sub_account_id = str(found.agency_id), str(found.sub_account_id)
    scope = TenantScope(agency_id=uuid.UUID(agency_id), sub_account_id=uuid.UUID(sub_account_id))
    client = _redis()
    lock = client.lock(f"leadpilot:integration-sync:{integration_id}", timeout=SYNC_LOCK_TTL_S, blocking=False,
                       thread_local=False)
    if not lock.acquire():
        return {"integration_id": integration_id, "status": "busy"}
    try:
        return sync.sync_integration(scope=scope, integration_id=uuid.UUID(integration_id)).as_json()
    finally:
        client.delete(f"leadpilot:integration-sync-queued:{integration_id}")
        with suppress(Exception):
            lock.release()


@celery_app.task(name="workers.sync_due_integrations")
def sync_due_integrations() -> int:
    """Beat, every 15 minutes: queue a sync of every integration that is due (see services/integrations/sync.py),
    marking `delayed` those whose last successful sync is older than two intervals. Returns how many it queued."""
    from datetime import UTC, datetime

    from services.integrations import sync

    now = datetime.now(UTC)
    with owner_session() as session:
        due = sync.due_integrations(session=session, now=now)
    client = _redis()
    queued = 0
    for integration_id, agency_id, sub_account_id in due:
        with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)) as session:
            sync.mark_if_stale(session=session, integration_id=integration_id, now=now)
        # not again while one is still waiting in the queue (a stopped worker must not find hundreds piled up)
        if client.set(f"leadpilot:integration-sync-queued:{integration_id}", "1", nx=True, ex=SYNC_QUEUED_TTL_S):
            sync_integration.apply_async(args=[str(integration_id), str(agency_id), str(sub_account_id)])
            queued += 1
    return queued


TOPIC_TASKS: dict[str, Task] = {"appointment.reminder": send_appointment_reminder,
                                "handoff.reactivate": reactivate_handoff, "agent.turn": agent_turn_event,
                                "message.send": send_message, "webhook.deliver": deliver_webhook}
