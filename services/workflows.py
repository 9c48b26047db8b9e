"""Workflows: triggers start executions that walk the action tree (the seed's parent_action_id tree, if/else
children carrying their branch), one durable step at a time.

- Versioned: an execution copies the workflow's tree (its *plan*) when it starts, so editing a live workflow
  (which bumps `version`) never changes the path of contacts already inside it.
- Durable: every step is a workflow_action_executions row with the time it is due. `run_due` runs the due
  ones (rows locked, skipped by other workers); a wait is simply a step due later, so a restart during a wait
  loses nothing: the beat sweeper (or the eta hand-off) runs it when its time comes, in whichever process.
- Once per contact unless the workflow allows re-entry; a failing step retries (1, 2, 4 minutes) and then
  fails the execution with the error.
- `dry_run` shows the path a contact would take now.

Triggers with a date (`custom_date`: birthdays, renewals) are checked hourly by `fire_dates`.

Actions: send_email, send_sms (Jinja2 templates with defaults, as campaigns), wait (`seconds`, `until`, or
`until_business_hours` of the sub-account),
if_else (`condition`: email_opened, has_tag, field_equals), add_tag, remove_tag, update_field, create_task,
assign_user, create_opportunity, move_opportunity, hand_to_human, hand_to_ai, webhook (a signed
`workflow.webhook` event to the sub-account's endpoints), end."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, func, select
from sqlalchemy.orm import Session

from models.conversations import Channel, Conversation, Message
from models.crm import Contact
from models.workflows import Workflow, WorkflowAction, WorkflowActionExecution, WorkflowExecution, WorkflowTrigger
from services import crm
from services.errors import InvalidInput, NotFound

MAX_STEP_ATTEMPTS = 3


def plan_of(session: Session, workflow_id: uuid.UUID) -> dict[str, Any]:
    """The action tree as plain data: {"root": id, "actions": {id: {type, config, next, yes, no}}}."""
    actions = list(session.scalars(select(WorkflowAction).where(WorkflowAction.workflow_id == workflow_id)
                                   .order_by(WorkflowAction.position, WorkflowAction.created_at)))
    nodes: dict[str, Any] = {str(a.id): {"type": a.action_type, "name": a.name, "config": a.config or {},
                                         "next": None, "yes": None, "no": None} for a in actions}
    roots = [a for a in actions if a.parent_action_id is None]
    for a in actions:
        if a.parent_action_id is not None:
            parent = nodes[str(a.parent_action_id)]
            slot = a.branch if parent["type"] == "if_else" and a.branch in ("yes", "no") else "next"
            if parent[slot] is None:
                parent[slot] = str(a.id)
    return {"root": str(roots[0].id) if roots else None, "actions": nodes}


def live_triggers(session: Session, sub_account_id: uuid.UUID, trigger_type: str
                  ) -> list[tuple[WorkflowTrigger, Workflow]]:
    """The sub-account's active triggers of this type, with their published workflows."""
    return [(trigger, workflow) for trigger, workflow in session.execute(
        select(WorkflowTrigger, Workflow).join(Workflow, Workflow.id == WorkflowTrigger.workflow_id)
        .where(WorkflowTrigger.sub_account_id == sub_account_id, WorkflowTrigger.trigger_type == trigger_type,
               WorkflowTrigger.is_active, Workflow.status == "published", Workflow.deleted_at.is_(None)))]


def _local_date(session: Session, sub_account_id: uuid.UUID, now: datetime) -> Any:
    """`now` as a date in the sub-account's timezone."""
    from zoneinfo import ZoneInfo

    from models.tenancy import SubAccount

    sub = session.get(SubAccount, sub_account_id)
    assert sub is not None
    return now.astimezone(ZoneInfo(sub.timezone or "UTC")).date()


def fire(session: Session, sub_account_id: uuid.UUID, trigger_type: str, contact_id: uuid.UUID,
         event: dict[str, Any] | None = None, now: datetime | None = None) -> list[uuid.UUID]:
    """Start every published workflow of the sub-account whose active trigger of this type matches the event
    (each key of the trigger's conditions must equal the event's, case-insensitively for text)."""
    return fire_many(session, sub_account_id, trigger_type, [(contact_id, event or {})], now=now)


def fire_many(session: Session, sub_account_id: uuid.UUID, trigger_type: str,
              events: list[tuple[uuid.UUID, dict[str, Any]]], now: datetime | None = None) -> list[uuid.UUID]:
    """`fire` for several (contact, event) pairs of one trigger type at once (a batch of inbound messages or
    new contacts): the triggers are looked up once."""
    from services.subscribers import listening

    if not events or not listening(session, "workflows", sub_account_id, trigger_type):
        return []
    started = []
    triggers = live_triggers(session, sub_account_id, trigger_type)
    for contact_id, event in events:
        for trigger, workflow in triggers:
            if all(_same(event.get(k), v) for k, v in (trigger.conditions or {}).items()):
                execution = start(session, workflow, contact_id, {"type": trigger_type, **event}, now=now)
                if execution is not None:
                    started.append(execution.id)
    if started:
        _sweep_after_commit(session, sub_account_id)
    return started


def _sweep_after_commit(session: Session, sub_account_id: uuid.UUID) -> None:
    """First steps run right away (a worker sweeps the sub-account after the commit); later ones when due."""
    from models.db import after_commit
    from models.tenancy import SubAccount

    agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id))

    def hand_over() -> None:
        from workers.tasks import workflow_sweep

        workflow_sweep.apply_async(args=[str(agency_id), str(sub_account_id)])

    after_commit(session, hand_over)


def due_sub_accounts(session: Session, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(agency, sub-account) pairs with steps due (owner session: the beat sweeper serves every tenant)."""
    from models.tenancy import SubAccount

    return [(a, s) for a, s in session.execute(
        select(SubAccount.agency_id, WorkflowActionExecution.sub_account_id).join(
            SubAccount, SubAccount.id == WorkflowActionExecution.sub_account_id).where(
            WorkflowActionExecution.status.in_(("pending", "scheduled")),
            WorkflowActionExecution.scheduled_for <= now).distinct())]


def _same(a: Any, b: Any) -> bool:
    return str(a).strip().lower() == str(b).strip().lower() if isinstance(a, str) or isinstance(b, str) else a == b


def start(session: Session, workflow: Workflow, contact_id: uuid.UUID, trigger_event: dict[str, Any],
          now: datetime | None = None) -> WorkflowExecution | None:
    """A new execution on the workflow's current plan, its first step due now (None: the contact is already
    in it, or has been, and re-entry is not allowed)."""
    now = now or datetime.now(UTC)
    # once per contact; with re-entry allowed, once at a time
    active_only = [WorkflowExecution.status.in_(("running", "waiting"))] if workflow.allow_reentry else []
    earlier = session.scalar(select(WorkflowExecution.id).where(
        WorkflowExecution.workflow_id == workflow.id, WorkflowExecution.contact_id == contact_id,
        *active_only).limit(1))
    if earlier is not None:
        return None
    plan = plan_of(session, workflow.id)
    execution = WorkflowExecution(sub_account_id=workflow.sub_account_id, workflow_id=workflow.id,
                                  workflow_version=workflow.version, contact_id=contact_id, status="running",
                                  context={"plan": plan}, trigger_event=trigger_event, started_at=now)
    session.add(execution)
    session.flush()
    if plan["root"] is None:
        execution.status, execution.completed_at = "completed", now
    else:
        _schedule(session, execution, plan["root"], now)
    return execution


def _schedule(session: Session, execution: WorkflowExecution, action_id: str, due: datetime) -> None:
    exists = session.get(WorkflowAction, uuid.UUID(action_id)) is not None
    execution.current_action_id = uuid.UUID(action_id) if exists else None
    execution.status = "waiting" if due > datetime.now(UTC) else "running"
    # the plan's node id is kept on the step itself: an edit of the live workflow replaces its action rows
    # (the foreign key then empties), while this execution goes on with its own copy of the tree
    session.add(WorkflowActionExecution(sub_account_id=execution.sub_account_id, workflow_execution_id=execution.id,
                                        workflow_action_id=uuid.UUID(action_id) if exists else None,
                                        status="scheduled",
                                        scheduled_for=due, result={"plan_action": action_id}))


def run_due(session: Session, now: datetime | None = None, limit: int = 200) -> int:
    """Run every step due by `now` (in this session's scope); returns how many ran. Steps a step schedules for
    `now` or earlier run in the same call, so a chain without waits finishes at once."""
    now = now or datetime.now(UTC)
    ran = 0
    while ran < limit:
        step = session.scalar(select(WorkflowActionExecution).where(
            WorkflowActionExecution.status.in_(("pending", "scheduled")), WorkflowActionExecution.scheduled_for <= now)
            .order_by(WorkflowActionExecution.scheduled_for).limit(1).with_for_update(skip_locked=True))
        if step is None:
            break
        _run_step(session, step, now)
        session.flush()
        ran += 1
    return ran


def _run_step(session: Session, step: WorkflowActionExecution, now: datetime) -> None:
    execution = session.get(WorkflowExecution, step.workflow_execution_id, with_for_update=True)
    assert execution is not None
    if execution.status not in ("running", "waiting"):
        step.status = "skipped"
        return
    plan = execution.context["plan"]
    action_id = (step.result or {}).get("plan_action") or str(step.workflow_action_id)
    node = plan["actions"][action_id]
    step.status, step.started_at, step.attempts = "running", now, step.attempts + 1
    try:
        with session.begin_nested():
            result, branch, due = _perform(session, execution, node, now, action_id)
    except Exception as exc:  # noqa: BLE001 - any failure of a step is recorded on it, then retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
        step.error = error
        if step.attempts < MAX_STEP_ATTEMPTS:
            step.status, step.scheduled_for = "scheduled", now + timedelta(minutes=2 ** (step.attempts - 1))
        else:
            step.status, step.completed_at = "failed", now
            execution.status, execution.error, execution.completed_at = "failed", error, now
        return
    step.status, step.completed_at, step.result = "completed", now, {"plan_action": action_id, **result}
    following = node["yes"] if branch == "yes" else node["no"] if branch == "no" else node["next"]
    if node["type"] == "end" or following is None:
        execution.status, execution.completed_at, execution.current_action_id = "completed", now, None
    else:
        _schedule(session, execution, following, due or now)


def _perform(session: Session, execution: WorkflowExecution, node: dict[str, Any], now: datetime,
             action_id: str = "") -> tuple[dict[str, Any], str | None, datetime | None]:
    """Do one action: (what it did, the if/else branch taken, when the next step is due)."""
    kind, config = node["type"], node["config"]
    contact = session.get(Contact, execution.contact_id)
    if contact is None or contact.deleted_at is not None:
        raise NotFound("The contact is gone.")
    if kind in ("send_email", "send_sms"):
        message = _send(session, execution, contact, "email" if kind == "send_email" else "sms", config, action_id)
        if message is None:
            return {"skipped": "opted out or no address"}, None, None
        context = dict(execution.context)
        if kind == "send_email":
            context["last_email_message_id"] = str(message.id)
        execution.context = context
        return {"message_id": str(message.id)}, None, None
    if kind == "wait":
        if config.get("until"):
            due = datetime.fromisoformat(config["until"])
        elif config.get("until_business_hours"):
            from models.tenancy import SubAccount

            sub = session.get(SubAccount, execution.sub_account_id)
            assert sub is not None
            due = next_business_moment(now, (sub.settings or {}).get("business_hours") or {}, sub.timezone)
        else:
            due = now + timedelta(seconds=int(config.get("seconds", 0)))
        return {"until": due.isoformat()}, None, due
    if kind == "if_else":
        outcome = _condition(session, execution, contact, config.get("condition") or {})
        return {"outcome": outcome}, "yes" if outcome else "no", None
    if kind == "add_tag":
        crm.add_tag(session=session, contact_id=contact.id, name=str(config["tag"]))
        return {"tag": config["tag"]}, None, None
    if kind == "remove_tag":
        crm.remove_tag(session=session, contact_id=contact.id, name=str(config["tag"]))
        return {"tag": config["tag"]}, None, None
    if kind == "update_field":
        crm.update_contact(session=session, contact_id=contact.id, changes=dict(config.get("changes") or {}))
        return {"changes": config.get("changes")}, None, None
    if kind == "create_task":
        task = crm.create_task(session=session, contact_id=contact.id, title=str(config.get("title") or "Follow up"),
                               due_at=now + timedelta(hours=int(config.get("due_in_hours", 24))))
        return {"task_id": str(task.id)}, None, None
    if kind == "hand_to_human":
        conversation = session.scalar(select(Conversation).where(Conversation.contact_id == contact.id)
                                      .order_by(Conversation.last_message_at.desc().nulls_last()).limit(1))
        if conversation is None:
            return {"skipped": "no conversation"}, None, None
        from services.handoff import open_handoff

        open_handoff(session=session, conversation_id=conversation.id, reason="manual",
                     summary=str(config.get("summary") or "Handed over by a workflow."))
        return {"conversation_id": str(conversation.id)}, None, None
    if kind == "assign_user":
        contact.assigned_user_id = uuid.UUID(str(config["user_id"]))
        return {"user_id": str(config["user_id"])}, None, None
    if kind == "create_opportunity":
        from decimal import Decimal

        from services import pipelines

        deal = pipelines.create_opportunity(session=session, pipeline_id=uuid.UUID(str(config["pipeline_id"])),
                                            contact_id=contact.id, name=str(config.get("name") or contact.name),
                                            monetary_value=Decimal(str(config.get("value", 0))), now=now)
        context = dict(execution.context)
        context["opportunity_id"] = str(deal.id)
        execution.context = context
        return {"opportunity_id": str(deal.id)}, None, None
    if kind == "move_opportunity":
        from services import pipelines

        deal_id = (config.get("opportunity_id") or (execution.context or {}).get("opportunity_id")
                   or (execution.trigger_event or {}).get("opportunity_id"))
        if not deal_id:
            raise InvalidInput("No opportunity to move (create one first, or start from a deal's trigger).")
        pipelines.move_opportunity(session=session, opportunity_id=uuid.UUID(str(deal_id)),
                                   to_stage_id=uuid.UUID(str(config["stage_id"])), now=now)
        return {"opportunity_id": str(deal_id), "stage_id": str(config["stage_id"])}, None, None
    if kind == "hand_to_ai":
        from models.conversations import ConversationAIConfig

        configs = session.scalars(select(ConversationAIConfig).join(
            Conversation, Conversation.id == ConversationAIConfig.conversation_id).where(
            Conversation.contact_id == contact.id)).all()
        for ai in configs:
            ai.is_active, ai.handoff_to_human = True, False
        return {"conversations": len(configs)}, None, None
    if kind == "webhook":
        from services import webhooks

        queued = webhooks.emit(session, contact.sub_account_id, "workflow.webhook", {
            "workflow_execution_id": str(execution.id), "contact_id": str(contact.id),
            "payload": config.get("payload") or {}})
        return {"deliveries": queued}, None, None
    if kind == "end":
        return {}, None, None
    raise InvalidInput(f"The action {kind!r} is not supported by this engine yet.")


def _condition(session: Session, execution: WorkflowExecution, contact: Contact, condition: dict[str, Any]) -> bool:
    kind = condition.get("type")
    if kind == "email_opened":
        message_id = (execution.context or {}).get("last_email_message_id")
        message = session.get(Message, uuid.UUID(message_id)) if message_id else None
        return bool(message and message.read_at)
    if kind == "has_tag":
        return str(condition["tag"]).lower() in [t.lower() for t in crm.contact_tags(session=session,
                                                                                      contact_id=contact.id)]
    if kind == "field_equals":
        field = str(condition["field"])
        value = (contact.custom_fields or {}).get(field, getattr(contact, field, None))
        return _same(value, condition.get("value"))
    raise InvalidInput(f"Unknown condition {kind!r}.")


def _send(session: Session, execution: WorkflowExecution, contact: Contact, channel_type: str,
          config: dict[str, Any], action_id: str) -> Message | None:
    """A templated message on the contact's conversation of that channel, through the outbound path (opted-out
    contacts and contacts without an address get nothing). Email carries an open pixel for if/else."""
    from channels.outbound import queue_send
    from services.campaigns import compile_template, tracked_html, variables_of

    if crm.is_dnd(contact, channel_type) or not (contact.email if channel_type == "email" else contact.phone):
        return None
    channel = session.scalars(select(Channel).where(Channel.channel_type == channel_type, Channel.is_active,
                                                    Channel.deleted_at.is_(None)).order_by(Channel.created_at)).first()
    if channel is None:
        raise InvalidInput(f"The sub-account has no active {channel_type} channel.")
    conversation = session.scalar(select(Conversation).where(
        Conversation.channel_id == channel.id, Conversation.contact_id == contact.id,
        Conversation.deleted_at.is_(None)).order_by(Conversation.created_at.desc()).limit(1))
    if conversation is None:
        conversation = Conversation(sub_account_id=contact.sub_account_id, channel_id=channel.id,
                                    contact_id=contact.id, status="resolved")
        session.add(conversation)
        session.flush()
        from channels.inbound import attach_agent

        attach_agent(session, conversation, channel_type)  # the lead's answer reaches the AI as usual
    values = variables_of(contact, dict(config.get("defaults") or {}))
    token = "m-" + secrets.token_hex(16)
    html = compile_template(config["html"]).render(values) if config.get("html") else None
    message = Message(
        sub_account_id=contact.sub_account_id, conversation_id=conversation.id, channel_id=channel.id,
        contact_id=contact.id, direction="outbound", sender_type="system",
        content_type="email" if channel_type == "email" else "text",
        subject=compile_template(config.get("subject", "")).render(values).strip() or None,
        body=compile_template(config.get("body", "")).render(values).strip(),
        html_body=tracked_html(html, token) if html else None, status="queued",
        idempotency_key=f"workflow:{execution.id}:{action_id}",  # one message per step of an execution
        metadata_={"workflow_execution_id": str(execution.id), "tracking_token": token})
    session.add(message)
    session.flush()
    queue_send(session, message)
    return message


def dry_run(session: Session, workflow_id: uuid.UUID, contact_id: uuid.UUID) -> list[dict[str, Any]]:
    """The path the contact would take through the current plan if it ran now (conditions evaluated on the
    contact as it is; 'email_opened' counts as not opened, since nothing has been sent yet)."""
    workflow = session.get(Workflow, workflow_id)
    contact = session.get(Contact, contact_id)
    if workflow is None or contact is None:
        raise NotFound("No such workflow or contact.")
    plan = plan_of(session, workflow_id)
    probe = WorkflowExecution(context={"plan": plan}, contact_id=contact_id)
    path, current, seen = [], plan["root"], set()
    while current is not None and current not in seen:
        seen.add(current)
        node = plan["actions"][current]
        step: dict[str, Any] = {"action_id": current, "type": node["type"], "name": node["name"]}
        if node["type"] == "if_else":
            outcome = _condition(session, probe, contact, node["config"].get("condition") or {})
            step["branch"] = "yes" if outcome else "no"
            current = node["yes"] if outcome else node["no"]
        else:
            current = None if node["type"] == "end" else node["next"]
        path.append(step)
    return path


def next_business_moment(now: datetime, hours: dict[str, Any], timezone: str) -> datetime:
    """`now` if the business is open, else when it next opens (hours keyed "0".."6", 0 = Sunday, local
    "HH:MM" open/close); `now` when no hours are set."""
    from datetime import time as clock
    from zoneinfo import ZoneInfo

    if not hours:
        return now
    zone = ZoneInfo(timezone or "UTC")
    local = now.astimezone(zone)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        spec = hours.get(str((day.weekday() + 1) % 7))
        if not spec:
            continue
        opens = datetime.combine(day, clock.fromisoformat(spec["open"]), tzinfo=zone)
        closes = datetime.combine(day, clock.fromisoformat(spec["close"]), tzinfo=zone)
        if local < opens:
            return opens.astimezone(now.tzinfo or zone)
        if local < closes:
            return now
    return now


def fire_dates(session: Session, sub_account_id: uuid.UUID, today: datetime) -> list[uuid.UUID]:
    """The custom-date trigger (birthdays, renewal dates): contacts whose date field falls on today (month and
    day, `days_before` ahead) start the workflow; once per contact, or once a year with re-entry allowed."""
    local = _local_date(session, sub_account_id, today)
    started: list[uuid.UUID] = []
    for trigger, workflow in live_triggers(session, sub_account_id, "custom_date"):
        conditions = trigger.conditions or {}
        field = str(conditions.get("field") or "date_of_birth")
        target = local + timedelta(days=int(conditions.get("days_before", 0)))
        for contact in session.scalars(select(Contact).where(Contact.deleted_at.is_(None))):
            raw = getattr(contact, field, None) if hasattr(Contact, field) else (contact.custom_fields or {}).get(field)
            if raw is None:
                continue
            value = raw if not isinstance(raw, str) else datetime.fromisoformat(raw[:10]).date()
            if (value.month, value.day) != (target.month, target.day):
                continue
            if workflow.allow_reentry and session.scalar(select(WorkflowExecution.id).where(
                    WorkflowExecution.workflow_id == workflow.id, WorkflowExecution.contact_id == contact.id,
                    WorkflowExecution.started_at >= today - timedelta(days=300)).limit(1)):
                continue  # yearly: already this year
            execution = start(session, workflow, contact.id, {"type": "custom_date", "field": field,
                                                              "date": target.isoformat()}, now=today)
            if execution is not None:
                started.append(execution.id)
    return started


def fire_overdue(session: Session, sub_account_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """The invoice-overdue trigger: open invoices with a balance whose due date passed (in the sub-account's
    timezone; `days_after` more days when the trigger sets it) start the workflow, once per invoice."""
    from models.payments import Invoice

    today = _local_date(session, sub_account_id, now)
    started: list[uuid.UUID] = []
    for trigger, workflow in live_triggers(session, sub_account_id, "invoice_overdue"):
        conditions = dict(trigger.conditions or {})
        cutoff = today - timedelta(days=int(conditions.pop("days_after", 0)))
        already = select(WorkflowExecution.id).where(
            WorkflowExecution.workflow_id == workflow.id,
            WorkflowExecution.trigger_event["invoice_id"].astext == func.cast(Invoice.id, String)).exists()
        invoices = session.scalars(select(Invoice).where(
            Invoice.status == "open", Invoice.deleted_at.is_(None), Invoice.due_date < cutoff,
            Invoice.amount_paid < Invoice.total_amount, ~already).order_by(Invoice.due_date).limit(500))
        for invoice in invoices:
            assert invoice.due_date is not None
            event = {"type": "invoice_overdue", "invoice_id": str(invoice.id), "invoice_number": invoice.invoice_number,
                     "balance": str(invoice.total_amount - invoice.amount_paid), "currency": invoice.currency,
                     "due_date": invoice.due_date.isoformat(), "days_overdue": (today - invoice.due_date).days}
            if not all(_same(event.get(k), v) for k, v in conditions.items()):
                continue
            execution = start(session, workflow, invoice.contact_id, event, now=now)
            if execution is not None:
                started.append(execution.id)
    return started
