"""Meta Marketing API: daily spend per campaign from an ad account's insights edge.

    GET {META_GRAPH_BASE}/{api_version}/act_{ad_account_id}/insights
        ?level=campaign&time_increment=1&time_range={"since":"YYYY-MM-DD","until":"YYYY-MM-DD"}
        &fields=campaign_id,campaign_name,spend,account_currency,date_start,date_stop&limit=..&access_token=..

Results come in pages; `paging.next` (a full URL carrying the `after` cursor) is followed until absent.
Failures are told apart by the Graph error body (`{"error": {"code", "error_subcode", "is_transient", ...}}`):

- throttling: HTTP 429, or an error code 4 / 17 / 32 / 613 / 80000-80014 (business-use-case limits): wait
  (`Retry-After`, else the `X-Business-Use-Case-Usage` header's `estimated_time_to_regain_access`, else a
  backoff) and retry a bounded number of times, then `MetaRateLimited` with the time to try again;
- code 190 (and 102): the access token is invalid or expired, `MetaAuthError`; nothing to retry until someone
  reconnects;
- network errors, 5xx and errors Meta flags `is_transient`: retried like throttling, then `MetaUnavailable`;
- anything else (a bad parameter, a missing permission): `MetaError`, not retried.

Nothing here touches the database: `services.integrations.sync` reads the connection, calls `fetch_daily_spend`
outside any transaction, and writes what came back in one.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from leadpilot.settings import get_settings
from services.errors import ProviderError
from services.integrations.ad_spend import SpendRow

DEFAULT_API_VERSION = "v21.0"
API_VERSION = re.compile(r"^v\d{1,2}\.\d{1,2}$")
FIELDS = "campaign_id,campaign_name,spend,account_currency,date_start,date_stop"
PAGE_SIZE = 500
MAX_PAGES = 2000  # a next link that never ends is a bug on one side or the other, not data
MAX_ATTEMPTS = 4  # per request: the first try and three retries
BACKOFF_S = (5.0, 30.0, 120.0)
MAX_INLINE_WAIT_S = 300.0  # a longer wait is left to the next scheduled sync rather than slept in a worker
TIMEOUT_S = 30.0
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
AUTH_CODES = frozenset({102, 190})
TRANSIENT_CODES = frozenset({1, 2})
Sleep = Callable[[float], None]


class MetaError(ProviderError):
    """Meta refused the request (the Graph error's code and subcode kept for the record)."""

    retryable = False

    def __init__(self, detail: str, *, status: int | None = None, code: int | None = None,
                 subcode: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.http_status, self.code, self.subcode, self.retry_after_s = status, code, subcode, retry_after_s


class MetaRateLimited(MetaError):
    """Throttled: try again after `retry_after_s`."""

    retryable = True


class MetaUnavailable(MetaError):
    """Meta could not be reached or failed on its side: try again later."""

    retryable = True


class MetaAuthError(MetaError):
    """The access token is invalid, expired or revoked: reconnect with a new one."""


@dataclass
class Fetched:
    """What one import read from Meta."""

    rows: list[SpendRow]
    requests: int
    pages: int
    api_version: str


def normalize_account_id(value: str) -> str:
    """A Meta ad account id as digits (`act_123` and `123` are the same account)."""
    digits = value.strip().removeprefix("act_")
    if not digits.isdigit() or len(digits) > 30:
        raise ValueError("A Meta ad account id is a number, optionally written act_<number>.")
    return digits


def redact(text: str, token: str | None) -> str:
    """`text` with the access token (and any access_token query value) blanked: error messages reach the
    database and the UI."""
    if token:
        text = text.replace(token, "[redacted]")
    return re.sub(r"(access_token=)[^&\s\"']+", r"\1[redacted]", text)


class _RedactTokens(logging.Filter):
    """httpx logs every request's URL at INFO; Graph URLs (ours, and Meta's paging.next) carry the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg, record.args = redact(message, None), ()
        return True


logging.getLogger("httpx").addFilter(_RedactTokens())


def _backoff(attempt: int) -> float:
    return BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)]


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait as Meta says: Retry-After (seconds or a date), else the longest business-use-case
    `estimated_time_to_regain_access` (minutes)."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    usage = response.headers.get("x-business-use-case-usage")
    if usage:
        try:
            minutes = [float(entry.get("estimated_time_to_regain_access") or 0)
                       for entries in json.loads(usage).values() for entry in entries]
        except (ValueError, AttributeError, TypeError):
            minutes = []
        if minutes and max(minutes) > 0:
            return max(minutes) * 60.0
    return None


def _failure(response: httpx.Response, attempt: int) -> MetaError:
    """The typed error a non-200 answer stands for."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code, subcode = error.get("code"), error.get("error_subcode")
    status = response.status_code
    message = str(error.get("message") or response.reason_phrase or f"HTTP {status}")[:500]
    described = f"Meta API error (HTTP {status}" + (f", code {code}" if code is not None else "") + \
        (f", subcode {subcode}" if subcode is not None else "") + f"): {message}"
    kw = {"status": status, "code": code, "subcode": subcode}
    if status == 429 or (400 <= status < 500 and code in RATE_LIMIT_CODES):
        return MetaRateLimited(described, retry_after_s=_retry_after(response) or _backoff(attempt), **kw)
    if code in AUTH_CODES or (status == 401 and code is None):
        return MetaAuthError(described, **kw)
    if status >= 500 or code in TRANSIENT_CODES or error.get("is_transient") is True:
        return MetaUnavailable(described, retry_after_s=_retry_after(response) or _backoff(attempt), **kw)
    return MetaError(described, **kw)


def _get(client: httpx.Client, url: str | httpx.URL, params: dict[str, Any] | None, *, sleep: Sleep,
         max_attempts: int, token: str) -> tuple[dict[str, Any], int]:
    """One page, retried through throttling and transient failures; returns the body and requests made."""
    for attempt in range(1, max_attempts + 1):
        try:
            response = client.get(url, params=params)
        except httpx.TransportError as exc:
            failure: MetaError = MetaUnavailable(redact(f"Meta could not be reached: {type(exc).__name__}: {exc}",
                                                        token), retry_after_s=_backoff(attempt))
        else:
            if response.status_code == 200:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    return body, attempt
                failure = MetaUnavailable("Meta answered 200 with a body that is not a JSON object.",
                                          retry_after_s=_backoff(attempt))
            else:
                failure = _failure(response, attempt)
        wait = failure.retry_after_s or 0.0
        if not failure.retryable or attempt == max_attempts or wait > MAX_INLINE_WAIT_S:
            failure.detail = redact(failure.detail, token)
            raise failure
        sleep(wait)
    raise AssertionError("unreachable")


def _row(raw: Any, default_currency: str) -> SpendRow:
    if not isinstance(raw, dict):
        raise MetaError(f"Meta returned an insights row that is not an object: {str(raw)[:200]!r}.")
    try:
        campaign_id = str(raw["campaign_id"]).strip()
        day = date.fromisoformat(raw["date_start"])
        stop = date.fromisoformat(raw.get("date_stop") or raw["date_start"])
        amount = Decimal(str(raw.get("spend") or "0"))
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise MetaError(f"Meta returned an insights row this import cannot read ({type(exc).__name__}: {exc}); "
                        f"fields: {sorted(raw)}.") from exc
    if not campaign_id or stop != day:
        raise MetaError(f"Meta returned a row for {raw.get('date_start')}..{raw.get('date_stop')} without a campaign "
                        "or longer than one day; the import asks for daily campaign rows (time_increment=1).")
    if not amount.is_finite() or amount < 0:
        raise MetaError(f"Meta returned spend {raw.get('spend')!r} for campaign {campaign_id} on {day}.")
    currency = str(raw.get("account_currency") or default_currency).upper()[:3]
    return SpendRow(campaign_id=campaign_id, campaign_name=raw.get("campaign_name"), day=day, amount=amount,
                    currency=currency)


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def fetch_daily_spend(*, access_token: str, ad_account_id: str, since: date, until: date,
                      api_version: str = DEFAULT_API_VERSION, default_currency: str = "USD",
                      client: httpx.Client | None = None, sleep: Sleep = time.sleep,
                      max_attempts: int = MAX_ATTEMPTS, page_size: int = PAGE_SIZE) -> Fetched:
    """Every campaign's spend for every day in [since, until] (Meta's `until` is inclusive), all pages."""
    if since > until:
        raise ValueError("since must not be after until")
    if not API_VERSION.match(api_version):
        raise MetaError(f"{api_version!r} is not a Graph API version like v21.0.")
    base = get_settings().meta_graph_base.rstrip("/")
    url: str | httpx.URL = f"{base}/{api_version}/act_{normalize_account_id(ad_account_id)}/insights"
    params: dict[str, Any] | None = {
        "level": "campaign", "time_increment": 1, "fields": FIELDS,
        "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}, separators=(",", ":")),
        "limit": page_size, "access_token": access_token,
    }
    origin = httpx.URL(base)
    rows: list[SpendRow] = []
    requests = pages = 0
    followed: set[str] = set()
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False,
                                  headers={"User-Agent": "LeadPilot-MetaSync/1"})
    try:
        while True:
            body, tries = _get(http, url, params, sleep=sleep, max_attempts=max_attempts, token=access_token)
            requests += tries
            pages += 1
            rows.extend(_row(raw, default_currency) for raw in body.get("data") or [])
            following = (body.get("paging") or {}).get("next")
            if not following:
                break
            nxt = httpx.URL(following)
            # the next link carries the token: it may only ever go back to Meta
            if not _same_origin(nxt, origin):
                raise MetaError(f"Meta's paging.next points at another host ({nxt.host}); not followed.")
            if following in followed or pages >= MAX_PAGES:
                raise MetaError("Meta's paging did not end (a next link repeated, or too many pages).")
            followed.add(following)
            if "access_token" not in nxt.params:
                nxt = nxt.copy_merge_params({"access_token": access_token})
            url, params = nxt, None
    finally:
        if own:
            http.close()
    return Fetched(rows=rows, requests=requests, pages=pages, api_version=api_version)


def retry_time(error: MetaError, now: datetime, *, failures: int = 1, interval: timedelta) -> datetime:
    """When a sync that failed with `error` should run again: as Meta says for throttling, a backoff that grows
    with consecutive failures (capped at the sync interval) for transient trouble, the next interval otherwise."""
    if isinstance(error, MetaRateLimited | MetaUnavailable):
        backoff = timedelta(minutes=15) * 2 ** max(0, failures - 1)
        told = timedelta(seconds=error.retry_after_s or 0)
        return now + min(max(told, backoff), max(interval, told))
    return now + interval
