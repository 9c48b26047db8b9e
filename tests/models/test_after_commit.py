"""After-commit work runs once the outermost transaction has committed: a released savepoint is not a commit
(SQLAlchemy fires its after_commit event for both), and a rolled-back savepoint takes its announcements along."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from models.db import after_commit

pytestmark = pytest.mark.integration


def test_work_handed_over_inside_a_savepoint_waits_for_the_outer_commit(owner_engine: Engine) -> None:
    ran: list[str] = []
    with Session(owner_engine) as session:
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            after_commit(session, lambda: ran.append("inside"))
        assert ran == []  # the savepoint is released; the transaction holding its rows is still open
        after_commit(session, lambda: ran.append("outside"))
        session.commit()
    assert ran == ["inside", "outside"]


def test_an_outer_rollback_drops_what_a_released_savepoint_announced(owner_engine: Engine) -> None:
    ran: list[str] = []
    with Session(owner_engine) as session:
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            after_commit(session, lambda: ran.append("inside"))
        session.rollback()
        session.execute(text("SELECT 1"))
        session.commit()
    assert ran == []


def test_a_rolled_back_savepoint_drops_only_its_own_announcements(owner_engine: Engine) -> None:
    ran: list[str] = []
    with Session(owner_engine) as session:
        session.execute(text("SELECT 1"))
        after_commit(session, lambda: ran.append("before"))
        savepoint = session.begin_nested()
        after_commit(session, lambda: ran.append("refused"))
        inner = session.begin_nested()
        after_commit(session, lambda: ran.append("refused, nested"))
        inner.commit()
        savepoint.rollback()  # e.g. a booking that lost its slot: nothing of it may be announced
        with session.begin_nested():
            after_commit(session, lambda: ran.append("kept"))
        session.commit()
    assert ran == ["before", "kept"]
