"""Reading Meta Ads Manager exports (offline): the shapes Meta writes, and the lines a bad file is refused at."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.errors import InvalidInput
from services.integrations.csv_import import parse


def test_a_daily_export_with_the_currency_in_the_header() -> None:
    text = ("\ufeffDay;Campaign name;Campaign ID;Amount spent (EUR);Impressions\n"
            "2026-11-20;Brunch;120200001;1,234.50;5000\n"
            "2026-11-20;Dinner;120200002;;12\n")
    rows = parse(text.encode())
    assert [(r.campaign_id, r.campaign_name, r.day, r.amount, r.currency) for r in rows] == [
        ("120200001", "Brunch", date(2026, 11, 20), Decimal("1234.50"), "EUR"),
        ("120200002", "Dinner", date(2026, 11, 20), Decimal("0"), "EUR")]
    assert rows[0].reference == "meta:120200001:2026-11-20"


def test_api_style_columns_and_a_currency_column() -> None:
    rows = parse("date_start,campaign_id,campaign_name,spend,currency\n2026-11-21,42,X,9.99,gbp\n\n",
                 default_currency="USD")
    assert [(r.amount, r.currency) for r in rows] == [(Decimal("9.99"), "GBP")]
    assert parse(b"date_start,campaign_id,spend\n2026-11-21,42,1\n")[0].currency == "USD"


@pytest.mark.parametrize(("text", "line", "says"), [
    ("Reporting starts,Reporting ends,Campaign ID,Amount spent (USD)\n2026-11-01,2026-11-30,1,10\n", 2,
     "daily breakdown"),
    ("Day,Campaign ID,spend\n2026-11-01,1,10\n2026-11-01,1,11\n", 3, "already appeared on line 2"),
    ("Day,Campaign ID,spend\n11/01/2026,1,10\n", 2, "not a date"),
    ("Day,Campaign ID,spend\n2026-11-01,,10\n", 2, "Campaign ID is empty"),
    ("Day,Campaign ID,spend\n2026-11-01,1,-3\n", 2, "negative"),
    ("Day,Campaign name,spend\n2026-11-01,x,3\n", 1, "Campaign ID"),
])
def test_a_bad_line_is_named(text: str, line: int, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    assert caught.value.extra["line"] == line and says in caught.value.detail
    assert caught.value.detail.startswith(f"Line {line}:")


def test_empty_files_are_refused() -> None:
    for text in ("", "Day,Campaign ID,spend\n"):
        with pytest.raises(InvalidInput):
            parse(text)
