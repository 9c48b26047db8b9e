"""Render + queue throughput of an email campaign to 100,000 recipients, with nobody messaged twice and no
opted-out contact messaged at all.

Setup (not timed): the demo agency; in its sub-account restaurant-a, contacts bulk-inserted as the campaign
test does (Core `insert(Contact)` / `insert(ContactTag)`), every one with an email and the run's tag, 1% opted
out of email (`dnd_channels`), one in seven without a first name; an email template (subject, text and HTML
with `{{ first_name }}`, default "friend", and a link) and a draft email campaign to the tag; then ANALYZE, as
a live database would have its statistics.

ours:      what production runs, in this process: `campaigns.launch` in one transaction (the API's launch) and
           the hand-off of the first batch, then the body of the `workers.campaign_batch` task
           (`campaigns.queue_batch`) until it finds nothing left: in one transaction render and store up to
           BATCH messages and queue them all (`channels.outbound.queue_sends`: one multi-row outbox insert;
           after the commit the hand-offs, 25 sends per `send_messages` task, through one broker connection,
           and one realtime event for the batch), then the next batch's hand-off.
           No Celery worker runs: the loop stands in for the worker taking each batch, and every hand-off
           goes to a private embedded Redis, where it is counted afterwards. `total_s` = launch + all batches,
           including every outbox row and hand-off; `per_s` = messages / total_s. Then checked in the database:
           `messages` == `eligible`, `duplicated` (contacts with more than one message) = 0, `dnd_sent`
           (messages to email-DND contacts) = 0, `missing_outbox` (messages without their `message.send` outbox
           row) = 0, and in Redis `queued_sends` (sends waiting in the queued tasks) = messages.
baseline:  the naive way, on its own tag and campaign (the same kind of contacts, `--baseline-recipients` of
           them): the tagged contacts listed, then for each contact its own transaction: the contact loaded,
           DND and address checked in Python, the same template rendered with the same (sandboxed) Jinja2
           environment and the same link tracking, the conversation looked up (created if missing), a
           recipient row and the Message added through the ORM, and `queue_send` called. No batching. Its rate
           is measured on the smaller size; `extrapolated_total_s_for_<recipients>` is that rate applied to
           ours' size (one-by-one work grows linearly with the contacts, so this flatters it if anything).
Prints one JSON line (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time as clock
import uuid
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATE = ROOT / ".leadpilot" / "bench"
SUBJECT = "{{ first_name }}, our spring menu is here"
TEXT = "Hi {{ first_name }}, our spring menu is here: https://restaurant.example/menu"
HTML = ('<html><body><p>Hi {{ first_name }}!</p><p>Our spring menu is here.</p>'
        '<a href="https://restaurant.example/menu">See the menu</a></body></html>')


def dnd(i: int) -> bool:
    return i % 100 == 1  # 1%


def setup(count: int, label: str, scope: Any) -> tuple[uuid.UUID, int]:
    """`count` tagged contacts and a draft email campaign to the tag; returns (campaign id, eligible)."""
    from sqlalchemy import insert

    from models.crm import Contact, ContactTag, Tag
    from models.db import tenant_session
    from models.marketing import EmailTemplate, MessageCampaign

    sub, agency = scope.sub_account_id, scope.agency_id
    tag_name = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    with tenant_session(scope) as session:
        tag = Tag(sub_account_id=sub, name=tag_name)
        session.add(tag)
        session.flush()
        for start in range(0, count, 10_000):
            rows = [{"id": uuid.uuid4(), "sub_account_id": sub, "agency_id": agency,
                     "first_name": None if i % 7 == 0 else f"Guest{i}", "last_name": label.title(),
                     "email": f"{label}-{i}-{tag_name}@example.com", "initial_contact_date": now,
                     "dnd_channels": {"email": {"reason": "unsubscribed", "at": now.isoformat()}} if dnd(i) else {}}
                    for i in range(start, min(count, start + 10_000))]
            session.execute(insert(Contact), rows)
            session.execute(insert(ContactTag), [{"sub_account_id": sub, "contact_id": r["id"], "tag_id": tag.id}
                                                 for r in rows])
        template = EmailTemplate(sub_account_id=sub, name=f"Spring ({label})", subject=SUBJECT, text_content=TEXT,
                                 html_content=HTML, variables=[{"name": "first_name", "default": "friend"}])
        session.add(template)
        session.flush()
        campaign = MessageCampaign(sub_account_id=sub, name=f"Spring ({label})", channel_type="email",
                                   email_template_id=template.id, audience={"tags": [tag_name]})
        session.add(campaign)
        session.flush()
        return campaign.id, sum(1 for i in range(count) if not dnd(i))


def hand_off_batch(campaign_id: uuid.UUID, scope: Any) -> None:
    """What the API's launch and each non-empty batch do next: queue `workers.campaign_batch` (by name, to the
    campaigns queue), which no worker takes here."""
    from workers.app import celery_app

    celery_app.send_task("workers.campaign_batch",
                         args=[str(campaign_id), str(scope.agency_id), str(scope.sub_account_id)])


def ours(campaign_id: uuid.UUID, scope: Any) -> dict[str, Any]:
    """Launch, then the campaign_batch task's body, batch after batch, until the campaign is fully queued."""
    from models.db import tenant_session
    from services import campaigns

    t0 = clock.perf_counter()
    with tenant_session(scope) as session:
        recipients = campaigns.launch(session=session, campaign_id=campaign_id)
    hand_off_batch(campaign_id, scope)
    launch_s = clock.perf_counter() - t0
    batches = messages = 0
    send_batch_s = commit_s = 0.0
    batch_ms: list[float] = []
    while True:
        a = clock.perf_counter()
        with tenant_session(scope) as session:  # workers.campaign_batch's body: services.campaigns.queue_batch
            queued = campaigns.queue_batch(session=session, campaign_id=campaign_id)
            b = clock.perf_counter()
        # here the transaction has committed and the batch's sends were handed to the broker (after commit)
        if queued:
            hand_off_batch(campaign_id, scope)
        d = clock.perf_counter()
        send_batch_s, commit_s = send_batch_s + b - a, commit_s + d - b
        if not queued:
            break
        batches += 1
        messages += queued
        batch_ms.append((d - a) * 1000)
    total_s = clock.perf_counter() - t0
    return {"total_s": round(total_s, 2), "per_s": round(messages / total_s, 1), "launch_s": round(launch_s, 2),
            "batches": batches, "messages": messages, "recipients": recipients,
            "render_store_queue_s": round(send_batch_s, 2), "commit_and_handoff_s": round(commit_s, 2),
            # whether batches slow down as the campaign proceeds: the first and last tenth, mean ms per batch
            "first_tenth_batch_ms": round(mean(batch_ms[:max(1, len(batch_ms) // 10)]), 1) if batch_ms else None,
            "last_tenth_batch_ms": round(mean(batch_ms[-max(1, len(batch_ms) // 10):]), 1) if batch_ms else None}


def baseline(campaign_id: uuid.UUID, scope: Any) -> dict[str, Any]:
    """One contact, one transaction: check, render, find the conversation, store, queue_send."""
    from sqlalchemy import func, select

    from channels.outbound import queue_send
    from leadpilot.settings import get_settings
    from models.conversations import Channel, Conversation, Message
    from models.crm import Contact, ContactTag, Tag
    from models.db import tenant_session
    from models.marketing import EmailTemplate, MessageCampaign, MessageCampaignRecipient
    from services import campaigns
    from services.crm import is_dnd

    base = get_settings().public_base_url.rstrip("/")
    t0 = clock.perf_counter()
    with tenant_session(scope) as session:
        campaign = session.get(MessageCampaign, campaign_id)
        assert campaign is not None
        template = session.get(EmailTemplate, campaign.email_template_id)
        assert template is not None
        tag = campaign.audience["tags"][0]
        contact_ids = list(session.scalars(select(ContactTag.contact_id).join(Tag, Tag.id == ContactTag.tag_id)
                                           .where(func.lower(Tag.name) == tag.lower())))
        channel_id = session.scalars(select(Channel.id).where(Channel.channel_type == "email", Channel.is_active,
                                                              Channel.deleted_at.is_(None))
                                     .order_by(Channel.created_at).limit(1)).one()
        campaign.status, campaign.started_at = "sending", datetime.now(UTC)
        defaults = {v["name"]: v.get("default", "") for v in template.variables}
        subject_t, body_t = campaigns.compile_template(template.subject), campaigns.compile_template(
            template.text_content or "")
        html_t = campaigns.compile_template(template.html_content)
    sent = skipped = 0
    for contact_id in contact_ids:
        with tenant_session(scope) as session:
            contact = session.get(Contact, contact_id)
            if contact is None or contact.deleted_at is not None or not contact.email or is_dnd(contact, "email"):
                skipped += 1
                continue
            conversation = session.scalars(select(Conversation).where(
                Conversation.channel_id == channel_id, Conversation.contact_id == contact.id,
                Conversation.deleted_at.is_(None)).order_by(Conversation.created_at.desc()).limit(1)).first()
            if conversation is None:
                conversation = Conversation(sub_account_id=contact.sub_account_id, channel_id=channel_id,
                                            contact_id=contact.id, status="resolved")
                session.add(conversation)
                session.flush()
            token = secrets.token_hex(16)
            recipient = MessageCampaignRecipient(sub_account_id=contact.sub_account_id,
                                                 message_campaign_id=campaign_id, contact_id=contact.id,
                                                 tracking_token=token, status="queued")
            session.add(recipient)
            session.flush()
            values = campaigns.variables_of(contact, defaults)
            message = Message(
                sub_account_id=contact.sub_account_id, conversation_id=conversation.id, channel_id=channel_id,
                contact_id=contact.id, direction="outbound", sender_type="system", content_type="email",
                subject=subject_t.render(values).strip() or None, body=body_t.render(values).strip(),
                html_body=campaigns.tracked_html(html_t.render(values), token), status="queued",
                idempotency_key=f"campaign:{campaign_id}:{contact.id}",
                metadata_={"campaign_id": str(campaign_id), "recipient_id": str(recipient.id),
                           "list_unsubscribe": f"{base}/u/{token}"})
            session.add(message)
            session.flush()
            recipient.message_id, recipient.sent_at = message.id, datetime.now(UTC)
            queue_send(session, message)
            sent += 1
    with tenant_session(scope) as session:
        campaign = session.get(MessageCampaign, campaign_id)
        assert campaign is not None
        campaign.status, campaign.completed_at, campaign.total_recipients = "sent", datetime.now(UTC), sent
    total_s = clock.perf_counter() - t0
    return {"total_s": total_s, "messages": sent, "skipped": skipped, "contacts": len(contact_ids)}


def check(engine: Any, campaign_id: uuid.UUID) -> dict[str, Any]:
    """What the database holds for a campaign (owner connection, no RLS)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(text("""
            WITH m AS (SELECT id, contact_id FROM messages WHERE metadata->>'campaign_id' = :cid)
            SELECT (SELECT count(*) FROM m),
                   (SELECT count(*) FROM (SELECT contact_id FROM m GROUP BY 1 HAVING count(*) > 1) d),
                   (SELECT count(*) FROM m JOIN contacts c ON c.id = m.contact_id
                     WHERE c.dnd_channels ? 'email' OR c.dnd_all),
                   (SELECT count(*) FROM m WHERE NOT EXISTS (SELECT 1 FROM outbox_events o
                     WHERE o.topic = 'message.send' AND o.aggregate_id = m.id)),
                   (SELECT count(*) FROM message_campaign_recipients r
                     WHERE r.message_campaign_id = CAST(:cid AS uuid) AND r.message_id IS NOT NULL),
                   (SELECT status FROM message_campaigns WHERE id = CAST(:cid AS uuid))"""),
            {"cid": str(campaign_id)}).one()
    return {"stored": row[0], "duplicated": row[1], "dnd_sent": row[2], "missing_outbox": row[3],
            "recipients_sent": row[4], "status": row[5]}


def _sends_in(raw: bytes) -> int:
    """Message sends one queued Celery task carries (kombu's JSON envelope, Celery's protocol 2 body)."""
    import base64

    envelope = json.loads(raw)
    task = envelope.get("headers", {}).get("task")
    if task == "workers.send_message":
        return 1
    if task == "workers.send_messages":
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        return len(args[0])
    return 0


def queue_lengths(redis_url: str) -> dict[str, int]:
    """Tasks waiting in Redis per Celery queue (kombu keeps a queue as a list, one per priority)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        lengths: dict[str, int] = {}
        for key in client.scan_iter(count=1000):
            if client.type(key) == b"list":
                name = key.decode().split("\x06")[0]
                lengths[name] = lengths.get(name, 0) + int(client.llen(key))
                if name == "outbound":  # sends waiting: a campaign batch hands them over 25 to a task
                    waiting = sum(_sends_in(raw) for raw in client.lrange(key, 0, -1))
                    lengths["sends"] = lengths.get("sends", 0) + waiting
        return lengths
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000, help="contacts in ours' audience")
    parser.add_argument("--baseline-recipients", type=int, default=5_000, help="contacts in the baseline's")
    parser.add_argument("--profile", metavar="PATH", help="cProfile ours into PATH (slows it; top costs to stderr)")
    args = parser.parse_args()
    began = clock.monotonic()
    load_before = os.getloadavg()[0]  # the machine is shared: a busy one shows here

    from sqlalchemy import create_engine, pool, text

    from bench._db import scratch_database
    from leadpilot.infra import start_embedded_redis, stop_embedded_redis
    from leadpilot.settings import get_settings

    STATE.mkdir(parents=True, exist_ok=True)
    redis_url = start_embedded_redis(STATE / "campaign-redis")  # a private Redis: its queues hold this run only
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    try:
        with scratch_database("lp_bench_campaign") as (owner_url, _):
            os.environ["DATABASE_URL"] = owner_url
            get_settings.cache_clear()
            from models.db import TenantScope, get_app_engine, get_owner_engine, owner_session
            from services.demo_agency import seed_demo

            engine = create_engine(owner_url, poolclass=pool.NullPool)
            try:
                with owner_session() as session:
                    summary = seed_demo(session=session)
                scope = TenantScope(agency_id=summary.agency_id, sub_account_id=summary.sub_account_ids["restaurant-a"])
                t0 = clock.perf_counter()
                ours_campaign, ours_eligible = setup(args.recipients, "ours", scope)
                base_campaign, base_eligible = setup(args.baseline_recipients, "base", scope)
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE"))
                setup_s = clock.perf_counter() - t0
                queued_before = sum(queue_lengths(redis_url).values())

                profiler = cProfile.Profile() if args.profile else None
                if profiler:
                    profiler.enable()
                mine = ours(ours_campaign, scope)
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
                    print(out.getvalue(), file=sys.stderr)
                mine_check = check(engine, ours_campaign)
                mine_queues = queue_lengths(redis_url)

                base = baseline(base_campaign, scope)
                base_check = check(engine, base_campaign)
                queues = queue_lengths(redis_url)
                with engine.connect() as conn:
                    settings = {name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                                for name in ("synchronous_commit", "fsync", "shared_buffers")}
            finally:
                engine.dispose()
                get_app_engine().dispose()
                get_owner_engine().dispose()
    finally:
        stop_embedded_redis(STATE / "campaign-redis")

    base_per_s = base["messages"] / base["total_s"]
    print(json.dumps({
        "bench": "campaign",
        "ours": {**mine, "eligible": ours_eligible, "duplicated": mine_check["duplicated"],
                 "dnd_sent": mine_check["dnd_sent"], "stored": mine_check["stored"],
                 "missing_outbox": mine_check["missing_outbox"], "recipients_sent": mine_check["recipients_sent"],
                 "status": mine_check["status"], "queued_sends": mine_queues.get("sends", 0),
                 "queued_send_tasks": mine_queues.get("outbound", 0),
                 "queued_batches": mine_queues.get("campaigns", 0),
                 "target_total_s": 60, "meets_target": mine["total_s"] < 60 and args.recipients >= 100_000,
                 "speedup_vs_baseline": round(mine["per_s"] / base_per_s, 1) if base_per_s else None},
        "baseline": {"per_s": round(base_per_s, 1),
                     f"total_s_for_{args.baseline_recipients}": round(base["total_s"], 2),
                     f"extrapolated_total_s_for_{args.recipients}": round(
                         base["total_s"] * args.recipients / args.baseline_recipients, 1),
                     "messages": base["messages"], "eligible": base_eligible, "skipped": base["skipped"],
                     "duplicated": base_check["duplicated"], "dnd_sent": base_check["dnd_sent"],
                     "stored": base_check["stored"], "missing_outbox": base_check["missing_outbox"],
                     "queued_sends": queues.get("sends", 0) - mine_queues.get("sends", 0)},
        "params": {"recipients": args.recipients, "baseline_recipients": args.baseline_recipients,
                   "batch": __import__("services.campaigns", fromlist=["BATCH"]).BATCH, "channel": "email",
                   "dnd_share": 0.01, "no_first_name_share": round(1 / 7, 3), "cores": os.cpu_count(),
                   "role": "leadpilot_app (RLS on)", "broker": "embedded redis (private), no worker",
                   "queued_before": queued_before, "setup_s": round(setup_s, 1), "postgres": settings,
                   "profiled": bool(args.profile), "loadavg_1m_before": round(load_before, 2),
                   "run_s": round(clock.monotonic() - began, 1)},
    }))


if __name__ == "__main__":
    main()
