"""Pipelines: template copies, stage moves with exact durations, and the manager's numbers checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from models.crm import Contact
from models.pipelines import OpportunityStageHistory
from services import pipelines
from services.errors import Conflict, InvalidInput
from tests.conftest import Demo

pytestmark = pytest.mark.integration
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)



@pytest.fixture
def board(a, demo: Demo):  # type: ignore[no-untyped-def]
    pipeline = pipelines.create_pipeline(session=a, sub_account_id=demo.a, name="Weddings")
    return pipeline, {s.name: s for s in pipelines.stages_of(session=a, pipeline_id=pipeline.id)}


@pytest.fixture
def contacts(a):  # type: ignore[no-untyped-def]
    return a.scalars(select(Contact).order_by(Contact.id).limit(4)).all()


def test_new_pipeline_copies_the_agency_stages_in_order(board) -> None:  # type: ignore[no-untyped-def]
    _, stages = board
    assert list(stages) == ["New Lead", "Qualified", "Proposal Sent", "Negotiation", "Closed Won", "Closed Lost"]
    assert (stages["Negotiation"].probability, stages["Closed Won"].is_won) == (Decimal("75.00"), True)


def test_moves_record_exact_seconds_in_the_stage_left(a, board, contacts) -> None:  # type: ignore[no-untyped-def]
    pipeline, stages = board
    opp = pipelines.create_opportunity(session=a, pipeline_id=pipeline.id, contact_id=contacts[0].id,
                                       name="Smith wedding", monetary_value=Decimal("12000"), now=T0)
    pipelines.move_opportunity(session=a, opportunity_id=opp.id, to_stage_id=stages["Qualified"].id,
                               now=T0 + timedelta(days=2))
    pipelines.move_opportunity(session=a, opportunity_id=opp.id, to_stage_id=stages["Closed Won"].id,
                               now=T0 + timedelta(days=3, hours=6))
    history = a.scalars(select(OpportunityStageHistory).where(OpportunityStageHistory.opportunity_id == opp.id)
                        .order_by(OpportunityStageHistory.changed_at)).all()
    assert [h.duration_seconds for h in history] == [None, 172800, 108000]
    assert (opp.status, opp.closed_at) == ("won", T0 + timedelta(days=3, hours=6))


def test_a_stage_of_another_pipeline_or_the_same_stage_is_refused(a, board, contacts, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    pipeline, stages = board
    other = pipelines.create_pipeline(session=a, sub_account_id=demo.a, name="Other")
    foreign = pipelines.stages_of(session=a, pipeline_id=other.id)[1]
    opp = pipelines.create_opportunity(session=a, pipeline_id=pipeline.id, contact_id=contacts[0].id, name="x")
    with pytest.raises(InvalidInput):
        pipelines.move_opportunity(session=a, opportunity_id=opp.id, to_stage_id=foreign.id)
    with pytest.raises(Conflict):
        pipelines.move_opportunity(session=a, opportunity_id=opp.id, to_stage_id=stages["New Lead"].id)


def test_forecast_time_in_stage_and_win_rate_match_hand_computation(a, board, contacts) -> None:  # type: ignore[no-untyped-def]
    pipeline, stages = board
    make = lambda c, value, src: pipelines.create_opportunity(  # noqa: E731
        session=a, pipeline_id=pipeline.id, contact_id=c.id, name="deal", monetary_value=Decimal(value), source=src,
        now=T0)
    d1, d2, d3, d4 = (make(contacts[0], "1000.10", "meta_ads"), make(contacts[1], "2000", "meta_ads"),
                      make(contacts[2], "333.33", "referral"), make(contacts[3], "500", "meta_ads"))
    pipelines.move_opportunity(session=a, opportunity_id=d2.id, to_stage_id=stages["Negotiation"].id,
                               now=T0 + timedelta(hours=10))
    pipelines.move_opportunity(session=a, opportunity_id=d3.id, to_stage_id=stages["Closed Won"].id,
                               now=T0 + timedelta(hours=30))
    pipelines.move_opportunity(session=a, opportunity_id=d4.id, to_stage_id=stages["Closed Lost"].id,
                               now=T0 + timedelta(hours=20), lost_reason="Budget")

    forecast = {f.stage: f for f in pipelines.weighted_forecast(session=a, pipeline_id=pipeline.id)}
    # New Lead: d1 1000.10 x 10% = 100.01; Negotiation: d2 2000 x 75% = 1500.00; closed deals are not forecast
    assert (forecast["New Lead"].count, forecast["New Lead"].weighted) == (1, Decimal("100.01"))
    assert (forecast["Negotiation"].value, forecast["Negotiation"].weighted) == (Decimal("2000.00"), Decimal("1500.00"))
    assert forecast["Closed Won"].count == 0
    # New Lead was left after 10 h, 30 h and 20 h: mean 20 h
    assert pipelines.average_time_in_stage(session=a, pipeline_id=pipeline.id) == {"New Lead": 72000.0}
    assert pipelines.win_rate_by_source(session=a, pipeline_id=pipeline.id) == {"referral": 1.0, "meta_ads": 0.0}
    assert d4.lost_reason == "Budget" and d1.status == "open"
