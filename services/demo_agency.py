"""The "Digital Marketing Co" demo agency: two restaurants with six months of believable history, and a dental
clinic just onboarded from the dental_clinic preset (services/demo_clinic.py).

Deterministic: every id, name and time comes from one seeded RNG and Faker, relative to `as_of`, so the same
seed and date always give the same rows. Written as the owner (row-level security does not apply); the
audit triggers still record every entity created.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from argon2 import PasswordHasher
from faker import Faker
from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from models.base import Base
from models.tenancy import Agency, Permission, Role, RolePermission
from services.demo_clinic import CLINIC_MANAGER, CLINIC_SLUG, seed_clinic

DEMO_SLUG = "digital-marketing-co"
DEMO_PASSWORD = "demo1234"
FAQ_FILE = Path(__file__).parent / "demo_data" / "knowledge.yaml"
CENT = Decimal("0.01")

PERMISSIONS = {
    "contacts.read": "CRM",
    "contacts.write": "CRM",
    "contacts.delete": "CRM",
    "conversations.read": "Inbox",
    "conversations.write": "Inbox",
    "inbox.claim": "Inbox",
    "calendars.read": "Calendars",
    "calendars.write": "Calendars",
    "pipelines.read": "Pipelines",
    "pipelines.write": "Pipelines",
    "payments.read": "Payments",
    "payments.write": "Payments",
    "reports.read": "Reporting",
    "ai_agents.manage": "AI",
    "workflows.manage": "Automation",
    "sites.manage": "Sites",
    "integrations.manage": "Settings",
    "users.manage": "Settings",
    "settings.manage": "Settings",
    "sub_accounts.switch": "Agency",
}
ROLES: dict[str, tuple[str, str, str, list[str]]] = {
    # name: (role_type, scope, description, permissions)
    "Agency Admin": ("admin", "agency", "Full access to the agency and every sub-account", list(PERMISSIONS)),
    "Agency User": (
        "agency_user",
        "agency",
        "Works across the agency's sub-accounts",
        [p for p in PERMISSIONS if p not in {"users.manage", "settings.manage"}],
    ),
    "Client Manager": (
        "client_user",
        "sub_account",
        "Runs one business: CRM, inbox, calendars, reports",
        [p for p in PERMISSIONS if p not in {"users.manage", "sub_accounts.switch", "ai_agents.manage"}],
    ),
    "Client Staff": (
        "client_user",
        "sub_account",
        "Works the inbox and calendar of one business",
        [
            "contacts.read",
            "contacts.write",
            "conversations.read",
            "conversations.write",
            "inbox.claim",
            "calendars.read",
            "calendars.write",
        ],
    ),
}


@dataclass(frozen=True)
class Business:
    """What differs between the two demo restaurants."""

    slug: str
    name: str
    timezone: str
    industry: str
    area_code: str
    sms_number: str
    inbox: str
    address: str
    open_days: tuple[int, ...]  # 0 = Sunday
    opens: time
    closes: time
    manager: str
    staff: tuple[str, ...]


BUSINESSES = (
    Business(
        "restaurant-a",
        "Restaurant Location A",
        "America/New_York",
        "Italian restaurant",
        "718",
        "+17185550142",
        "hello@trattoria-a.example",
        "212 Bedford Ave, Brooklyn, NY 11211",
        (1, 2, 3, 4, 5, 6),
        time(10),
        time(18),
        "john@restaurant.com",
        ("jane@restaurant.com", "maria@restaurant.com"),
    ),
    Business(
        "restaurant-b",
        "Restaurant Location B",
        "America/Chicago",
        "Mexican restaurant",
        "512",
        "+15125550199",
        "hola@taqueria-b.example",
        "1800 E 6th St, Austin, TX 78702",
        (2, 3, 4, 5, 6, 0),
        time(11),
        time(19),
        "bob@restaurant.com",
        ("luis@restaurant.com",),
    ),
)


@dataclass(frozen=True)
class DemoSummary:
    """What was seeded, for the CLI to print and tests to find."""

    agency_id: uuid.UUID
    sub_account_ids: dict[str, uuid.UUID]
    logins: list[tuple[str, str, str]]
    counts: dict[str, int]


@dataclass
class _Ctx:
    """Per-run state: the RNG, Faker, the clock, what was inserted."""

    session: Session
    rng: random.Random
    fake: Faker
    now: datetime
    counts: Counter[str] = field(default_factory=Counter)

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def add(self, model: type[Base], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if rows:
            self.session.execute(insert(model), rows)
            self.counts[model.__tablename__] += len(rows)
        return rows

    def money(self, low: float, high: float) -> Decimal:
        return Decimal(str(self.rng.uniform(low, high))).quantize(CENT)

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)


def demo_exists(*, session: Session) -> bool:
    """Whether the demo agency is already in the database."""
    return session.scalar(select(Agency.id).where(Agency.slug == DEMO_SLUG)) is not None


def delete_demo(*, session: Session) -> None:
    """Remove the demo agency; foreign keys cascade to everything it owns."""
    session.execute(delete(Agency).where(Agency.slug == DEMO_SLUG))


def seed_demo(*, session: Session, seed: int = 42, as_of: date | None = None) -> DemoSummary:
    """Insert the demo agency relative to `as_of` (default today, UTC)."""
    from services import demo_agency_parts as parts

    fake = Faker("en_US")
    fake.seed_instance(seed)
    day = as_of or datetime.now(UTC).date()
    ctx = _Ctx(session=session, rng=random.Random(seed), fake=fake, now=datetime.combine(day, time(12), tzinfo=UTC))
    roles = _ensure_catalog(ctx)
    agency_id = ctx.uid()
    ctx.add(
        Agency,
        [
            {
                "id": agency_id,
                "name": "Digital Marketing Co",
                "slug": DEMO_SLUG,
                "registration_date": ctx.ago(540),
                "subscription_plan": "saas_pro",
                "contact_info": {"email": "admin@digitalmarketing.com", "phone": "+12125550100"},
                "billing_address": "350 5th Ave, New York, NY 10118",
                "active_status": True,
            }
        ],
    )
    faq = yaml.safe_load(FAQ_FILE.read_text())
    hasher = PasswordHasher()
    password_hash = hasher.hash(DEMO_PASSWORD)
    users = parts.seed_agency(ctx, agency_id, roles, password_hash)
    stages = parts.seed_custom_stages(ctx, agency_id)
    sub_accounts: dict[str, uuid.UUID] = {}
    for business in BUSINESSES:
        sub_accounts[business.slug] = parts.seed_business(
            ctx, agency_id, business, users, roles, stages, faq[business.slug]
        )
    parts.seed_agency_reporting(ctx, agency_id, sub_accounts)
    # last, so the restaurants' rows and ids are the same with or without it; not in the reporting above
    sub_accounts[CLINIC_SLUG] = seed_clinic(ctx, agency_id, roles, password_hash)
    from knowledge.ingest import embed_missing

    ctx.counts["embedded chunks"] = embed_missing(session=session)  # the local model: deterministic, offline
    # planner statistics for what was just bulk-loaded (as after any restore), instead of waiting for autovacuum
    session.execute(text("ANALYZE"))
    logins = [(email, DEMO_PASSWORD, role) for email, (_, role) in users.items()]
    logins.append((CLINIC_MANAGER[0], DEMO_PASSWORD, "Client Manager"))
    return DemoSummary(agency_id=agency_id, sub_account_ids=sub_accounts, logins=logins, counts=dict(ctx.counts))


def _ensure_catalog(ctx: _Ctx) -> dict[str, uuid.UUID]:
    """Permissions and the four system roles are global: add only what is missing."""
    session = ctx.session
    existing = set(session.scalars(select(Permission.key)))
    ctx.add(
        Permission,
        [
            {"id": ctx.uid(), "key": key, "name": key.replace(".", " ").title(), "category": cat}
            for key, cat in PERMISSIONS.items()
            if key not in existing
        ],
    )
    perm_ids: dict[str, uuid.UUID] = {key: pid for key, pid in session.execute(select(Permission.key, Permission.id))}
    roles: dict[str, uuid.UUID] = {}
    for name, (role_type, scope, description, perms) in ROLES.items():
        role_id = session.scalar(select(Role.id).where(Role.name == name, Role.agency_id.is_(None)))
        if role_id is None:
            role_id = ctx.uid()
            ctx.add(
                Role,
                [
                    {
                        "id": role_id,
                        "name": name,
                        "role_type": role_type,
                        "scope": scope,
                        "description": description,
                        "permissions": perms,
                        "is_system": True,
                    }
                ],
            )
            ctx.add(RolePermission, [{"role_id": role_id, "permission_id": perm_ids[p]} for p in perms])
        roles[name] = role_id
    return roles


def content_hash(*parts: str | None) -> str:
    """sha256 of the joined parts: the dedupe key of knowledge chunks."""
    return hashlib.sha256("\n".join(p or "" for p in parts).encode()).hexdigest()


def local_dt(day: date, at: time, tz: str) -> datetime:
    """A wall-clock time in a timezone, as UTC."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(tz)).astimezone(UTC)
