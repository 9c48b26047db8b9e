"""Report templates (Dashboard / Export / Recurring): render a saved configuration to JSON and CSV, and
deliver recurring ones on their schedule."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.performance import Campaign, ReportTemplate
from models.sandbox import SandboxDelivery
from models.tenancy import SubAccount
from services import reporting
from services.errors import InvalidInput, NotFound

NEXT_RUN = {"daily": relativedelta(days=1), "weekly": relativedelta(weeks=1), "monthly": relativedelta(months=1)}
PERIOD_OF = {"daily": "day", "weekly": "week", "monthly": "month"}


@dataclass(frozen=True)
class Rendered:
    """A report rendered for people (CSV) and machines (JSON)."""

    json: dict[str, Any]
    csv: str


def render(*, session: Session, template_id: uuid.UUID, anchor: date | None = None,
           now: datetime | None = None) -> Rendered:
    """Run the template's report (metrics, grouping, period) in its sub-account's timezone."""
    template = session.get(ReportTemplate, template_id)
    if template is None or template.deleted_at is not None:
        raise NotFound("No such report template.")
    config = template.configuration_settings
    metrics = [m for m in config.get("metrics", reporting.METRICS) if m in reporting.METRICS]
    if not metrics:
        raise InvalidInput("The template names no known metric.", field="configuration_settings.metrics")
    group_by = config.get("group_by", "campaign")
    if group_by not in ("campaign", "sub_account", "agency"):
        raise InvalidInput("group_by is campaign, sub_account or agency.", field="configuration_settings.group_by")
    period = config.get("period") or PERIOD_OF.get(template.schedule_frequency or "", "month")
    if period not in ("day", "week", "month", "quarter"):
        raise InvalidInput("period is day, week, month or quarter.", field="configuration_settings.period")
    tz = (reporting.sub_account_timezone(session=session, sub_account_id=template.sub_account_id)
          if template.sub_account_id else config.get("timezone", "UTC"))
    report = reporting.build_report(session=session, group_by=group_by, tz=tz, period=period,  # type: ignore[arg-type]
                                    anchor=anchor,
                                    now=now, metrics=metrics)
    names = _names(session, group_by)
    rows = [{"group": names.get(g.key, "unattributed" if g.key is None else str(g.key)),
             **{f"{m}": g.figures[m].value for m in metrics},
             **{f"{m}_previous": g.figures[m].baseline for m in metrics},
             **{f"{m}_trend": g.figures[m].trend for m in metrics}} for g in report.groups]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["group", *metrics, *(f"{m}_previous" for m in metrics),
                                                *(f"{m}_trend" for m in metrics)], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    payload = {"template": template.template_name, "timezone": tz, "group_by": group_by,
               "period": {"start": report.start.isoformat(), "end": report.end.isoformat()},
               "formulas": {m: reporting.FORMULAS[m] for m in metrics},
               "rows": [{k: (str(v) if v is not None and not isinstance(v, str) else v) for k, v in r.items()}
                        for r in rows]}
    return Rendered(json=payload, csv=buffer.getvalue())


def _names(session: Session, group_by: str) -> dict[Any, str]:
    if group_by == "campaign":
        return {cid: name for cid, name in session.execute(select(Campaign.id, Campaign.name))}
    if group_by == "sub_account":
        return {sid: name for sid, name in session.execute(select(SubAccount.id, SubAccount.name))}
    return {"agency": "Agency total"}


def due_templates(*, session: Session, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]]:
    """(template, agency, sub-account) of every recurring template due now (owner session: all tenants)."""
    return [(t, a, s) for t, a, s in session.execute(
        select(ReportTemplate.id, ReportTemplate.agency_id, ReportTemplate.sub_account_id).where(
            ReportTemplate.template_type == "recurring", ReportTemplate.active_status,
            ReportTemplate.deleted_at.is_(None), ReportTemplate.next_run_at <= now))]


def deliver(*, session: Session, template_id: uuid.UUID, now: datetime | None = None) -> bool:
    """Render a due recurring template for the period just ended, hand it to each recipient (recorded as an
    email delivery, once per run), and schedule the next run. False when it was not due."""
    now = now or datetime.now(UTC)
    template = session.get(ReportTemplate, template_id, with_for_update=True)
    if template is None or template.next_run_at is None or template.next_run_at > now:
        return False
    step = NEXT_RUN[template.schedule_frequency or "weekly"]
    run_at = template.next_run_at
    rendered = render(session=session, template_id=template.id, anchor=(run_at - timedelta(days=1)).date(), now=now)
    if template.sub_account_id is not None:  # deliveries are kept per sub-account
        for recipient in template.recipients or []:
            session.execute(pg_insert(SandboxDelivery).values(
                sub_account_id=template.sub_account_id, provider="smtp", operation="report.email",
                idempotency_key=f"report:{template.id}:{run_at.isoformat()}:{recipient}",
                request={"to": recipient, "subject": f"{template.template_name} ({rendered.json['period']['start']})",
                         "attachment": {"filename": "report.csv", "content": rendered.csv}},
                response={"queued": True}).on_conflict_do_nothing(index_elements=["idempotency_key"]))
    template.last_run_at = now
    while template.next_run_at <= now:
        template.next_run_at = template.next_run_at + step
    session.flush()
    return True
