"""Every create and update route of a sub-account, tried by a client manager of A with another sub-account's ids
of every kind (B's contacts, templates, campaigns, pipelines, users who belong only to B...): each is refused
exactly as a random id is, and afterwards no row anywhere references an object of another sub-account."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

import models
from api.app import app
from tests.api.test_rest import key_for
from tests.conftest import Demo

pytestmark = pytest.mark.integration
PREFIX = "/v1/sub-accounts/{sub_account_id}"
WRITES = {"post", "put", "patch"}


def _reference_tables() -> dict[str, str]:
    """Column name -> the table it refers to, for every foreign key of the models (contact_id -> contacts)."""
    out: dict[str, str] = {}
    for table in models.metadata.tables.values():
        for fk in table.foreign_key_constraints:
            column = fk.column_keys[-1]
            if column not in ("sub_account_id", "agency_id"):
                out.setdefault(column, fk.referred_table.name)
    return out


REFERENCES = _reference_tables()


def _kind(name: str) -> str | None:
    """The table a body field or path parameter names (`contact_ids` as well as `contact_id`)."""
    singular = name[:-1] if name.endswith("_ids") else name
    if singular in REFERENCES:
        return REFERENCES[singular]
    plural = singular.removesuffix("_id") + "s"
    return plural if plural in models.metadata.tables else None


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema.get("anyOf") or schema.get("oneOf") or [schema]


def _is_uuid(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    for s in _variants(schema):
        s = _resolve(s, spec)
        if s.get("format") == "uuid" or (s.get("type") == "array" and _resolve(s.get("items", {}), spec)
                                         .get("format") == "uuid"):
            return True
    return False


def _sample(schema: dict[str, Any], spec: dict[str, Any], name: str) -> Any:
    """A plausible value of a schema: enough for the route to get past validation to the write."""
    options = [_resolve(s, spec) for s in _variants(schema)]
    s = next((o for o in options if o.get("type") != "null"), options[0])
    if "default" in s and s["default"] is not None:
        return s["default"]
    if "enum" in s:
        return s["enum"][0]
    if "const" in s:
        return s["const"]
    kind, fmt = s.get("type"), s.get("format")
    if kind == "string":
        if fmt == "email":
            return f"sweep-{uuid.uuid4().hex[:8]}@example.com"
        if fmt == "date-time":
            return (datetime.now(UTC) + timedelta(days=3)).isoformat()
        if fmt == "date":
            return (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
        if fmt == "uri":
            return "https://example.com/hook"
        if "phone" in name:
            return f"+1415555{uuid.uuid4().int % 10_000:04d}"
        return f"sweep {uuid.uuid4().hex[:6]}"
    if kind in ("integer", "number"):
        return max(1, s.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {p: _sample(v, spec, p) for p, v in s.get("properties", {}).items() if p in s.get("required", [])}
    return None


def _ids(engine: Engine, sub_account_id: uuid.UUID, user_email: str) -> dict[str, uuid.UUID]:
    """One live row of every kind a field can name, in one sub-account; `users` is a user of that sub-account."""
    found: dict[str, uuid.UUID] = {}
    with engine.connect() as conn:
        for name in sorted(set(REFERENCES.values()) | set(models.metadata.tables)):
            table = models.metadata.tables[name]
            if "sub_account_id" not in table.c or "id" not in table.c:
                continue
            live = " AND deleted_at IS NULL" if "deleted_at" in table.c else ""
            row = conn.execute(text(f"SELECT id FROM {name} WHERE sub_account_id = :s{live} LIMIT 1"),
                               {"s": sub_account_id}).scalar()
            if row is not None:
                found[name] = row
        found["users"] = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": user_email}).scalar_one()
    return found


@dataclass
class _Route:
    """One write route with A's own ids everywhere, ready to have one of them swapped."""

    url: str
    params: list[str]
    has_body: bool
    schema: dict[str, Any]
    fields: dict[str, Any]
    spec: dict[str, Any]
    own: dict[str, uuid.UUID]

    def build(self, swap: str, value: uuid.UUID) -> tuple[str, dict[str, Any] | None]:
        """The URL and body with `value` in `swap` (a path parameter or body field) and A's own ids elsewhere."""
        url = self.url
        for p in self.params:
            url = url.replace("{" + p + "}", str(value if p == swap else self.own.get(_kind(p) or "", uuid.uuid4())))
        if not self.has_body:
            return url, None
        required = self.schema.get("required", [])
        body = {n: _sample(s, self.spec, n) for n, s in self.schema.get("properties", {}).items()
                if n in required and n not in self.fields}
        for n, s in self.fields.items():
            chosen = value if n == swap else self.own.get(_kind(n) or "")
            if chosen is None:
                continue
            is_list = n.endswith("_ids") or any(_resolve(v, self.spec).get("type") == "array" for v in _variants(s))
            body[n] = [str(chosen)] if is_list else str(chosen)
        return url, body


def _comparable(response: Any) -> tuple[int, Any]:
    body = response.json() if "json" in response.headers.get("content-type", "") else response.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "instance"}
    return response.status_code, body


@pytest.fixture(scope="module")
def private_owner(private_app_database: str) -> Iterator[Engine]:
    """The owner role on the module's private copy of the database: the sweep writes A's own rows with sample
    values (renaming the demo's workflows, pages...), which the seeded demo that other modules read must not see."""
    engine = create_engine(private_app_database, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("caller", ["john@restaurant.com", "admin@digitalmarketing.com"])
def test_another_tenants_ids_are_refused_like_random_ones_on_every_write(caller: str, demo: Demo,
                                                                          private_owner: Engine) -> None:
    """As A's client manager, and as the agency admin who may act in both sub-accounts but not mix them."""
    owner_engine = private_owner
    client = TestClient(app, raise_server_exceptions=False)
    headers = key_for(demo, caller)
    own, foreign = _ids(owner_engine, demo.a, "john@restaurant.com"), _ids(owner_engine, demo.b, "bob@restaurant.com")
    spec = app.openapi()
    tried, own_accepted, kinds = 0, 0, set()
    for path, item in spec["paths"].items():
        if not path.startswith(PREFIX):
            continue
        for method, operation in item.items():
            if method not in WRITES:
                continue
            params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"
                      and p["name"] != "sub_account_id"]
            body_schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                           .get("schema"))
            schema = _resolve(body_schema, spec) if body_schema else {}
            fields = {n: s for n, s in schema.get("properties", {}).items() if _is_uuid(s, spec) and _kind(n)}

            route = _Route(path.replace("{sub_account_id}", str(demo.a)), params, body_schema is not None, schema,
                           fields, spec, own)
            for target in [*params, *fields]:
                kind = _kind(target)
                if kind not in foreign:
                    continue
                url, body = route.build(target, foreign[kind])
                theirs = client.request(method, url, headers=headers, json=body)
                url, body = route.build(target, uuid.uuid4())
                random_ = client.request(method, url, headers=headers, json=body)
                assert theirs.status_code < 500 and random_.status_code < 500, (method, path, target, theirs.text)
                assert not 200 <= theirs.status_code < 300, (method, path, target, theirs.text)
                assert _comparable(theirs) == _comparable(random_), (method, path, target, theirs.text, random_.text)
                if kind in own:
                    url, body = route.build(target, own[kind])
                    own_accepted += 200 <= client.request(method, url, headers=headers, json=body).status_code < 300
                tried += 1
                kinds.add(kind)
    # the sweep really reached the writes: many fields of many kinds, and with A's own ids most requests passed
    assert tried > 60 and len(kinds) >= 15, (tried, sorted(kinds))
    assert own_accepted > tried // 3, (own_accepted, tried)
    print(f"tenant write sweep: {tried} (route, field) pairs, {len(kinds)} kinds, {own_accepted} accepted with own ids")
    assert _cross_tenant_rows(owner_engine) == {}


def _cross_tenant_rows(engine: Engine) -> dict[str, int]:
    """Rows of any table whose reference points at a row of another sub-account (or another agency), and rows
    naming a user who cannot act in their sub-account: each tenant foreign key and trigger of migration 0011,
    checked from the data itself."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for table in models.metadata.tables.values():
            for fk in table.foreign_key_constraints:
                column, target = fk.column_keys[-1], fk.referred_table
                for tenant in ("sub_account_id", "agency_id"):
                    if column == tenant or tenant not in table.c or tenant not in target.c:
                        continue
                    count = conn.execute(text(
                        f"SELECT count(*) FROM {table.name} r JOIN {target.name} t ON t.id = r.{column} "
                        f"WHERE r.{tenant} IS NOT NULL AND t.{tenant} IS NOT NULL AND r.{tenant} <> t.{tenant}"
                    )).scalar_one()
                    if count:
                        found[f"{table.name}.{column} ({tenant})"] = count
            if "sub_account_id" in table.c:
                users = {fk.column_keys[-1] for fk in table.foreign_key_constraints
                         if fk.referred_table.name == "users"}
                for column in sorted(users - {"user_id"} if table.name in ("api_keys", "user_sub_account_memberships")
                                     else users):
                    count = conn.execute(text(
                        f"SELECT count(*) FROM {table.name} r WHERE r.{column} IS NOT NULL AND r.sub_account_id "
                        f"IS NOT NULL AND NOT lp_user_can_act_in(r.{column}, r.sub_account_id, NULL)")).scalar_one()
                    if count:
                        found[f"{table.name}.{column} (member)"] = count
    return found


def test_the_database_refuses_a_foreign_reference_written_straight_in_sql(a, demo: Demo, owner_engine: Engine) -> None:
    """Below the API: the application role, scoped to A, cannot point A's rows at B's objects by any statement."""
    with owner_engine.connect() as conn:
        theirs = conn.execute(text("SELECT id FROM campaigns WHERE sub_account_id = :b LIMIT 1"),
                              {"b": demo.b}).scalar()
        bob = conn.execute(text("SELECT id FROM users WHERE email = 'bob@restaurant.com'")).scalar()
        mine = conn.execute(text("SELECT id FROM contacts WHERE sub_account_id = :a LIMIT 1"), {"a": demo.a}).scalar()
    for statement, params in (("UPDATE contacts SET campaign_id = :v WHERE id = :c", {"v": theirs, "c": mine}),
                              ("UPDATE contacts SET assigned_user_id = :v WHERE id = :c", {"v": bob, "c": mine})):
        savepoint = a.begin_nested()
        with pytest.raises(IntegrityError) as refused:
            a.execute(text(statement), params)
        savepoint.rollback()
        assert refused.value.orig.sqlstate == "23503"  # type: ignore[union-attr]
