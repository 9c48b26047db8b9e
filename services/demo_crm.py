"""Demo seed, CRM: custom fields, tags, contacts (the sales seed's leads), notes, tasks, pipelines, opportunities."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from models.crm import Contact, ContactCustomField, ContactTag, Note, Tag, Task
from models.pipelines import Opportunity, OpportunityCustomField, OpportunityStageHistory, Pipeline, PipelineStage
from services.demo_common import CENT, Row, Rows, Seeder, Shop

CONTACTS_PER_SUB_ACCOUNT = 320
SOURCES = {"meta_ads": 40, "google": 18, "website_form": 18, "referral": 12, "walk_in": 12}
SOURCE_LABELS = {"meta_ads": "Facebook lead ad", "google": "Google search", "website_form": "Website form",
                 "referral": "Referral", "walk_in": "Walk-in"}
TAGS = {"VIP": "#b45309", "Catering Lead": "#2563eb", "Newsletter": "#16a34a", "Event Inquiry": "#7c3aed",
        "Meta Lead": "#1877f2", "Regular": "#64748b", "Engaged": "#059669", "Needs Nurture": "#dc2626"}
EVENT_TYPES = {"corporate": (20, 120), "holiday_party": (15, 100), "graduation": (10, 50), "birthday": (8, 40),
               "wedding_rehearsal": (25, 70), "other": (6, 30)}
CATERING_EVENTS = ("corporate", "holiday_party", "graduation")
DIETARY = ["vegetarian", "vegan", "gluten_free", "nut_allergy", "dairy_free", "halal"]
CONTACT_FIELDS = (
    ("party_size", "Party size", "number", [], "Expected number of guests"),
    ("dietary_preferences", "Dietary preferences", "multi_select", DIETARY, "Needs the kitchen should plan for"),
    ("preferred_contact_time", "Preferred contact time", "select", ["morning", "afternoon", "evening"], None),
    ("event_date", "Event date", "date", [], "Date of the event or catering delivery"),
    ("event_type", "Event type", "select", list(EVENT_TYPES), None),
)
OPPORTUNITY_FIELDS = (
    ("event_type", "Event type", "select", list(EVENT_TYPES)),
    ("guest_count", "Guest count", "number", []),
    ("event_date", "Event date", "date", []),
    ("service_style", "Service style", "select", ["drop_off", "full_service", "private_room"]),
    ("deposit_paid", "Deposit paid", "checkbox", []),
)
AREA_CODES = {"restaurant-a": ("718", "347", "917", "646"), "restaurant-b": ("512", "737")}
# 555-01xx is the fictional range and these are typed by hand in tests: never hand them to demo contacts
RESERVED_SUFFIXES = frozenset({*range(100, 200), 4321, 7777, 8888})
MAIL_DOMAINS = ("gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com")
LOST_REASONS = ("Went with another venue", "Over budget", "Event postponed", "Stopped responding",
                "Chose a cheaper caterer")


def interest(contact: Row) -> str:
    """What the lead wants: "catering" (drop-off or full service) or "event" (the private room)."""
    return "event" if contact["custom_fields"].get("event_type") not in (None, *CATERING_EVENTS) else "catering"


def tag(shop: Shop, contact: Row, name: str, at: datetime) -> None:
    """Tag a contact once (rows are written by `seed_contact_tags`)."""
    tags = shop.tagged.setdefault(contact["id"], [])
    if name not in (t for t, _ in tags):
        tags.append((name, at))


def seed_contacts(sd: Seeder, shop: Shop) -> None:
    """Field definitions, tags, contacts over the last six months, their notes and tasks."""
    sd.add(ContactCustomField, [shop.row(
        id=sd.uid(), key=key, name=name, field_type=kind, options=options, description=description, position=i,
        created_at=sd.ago(300),
    ) for i, (key, name, kind, options, description) in enumerate(CONTACT_FIELDS)])
    shop.tags = {name: sd.uid() for name in TAGS}
    sd.add(Tag, [shop.row(id=tid, name=name, color=TAGS[name], created_at=sd.ago(300))
                 for name, tid in shop.tags.items()])
    rng = sd.rng
    pool = [(a, s) for a in AREA_CODES[shop.biz.slug] for s in range(2000, 10000) if s not in RESERVED_SUFFIXES]
    phones = [f"+1{a}555{s:04d}" for a, s in rng.sample(pool, CONTACTS_PER_SUB_ACCOUNT)]
    emails: set[str] = set()
    contacts = [_contact(sd, shop, phones[i], emails) for i in range(CONTACTS_PER_SUB_ACCOUNT)]
    contacts.sort(key=lambda c: (c["created_at"], c["id"]))
    shop.contacts = sd.add(Contact, contacts)
    _notes_and_tasks(sd, shop)


def _contact(sd: Seeder, shop: Shop, phone: str, emails: set[str]) -> Row:
    rng, fake = sd.rng, sd.fake
    first, last = fake.first_name(), fake.last_name()
    source = rng.choices(list(SOURCES), list(SOURCES.values()))[0]
    created = sd.ago(181 * rng.random() ** 1.15)
    campaign = _campaign_for(sd, shop, source, created)
    has_phone, has_email = {"meta_ads": (0.95, 0.85), "google": (0.8, 0.8), "website_form": (0.7, 1.0),
                            "referral": (0.8, 0.75), "walk_in": (0.85, 0.5)}[source]
    keep_phone = sd.chance(has_phone)
    keep_email = sd.chance(has_email) or not keep_phone
    custom: dict[str, Any] = {}
    if source != "walk_in" or sd.chance(0.3):
        event = rng.choice(list(EVENT_TYPES))
        custom["event_type"] = event
        custom["party_size"] = rng.randint(*EVENT_TYPES[event])
        if sd.chance(0.5):
            custom["event_date"] = (created + timedelta(days=rng.randint(14, 120))).date().isoformat()
    elif sd.chance(0.4):
        custom["party_size"] = rng.randint(2, 8)
    if sd.chance(0.35):
        custom["dietary_preferences"] = sorted(rng.sample(DIETARY, rng.randint(1, 2)))
    if sd.chance(0.55):
        custom["preferred_contact_time"] = rng.choice(["morning", "afternoon", "evening"])
    regular = source in ("walk_in", "referral") and sd.chance(0.3)
    contact: Row = shop.row(
        id=sd.uid(), agency_id=shop.agency_id, first_name=first, last_name=last,
        email=_email(sd, first, last, emails, custom.get("event_type") == "corporate") if keep_email else None,
        phone=phone if keep_phone else None,
        company_name=fake.company() if custom.get("event_type") == "corporate" else None,
        timezone=shop.biz.timezone,
        date_of_birth=fake.date_of_birth(minimum_age=21, maximum_age=70) if sd.chance(0.2) else None,
        address={"city": shop.biz.city, "state": "NY" if shop.biz.slug == "restaurant-a" else "TX"},
        contact_info={"preferred_channel": "sms" if keep_phone and sd.chance(0.7) else "email"},
        source=SOURCE_LABELS[source], lead_source=source, initial_contact_date=created,
        lifecycle_stage="customer" if regular else "subscriber" if sd.chance(0.05) else "lead",
        qualification_status="qualified" if regular else "new",
        lead_score=rng.randint(5, 60), conversion_probability=_probability(sd, 0.03, 0.35),
        converted_at=created + timedelta(days=rng.randint(1, 10)) if regular else None,
        campaign_id=campaign["id"] if campaign else None,
        attribution=_attribution(sd, source, campaign), custom_fields=custom,
        dnd_channels=_dnd(sd, created), created_at=created, last_activity_at=created,
        assigned_user_id=None,
    )
    contact["dnd_all"] = "all" in contact["dnd_channels"]
    if contact["dnd_all"]:
        contact["dnd_channels"] = {"sms": contact["dnd_channels"]["all"], "email": contact["dnd_channels"]["all"]}
    later = sd.later(created, hours=rng.uniform(0.1, 6))
    if source == "meta_ads":
        tag(shop, contact, "Meta Lead", created)
    if "event_type" in custom:
        tag(shop, contact, "Catering Lead" if interest(contact) == "catering" else "Event Inquiry", later)
    if regular:
        tag(shop, contact, "Regular", later)
    if contact["email"] and sd.chance(0.3):
        tag(shop, contact, "Newsletter", later)
    return contact


def _email(sd: Seeder, first: str, last: str, taken: set[str], corporate: bool) -> str:
    rng = sd.rng
    f, la = re.sub(r"[^a-z]", "", first.lower()), re.sub(r"[^a-z]", "", last.lower())
    local = rng.choice([f"{f}.{la}", f"{f}{la}{rng.randint(1, 99)}", f"{f[0]}{la}", f"{la}.{f}{rng.randint(1, 9)}"])
    domain = f"{la}-co.example" if corporate else rng.choice(MAIL_DOMAINS)
    email = f"{local}@{domain}"
    while email in taken:
        email = f"{local}{rng.randint(100, 999)}@{domain}"
    taken.add(email)
    # a few people type their address with capitals; uniqueness is case-insensitive
    return email.capitalize() if sd.chance(0.05) else email


def _campaign_for(sd: Seeder, shop: Shop, source: str, created: datetime) -> Row | None:
    live = [c for c in shop.campaigns if c["start_date"] <= created and (c["end_date"] is None
                                                                         or created <= c["end_date"])]
    if source == "google":
        return next((c for c in live if c["platform"] == "google"), None)
    if source != "meta_ads":
        return None
    meta = [c for c in live if c["platform"] == "meta"]
    if len(meta) > 1 and sd.chance(0.6):
        return meta[-1]
    return meta[0] if meta else None


def _attribution(sd: Seeder, source: str, campaign: Row | None) -> dict[str, Any]:
    if campaign is None:
        return {"first_touch": source}
    if campaign["platform"] == "meta":
        return {"utm_source": "facebook", "utm_medium": "paid_social", "utm_campaign": campaign["utm_campaign"],
                "fb_ad_id": str(sd.rng.randint(10**17, 10**18 - 1)), "form": "Instant form"}
    return {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": campaign["utm_campaign"],
            "gclid": sd.uid().hex[:24]}


def _dnd(sd: Seeder, created: datetime) -> dict[str, Any]:
    at = sd.later(created, days=sd.rng.uniform(1, 30)).isoformat()
    roll = sd.rng.random()
    if roll < 0.04:
        return {"sms": {"reason": "STOP", "at": at}}
    if roll < 0.06:
        return {"email": {"reason": "unsubscribed", "at": at}}
    if roll < 0.065:
        return {"all": {"reason": "requested by phone", "at": at}}
    return {}


def _probability(sd: Seeder, low: float, high: float) -> Decimal:
    return Decimal(str(sd.rng.uniform(low, high))).quantize(Decimal("0.0001"))


def _notes_and_tasks(sd: Seeder, shop: Shop) -> None:
    rng, staff = sd.rng, shop.staff_ids
    notes = []
    for c in rng.sample(shop.contacts, len(shop.contacts) // 4):
        cf = c["custom_fields"]
        body = rng.choice([
            f"Asked about {cf.get('event_type', 'a dinner').replace('_', ' ')} for {cf.get('party_size', 'a few')} "
            "guests.",
            f"Prefers to be contacted in the {cf.get('preferred_contact_time', 'afternoon')}.",
            f"Mentioned {', '.join(cf.get('dietary_preferences', ['no dietary needs'])).replace('_', ' ')}.",
            f"Found us through {c['source'].lower()}. {sd.fake.sentence(nb_words=8)}",
        ])
        at = sd.later(c["created_at"], hours=rng.uniform(1, 72))
        notes.append(shop.row(id=sd.uid(), contact_id=c["id"], user_id=rng.choice(staff), body=body,
                              is_pinned=sd.chance(0.1), created_at=at))
    sd.add(Note, notes)
    tasks = []
    for c in rng.sample(shop.contacts, len(shop.contacts) // 6):
        due = sd.now + timedelta(days=rng.randint(-21, 14), hours=rng.randint(-4, 4))
        done = due < sd.now and sd.chance(0.6)
        status = "completed" if done else rng.choice(["open", "open", "in_progress"])
        created = min(c["created_at"] + timedelta(hours=2), due - timedelta(hours=1))
        tasks.append(shop.row(
            id=sd.uid(), contact_id=c["id"], assigned_user_id=rng.choice(staff), created_by_user_id=shop.manager_id,
            title=rng.choice(["Call back about catering quote", "Send the event menu", "Confirm headcount",
                              "Follow up on proposal", "Check dietary requirements", "Confirm delivery address"]),
            description=f"{c['first_name']} {c['last_name']}: {sd.fake.sentence(nb_words=10)}", due_at=due,
            status=status, priority=rng.choices(["low", "normal", "high", "urgent"], [2, 6, 3, 1])[0],
            completed_at=due - timedelta(hours=rng.randint(1, 20)) if done else None, created_at=created,
        ))
    sd.add(Task, tasks)


def seed_pipelines(sd: Seeder, shop: Shop, custom_stages: Rows) -> None:
    """Two pipelines copied from the agency's stages, an opportunity per lead that talked to sales (and some
    fresh leads), stage history whose durations add up, and each contact's lifecycle brought in line."""
    sd.add(OpportunityCustomField, [shop.row(
        id=sd.uid(), key=key, name=name, field_type=kind, options=options, position=i, created_at=sd.ago(300),
    ) for i, (key, name, kind, options) in enumerate(OPPORTUNITY_FIELDS)])
    pipelines: dict[str, tuple[Row, Rows]] = {}
    for position, (kind, name, blurb) in enumerate((("catering", "Catering Sales", "Drop-off and full-service"),
                                                    ("event", "Private Events", "Private room bookings"))):
        pipeline = shop.row(id=sd.uid(), name=name, description=f"{blurb} deals", is_default=position == 0,
                            position=position, created_at=sd.ago(300))
        stages = [shop.row(id=sd.uid(), pipeline_id=pipeline["id"], custom_stage_id=s["id"], name=s["stage_name"],
                           position=s["stage_order"], probability=s["probability"], is_won=s["is_won"],
                           is_lost=s["is_lost"], created_at=sd.ago(300)) for s in custom_stages]
        pipelines[kind] = (pipeline, stages)
    sd.add(Pipeline, [p for p, _ in pipelines.values()])
    sd.add(PipelineStage, [s for _, stages in pipelines.values() for s in stages])
    calls_by_contact: dict[uuid.UUID, Rows] = defaultdict(list)
    for call in shop.calls:
        calls_by_contact[call["contact_id"]].append(call)
    opportunities: Rows = []
    history: Rows = []
    for contact in shop.contacts:
        calls = calls_by_contact.get(contact["id"])
        plan = _plan(sd, contact, calls) if calls else _plan_fresh(sd, contact)
        if plan is None:
            continue
        opp, moves = _opportunity(sd, shop, contact, pipelines[interest(contact)], plan, calls)
        opportunities.append(opp)
        history += moves
    shop.opportunities = sd.add(Opportunity, opportunities)
    sd.add(OpportunityStageHistory, history)
    for contact in shop.contacts:
        calls = calls_by_contact.get(contact["id"], [])
        past = [c["scheduled_date_time"] for c in calls if c["scheduled_date_time"] <= sd.now]
        contact["last_activity_at"] = max([contact["created_at"], *past])


def _plan(sd: Seeder, contact: Row, calls: Rows) -> tuple[list[int], datetime, datetime] | None:
    """Stage path (indexes into the six stages), when the deal opened, and its last move."""
    rng = sd.rng
    opened = contact["created_at"] + timedelta(minutes=rng.randint(5, 90))
    closed = [c for c in calls if c["call_outcome"] == "closed"]
    last = calls[-1]
    at = last["scheduled_date_time"]
    if closed:
        won_at = sd.later(closed[0]["scheduled_date_time"], hours=rng.uniform(0.5, 4))
        return ([0, 1, 2, 3, 4] if sd.chance(0.5) else [0, 1, 2, 4]), opened, won_at
    if last["call_outcome"] == "scheduled":
        return [0, 1], opened, last["created_at"]
    if last["call_outcome"] == "completed":
        if at > sd.ago(21):
            return ([0, 1, 2] if sd.chance(0.5) else [0, 1, 2, 3]), opened, sd.later(at, hours=rng.uniform(2, 30))
        return [0, 1, 2, 5], opened, sd.later(at, days=rng.uniform(7, 20))
    if at > sd.ago(10):
        return [0, 1], opened, last["created_at"]
    return [0, 1, 5], opened, sd.later(at, days=rng.uniform(5, 12))


def _plan_fresh(sd: Seeder, contact: Row) -> tuple[list[int], datetime, datetime] | None:
    """Leads that never got on a call: recent ones sit in New Lead, a few old ones were closed lost."""
    if contact["lead_source"] not in ("meta_ads", "website_form", "google") or "event_type" not in \
            contact["custom_fields"]:
        return None
    opened = contact["created_at"] + timedelta(minutes=sd.rng.randint(5, 90))
    if contact["created_at"] > sd.ago(20) and sd.chance(0.6):
        return [0], opened, opened
    if contact["created_at"] < sd.ago(60) and sd.chance(0.12):
        return [0, 5], opened, sd.later(opened, days=sd.rng.uniform(10, 30))
    return None


def _opportunity(sd: Seeder, shop: Shop, contact: Row, pipeline: tuple[Row, Rows],
                 plan: tuple[list[int], datetime, datetime], calls: Rows | None) -> tuple[Row, Rows]:
    rng = sd.rng
    path, opened, last_move = plan
    opened = min(opened, last_move)
    span = int((last_move - opened).total_seconds())
    times = [opened] + sorted(opened + timedelta(seconds=rng.randint(0, span)) for _ in path[1:-1])
    times += [last_move] if len(path) > 1 else []
    pipe, stages = pipeline
    stage = stages[path[-1]]
    status = "won" if stage["is_won"] else "lost" if stage["is_lost"] else "open"
    user_id = calls[-1]["user_id"] if calls else rng.choice(shop.closer_ids)
    opp_id = sd.uid()
    moves = [shop.row(id=sd.uid(), opportunity_id=opp_id, from_stage_id=stages[path[k - 1]]["id"] if k else None,
                      to_stage_id=stages[s]["id"], changed_by_user_id=user_id if k else None,
                      duration_seconds=int((times[k] - times[k - 1]).total_seconds()) if k else None,
                      changed_at=times[k]) for k, s in enumerate(path)]
    cf = contact["custom_fields"]
    guests = cf.setdefault("party_size", rng.randint(*EVENT_TYPES[cf.get("event_type", "other")]))
    style = "private_room" if pipe["name"] == "Private Events" else rng.choice(["drop_off", "full_service"])
    per_guest = {"drop_off": shop.biz.dropoff_per_guest, "full_service": shop.biz.full_service_per_guest,
                 "private_room": shop.biz.full_service_per_guest * Decimal("1.2")}[style]
    value = (per_guest * guests).quantize(CENT)
    event_date = cf.get("event_date") or (times[-1] + timedelta(days=rng.randint(10, 60))).date().isoformat()
    opp = shop.row(
        id=opp_id, pipeline_id=pipe["id"], stage_id=stage["id"], contact_id=contact["id"], assigned_user_id=user_id,
        campaign_id=contact["campaign_id"], currency="USD", status=status, source=contact["lead_source"],
        name=f"{contact['last_name']} - {cf.get('event_type', 'catering').replace('_', ' ')} ({guests} guests)",
        monetary_value=value, lost_reason=rng.choice(LOST_REASONS) if status == "lost" else None,
        expected_close_date=(times[-1] if status != "open" else sd.now + timedelta(days=rng.randint(5, 40))).date(),
        custom_fields={"event_type": cf.get("event_type", "other"), "guest_count": guests, "event_date": event_date,
                       "service_style": style, "deposit_paid": status == "won"},
        stage_entered_at=times[-1], closed_at=times[-1] if status != "open" else None, created_at=times[0],
        updated_at=times[-1],
    )
    _align_contact(sd, shop, contact, opp, stage)
    return opp, moves


def _align_contact(sd: Seeder, shop: Shop, contact: Row, opp: Row, stage: Row) -> None:
    """Lifecycle, qualification and conversion probability follow the deal."""
    contact["assigned_user_id"] = opp["assigned_user_id"]
    if opp["status"] == "won":
        contact.update(lifecycle_stage="customer", qualification_status="qualified",
                       conversion_probability=Decimal("1.0000"), converted_at=opp["closed_at"],
                       lead_score=sd.rng.randint(80, 100))
        if opp["monetary_value"] >= 2500:
            tag(shop, contact, "VIP", opp["closed_at"])
    elif opp["status"] == "lost":
        contact.update(qualification_status=sd.rng.choice(["unqualified", "disqualified"]),
                       conversion_probability=_probability(sd, 0.01, 0.08), lead_score=sd.rng.randint(5, 30))
    else:
        contact.update(lifecycle_stage="opportunity" if stage["position"] >= 2 else "sales_qualified"
                       if stage["position"] == 1 else contact["lifecycle_stage"],
                       qualification_status="qualified" if stage["position"] >= 1 else "contacted",
                       conversion_probability=(stage["probability"] / 100 + _probability(sd, -0.05, 0.1))
                       .quantize(Decimal("0.0001")), lead_score=sd.rng.randint(40, 85))


def seed_contact_tags(sd: Seeder, shop: Shop) -> None:
    """The contact_tags junction rows every domain asked for."""
    sd.add(ContactTag, [shop.row(contact_id=cid, tag_id=shop.tags[name], created_at=at)
                        for cid, tags in shop.tagged.items() for name, at in tags])
    for contact in shop.contacts:
        if contact["qualification_status"] == "new" and contact["created_at"] < sd.ago(7) \
                and contact["lifecycle_stage"] == "lead":
            contact["qualification_status"] = sd.rng.choice(["contacted", "contacted", "new", "unqualified"])
