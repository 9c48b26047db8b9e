"""Ad spend from a Meta Ads Manager export (Reports > Export table data, broken down by day), for accounts not
connected by token or for back-filling history. Rows go through the same upsert as the API import, so a CSV
and a sync of the same days agree on every reference number and never double count.

Columns are matched by name, case-insensitively: the day (`Day`, else `Reporting starts` with `Reporting ends`
on the same day; `date_start` / `date` also work), `Campaign ID` (required: it is what ties the spend to the
campaign), `Campaign name`, the spend (`Amount spent (USD)` - the currency taken from the header - or `spend`),
and optionally `Currency`. Dates are YYYY-MM-DD as Meta exports them. One bad row rejects the whole file, with
the lines named: nothing is half-imported."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from models.activity import Integration
from services.errors import InvalidInput
from services.integrations.ad_spend import ImportSummary, SpendRow, upsert_spend
from services.storable import unstorable

MAX_BYTES = 10 * 1024 * 1024
MAX_ERRORS = 20
DAY = ("day", "date", "reporting starts", "date_start", "date start", "reporting_starts")
END = ("reporting ends", "date_stop", "date stop", "reporting_ends")
CAMPAIGN_ID = ("campaign id", "campaign_id")
CAMPAIGN_NAME = ("campaign name", "campaign_name", "campaign")
SPEND = ("amount spent", "spend", "amount_spent", "amount spent (account currency)")
CURRENCY = ("currency", "account currency", "account_currency")
SPEND_WITH_CURRENCY = re.compile(r"^amount spent \(([a-z]{3})\)$")
THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass(frozen=True)
class _Columns:
    day: str
    end: str | None
    campaign_id: str
    campaign_name: str | None
    spend: str
    currency: str | None
    header_currency: str | None


def decode(data: bytes | str) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), or UTF-16 as some spreadsheet tools save."""
    if isinstance(data, str):
        text = data.lstrip("\ufeff")
    elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("The file is not UTF-8 text; export it from Ads Manager as CSV.", field="file") from exc
    if reason := unstorable(text):
        raise InvalidInput(f"The file contains {reason}, which no Ads Manager export has; export it again as CSV.",
                           field="file")
    return text


def _find(headers: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((headers[n] for n in names if n in headers), None)


def _columns(fieldnames: Sequence[str] | None) -> _Columns:
    headers = {(h or "").strip().lower(): h for h in fieldnames or []}
    header_currency = None
    spend = _find(headers, SPEND)
    if spend is None:
        for lowered, original in headers.items():
            match = SPEND_WITH_CURRENCY.match(lowered)
            if match:
                spend, header_currency = original, match.group(1).upper()
                break
    day, campaign_id = _find(headers, DAY), _find(headers, CAMPAIGN_ID)
    missing = [label for label, found in (("Day (or Reporting starts)", day), ("Campaign ID", campaign_id),
                                          ("Amount spent (or spend)", spend)) if found is None]
    if missing:
        raise InvalidInput(f"Line 1: the header lacks {', '.join(missing)}. Export from Ads Manager at the campaign "
                           "level, broken down by day, with the Campaign ID column.", field="file", line=1)
    assert day is not None and campaign_id is not None and spend is not None
    return _Columns(day=day, end=_find(headers, END) if _find(headers, ("day",)) is None else None,
                    campaign_id=campaign_id, campaign_name=_find(headers, CAMPAIGN_NAME), spend=spend,
                    currency=_find(headers, CURRENCY), header_currency=header_currency)


def _amount(text: str) -> Decimal:
    cleaned = re.sub(r"[\s$€£¥]", "", text or "")
    if THOUSANDS.match(cleaned):
        cleaned = cleaned.replace(",", "")
    if not cleaned:
        return Decimal("0")
    value = Decimal(cleaned)
    if not value.is_finite():
        raise InvalidOperation
    return value


def _day(text: str) -> date:
    return date.fromisoformat((text or "").strip())


def parse(data: bytes | str, *, default_currency: str = "USD") -> list[SpendRow]:
    """The file's rows as daily campaign spend, or InvalidInput naming the bad lines (line 1 is the header)."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; export fewer days at once.",
                           field="file")
    text = decode(data)
    if not text.strip():
        raise InvalidInput("The file is empty.", field="file")
    first = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = _columns(reader.fieldnames)
    rows: list[SpendRow] = []
    errors: list[dict[str, object]] = []
    seen: dict[tuple[str, date], int] = {}
    for record in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue  # a blank line (or Meta's empty total row)
        problem = None
        try:
            campaign_id = (record.get(columns.campaign_id) or "").strip()
            day = _day(record.get(columns.day) or "")
            end = (record.get(columns.end) or "").strip() if columns.end else ""
            amount = _amount(record.get(columns.spend) or "")
            currency = ((record.get(columns.currency) or "").strip() if columns.currency else "") \
                or columns.header_currency or default_currency
        except ValueError:
            problem = f"the day {record.get(columns.day)!r} is not a date like 2026-11-20"
        except InvalidOperation:
            problem = f"the spend {record.get(columns.spend)!r} is not an amount"
        else:
            if not campaign_id:
                problem = "the Campaign ID is empty"
            elif len(campaign_id) > 64:
                problem = "the Campaign ID is longer than 64 characters"
            elif end and end != day.isoformat():
                problem = (f"the row covers {day.isoformat()} to {end}; export with a daily breakdown (one day per "
                           "row)")
            elif amount < 0:
                problem = f"the spend {amount} is negative"
            elif len(currency) != 3 or not currency.isalpha():
                problem = f"the currency {currency!r} is not a three-letter code"
            elif (campaign_id, day) in seen:
                problem = (f"campaign {campaign_id} on {day.isoformat()} already appeared on line "
                           f"{seen[(campaign_id, day)]}; export without other breakdowns")
        if problem:
            errors.append({"line": line, "error": problem})
            if len(errors) >= MAX_ERRORS:
                break
            continue
        seen[(campaign_id, day)] = line
        name = (record.get(columns.campaign_name) or "").strip() if columns.campaign_name else ""
        rows.append(SpendRow(campaign_id=campaign_id, campaign_name=name or None, day=day, amount=amount,
                             currency=currency.upper()))
    if errors:
        first_error = errors[0]
        more = f" ({len(errors) - 1} more line(s) with problems)" if len(errors) > 1 else ""
        raise InvalidInput(f"Line {first_error['line']}: {first_error['error']}.{more} Nothing was imported.",
                           field="file", line=first_error["line"], errors=errors)
    if not rows:
        raise InvalidInput("The file has a header but no rows.", field="file")
    return rows


def import_csv(*, session: Session, integration: Integration, data: bytes | str) -> ImportSummary:
    """Parse a Meta export and upsert it as the integration's ad spend, all in the caller's transaction."""
    if integration.provider_name != "meta":
        raise InvalidInput("Only a Meta integration imports ad spend from a CSV export.", field="file")
    rows = parse(data, default_currency=(integration.config or {}).get("currency") or "USD")
    return upsert_spend(session=session, integration=integration, rows=rows, source="csv")
