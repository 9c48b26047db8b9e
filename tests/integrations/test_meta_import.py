"""Meta ad spend as an agency sees it: a sync pulls every page of the Marketing API's insights (through
throttling) into financial_records, reports move by exactly the imported spend, re-running changes nothing, a
restated day replaces its figure, an expired token says so; the CSV export lands on the same rows; unmapped
campaigns are listed and mapping them moves their spend; tokens stay encrypted and out of every response; other
sub-accounts see nothing. All against a local server speaking Meta's protocol and the real Postgres and Redis."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text

from api.app import app
from leadpilot.settings import get_settings
from models.activity import Integration
from models.db import TenantScope, owner_session, tenant_session
from models.performance import Campaign, FinancialRecord
from services import reporting, secrets
from services.integrations import connections, sync
from services.integrations.ad_spend import day_start
from tests.api.test_rest import key_for
from tests.conftest import Demo
from tests.integrations.meta_graph import EXPIRED, THROTTLED, VERSION, MetaGraph, graph_error

pytestmark = pytest.mark.integration
client = TestClient(app)
TOKEN = "EAAGtest" + uuid.uuid4().hex + "ZDZD"
ACCOUNT = "1234567890123"
NAME = "Test Meta"  # every integration and campaign these tests make starts so: removed at the end


def base(sub: uuid.UUID) -> str:
    return f"/v1/sub-accounts/{sub}/integrations"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


@pytest.fixture(scope="module", autouse=True)
def _cleanup(demo: Demo) -> Iterator[None]:
    """The tests commit (as the API and workers do); leave the shared test database as it was."""
    yield
    with owner_session() as session:
        ids = list(session.scalars(select(Integration.id).where(Integration.name.startswith(NAME))))
        session.execute(delete(FinancialRecord).where(FinancialRecord.integration_source_id.in_(ids)))
        session.execute(delete(Integration).where(Integration.id.in_(ids)))
        session.execute(delete(Campaign).where(Campaign.name.startswith(NAME)))


@pytest.fixture(scope="module")
def keys(demo: Demo) -> dict[str, dict[str, str]]:
    return {"manager_a": key_for(demo, "john@restaurant.com"), "manager_b": key_for(demo, "bob@restaurant.com"),
            "admin": key_for(demo, "admin@digitalmarketing.com"), "staff_a": key_for(demo, "jane@restaurant.com")}


@pytest.fixture
def scope(demo: Demo) -> TenantScope:
    return TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)


@pytest.fixture
def tz(scope: TenantScope) -> str:
    with tenant_session(scope) as session:
        return reporting.sub_account_timezone(session=session, sub_account_id=scope.sub_account_id)


@pytest.fixture
def account() -> str:
    """A fresh ad account id (one connection per ad account and sub-account)."""
    return str(10**12 + uuid.uuid4().int % 10**12)


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch, account: str) -> Iterator[MetaGraph]:
    server = MetaGraph(account=account, token=TOKEN)
    monkeypatch.setattr(get_settings(), "meta_graph_base", server.base)
    yield server
    server.shutdown()


@pytest.fixture
def campaigns(demo: Demo, tz: str, scope: TenantScope) -> dict[str, Any]:
    """Two Meta campaigns with fresh ids: the first known to LeadPilot by its external id, the second not."""
    mapped, unmapped = (str(10**14 + uuid.uuid4().int % 10**14) for _ in range(2))
    with tenant_session(scope) as session:
        known = Campaign(agency_id=demo.agency_id, sub_account_id=demo.a, name=f"{NAME} campaign brunch",
                         start_date=datetime.now(UTC) - timedelta(days=60), platform="meta",
                         external_campaign_id=mapped, campaign_status="active")
        other = Campaign(agency_id=demo.agency_id, sub_account_id=demo.a, name=f"{NAME} campaign catering",
                         start_date=datetime.now(UTC) - timedelta(days=60), platform="google")
        session.add_all([known, other])
        session.flush()
        return {"mapped": mapped, "unmapped": unmapped, "known": known.id, "other": other.id}


def insights_rows(campaigns: dict[str, Any], tz: str) -> list[dict[str, Any]]:
    """Five rows as Meta sends them (strings): three days of the first campaign, two of the second."""
    today = datetime.now(ZoneInfo(tz)).date()
    days = [today - timedelta(days=n) for n in (6, 5, 4)]
    spend = {(campaigns["mapped"], days[0]): "45.10", (campaigns["mapped"], days[1]): "52.37",
             (campaigns["mapped"], days[2]): "38.00", (campaigns["unmapped"], days[0]): "120.55",
             (campaigns["unmapped"], days[1]): "99.99"}
    names = {campaigns["mapped"]: "Brunch - Lead Ads", campaigns["unmapped"]: "Catering - Traffic"}
    return [{"campaign_id": cid, "campaign_name": names[cid], "spend": amount, "account_currency": "USD",
             "date_start": day.isoformat(), "date_stop": day.isoformat()} for (cid, day), amount in spend.items()]


@pytest.fixture
def integration(scope: TenantScope, account: str) -> uuid.UUID:
    with tenant_session(scope) as session:
        return connections.create_integration(
            session=session, sub_account_id=scope.sub_account_id, provider="meta",
            name=f"{NAME} {uuid.uuid4().hex[:6]}", connection_id=f"act_{account}", api_version=VERSION,
            access_token=TOKEN).id


def stored(integration_id: uuid.UUID) -> dict[str, FinancialRecord]:
    with owner_session() as session:
        return {r.reference_number: r for r in session.scalars(
            select(FinancialRecord).where(FinancialRecord.integration_source_id == integration_id))}


def row_of(integration_id: uuid.UUID) -> Integration:
    with owner_session() as session:
        found = session.get(Integration, integration_id)
        assert found is not None
        return found


def totals(scope: TenantScope, tz: str, first: date, last: date) -> dict[str, Decimal | None]:
    """The sub-account's report over the days [first, last], as the reports API computes it."""
    with tenant_session(scope) as session:
        report = reporting.build_report(session=session, group_by="sub_account", tz=tz, start=day_start(first, tz),
                                        end=day_start(last + timedelta(days=1), tz))
    group = next((g for g in report.groups if g.key == scope.sub_account_id), None)
    tally = reporting.Tally()
    return {m: (group.figures[m].value if group else tally.value(m)) for m in ("ad_spend", "roi", "revenue", "refunds")}


def roi(figures: dict[str, Decimal | None]) -> Decimal:
    spend = figures["ad_spend"]
    assert spend
    return ((figures["revenue"] - figures["refunds"] - spend) / spend).quantize(reporting.RATIO_PLACES)  # type: ignore[operator]


def expected(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    return {f"meta:{r['campaign_id']}:{r['date_start']}": Decimal(r["spend"]) for r in rows}


# ------------------------------------------------------------------ the API import


def test_a_sync_reads_every_page_through_a_429_and_reports_move_by_exactly_the_spend(
        graph: MetaGraph, integration: uuid.UUID, campaigns: dict[str, Any], scope: TenantScope, tz: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    graph.rows = insights_rows(campaigns, tz)
    graph.script = [(429, THROTTLED, {"Retry-After": "2"})]
    days = sorted({date.fromisoformat(r["date_start"]) for r in graph.rows})
    before = totals(scope, tz, days[0], days[-1])
    now = datetime.now(UTC)
    sleeps: list[float] = []

    result = sync.sync_integration(scope=scope, integration_id=integration, now=now, sleep=sleeps.append)

    assert result.status == "up_to_date", result.error
    assert sleeps == [2.0]  # waited as Retry-After said, once
    # the throttled first request was repeated, then each cursor followed until paging.next was absent
    assert [r.get("after") for r in graph.requests] == [None, None, "MQZZ", "MwZZ"]
    assert result.pages == 3 and result.requests == 4
    assert "access_token=[redacted]" in caplog.text and TOKEN not in caplog.text  # request logs keep no token
    first = graph.requests[0]
    today = now.astimezone(ZoneInfo(tz)).date()
    assert first["path"] == graph.path and first["access_token"] == TOKEN
    assert (first["level"], first["time_increment"]) == ("campaign", "1")
    assert set(first["fields"].split(",")) == {"campaign_id", "campaign_name", "spend", "account_currency",
                                               "date_start", "date_stop"}
    assert json.loads(first["time_range"]) == {"since": (today - timedelta(days=29)).isoformat(),
                                               "until": today.isoformat()}  # a first sync: the last 30 days

    rows = stored(integration)
    assert {ref: r.amount for ref, r in rows.items()} == expected(graph.rows)  # exactly the served rows
    for raw in graph.rows:
        record = rows[f"meta:{raw['campaign_id']}:{raw['date_start']}"]
        assert record.transaction_type == "ad_spend" and record.payment_status == "paid"
        assert record.currency == "USD" and record.sub_account_id == scope.sub_account_id
        assert record.transaction_date == day_start(date.fromisoformat(raw["date_start"]), tz)
        assert record.metadata_["meta_campaign_id"] == raw["campaign_id"]
        assert record.metadata_["meta_campaign_name"] == raw["campaign_name"]
        assert record.campaign_id == (campaigns["known"] if raw["campaign_id"] == campaigns["mapped"] else None)
    imported = sum(expected(graph.rows).values())
    assert result.summary is not None
    assert (result.summary.inserted, result.summary.updated, result.summary.amount_inserted) == (5, 0, imported)

    after = totals(scope, tz, days[0], days[-1])
    assert after["ad_spend"] - before["ad_spend"] == imported  # type: ignore[operator]
    assert (after["revenue"], after["refunds"]) == (before["revenue"], before["refunds"])
    assert after["roi"] == roi(after) and (before["ad_spend"] == 0 or before["roi"] == roi(before))
    assert after["roi"] != before["roi"]

    status = row_of(integration)
    assert (status.data_sync_status, status.authentication_status, status.api_version) == ("up_to_date", "connected",
                                                                                          VERSION)
    assert status.last_sync_time == now and status.last_error is None

    # the same figures again: nothing written, nothing counted twice
    graph.requests.clear()
    again = sync.sync_integration(scope=scope, integration_id=integration, now=now + timedelta(hours=6),
                                  sleep=sleeps.append)
    assert again.summary is not None and again.status == "up_to_date"
    assert (again.summary.inserted, again.summary.updated, again.summary.unchanged) == (0, 0, 5)
    assert again.summary.amount_inserted == again.summary.amount_changed == 0
    assert json.loads(graph.requests[0]["time_range"])["since"] == (today - timedelta(days=3)).isoformat()
    reread = stored(integration)
    assert {ref: (r.id, r.amount, r.updated_at) for ref, r in reread.items()} == \
        {ref: (r.id, r.amount, r.updated_at) for ref, r in rows.items()}
    assert totals(scope, tz, days[0], days[-1]) == after


def test_a_restated_day_replaces_its_one_row(graph: MetaGraph, integration: uuid.UUID, campaigns: dict[str, Any],
                                             scope: TenantScope, tz: str) -> None:
    graph.rows = insights_rows(campaigns, tz)
    assert sync.sync_integration(scope=scope, integration_id=integration, sleep=lambda s: None).status == "up_to_date"
    days = sorted({date.fromisoformat(r["date_start"]) for r in graph.rows})
    before, rows_before = totals(scope, tz, days[0], days[-1]), stored(integration)
    restated = graph.rows[1]
    reference = f"meta:{restated['campaign_id']}:{restated['date_start']}"
    old = Decimal(restated["spend"])
    restated["spend"] = "47.02"  # Meta credited invalid clicks

    result = sync.sync_integration(scope=scope, integration_id=integration, sleep=lambda s: None)

    assert result.summary is not None
    assert (result.summary.inserted, result.summary.updated, result.summary.unchanged) == (0, 1, 4)
    assert result.summary.amount_changed == Decimal("47.02") - old
    rows = stored(integration)
    assert len(rows) == 5 and rows[reference].id == rows_before[reference].id
    assert rows[reference].amount == Decimal("47.02")
    assert {ref: r.amount for ref, r in rows.items() if ref != reference} == \
        {ref: r.amount for ref, r in rows_before.items() if ref != reference}
    after = totals(scope, tz, days[0], days[-1])
    assert after["ad_spend"] - before["ad_spend"] == Decimal("47.02") - old  # type: ignore[operator]

    # zero spend: a day restated to nothing is stored as 0; a day that never had spend is no record
    restated["spend"] = "0"
    quiet = {**graph.rows[3], "date_start": days[-1].isoformat(), "date_stop": days[-1].isoformat(), "spend": "0.00"}
    assert f"meta:{quiet['campaign_id']}:{quiet['date_start']}" not in rows  # the second campaign's third day
    graph.rows.append(quiet)
    zeroed = sync.sync_integration(scope=scope, integration_id=integration, sleep=lambda s: None)
    assert zeroed.summary is not None
    assert (zeroed.summary.updated, zeroed.summary.skipped_zero, zeroed.summary.inserted) == (1, 1, 0)
    rows = stored(integration)
    assert len(rows) == 5 and rows[reference].amount == 0
    assert totals(scope, tz, days[0], days[-1])["ad_spend"] == before["ad_spend"] - old  # type: ignore[operator]


def test_an_expired_token_marks_the_integration_failed_and_expired(graph: MetaGraph, integration: uuid.UUID,
                                                                   scope: TenantScope) -> None:
    graph.script = [(400, EXPIRED, {})]
    sleeps: list[float] = []
    result = sync.sync_integration(scope=scope, integration_id=integration, sleep=sleeps.append)
    assert result.status == "failed" and sleeps == [] and len(graph.requests) == 1  # nothing to retry
    status = row_of(integration)
    assert (status.authentication_status, status.data_sync_status) == ("expired", "failed")
    assert "access token" in status.last_error and "190" in status.last_error and TOKEN not in status.last_error
    assert status.last_sync_time is None and stored(integration) == {}
    with owner_session() as session:  # the sweep leaves it alone until someone reconnects
        assert integration not in {i for i, _, _ in sync.due_integrations(session=session, now=datetime.now(UTC))}


def test_throttling_that_does_not_clear_marks_it_delayed_with_a_retry_time(
        graph: MetaGraph, integration: uuid.UUID, campaigns: dict[str, Any], scope: TenantScope, tz: str) -> None:
    graph.rows = insights_rows(campaigns, tz)
    usage = json.dumps({graph.account: [{"type": "ads_insights", "call_count": 100, "total_cputime": 40,
                                         "total_time": 60, "estimated_time_to_regain_access": 1}]})
    business = graph_error(80000, "There have been too many calls from this ad-account. Wait a bit and try again.",
                           subcode=2446079, transient=True)
    graph.script = [(400, business, {"X-Business-Use-Case-Usage": usage})] + [(429, THROTTLED, {})] * 10
    sleeps: list[float] = []
    now = datetime.now(UTC)

    result = sync.sync_integration(scope=scope, integration_id=integration, now=now, sleep=sleeps.append)

    assert result.status == "delayed"
    assert len(graph.requests) == 4 and sleeps == [60.0, 30.0, 120.0]  # regain-access minutes, then backoff
    status = row_of(integration)
    assert status.data_sync_status == "delayed" and "code 17" in status.last_error and "Retrying after" in \
        status.last_error
    assert result.retry_at is not None and result.retry_at > now
    assert connections.retry_at(status) == result.retry_at and stored(integration) == {}
    with owner_session() as session:  # not due before its retry time, due after it
        assert integration not in {i for i, _, _ in sync.due_integrations(session=session, now=now)}
        assert integration in {i for i, _, _ in sync.due_integrations(session=session, now=result.retry_at)}


# ------------------------------------------------------------------ the API


def test_credentials_are_encrypted_at_rest_and_never_in_a_response(keys: dict[str, dict[str, str]], demo: Demo) -> None:
    secret = "EAAGsecret" + uuid.uuid4().hex
    made = client.post(base(demo.a), headers=keys["manager_a"], json={
        "provider": "meta", "name": f"{NAME} api", "connection_id": f"act_{ACCOUNT}", "access_token": secret})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["authentication_status"], body["data_sync_status"], body["status_label"]) == (
        "connected", "never_synced", "Never synced")
    assert body["connection_id"] == ACCOUNT and body["has_credentials"] is True and body["api_version"] == "v21.0"
    url = f"{base(demo.a)}/{body['id']}"
    renamed = client.patch(url, headers=keys["manager_a"], json={"name": f"{NAME} api renamed",
                                                                "access_token": secret + "2"})
    responses = [made, renamed, client.get(base(demo.a), headers=keys["manager_a"]),
                 client.get(url, headers=keys["manager_a"])]
    assert all(r.status_code in (200, 201) for r in responses)
    assert not any(secret in r.text or "credentials_encrypted" in r.text for r in responses)
    with owner_session() as session:
        column = session.scalar(select(Integration.credentials_encrypted).where(Integration.id == body["id"]))
        logged = session.scalar(select(func.count()).select_from(text("activity_logs"))
                                .where(text("entity_id = :id AND changes::text LIKE :s"))
                                .params(id=body["id"], s=f"%{secret}%"))
    assert column and secret not in column and secrets.decrypt(column) == {"access_token": secret + "2"}
    assert not any(column in r.text for r in responses)
    assert logged == 0
    problem(client.post(base(demo.a), headers=keys["manager_a"], json={
        "provider": "meta", "name": f"{NAME} dup", "connection_id": ACCOUNT, "access_token": "x"}), 409)
    problem(client.post(base(demo.a), headers=keys["manager_a"], json={
        "provider": "meta", "name": f"{NAME} bad", "connection_id": "my account"}), 422)
    gone = client.post(f"{url}/disconnect", headers=keys["manager_a"]).json()
    assert (gone["authentication_status"], gone["has_credentials"]) == ("disconnected", False)
    problem(client.post(f"{url}/sync", headers=keys["manager_a"]), 409)  # nothing to sync with
    assert client.delete(url, headers=keys["manager_a"]).status_code == 204
    problem(client.get(url, headers=keys["manager_a"]), 404)


def test_unmapped_campaigns_are_listed_and_mapping_one_moves_its_spend(
        graph: MetaGraph, integration: uuid.UUID, campaigns: dict[str, Any], scope: TenantScope, tz: str,
        keys: dict[str, dict[str, str]], demo: Demo) -> None:
    graph.rows = insights_rows(campaigns, tz)
    assert sync.sync_integration(scope=scope, integration_id=integration, sleep=lambda s: None).status == "up_to_date"
    url = f"{base(demo.a)}/{integration}"
    listed = client.get(f"{url}/campaigns", headers=keys["manager_a"]).json()
    by_id = {c["meta_campaign_id"]: c for c in listed["campaigns"]}
    assert by_id[campaigns["mapped"]]["campaign_id"] == str(campaigns["known"])
    assert by_id[campaigns["mapped"]]["mapped_by"] == "external_campaign_id"
    assert by_id[campaigns["unmapped"]]["unmapped"] is True and by_id[campaigns["unmapped"]]["campaign_id"] is None
    assert by_id[campaigns["unmapped"]]["meta_campaign_name"] == "Catering - Traffic"
    assert (listed["unmapped_count"], listed["unmapped_spend"]) == (1, "220.54")
    assert (by_id[campaigns["mapped"]]["spend"], by_id[campaigns["mapped"]]["days"]) == ("135.47", 3)

    problem(client.put(f"{url}/campaign-map", headers=keys["manager_a"],
                       json={"map": {campaigns["unmapped"]: str(uuid.uuid4())}}), 422)  # not a campaign of A
    mapped = client.put(f"{url}/campaign-map", headers=keys["manager_a"],
                        json={"map": {campaigns["unmapped"]: str(campaigns["other"])}})
    assert mapped.status_code == 200, mapped.text
    assert mapped.json() == {"campaign_map": {campaigns["unmapped"]: str(campaigns["other"])}, "rows_reattributed": 2}
    rows = stored(integration)
    assert {r.campaign_id for r in rows.values() if r.metadata_["meta_campaign_id"] == campaigns["unmapped"]} == \
        {campaigns["other"]}
    listed = client.get(f"{url}/campaigns", headers=keys["manager_a"]).json()
    assert listed["unmapped_count"] == 0
    assert {c["meta_campaign_id"]: c["mapped_by"] for c in listed["campaigns"]}[campaigns["unmapped"]] == \
        "campaign_map"
    # the next sync keeps the mapping (new rows land on the mapped campaign, nothing moves back)
    again = sync.sync_integration(scope=scope, integration_id=integration, sleep=lambda s: None)
    assert again.summary is not None and (again.summary.inserted, again.summary.remapped) == (0, 0)
    # removing the explicit mapping leaves the spend unattributed again
    cleared = client.put(f"{url}/campaign-map", headers=keys["manager_a"], json={"map": {campaigns["unmapped"]: None}})
    assert cleared.json() == {"campaign_map": {}, "rows_reattributed": 2}


def _csv(rows: list[dict[str, Any]]) -> str:
    lines = ['"Reporting starts","Reporting ends","Campaign name","Campaign ID","Amount spent (USD)"']
    lines += [f'{r["date_start"]},{r["date_stop"]},"{r["campaign_name"]}",{r["campaign_id"]},{r["spend"]}'
              for r in rows]
    return "\n".join(lines) + "\n"


def test_a_csv_export_lands_on_the_same_rows_as_the_sync_and_a_bad_row_stores_nothing(
        graph: MetaGraph, integration: uuid.UUID, campaigns: dict[str, Any], scope: TenantScope, tz: str,
        keys: dict[str, dict[str, str]], demo: Demo) -> None:
    graph.rows = insights_rows(campaigns, tz)
    assert sync.sync_integration(scope=scope, integration_id=integration, sleep=lambda s: None).status == "up_to_date"
    synced = stored(integration)
    url = f"{base(demo.a)}/{integration}/import-csv"
    upload = client.post(url, headers=keys["manager_a"],
                         files={"file": ("meta-export.csv", ("\ufeff" + _csv(graph.rows)).encode(), "text/csv")})
    assert upload.status_code == 200, upload.text
    summary = upload.json()["summary"]
    assert (summary["rows_seen"], summary["inserted"], summary["updated"], summary["unchanged"]) == (5, 0, 0, 5)
    plain = client.post(url, headers={**keys["manager_a"], "Content-Type": "text/csv"}, content=_csv(graph.rows))
    assert plain.status_code == 200 and plain.json()["summary"]["unchanged"] == 5
    assert {ref: (r.id, r.amount, r.updated_at) for ref, r in stored(integration).items()} == \
        {ref: (r.id, r.amount, r.updated_at) for ref, r in synced.items()}

    day = graph.rows[0]["date_start"]
    fresh = {"campaign_id": "9" * 15, "campaign_name": "New", "spend": "10.00", "date_start": day, "date_stop": day}
    broken = {**graph.rows[1], "spend": "twelve"}
    bad = problem(client.post(url, headers=keys["manager_a"],
                              files={"file": ("x.csv", _csv([fresh, broken]).encode(), "text/csv")}), 422)
    assert bad["detail"].startswith("Line 3:") and bad["line"] == 3 and "twelve" in bad["detail"]
    assert bad["errors"] == [{"line": 3, "error": "the spend 'twelve' is not an amount"}]
    assert set(stored(integration)) == set(synced)  # the good line 2 was not kept either
    lacking = problem(client.post(url, headers={**keys["manager_a"], "Content-Type": "text/csv"},
                                  content="Campaign name,Amount spent (USD)\nBrunch,12.00\n"), 422)
    assert "Campaign ID" in lacking["detail"]
    problem(client.post(url, headers=keys["manager_a"], json={"rows": []}), 415)


def test_another_sub_accounts_users_get_404_everywhere(integration: uuid.UUID, keys: dict[str, dict[str, str]],
                                                      demo: Demo) -> None:
    url = f"{base(demo.a)}/{integration}"
    calls = [("GET", base(demo.a), None), ("POST", base(demo.a), {"provider": "meta", "name": "x"}),
             ("GET", url, None), ("PATCH", url, {"name": "mine now"}), ("POST", f"{url}/disconnect", None),
             ("DELETE", url, None), ("POST", f"{url}/sync", None), ("GET", f"{url}/campaigns", None),
             ("PUT", f"{url}/campaign-map", {"map": {}}), ("POST", f"{url}/import-csv", None)]
    for method, path, body in calls:
        problem(client.request(method, path, headers=keys["manager_b"], json=body), 404)
    # an agency admin in B's path with A's integration: still not found
    problem(client.get(f"{base(demo.b)}/{integration}", headers=keys["admin"]), 404)
    assert str(integration) not in client.get(base(demo.b), headers=keys["admin"]).text
    assert problem(client.get(base(demo.a), headers=keys["staff_a"]), 403)["permission"] == "reports.read"
    row = row_of(integration)
    assert (row.name.startswith(NAME), row.authentication_status, row.deleted_at) == (True, "connected", None)


# ------------------------------------------------------------------ workers


def test_the_retry_button_queues_a_sync_that_a_worker_runs(
        graph: MetaGraph, integration: uuid.UUID, campaigns: dict[str, Any], tz: str,
        keys: dict[str, dict[str, str]], demo: Demo) -> None:
    from celery.contrib.testing.worker import start_worker

    from workers.app import QUEUES, celery_app

    graph.rows = insights_rows(campaigns, tz)
    celery_app.control.purge()  # only this test's task
    url = f"{base(demo.a)}/{integration}"
    queued = client.post(f"{url}/sync", headers=keys["manager_a"])
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = client.get(url, headers=keys["manager_a"]).json()
            if shown["last_sync_time"]:
                break
            time.sleep(0.1)
    assert (shown["data_sync_status"], shown["status_label"]) == ("up_to_date", "Up to date"), shown
    assert shown["last_summary"]["inserted"] == 5 and shown["last_summary"]["pages"] == 3
    assert {ref: r.amount for ref, r in stored(integration).items()} == expected(graph.rows)


def test_the_sweep_queues_what_is_due_once_and_shows_stale_syncs_as_delayed(
        integration: uuid.UUID, scope: TenantScope, keys: dict[str, dict[str, str]], demo: Demo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import tasks

    queued: list[list[str]] = []
    monkeypatch.setattr(tasks.sync_integration, "apply_async", lambda args, **kw: queued.append(args))
    tasks.sync_due_integrations()
    assert [str(integration), str(demo.agency_id), str(demo.a)] in queued  # never synced: due
    count = len(queued)
    tasks.sync_due_integrations()
    assert [q for q in queued[count:] if q[0] == str(integration)] == []  # still waiting in the queue: not again

    with tenant_session(scope) as session:  # synced 13 hours ago, every 6 hours: two intervals have passed
        row = session.get(Integration, integration)
        assert row is not None
        row.data_sync_status, row.last_sync_time = "up_to_date", datetime.now(UTC) - timedelta(hours=13)
    shown = client.get(f"{base(demo.a)}/{integration}", headers=keys["manager_a"]).json()
    assert (shown["data_sync_status"], shown["status_label"]) == ("delayed", "Delayed")
    with tenant_session(scope) as session:
        assert sync.mark_if_stale(session=session, integration_id=integration, now=datetime.now(UTC))
    stale = row_of(integration)
    assert stale.data_sync_status == "delayed" and stale.last_error.startswith("No successful sync since")
    with owner_session() as session:
        assert integration in {i for i, _, _ in sync.due_integrations(session=session, now=datetime.now(UTC))}


def test_the_analyst_answers_with_the_imported_spend(graph: MetaGraph, integration: uuid.UUID,
                                                     campaigns: dict[str, Any], scope: TenantScope, tz: str,
                                                     keys: dict[str, dict[str, str]]) -> None:
    """'How much did we spend on ads this month': before and after an import, the figure the analyst gives is
    the reporting service's, and the two differ by exactly what Meta reported for this month."""
    from agents.analyst.local import period_of

    today = datetime.now(ZoneInfo(tz)).date()
    graph.rows = [{"campaign_id": campaigns["mapped"], "campaign_name": "Brunch - Lead Ads", "spend": "77.45",
                   "account_currency": "USD", "date_start": today.isoformat(), "date_stop": today.isoformat()}]
    question = {"question": "how much did we spend on ads this month?", "sub_account_id": str(scope.sub_account_id)}

    def asked() -> tuple[str, Decimal]:
        answer = client.post("/v1/analyst/ask", headers=keys["manager_a"], json=question)
        assert answer.status_code == 200, answer.text
        grain, anchor = period_of("this month", today)  # the sub-account's month, as the analyst reads it
        with tenant_session(scope) as session:
            report = reporting.build_report(session=session, group_by="agency", tz=tz, period=grain, anchor=anchor,
                                            metrics=["ad_spend"])
        value = report.groups[0].figures["ad_spend"].value if report.groups else Decimal(0)
        return answer.json()["answer"], Decimal(value or 0)

    before_text, before = asked()
    assert f"${before:,.2f}" in before_text
    assert sync.sync_integration(scope=scope, integration_id=integration, since=today, until=today,
                                 sleep=lambda s: None).status == "up_to_date"
    after_text, after = asked()
    assert after - before == Decimal("77.45")
    assert f"${after:,.2f}" in after_text
