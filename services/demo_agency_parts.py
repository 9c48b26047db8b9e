"""Demo agency, part 1: people, CRM, pipelines, calendars, campaigns, sales calls and money."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from models.activity import Integration
from models.calendars import Appointment, AvailabilityRule, Calendar, CalendarType, Service
from models.crm import Contact, ContactCustomField, ContactTag, Note, Tag, Task
from models.performance import Campaign, CampaignCall, FinancialRecord, PerformanceMetric, SalesCall, UserFeedback
from models.pipelines import (
    AgencyStage,
    CustomStage,
    Opportunity,
    OpportunityCustomField,
    OpportunityStageHistory,
    Pipeline,
    PipelineStage,
)
from models.tenancy import ApiKey, Role, SubAccount, User, UserAgencyMembership, UserSubAccountMembership
from services import reporting
from services.demo_agency import CENT, Business, _Ctx, local_dt

Users = dict[str, tuple[uuid.UUID, str]]  # email -> (id, role name)
CUSTOM_STAGES = [
    ("New Lead", 10, False, False),
    ("Qualified", 25, False, False),
    ("Proposal Sent", 50, False, False),
    ("Negotiation", 75, False, False),
    ("Closed Won", 100, True, False),
    ("Closed Lost", 0, False, True),
]
TAGS = ["VIP", "Catering Lead", "Newsletter", "Event Inquiry", "Meta Lead", "Regular"]
SOURCES = ["meta_ads", "meta_ads", "meta_ads", "google", "website_form", "referral", "walk_in"]


def seed_agency(ctx: _Ctx, agency_id: uuid.UUID, roles: dict[str, uuid.UUID], password_hash: str) -> Users:
    """Agency staff and every business's staff, with their agency memberships."""
    people = [
        ("admin@digitalmarketing.com", "Alex Admin", "Agency Admin"),
        ("sam@digitalmarketing.com", "Sam Rivera", "Agency User"),
        ("john@restaurant.com", "John Moretti", "Client Manager"),
        ("jane@restaurant.com", "Jane Costa", "Client Staff"),
        ("maria@restaurant.com", "Maria Bianchi", "Client Staff"),
        ("bob@restaurant.com", "Bob Garza", "Client Manager"),
        ("luis@restaurant.com", "Luis Ortega", "Client Staff"),
    ]
    users: Users = {}
    rows = []
    for email, name, role in people:
        user_id = ctx.uid()
        users[email] = (user_id, role)
        rows.append(
            {
                "id": user_id,
                "agency_id": agency_id,
                "role_id": roles[role],
                "email": email,
                "name": name,
                "password_hash": password_hash,
                "skills": ["catering"] if "maria" in email else [],
                "last_login": ctx.ago(ctx.rng.uniform(0, 5)),
                "created_at": ctx.ago(500),
            }
        )
    ctx.add(User, rows)
    ctx.add(
        UserAgencyMembership,
        [
            {"id": ctx.uid(), "user_id": users[e][0], "agency_id": agency_id, "role_id": roles[users[e][1]]}
            for e, _, r in people
            if r.startswith("Agency")
        ],
    )
    return users


def seed_custom_stages(ctx: _Ctx, agency_id: uuid.UUID) -> list[dict[str, Any]]:
    """The agency's stage templates that every pipeline copies."""
    rows = [
        {
            "id": ctx.uid(),
            "agency_id": agency_id,
            "stage_order": i,
            "stage_name": name,
            "probability": Decimal(p),
            "is_won": won,
            "is_lost": lost,
            "stage_description": f"{name} stage",
            "completion_criteria": "Budget, date and headcount confirmed" if name == "Qualified" else None,
        }
        for i, (name, p, won, lost) in enumerate(CUSTOM_STAGES)
    ]
    ctx.add(CustomStage, rows)
    ctx.add(
        AgencyStage, [{"agency_id": agency_id, "custom_stage_id": r["id"], "position": r["stage_order"]} for r in rows]
    )
    return rows


def seed_business(
    ctx: _Ctx,
    agency_id: uuid.UUID,
    biz: Business,
    users: Users,
    roles: dict[str, uuid.UUID],
    stages: list[dict[str, Any]],
    faq: dict[str, Any],
) -> uuid.UUID:
    """One restaurant and everything it owns."""
    from services import demo_agency_more as more

    sub_id = ctx.uid()
    hours = {
        str(d): {"open": biz.opens.strftime("%H:%M"), "close": biz.closes.strftime("%H:%M")} for d in biz.open_days
    }
    ctx.add(
        SubAccount,
        [
            {
                "id": sub_id,
                "agency_id": agency_id,
                "name": biz.name,
                "slug": biz.slug,
                "timezone": biz.timezone,
                "onboarding_date": ctx.ago(420 if biz.slug.endswith("a") else 300),
                "industry": biz.industry,
                "contact_info": {"phone": biz.sms_number, "email": biz.inbox},
                "billing_info": {"plan": "pro", "card": "4242"},
                "phone": biz.sms_number,
                "email": biz.inbox,
                "address": biz.address,
                "settings": {
                    "business_hours": hours,
                    "quiet_hours": {"start": "21:00", "end": "08:00"},
                    "help_text": f"{biz.name}: reply STOP to opt out. Call {biz.sms_number} for help.",
                },
            }
        ],
    )
    ctx.add(
        Role,
        [
            {
                "id": ctx.uid(),
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "role_type": "client_user",
                "scope": "sub_account",
                "name": "Host",
                "description": "Front of house: inbox and bookings only",
                "permissions": ["conversations.read", "conversations.write", "calendars.read", "calendars.write"],
            }
        ],
    )
    staff = [biz.manager, *biz.staff]
    ctx.add(
        UserSubAccountMembership,
        [
            {"id": ctx.uid(), "user_id": users[e][0], "sub_account_id": sub_id, "role_id": roles[users[e][1]]}
            for e in staff
        ],
    )
    # an integration key of the business (its token was shown once, to the manager, and is not known here)
    ctx.add(ApiKey, [{
        "id": ctx.uid(), "agency_id": agency_id, "user_id": users[biz.manager][0], "sub_account_id": sub_id,
        "name": "Website booking form", "prefix": f"{ctx.rng.getrandbits(48):012x}",
        "secret_sha256": f"{ctx.rng.getrandbits(256):064x}", "created_at": ctx.ago(200),
        "last_used_at": ctx.ago(ctx.rng.uniform(0, 2)),
    }])
    staff_ids = [users[e][0] for e in staff]
    campaigns, integrations = _campaigns(ctx, agency_id, sub_id, biz)
    contacts = _contacts(ctx, agency_id, sub_id, biz, staff_ids, campaigns)
    _pipelines(ctx, sub_id, stages, contacts, staff_ids)
    appointments = _calendars(ctx, sub_id, biz, contacts, staff_ids)
    calls = _sales_calls(ctx, sub_id, appointments, contacts, staff_ids)
    _money(ctx, agency_id, sub_id, campaigns, integrations, calls, contacts)
    _metrics(ctx, agency_id, sub_id, campaigns, calls)
    more.seed_rest(ctx, sub_id, biz, contacts, staff_ids, faq, appointments)
    return sub_id


def _campaigns(
    ctx: _Ctx, agency_id: uuid.UUID, sub_id: uuid.UUID, biz: Business
) -> tuple[list[dict[str, Any]], dict[str, uuid.UUID]]:
    short = biz.slug[-1].upper()
    specs = [
        ("Meta - Catering Leads", "meta", 180, None, 9000),
        ("Meta - Holiday Parties", "meta", 75, None, 6000),
        ("Google - Brand Search", "google", 180, 20, 3000),
    ]
    campaigns = [
        {
            "id": ctx.uid(),
            "agency_id": agency_id,
            "sub_account_id": sub_id,
            "name": name,
            "platform": platform,
            "start_date": ctx.ago(start),
            "end_date": ctx.ago(end) if end else None,
            "campaign_status": "completed" if end else "active",
            "budget_allocation": Decimal(budget),
            "target_metrics": {"show_rate": 0.7, "close_rate": 0.3, "cost_per_booked_call": 60},
            "external_campaign_id": f"{platform}-{short}-{i}",
            "utm_campaign": name.lower().replace(" ", "_"),
        }
        for i, (name, platform, start, end, budget) in enumerate(specs)
    ]
    ctx.add(Campaign, campaigns)
    integrations = {p: ctx.uid() for p in ("meta", "stripe", "whop")}
    ctx.add(
        Integration,
        [
            {
                "id": i,
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "provider_name": p,
                "name": f"{p.title()} ({short})",
                "connection_id": f"{p}_acct_{short.lower()}{ctx.rng.randint(1000, 9999)}",
                "data_sync_status": "up_to_date",
                "last_sync_time": ctx.ago(0.1),
                "authentication_status": "connected",
                "api_version": {"meta": "v21.0", "stripe": "2024-06-20", "whop": "v5"}[p],
            }
            for p, i in integrations.items()
        ],
    )
    return campaigns, integrations


def _contacts(
    ctx: _Ctx,
    agency_id: uuid.UUID,
    sub_id: uuid.UUID,
    biz: Business,
    staff_ids: list[uuid.UUID],
    campaigns: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    rng, fake = ctx.rng, ctx.fake
    ctx.add(
        ContactCustomField,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "key": "party_size",
                "name": "Party size",
                "field_type": "number",
                "position": 0,
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "key": "dietary_preferences",
                "name": "Dietary preferences",
                "field_type": "multi_select",
                "options": ["vegetarian", "vegan", "gluten_free", "nut_allergy"],
                "position": 1,
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "key": "preferred_contact_time",
                "name": "Preferred contact time",
                "field_type": "select",
                "options": ["morning", "afternoon", "evening"],
                "position": 2,
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "key": "event_date",
                "name": "Event date",
                "field_type": "date",
                "position": 3,
            },
        ],
    )
    tags = [
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "name": t,
            "color": rng.choice(["#e11d48", "#2563eb", "#16a34a", "#f59e0b"]),
        }
        for t in TAGS
    ]
    ctx.add(Tag, tags)
    meta = [c for c in campaigns if c["platform"] == "meta"]
    google = next(c for c in campaigns if c["platform"] == "google")
    contacts: list[dict[str, Any]] = []
    seen_phone: set[str | None] = set()
    seen_email: set[str | None] = set()
    for i in range(310):
        first, last = fake.first_name(), fake.last_name()
        created = ctx.ago(rng.uniform(0, 180))
        source = rng.choice(SOURCES)
        campaign = rng.choice(meta) if source == "meta_ads" else google if source == "google" else None
        if campaign and campaign["start_date"] > created:
            campaign = None
        email: str | None = (
            f"{first}.{last}{i}@{rng.choice(['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com'])}".lower()
        )
        phone: str | None = f"+1{biz.area_code}{rng.randint(2000000, 9999999)}"
        if phone in seen_phone or rng.random() < 0.08:
            phone = None
        if rng.random() < 0.1 and phone:
            email = None
        seen_phone.add(phone)
        seen_email.add(email)
        customer = rng.random() < 0.22
        custom: dict[str, Any] = {}
        if rng.random() < 0.7:
            custom["party_size"] = rng.choice([2, 4, 6, 10, 20, 40, 60])
        if rng.random() < 0.4:
            custom["dietary_preferences"] = rng.sample(
                ["vegetarian", "vegan", "gluten_free", "nut_allergy"], rng.randint(1, 2)
            )
        if rng.random() < 0.5:
            custom["preferred_contact_time"] = rng.choice(["morning", "afternoon", "evening"])
        if rng.random() < 0.3:
            custom["event_date"] = (ctx.now + timedelta(days=rng.randint(5, 120))).date().isoformat()
        dnd = {"sms": {"reason": "STOP", "at": created.isoformat()}} if rng.random() < 0.04 else {}
        contacts.append(
            {
                "id": ctx.uid(),
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": phone,
                "timezone": biz.timezone,
                "assigned_user_id": rng.choice(staff_ids) if rng.random() < 0.6 else None,
                "lifecycle_stage": "customer" if customer else "lead",
                "lead_score": rng.randint(0, 100),
                "lead_source": source,
                "source": source,
                "initial_contact_date": created,
                "qualification_status": "qualified"
                if customer
                else rng.choice(["new", "new", "contacted", "qualified", "unqualified", "disqualified"]),
                "conversion_probability": Decimal(str(round(rng.uniform(0.02, 0.95), 4))),
                "converted_at": created + timedelta(days=rng.uniform(3, 30)) if customer else None,
                "campaign_id": campaign["id"] if campaign else None,
                "attribution": {"utm_source": source, "utm_campaign": campaign["utm_campaign"]} if campaign else {},
                "custom_fields": custom,
                "dnd_channels": dnd,
                "created_at": created,
                "updated_at": created,
                "last_activity_at": created + timedelta(days=rng.uniform(0, 10)),
            }
        )
    ctx.add(Contact, contacts)
    ctx.add(
        ContactTag,
        [
            {"contact_id": c["id"], "tag_id": t["id"], "sub_account_id": sub_id}
            for c in contacts
            for t in rng.sample(tags, rng.choice([0, 1, 1, 2]))
        ],
    )
    ctx.add(
        Note,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "contact_id": c["id"],
                "user_id": rng.choice(staff_ids),
                "body": fake.sentence(nb_words=12),
                "created_at": c["created_at"] + timedelta(hours=2),
            }
            for c in contacts[::5]
        ],
    )
    ctx.add(
        Task,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "contact_id": c["id"],
                "assigned_user_id": rng.choice(staff_ids),
                "title": rng.choice(
                    ["Call back about catering", "Send event menu", "Confirm headcount", "Follow up quote"]
                ),
                "due_at": ctx.now + timedelta(days=rng.randint(-10, 14)),
                "status": status,
                "priority": rng.choice(["low", "normal", "normal", "high"]),
                "completed_at": ctx.ago(rng.uniform(0, 10)) if status == "completed" else None,
            }
            for c, status in ((c, rng.choice(["open", "open", "completed", "in_progress"])) for c in contacts[::7])
        ],
    )
    return contacts


def _pipelines(
    ctx: _Ctx,
    sub_id: uuid.UUID,
    custom: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    staff_ids: list[uuid.UUID],
) -> None:
    rng = ctx.rng
    ctx.add(
        OpportunityCustomField,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "key": "deal_type",
                "name": "Deal type",
                "field_type": "select",
                "options": ["New Business", "Upsell", "Renewal"],
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "key": "competitor",
                "name": "Main competitor",
                "field_type": "text",
            },
        ],
    )
    for p_index, (name, low, high) in enumerate((("Catering Sales", 800, 9000), ("Private Events", 1500, 15000))):
        pipeline_id = ctx.uid()
        ctx.add(
            Pipeline,
            [
                {
                    "id": pipeline_id,
                    "sub_account_id": sub_id,
                    "name": name,
                    "is_default": p_index == 0,
                    "position": p_index,
                }
            ],
        )
        stages = [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "pipeline_id": pipeline_id,
                "name": s["stage_name"],
                "position": s["stage_order"],
                "probability": s["probability"],
                "is_won": s["is_won"],
                "is_lost": s["is_lost"],
                "custom_stage_id": s["id"],
            }
            for s in custom
        ]
        ctx.add(PipelineStage, stages)
        opportunities, history = [], []
        for contact in rng.sample(contacts, 40):
            target = rng.choices(range(len(stages)), weights=[5, 4, 3, 2, 3, 2])[0]
            path = list(range(min(target, 3) + 1)) + ([target] if target > 3 else [])
            when = max(contact["created_at"], ctx.ago(150)) + timedelta(hours=rng.uniform(1, 48))
            opened = when
            for prev, nxt in zip([None, *path], path, strict=False):
                if prev is not None:
                    spent = rng.uniform(0.5, 12) * 86400
                    when = when + timedelta(seconds=int(spent))
                history.append(
                    {
                        "id": ctx.uid(),
                        "sub_account_id": sub_id,
                        "opportunity_id": None,
                        "from_stage_id": stages[prev]["id"] if prev is not None else None,
                        "to_stage_id": stages[nxt]["id"],
                        "duration_seconds": None if prev is None else int(spent),
                        "changed_at": when,
                    }
                )
            if when > ctx.now:
                when = ctx.now
            opp_id = ctx.uid()
            for h in history:
                if h["opportunity_id"] is None:
                    h["opportunity_id"] = opp_id
            stage = stages[target]
            status = "won" if stage["is_won"] else "lost" if stage["is_lost"] else "open"
            opportunities.append(
                {
                    "id": opp_id,
                    "sub_account_id": sub_id,
                    "pipeline_id": pipeline_id,
                    "stage_id": stage["id"],
                    "contact_id": contact["id"],
                    "assigned_user_id": rng.choice(staff_ids),
                    "campaign_id": contact["campaign_id"],
                    "name": f"{contact['last_name']} - {name.split()[0]} {rng.choice(['party', 'order', 'event'])}",
                    "monetary_value": ctx.money(low, high),
                    "status": status,
                    "source": contact["lead_source"],
                    "lost_reason": "Chose another venue" if status == "lost" else None,
                    "expected_close_date": (ctx.now + timedelta(days=rng.randint(5, 60))).date(),
                    "custom_fields": {"deal_type": rng.choice(["New Business", "Upsell", "Renewal"])},
                    "stage_entered_at": when,
                    "closed_at": when if status != "open" else None,
                    "created_at": opened,
                    "updated_at": when,
                }
            )
        ctx.add(Opportunity, opportunities)
        ctx.add(OpportunityStageHistory, history)


def _calendars(
    ctx: _Ctx, sub_id: uuid.UUID, biz: Business, contacts: list[dict[str, Any]], staff_ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    rng = ctx.rng
    type_id = ctx.uid()
    ctx.add(CalendarType, [{"id": type_id, "sub_account_id": sub_id, "name": "Consultations", "color": "#7c3aed"}])
    services: list[dict[str, Any]] = [
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "calendar_type_id": type_id,
            "name": "Catering consultation",
            "duration_minutes": 30,
            "buffer_after_minutes": 10,
            "slot_interval_minutes": 30,
            "min_notice_minutes": 120,
            "booking_window_days": 60,
            "price": Decimal("0.00"),
        },
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "calendar_type_id": type_id,
            "name": "Private event tasting",
            "duration_minutes": 60,
            "buffer_before_minutes": 15,
            "buffer_after_minutes": 15,
            "slot_interval_minutes": 30,
            "min_notice_minutes": 1440,
            "booking_window_days": 90,
            "max_bookings_per_day": 3,
            "price": Decimal("0.00"),
        },
    ]
    ctx.add(Service, services)
    calendars = [
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "user_id": staff_ids[0],
            "name": "Events Manager",
            "timezone": biz.timezone,
            "slot_interval_minutes": 30,
            "booking_window_days": 60,
            "min_notice_minutes": 120,
            "team_key": "events",
        },
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "user_id": staff_ids[-1],
            "name": "Catering Team",
            "timezone": biz.timezone,
            "slot_interval_minutes": 30,
            "booking_window_days": 60,
            "min_notice_minutes": 120,
            "team_key": "events",
            "calendar_kind": "round_robin",
        },
    ]
    ctx.add(Calendar, calendars)
    thanksgiving = _nth_weekday(ctx.now.year, 11, 3, 4)
    rules = []
    for cal in calendars:
        rules += [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "calendar_id": cal["id"],
                "rule_type": "weekly",
                "day_of_week": d,
                "start_time": biz.opens,
                "end_time": biz.closes,
            }
            for d in biz.open_days
        ]
        rules += [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "calendar_id": cal["id"],
                "rule_type": "override",
                "valid_from": thanksgiving,
                "valid_to": thanksgiving,
                "is_active": False,
                "label": "Thanksgiving",
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "calendar_id": cal["id"],
                "rule_type": "override",
                "valid_from": date(ctx.now.year, 12, 25),
                "valid_to": date(ctx.now.year, 12, 25),
                "is_active": False,
                "label": "Christmas Day",
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "calendar_id": cal["id"],
                "rule_type": "override",
                "valid_from": date(ctx.now.year, 12, 20),
                "valid_to": date(ctx.now.year, 12, 20),
                "is_active": True,
                "start_time": biz.closes,
                "end_time": biz.closes.replace(hour=biz.closes.hour + 2),
                "label": "Holiday party planning evening",
            },
        ]
    ctx.add(AvailabilityRule, rules)
    appointments = []
    grid = [biz.opens.replace(hour=biz.opens.hour + h) for h in range(0, biz.closes.hour - biz.opens.hour)]
    for cal in calendars:
        day = (ctx.now - timedelta(days=125)).date()
        while day <= (ctx.now + timedelta(days=60)).date():
            if (day.weekday() + 1) % 7 in biz.open_days and day not in (thanksgiving, date(day.year, 12, 25)):
                for start in sorted(rng.sample(grid, rng.choice([0, 1, 1, 2, 2, 3]))):
                    service = rng.choice(services)
                    begins = local_dt(day, start, biz.timezone)
                    past = begins < ctx.now
                    status = (
                        rng.choices(["completed", "no_show", "cancelled"], [72, 18, 10])[0]
                        if past
                        else rng.choice(["scheduled", "scheduled", "confirmed"])
                    )
                    contact = rng.choice(contacts)
                    booked = begins - timedelta(days=rng.uniform(1, 14))
                    appointments.append(
                        {
                            "id": ctx.uid(),
                            "sub_account_id": sub_id,
                            "calendar_id": cal["id"],
                            "contact_id": contact["id"],
                            "service_id": service["id"],
                            "assigned_user_id": cal["user_id"],
                            "title": service["name"],
                            "start_time": begins,
                            "end_time": begins + timedelta(minutes=service["duration_minutes"]),
                            "timezone": biz.timezone,
                            "status": status,
                            "source": rng.choice(["ai_agent", "ai_agent", "staff", "booking_widget"]),
                            "confirmed_at": booked + timedelta(hours=3)
                            if status in ("confirmed", "completed")
                            else None,
                            "cancelled_at": booked + timedelta(days=1) if status == "cancelled" else None,
                            "cancellation_reason": "Plans changed" if status == "cancelled" else None,
                            "completed_at": begins + timedelta(hours=1) if status == "completed" else None,
                            "no_show_at": begins + timedelta(minutes=15) if status == "no_show" else None,
                            "reminder_sent_at": begins - timedelta(hours=24) if past else None,
                            "created_at": booked,
                            "updated_at": booked,
                        }
                    )
            day += timedelta(days=1)
    ctx.add(Appointment, appointments)
    return appointments


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _sales_calls(
    ctx: _Ctx,
    sub_id: uuid.UUID,
    appointments: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    staff_ids: list[uuid.UUID],
) -> list[dict[str, Any]]:
    rng = ctx.rng
    by_id = {c["id"]: c for c in contacts}
    calls = []
    for appt in appointments:
        if appt["status"] == "cancelled":
            continue
        outcome = {"completed": "closed" if rng.random() < 0.32 else "completed", "no_show": "no_show"}.get(
            appt["status"], "scheduled"
        )
        contact = by_id[appt["contact_id"]]
        calls.append(
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "campaign_id": contact["campaign_id"],
                "contact_id": contact["id"],
                "appointment_id": appt["id"],
                "user_id": appt["assigned_user_id"],
                "scheduled_date_time": appt["start_time"],
                "duration": int((appt["end_time"] - appt["start_time"]).total_seconds() // 60),
                "call_outcome": outcome,
                "notes": {
                    "closed": "Signed the catering quote.",
                    "completed": "Interested, wants a revised menu.",
                    "no_show": "Did not join; sent a reschedule link.",
                    "scheduled": None,
                }[outcome],
                "follow_up_actions": "Send proposal" if outcome == "completed" else None,
                "attendee_list": [{"name": f"{contact['first_name']} {contact['last_name']}", "role": "lead"}],
                "created_at": appt["created_at"],
                "updated_at": appt["created_at"],
            }
        )
    ctx.add(SalesCall, calls)
    ctx.add(
        CampaignCall,
        [
            {"campaign_id": c["campaign_id"], "sales_call_id": c["id"], "sub_account_id": sub_id}
            for c in calls
            if c["campaign_id"]
        ],
    )
    feedback = [c for c in calls if c["call_outcome"] in ("completed", "closed")][:25]
    ctx.add(
        UserFeedback,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "sales_call_id": c["id"],
                "contact_id": c["contact_id"],
                "user_id": c["user_id"],
                "feedback_date": c["scheduled_date_time"] + timedelta(days=1),
                "feedback_type": kind,
                "rating_score": rng.randint(3, 5) if kind == "rating" else rng.randint(1, 2),
                "comments": {
                    "rating": "Great tasting, very helpful.",
                    "comment": "Would like more vegan options.",
                    "complaint": "Waited 20 minutes past the booked time.",
                }[kind],
                "feedback_status": rng.choice(["new", "reviewed", "resolved"]),
            }
            for c, kind in ((c, rng.choices(["rating", "comment", "complaint"], [6, 3, 1])[0]) for c in feedback)
        ],
    )
    return calls


def _money(
    ctx: _Ctx,
    agency_id: uuid.UUID,
    sub_id: uuid.UUID,
    campaigns: list[dict[str, Any]],
    integrations: dict[str, uuid.UUID],
    calls: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
) -> None:
    rng = ctx.rng
    records = []
    for campaign in campaigns:
        day = campaign["start_date"].date()
        last = (campaign["end_date"] or ctx.now).date()
        monthly: dict[str, Decimal] = {}
        while day < last:
            amount = ctx.money(35, 140)
            if campaign["platform"] == "meta":
                records.append(
                    {
                        "id": ctx.uid(),
                        "agency_id": agency_id,
                        "sub_account_id": sub_id,
                        "campaign_id": campaign["id"],
                        "integration_source_id": integrations["meta"],
                        "transaction_date": local_dt(day, ctx.now.time(), "UTC"),
                        "amount": amount,
                        "transaction_type": "ad_spend",
                        "payment_status": "paid",
                        "reference_number": f"meta:{campaign['external_campaign_id']}:{day.isoformat()}",
                    }
                )
            else:
                monthly[day.strftime("%Y-%m")] = monthly.get(day.strftime("%Y-%m"), Decimal(0)) + amount
            day += timedelta(days=1)
        records += [
            {
                "id": ctx.uid(),
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "campaign_id": campaign["id"],
                "transaction_date": local_dt(date.fromisoformat(f"{month}-01"), ctx.now.time(), "UTC"),
                "amount": total,
                "transaction_type": "ad_spend",
                "payment_status": "paid",
                "metadata_": {"source": "manual", "note": "Google Ads invoice"},
            }
            for month, total in monthly.items()
        ]
    for call in (c for c in calls if c["call_outcome"] == "closed"):
        gateway = "stripe" if rng.random() < 0.7 else "whop"
        paid_at = call["scheduled_date_time"] + timedelta(days=rng.uniform(0.2, 3))
        if paid_at > ctx.now:
            continue
        amount = ctx.money(450, 4200)
        payment = {
            "id": ctx.uid(),
            "agency_id": agency_id,
            "sub_account_id": sub_id,
            "campaign_id": call["campaign_id"],
            "integration_source_id": integrations[gateway],
            "contact_id": call["contact_id"],
            "transaction_date": paid_at,
            "amount": amount,
            "transaction_type": "payment",
            "payment_status": "paid",
            "reference_number": f"{'ch' if gateway == 'stripe' else 'pay'}_{ctx.uid().hex[:20]}",
        }
        records.append(payment)
        if rng.random() < 0.09:
            records.append(
                {
                    **payment,
                    "id": ctx.uid(),
                    "transaction_date": paid_at + timedelta(days=4),
                    "amount": (amount * Decimal(rng.choice(["1", "0.5"]))).quantize(CENT),
                    "transaction_type": "refund",
                    "reference_number": f"re_{ctx.uid().hex[:20]}",
                }
            )
    ctx.add(FinancialRecord, records)


def _metrics(
    ctx: _Ctx, agency_id: uuid.UUID, sub_id: uuid.UUID, campaigns: list[dict[str, Any]], calls: list[dict[str, Any]]
) -> None:
    """Last full month's show and close rates, computed from the calls just seeded."""
    end = ctx.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    prev_start = (start - timedelta(days=1)).replace(day=1)
    rows = []

    def rates(selected: list[dict[str, Any]]) -> tuple[Decimal | None, Decimal | None]:
        due = [c for c in selected if c["call_outcome"] != "scheduled"]
        showed = [c for c in due if c["call_outcome"] in ("completed", "closed")]
        closed = [c for c in showed if c["call_outcome"] == "closed"]
        show = Decimal(len(showed)) / len(due) if due else None
        close = Decimal(len(closed)) / len(showed) if showed else None
        return show, close

    def window(lo: Any, hi: Any, campaign_id: uuid.UUID | None) -> list[dict[str, Any]]:
        return [
            c
            for c in calls
            if lo <= c["scheduled_date_time"] < hi and (campaign_id is None or c["campaign_id"] == campaign_id)
        ]

    for campaign in [*campaigns, None]:
        cid = campaign["id"] if campaign else None
        now_show, now_close = rates(window(start, end, cid))
        was_show, _ = rates(window(prev_start, start, cid))
        if now_show is None:
            continue
        trend = reporting.trend(now_show, was_show)  # the service's rule (stable within 1%), not a second one
        rows.append(
            {
                "id": ctx.uid(),
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "campaign_id": cid,
                "scope": "campaign" if cid else "sub_account",
                "metric_type": "show_rate",
                "calculation_method": "showed / (scheduled and due)",
                "calculated_value": round(now_show, 6),
                "time_period": start.strftime("%Y-%m"),
                "period_start": start,
                "period_end": end,
                "comparison_baseline": round(was_show, 6) if was_show is not None else None,
                "trend_direction": trend,
            }
        )
        if now_close is not None:
            rows.append(
                {
                    "id": ctx.uid(),
                    "agency_id": agency_id,
                    "sub_account_id": sub_id,
                    "campaign_id": cid,
                    "scope": "campaign" if cid else "sub_account",
                    "metric_type": "close_rate",
                    "calculation_method": "closed / showed",
                    "calculated_value": round(now_close, 6),
                    "time_period": start.strftime("%Y-%m"),
                    "period_start": start,
                    "period_end": end,
                }
            )
    ctx.add(PerformanceMetric, rows)


def seed_agency_reporting(ctx: _Ctx, agency_id: uuid.UUID, sub_accounts: dict[str, uuid.UUID]) -> None:
    """Agency-wide roll-up and report templates (one agency-wide, one per client)."""
    from models.performance import ReportTemplate, TemplateFinancial, TemplateMetric

    session = ctx.session
    from sqlalchemy import func, select

    end = ctx.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)

    def total(kind: str) -> Decimal:
        amount = session.scalar(
            select(func.sum(FinancialRecord.amount)).where(
                FinancialRecord.agency_id == agency_id,
                FinancialRecord.transaction_type == kind,
                FinancialRecord.transaction_date >= start,
                FinancialRecord.transaction_date < end,
            )
        )
        return amount or Decimal(0)

    spend, revenue, refunds = total("ad_spend"), total("payment"), total("refund")
    roi_id = ctx.uid()
    ctx.add(
        PerformanceMetric,
        [
            {
                "id": roi_id,
                "agency_id": agency_id,
                "sub_account_id": None,
                "campaign_id": None,
                "scope": "agency",
                "metric_type": "roi",
                "calculation_method": "(revenue - refunds - ad spend) / ad spend",
                "calculated_value": round((revenue - refunds - spend) / spend, 6) if spend else None,
                "time_period": start.strftime("%Y-%m"),
                "period_start": start,
                "period_end": end,
            }
        ],
    )
    templates: list[dict[str, Any]] = [
        {
            "id": ctx.uid(),
            "agency_id": agency_id,
            "sub_account_id": None,
            "template_type": "dashboard",
            "template_name": "Agency overview",
            "configuration_settings": {
                "metrics": ["show_rate", "close_rate", "roi"],
                "group_by": "sub_account",
                "period": "month",
            },
        }
    ]
    for slug, sub_id in sub_accounts.items():
        templates += [
            {
                "id": ctx.uid(),
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "template_type": "recurring",
                "template_name": f"Weekly campaign report ({slug})",
                "schedule_frequency": "weekly",
                "recipients": ["admin@digitalmarketing.com"],
                "next_run_at": ctx.now + timedelta(days=3),
                "configuration_settings": {
                    "metrics": ["show_rate", "close_rate", "roi", "cost_per_booked_call"],
                    "group_by": "campaign",
                    "period": "week",
                    "format": "csv",
                },
            },
            {
                "id": ctx.uid(),
                "agency_id": agency_id,
                "sub_account_id": sub_id,
                "template_type": "export",
                "template_name": f"Financial export ({slug})",
                "configuration_settings": {"include": ["ad_spend", "payment", "refund"], "format": "csv"},
            },
        ]
    ctx.add(ReportTemplate, templates)
    metric_ids = session.scalars(
        select(PerformanceMetric.id).where(PerformanceMetric.agency_id == agency_id).order_by(PerformanceMetric.id)
    ).all()
    ctx.add(
        TemplateMetric,
        [
            {"report_template_id": templates[0]["id"], "performance_metric_id": m, "agency_id": agency_id}
            for m in metric_ids
        ],
    )
    record_ids = session.scalars(
        select(FinancialRecord.id)
        .where(FinancialRecord.agency_id == agency_id, FinancialRecord.transaction_type != "ad_spend")
        .order_by(FinancialRecord.id)
        .limit(20)
    ).all()
    ctx.add(
        TemplateFinancial,
        [
            {"report_template_id": templates[2]["id"], "financial_record_id": r, "agency_id": agency_id}
            for r in record_ids
        ],
    )
