"""A frozen clock for one scenario. The runner passes `now` to every turn, but some services and tools read
`datetime.now()` themselves (availability, booking, the lead's upcoming appointments, reports): for the run,
their module-level `datetime` is swapped for one whose `now()` starts at the scenario's clock. Timestamps the
database writes (created_at) keep the real clock, so message order is untouched."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, tzinfo

PATCHED_MODULES = ("services.availability", "services.availability_offer", "services.calendars",
                   "services.reporting", "tools.calendars", "tools.payments", "tools.reporting", "services.handoff")


class _State:
    frozen: datetime | None = None


class FrozenDatetime(datetime):
    """`datetime` whose now() is the frozen instant while one is set."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        if _State.frozen is None:
            return datetime.now(tz)
        return _State.frozen.astimezone(tz) if tz else _State.frozen.astimezone().replace(tzinfo=None)

    @classmethod
    def utcnow(cls) -> datetime:  # type: ignore[override]
        return cls.now(None) if _State.frozen is None else _State.frozen.replace(tzinfo=None)


def now() -> datetime:
    """The scenario's current instant (the real one outside a scenario)."""
    return FrozenDatetime.now(_State.frozen.tzinfo if _State.frozen else None) if _State.frozen else datetime.now()


def advance(minutes: float) -> None:
    """Move the frozen clock forward (a lead answering an hour later)."""
    if _State.frozen is not None:
        _State.frozen += timedelta(minutes=minutes)


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Freeze the clock at `at` (timezone-aware) for the patched modules; restore everything afterwards."""
    swapped = []
    for name in PATCHED_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "datetime", None) is datetime:
            swapped.append(module)
            module.datetime = FrozenDatetime  # type: ignore[attr-defined]
    _State.frozen = at
    try:
        yield
    finally:
        _State.frozen = None
        for module in swapped:
            module.datetime = datetime  # type: ignore[attr-defined]
