"""Write a scenario's analyst data (`initial_state.data`) into its sub-account: campaigns, leads with sources,
sales calls with closers and outcomes, ad spend / payments / refunds, conversations with their first reply and
handoffs; or a seeded generator whose totals are exactly the ones it states. Times are local to the sub-account."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from evals.harness.scenario import DataFixture, Generated
from models.conversations import Channel, Conversation, Handoff, Message
from models.crm import Contact
from models.db import TenantScope, tenant_session
from models.performance import Campaign, FinancialRecord, SalesCall
from models.tenancy import SubAccount, User, UserSubAccountMembership


def local(value: str, zone: str) -> datetime:
    """'2026-10-03 14:00' (or a date) in the sub-account's timezone, or an ISO time with an offset."""
    moment = datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


class _Writer:
    def __init__(self, session: Session, sub: SubAccount) -> None:
        self.session, self.sub, self.zone = session, sub, sub.timezone
        self.campaigns: dict[str, uuid.UUID] = {}
        self._staff: dict[str, uuid.UUID] | None = None
        self.channels = dict(session.execute(select(Channel.channel_type, Channel.id).where(
            Channel.deleted_at.is_(None)).order_by(Channel.created_at.desc())).all())

    def staff(self, who: str | None) -> uuid.UUID:
        """A member of the sub-account by name or e-mail (case-insensitive); None: its first member."""
        if self._staff is None:
            rows = self.session.execute(select(User.id, User.name, User.email).join(
                UserSubAccountMembership, UserSubAccountMembership.user_id == User.id).where(
                UserSubAccountMembership.sub_account_id == self.sub.id)).all()
            self._staff = {k.lower(): uid for uid, name, email in rows for k in (name, email)}
        if who is None:
            return next(iter(self._staff.values()))
        found = self._staff.get(who.lower())
        if found is None:
            raise LookupError(f"closer {who!r} is not a member of {self.sub.name}: {sorted(self._staff)}")
        return found

    def campaign(self, key: str | None) -> uuid.UUID | None:
        return None if key is None else self.campaigns[key]

    def lead(self, at: datetime, source: str | None, campaign: str | None, n: int) -> uuid.UUID:
        contact = Contact(sub_account_id=self.sub.id, agency_id=self.sub.agency_id, first_name="Lead",
                          last_name=f"{n:04d} {uuid.uuid4().hex[:4]}", lifecycle_stage="lead", lead_source=source,
                          campaign_id=self.campaign(campaign), email=f"lead-{uuid.uuid4().hex[:10]}@example.com",
                          created_at=at, updated_at=at)
        self.session.add(contact)
        self.session.flush()
        return contact.id

    def call(self, at: datetime, outcome: str, closer: str | None, campaign: str | None, minutes: int,
             contact_id: uuid.UUID | None = None) -> None:
        self.session.add(SalesCall(sub_account_id=self.sub.id, scheduled_date_time=at, duration=minutes,
                                   call_outcome=outcome, user_id=self.staff(closer) if closer else None,
                                   campaign_id=self.campaign(campaign), contact_id=contact_id))

    def conversation(self, at: datetime, channel: str, first_reply: int | None, handoff: str | None,
                     claimed_after: int | None, claimed_by: str | None, n: int) -> None:
        if channel not in self.channels:
            raise LookupError(f"{self.sub.name} has no {channel} channel")
        contact_id = self.lead(at, None, None, n)
        conversation = Conversation(sub_account_id=self.sub.id, channel_id=self.channels[channel],
                                    contact_id=contact_id, last_message_at=at, last_inbound_at=at, created_at=at,
                                    updated_at=at)
        self.session.add(conversation)
        self.session.flush()
        self.session.add(Message(sub_account_id=self.sub.id, conversation_id=conversation.id,
                                 channel_id=conversation.channel_id, contact_id=contact_id, direction="inbound",
                                 sender_type="contact", body="Hi, I have a question", status="received",
                                 created_at=at, updated_at=at))
        if first_reply is not None:
            replied = at + timedelta(seconds=first_reply)
            self.session.add(Message(sub_account_id=self.sub.id, conversation_id=conversation.id,
                                     channel_id=conversation.channel_id, contact_id=contact_id,
                                     direction="outbound", sender_type="bot", body="Happy to help!", status="sent",
                                     sent_at=replied, created_at=replied, updated_at=replied))
        if handoff is not None:
            claimed = at + timedelta(minutes=claimed_after) if claimed_after is not None else None
            self.session.add(Handoff(sub_account_id=self.sub.id, conversation_id=conversation.id,
                                     contact_id=contact_id, reason=handoff, requested_at=at,
                                     status="claimed" if claimed else "open", claimed_at=claimed,
                                     claimed_by=self.staff(claimed_by) if claimed else None,
                                     created_at=at, updated_at=at))
        self.session.flush()


def apply_data(scope: TenantScope, data: DataFixture) -> None:
    with tenant_session(scope) as session:
        sub = session.get(SubAccount, scope.sub_account_id)
        assert sub is not None
        writer = _Writer(session, sub)
        for c in data.campaigns:
            row = Campaign(sub_account_id=sub.id, agency_id=sub.agency_id, name=c.name, platform=c.platform,
                           start_date=local(c.start.isoformat(), writer.zone),
                           end_date=local(c.end.isoformat(), writer.zone) if c.end else None,
                           budget_allocation=c.budget, campaign_status=c.status, currency=sub.currency)
            session.add(row)
            session.flush()
            writer.campaigns[c.key] = row.id
        n = 0
        for leads in data.leads:
            for _ in range(leads.count):
                n += 1
                writer.lead(local(leads.at, writer.zone), leads.source, leads.campaign, n)
        for calls in data.sales_calls:
            for _ in range(calls.count):
                writer.call(local(calls.at, writer.zone), calls.outcome, calls.closer, calls.campaign, calls.minutes)
        for money in data.money:
            for _ in range(money.count):
                at = local(money.at, writer.zone)
                session.add(FinancialRecord(sub_account_id=sub.id, agency_id=sub.agency_id,
                                            campaign_id=writer.campaign(money.campaign), transaction_date=at,
                                            amount=money.amount, payment_status=money.status,
                                            transaction_type=money.type, currency=sub.currency))
        for conv in data.conversations:
            for _ in range(conv.count):
                n += 1
                writer.conversation(local(conv.at, writer.zone), conv.channel, conv.first_reply_seconds,
                                    conv.handoff, conv.claimed_after_minutes, conv.claimed_by, n)
        if data.generate is not None:
            _generate(writer, data.generate, n)
        session.flush()


def split_exactly(total: int, shares: dict[str, float]) -> dict[str, int]:
    """`total` split by shares, rounded down, the remainder one each to the first keys: sums to `total`."""
    counts = {k: int(total * v) for k, v in shares.items()}
    for key in list(shares)[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def _generate(writer: _Writer, spec: Generated, offset: int) -> None:
    """Leads evenly over the local days [start, end) (in a seeded order of sources), the first of them booked
    into calls with the stated outcome counts, closers taken in turn."""
    rng = random.Random(spec.seed)
    start = datetime.combine(spec.start, time(0), ZoneInfo(writer.zone))
    span = datetime.combine(spec.end, time(0), ZoneInfo(writer.zone)) - start
    sources = [s for s, count in split_exactly(spec.leads, spec.sources).items() for _ in range(count)]
    rng.shuffle(sources)
    outcomes = [o for o, count in spec.calls.items() for _ in range(count)]
    rng.shuffle(outcomes)
    for i, source in enumerate(sources):
        at = start + span * (i + 0.5) / spec.leads  # the middle of its share of the window
        contact_id = writer.lead(at, source, None, offset + i + 1)
        if i < len(outcomes):
            closer = spec.closers[i % len(spec.closers)] if spec.closers else None
            writer.call(at + timedelta(days=2), outcomes[i], closer, None, 30, contact_id)
