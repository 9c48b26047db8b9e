"""Typed query and path parameters shared by the routers: a value outside its vocabulary or bounds is a 422
from validation, before any handler runs, instead of an error from deep inside a query."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from fastapi import Query
from pydantic import AfterValidator, AwareDatetime

from models.conversations import CHANNEL_TYPES
from models.crm import LIFECYCLE_STAGES

# far wider than any report or calendar needs, and narrow enough that a range and the range before it stay
# inside what a datetime can hold
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _plausible_moment(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


def _plausible_day(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError("must be an IANA timezone such as America/New_York")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_plausible_moment)]
Day = Annotated[date, AfterValidator(_plausible_day)]
TimeZone = Annotated[str, AfterValidator(_known_zone)]
LifecycleStage = Literal[LIFECYCLE_STAGES]  # type: ignore[valid-type]
ChannelType = Literal[CHANNEL_TYPES]  # type: ignore[valid-type]
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many, newest first (1 to 500)")]
