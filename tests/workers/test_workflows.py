"""Workflows: the seed's "Welcome Series" tree with simulated time: the contact who opened the welcome email
gets the product tips and the Engaged tag, the one who did not gets the re-engagement email and Needs Nurture;
the wait is durable (the steps after it run in another process, as after a restart); editing the live workflow
does not change running executions; once per contact; a failing step retries then fails the execution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import app
from leadpilot.settings import PROJECT_ROOT
from models.conversations import Message
from models.db import TenantScope, tenant_session
from models.workflows import Workflow, WorkflowAction, WorkflowActionExecution, WorkflowExecution, WorkflowTrigger
from services import crm, workflows
from tests.conftest import Demo

pytestmark = pytest.mark.integration
DAY = 24 * 3600


def _welcome_series(session, sub: uuid.UUID, tag: str) -> uuid.UUID:  # type: ignore[no-untyped-def]
    flow = Workflow(sub_account_id=sub, name=f"Welcome Series {tag}", status="published")
    session.add(flow)
    session.flush()
    session.add(WorkflowTrigger(sub_account_id=sub, workflow_id=flow.id, trigger_type="tag_added",
                                conditions={"tag": tag}))

    def action(kind: str, name: str, parent: WorkflowAction | None = None, branch: str | None = None,
               **config: object) -> WorkflowAction:
        row = WorkflowAction(sub_account_id=sub, workflow_id=flow.id, parent_action_id=parent.id if parent else None,
                             branch=branch, action_type=kind, name=name, config=config)
        session.add(row)
        session.flush()
        return row

    welcome = action("send_email", "Send Welcome Email", subject="Welcome, {{ first_name }}!",
                     body="Hi {{ first_name }}, welcome!", defaults={"first_name": "friend"},
                     html='<p>Hi {{ first_name }}</p><a href="https://restaurant.example/menu">Menu</a>')
    wait = action("wait", "Wait 1 Day", welcome, seconds=DAY)
    check = action("if_else", "Opened Email?", wait, condition={"type": "email_opened"})
    tips = action("send_email", "Send Product Tips", check, "yes", subject="Tips", body="Our chef's tips")
    nudge = action("send_email", "Send Re-engagement Email", check, "no", subject="We miss you", body="Come back")
    action("add_tag", "Add Tag: Engaged", tips, tag="Engaged")
    action("add_tag", "Add Tag: Needs Nurture", nudge, tag="Needs Nurture")
    return flow.id


def _sweep_in_another_process(now: datetime) -> int:
    """What the beat sweeper does after a restart: a new process, nothing in memory, only the database."""
    code = ("import sys, json; from datetime import datetime; from workers.tasks import workflow_sweep; "
            "from services import workflows; from models.db import owner_session, TenantScope, tenant_session; "
            "now = datetime.fromisoformat(sys.argv[1]); ran = 0\n"
            "with owner_session() as s: targets = workflows.due_sub_accounts(s, now)\n"
            "for a, sub in targets:\n"
            "    with tenant_session(TenantScope(agency_id=a, sub_account_id=sub)) as s:\n"
            "        ran += workflows.run_due(s, now)\n"
            "print(json.dumps(ran))")
    done = subprocess.run([sys.executable, "-c", code, now.isoformat()], cwd=PROJECT_ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120, check=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_welcome_series_branches_on_the_open_and_survives_a_restart(demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    tag = f"new-member-{uuid.uuid4().hex[:6]}"
    with tenant_session(scope) as session:
        flow_id = _welcome_series(session, demo.a, tag)
        people = [crm.create_contact(session=session, sub_account_id=demo.a,
                                     fields={"first_name": name, "email": f"{name.lower()}-{tag}@example.com"})
                  for name in ("Opal", "Nate")]
        for person in people:  # the trigger: the tag is added
            crm.add_tag(session=session, contact_id=person.id, name=tag)
        crm.add_tag(session=session, contact_id=people[0].id, name=tag)  # again: no second execution
        ids = [p.id for p in people]
    t0 = datetime.now(UTC)
    with tenant_session(scope) as session:
        assert workflows.run_due(session, t0) >= 4  # welcome emails sent, waits scheduled
        executions = {e.contact_id: e for e in session.scalars(select(WorkflowExecution).where(
            WorkflowExecution.workflow_id == flow_id))}
        assert set(executions) == set(ids) and {e.status for e in executions.values()} == {"waiting"}
        welcome = {m.contact_id: m for m in session.scalars(select(Message).where(
            Message.contact_id.in_(ids), Message.subject.like("Welcome%")))}
        assert welcome[ids[0]].subject == "Welcome, Opal!" and "/t/o/m-" in welcome[ids[0]].html_body
        # the flow is edited while both wait: running executions keep their own plan
        flow = session.get(Workflow, flow_id)
        flow.version += 1
        tips = session.scalars(select(WorkflowAction).where(WorkflowAction.workflow_id == flow_id,
                                                            WorkflowAction.name == "Send Product Tips")).one()
        tips.config = {**tips.config, "subject": "EDITED"}
    token = welcome[ids[0]].metadata_["tracking_token"]
    assert TestClient(app).get(f"/t/o/{token}.gif").status_code == 200  # Opal opens the welcome email
    _sweep_in_another_process(t0 + timedelta(hours=23))  # the wait is not over (other tests' due steps may run)
    with tenant_session(scope) as session:
        assert {e.status for e in session.scalars(select(WorkflowExecution).where(
            WorkflowExecution.workflow_id == flow_id))} == {"waiting"}
    assert _sweep_in_another_process(t0 + timedelta(days=1, minutes=1)) >= 6  # both branches, after a "restart"
    with tenant_session(scope) as session:
        tags = {i: crm.contact_tags(session=session, contact_id=i) for i in ids}
        subjects = {i: sorted(m.subject for m in session.scalars(select(Message).where(Message.contact_id == i)))
                    for i in ids}
        done = {e.contact_id: e.status for e in session.scalars(select(WorkflowExecution).where(
            WorkflowExecution.workflow_id == flow_id))}
        steps = session.scalars(select(WorkflowActionExecution).join(WorkflowExecution).where(
            WorkflowExecution.workflow_id == flow_id)).all()
    assert "Engaged" in tags[ids[0]] and "Needs Nurture" not in tags[ids[0]]
    assert "Needs Nurture" in tags[ids[1]] and "Engaged" not in tags[ids[1]]
    assert subjects[ids[0]] == ["Tips", "Welcome, Opal!"]  # the plan it started with, not the edit
    assert subjects[ids[1]] == ["We miss you", "Welcome, Nate!"]
    assert set(done.values()) == {"completed"} and {s.status for s in steps} == {"completed"}
    assert len(steps) == 2 * 5  # welcome, wait, if, branch email, tag: every step recorded


def test_a_failing_step_retries_then_fails_the_execution_and_dry_run_shows_the_path(demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        flow = Workflow(sub_account_id=demo.a, name="Broken", status="published")
        session.add(flow)
        session.flush()
        check = WorkflowAction(sub_account_id=demo.a, workflow_id=flow.id, action_type="if_else", name="VIP?",
                               config={"condition": {"type": "has_tag", "tag": "vip"}})
        session.add(check)
        session.flush()
        session.add(WorkflowAction(sub_account_id=demo.a, workflow_id=flow.id, parent_action_id=check.id,
                                   branch="no", action_type="update_field", name="Bad field",
                                   config={"changes": {"no_such_field": 1}}))
        contact = crm.create_contact(session=session, sub_account_id=demo.a,
                                     fields={"email": f"broken-{uuid.uuid4().hex[:6]}@example.com"})
        path = workflows.dry_run(session, flow.id, contact.id)
        assert [(p["type"], p.get("branch")) for p in path] == [("if_else", "no"), ("update_field", None)]
        execution = workflows.start(session, flow, contact.id, {"type": "manual"})
        assert workflows.start(session, flow, contact.id, {"type": "manual"}) is None  # once per contact
        t = datetime.now(UTC)
        for minutes in (0, 1, 3, 10):
            workflows.run_due(session, t + timedelta(minutes=minutes))
        session.refresh(execution)
        failed = session.scalars(select(WorkflowActionExecution).where(
            WorkflowActionExecution.workflow_execution_id == execution.id,
            WorkflowActionExecution.status == "failed")).one()
    assert execution.status == "failed" and failed.attempts == workflows.MAX_STEP_ATTEMPTS and execution.error


def test_workflows_through_the_api_versions_and_more_triggers(demo: Demo) -> None:
    from datetime import UTC, datetime

    from tests.api.test_rest import key_for

    client, headers = TestClient(app), key_for(demo, "john@restaurant.com")
    base = f"/v1/sub-accounts/{demo.a}/workflows"
    tag = f"vip-{uuid.uuid4().hex[:6]}"
    body = {"name": "VIP welcome", "triggers": [{"type": "tag_added", "conditions": {"tag": tag}}],
            "actions": {"type": "if_else", "config": {"condition": {"type": "field_equals", "field": "source",
                                                                      "value": "webchat"}},
                        "yes": {"type": "add_tag", "config": {"tag": "chatty"}},
                        "no": {"type": "create_task", "config": {"title": "Call the VIP"},
                               "then": {"type": "add_tag", "config": {"tag": "called"}}}}}
    made = client.post(base, headers=headers, json=body)
    assert made.status_code == 201, made.text
    flow_id = made.json()["id"]
    bad = {**body, "actions": {"type": "add_tag", "config": {"tag": "x"}, "yes": {"type": "end"}}}
    assert client.post(base, headers=headers, json=bad).status_code == 422
    contact = client.post(f"/v1/sub-accounts/{demo.a}/contacts", headers=headers,
                          json={"email": f"vip-{tag}@example.com", "source": "sms"}).json()
    path = client.post(f"{base}/{flow_id}/dry-run", headers=headers, json={"contact_id": contact["id"]}).json()
    assert [(p["type"], p.get("branch")) for p in path] == [("if_else", "no"), ("create_task", None),
                                                           ("add_tag", None)]
    assert client.post(f"{base}/{flow_id}/publish", headers=headers).json()["status"] == "published"
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        crm.add_tag(session=session, contact_id=uuid.UUID(contact["id"]), name=tag)
    edited = client.put(f"{base}/{flow_id}", headers=headers, json={**body, "actions": {"type": "end"}}).json()
    assert edited["version"] == 2  # the contact already inside keeps version 1's plan
    with tenant_session(scope) as session:
        workflows.run_due(session, datetime.now(UTC))
        assert {"called"} <= set(crm.contact_tags(session=session, contact_id=uuid.UUID(contact["id"])))
    runs = client.get(f"{base}/{flow_id}/executions", headers=headers).json()
    assert [(r["version"], r["status"], len(r["steps"])) for r in runs] == [(1, "completed", 3)]
    assert client.get(base + f"/{flow_id}/executions", headers=key_for(demo, "jane@restaurant.com")
                      ).status_code == 403  # Client Staff does not manage workflows


def test_waiting_for_business_hours_and_a_birthday_trigger(demo: Demo) -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    hours = {str(d): {"open": "11:30", "close": "22:00"} for d in range(1, 7)}  # closed on Sundays (0)
    zone = ZoneInfo("America/New_York")
    saturday_night = datetime(2026, 11, 28, 23, 0, tzinfo=zone)
    assert workflows.next_business_moment(saturday_night, hours, "America/New_York") == datetime(
        2026, 11, 30, 11, 30, tzinfo=zone)  # Sunday closed: Monday's opening
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=zone)
    assert workflows.next_business_moment(noon, hours, "America/New_York") == noon
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    today = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    with tenant_session(scope) as session:
        flow = Workflow(sub_account_id=demo.a, name=f"Birthday {uuid.uuid4().hex[:4]}", status="published",
                        allow_reentry=True)
        session.add(flow)
        session.flush()
        session.add(WorkflowTrigger(sub_account_id=demo.a, workflow_id=flow.id, trigger_type="custom_date",
                                    conditions={"field": "date_of_birth"}))
        session.add(WorkflowAction(sub_account_id=demo.a, workflow_id=flow.id, action_type="add_tag",
                                   name="Birthday", config={"tag": "birthday-2026"}))
        born = crm.create_contact(session=session, sub_account_id=demo.a, fields={
            "email": f"bday-{uuid.uuid4().hex[:6]}@example.com", "date_of_birth": date(1990, 12, 3)})
        other = crm.create_contact(session=session, sub_account_id=demo.a, fields={
            "email": f"nobday-{uuid.uuid4().hex[:6]}@example.com", "date_of_birth": date(1990, 12, 4)})
        started = workflows.fire_dates(session, demo.a, today)
        assert workflows.fire_dates(session, demo.a, today) == []  # the hourly repeat starts nobody twice
        workflows.run_due(session, today)
        assert "birthday-2026" in crm.contact_tags(session=session, contact_id=born.id)
        assert "birthday-2026" not in crm.contact_tags(session=session, contact_id=other.id)
    assert len(started) == 1


def test_invoice_overdue_starts_once_per_unpaid_invoice(demo: Demo) -> None:
    from datetime import date
    from decimal import Decimal

    from services import payments

    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    now = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
    with tenant_session(scope) as session:
        # the seed's open invoices may be overdue too: only the executions for these invoices are looked at
        flow = Workflow(sub_account_id=demo.a, name=f"Dunning {uuid.uuid4().hex[:4]}", status="published",
                        allow_reentry=True)
        session.add(flow)
        session.flush()
        session.add(WorkflowTrigger(sub_account_id=demo.a, workflow_id=flow.id, trigger_type="invoice_overdue",
                                    conditions={"days_after": 2}))
        session.add(WorkflowAction(sub_account_id=demo.a, workflow_id=flow.id, action_type="add_tag",
                                   name="Overdue", config={"tag": "invoice-overdue"}))
        invoices = {}
        for name, issued, paid in (("late", date(2026, 11, 1), False), ("paid", date(2026, 11, 1), True),
                                   ("recent", date(2026, 11, 25), False)):
            contact = crm.create_contact(session=session, sub_account_id=demo.a, fields={
                "email": f"{name}-{uuid.uuid4().hex[:6]}@example.com"})
            line = payments.Line("Catering", Decimal(1), Decimal("300.00"), None, None)
            invoice = payments.create_invoice(session=session, contact_id=contact.id, lines=[line],
                                              issue_date=issued, due_in_days=14)
            if paid:
                payments.record_payment(session=session, invoice_id=invoice.id, amount=Decimal("300.00"),
                                        gateway="manual", gateway_transaction_id=f"cash-{invoice.id}", now=now)
            invoices[name] = (invoice.id, contact.id)
        # due 11-15 (late: 25 days over, past the 2-day grace), paid, and due 12-09 (one day over: within grace)
        workflows.fire_overdue(session, demo.a, now)
        assert workflows.fire_overdue(session, demo.a, now + timedelta(hours=1)) == []  # the hourly repeat
        ours = {str(invoice_id) for invoice_id, _ in invoices.values()}
        mine = {e.trigger_event["invoice_id"]: e for e in session.scalars(
            select(WorkflowExecution).where(WorkflowExecution.workflow_id == flow.id))
            if e.trigger_event["invoice_id"] in ours}
        assert set(mine) == {str(invoices["late"][0])}
        assert mine[str(invoices["late"][0])].trigger_event["days_overdue"] == 25
        workflows.run_due(session, now)
        assert "invoice-overdue" in crm.contact_tags(session=session, contact_id=invoices["late"][1])
        assert "invoice-overdue" not in crm.contact_tags(session=session, contact_id=invoices["recent"][1])
        later = workflows.fire_overdue(session, demo.a, now + timedelta(days=2))  # the recent one's grace is over
        assert [i for e in later if (i := session.get(WorkflowExecution, e).trigger_event["invoice_id"]) in ours] \
            == [str(invoices["recent"][0])]


def test_removing_a_tag_starts_the_tag_removed_workflows(demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    tag = f"member-{uuid.uuid4().hex[:6]}"
    with tenant_session(scope) as session:
        flow = Workflow(sub_account_id=demo.a, name=f"Lapsed {tag}", status="published")
        session.add(flow)
        session.flush()
        session.add(WorkflowTrigger(sub_account_id=demo.a, workflow_id=flow.id, trigger_type="tag_removed",
                                    conditions={"tag": tag}))
        session.add(WorkflowAction(sub_account_id=demo.a, workflow_id=flow.id, action_type="add_tag",
                                   name="Lapsed", config={"tag": f"lapsed-{tag}"}))
        contact = crm.create_contact(session=session, sub_account_id=demo.a,
                                     fields={"email": f"{tag}@example.com"})
        crm.add_tag(session=session, contact_id=contact.id, name=tag)
        assert not crm.remove_tag(session=session, contact_id=contact.id, name="never-had-it")
        assert session.scalars(select(WorkflowExecution).where(WorkflowExecution.workflow_id == flow.id)).all() == []
        assert crm.remove_tag(session=session, contact_id=contact.id, name=tag.upper())  # tags ignore case
        workflows.run_due(session, datetime.now(UTC))
        assert f"lapsed-{tag}" in crm.contact_tags(session=session, contact_id=contact.id)
