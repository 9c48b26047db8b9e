"""References that cannot point into another tenant, proved by the database.

A foreign-key check is not subject to row-level security: a plain `contacts.campaign_id -> campaigns.id` accepts
the id of another sub-account's campaign, and the difference between a random id (refused) and a real foreign one
(accepted) even tells a caller that the other tenant's row exists. So every reference between two tenant tables
is tied to the tenant it is written in, once, here, for every model (a new table gets it without asking):

- between two sub-account tables: `(sub_account_id, x_id) -> target (sub_account_id, id)`;
- to a row of an agency-level table (or from one): `(agency_id, x_id) -> target (agency_id, id)`.

Each composite key keeps the single-column key's name and its delete rule (`SET NULL (x_id)` clears only the
reference, never the tenant column). The target's `(tenant, id)` unique index replaces its single-column tenant
index where it had one, so no table carries an index more than before. What a key cannot say (a user who must be
a member of the sub-account, a role or custom stage of the same agency) the triggers of migration 0011 check.
"""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, MetaData, Table, UniqueConstraint
from sqlalchemy.sql.elements import conv

from models.base import Base

# a referenced table whose tenant column is nullable (system rows) cannot be tied by a key; triggers do that
_UNTIABLE = frozenset({"roles"})


def _tenancy() -> dict[str, str | None]:
    return {m.class_.__table__.name: getattr(m.class_, "__tenancy__", None) for m in Base.registry.mappers}


def _tenant_key(target: Table, column: str) -> None:
    """Give `target` a unique `(column, id)` (the referenced side of composite keys), dropping a plain index on
    `column` alone that it makes redundant."""
    wanted = [column, "id"]
    if any(isinstance(c, UniqueConstraint) and [x.name for x in c.columns] == wanted for c in target.constraints) \
            or any(i.unique and [x.name for x in i.columns] == wanted for i in target.indexes):
        return
    name = f"uq_{target.name}_{column}_id"
    target.append_constraint(UniqueConstraint(column, "id", name=conv(name)))
    for index in list(target.indexes):
        if [c.name for c in index.columns] == [column] and not index.unique:
            target.indexes.discard(index)
            target.c[column].index = None


def _replace(table: Table, old: ForeignKeyConstraint, tenant: str, column: str, target: Table) -> None:
    for element in old.elements:
        element.parent.foreign_keys.discard(element)
        table.foreign_keys.discard(element)
    table.constraints.discard(old)
    ondelete = f"SET NULL ({column})" if old.ondelete == "SET NULL" else old.ondelete
    table.append_constraint(ForeignKeyConstraint(
        [tenant, column], [target.c[tenant], target.c.id], name=conv(str(old.name)), ondelete=ondelete))


def tie_references_to_tenants(metadata: MetaData) -> None:
    """Turn every single-column reference between tenant tables into one through the tenant (module docstring)."""
    tenancy = _tenancy()
    for table in list(metadata.tables.values()):
        for fkc in list(table.foreign_key_constraints):
            if len(fkc.elements) != 1 or fkc.elements[0].column.name != "id":
                continue
            column, target = fkc.elements[0].parent.name, fkc.referred_table
            if column in ("sub_account_id", "agency_id") or target.name in _UNTIABLE:
                continue
            mine, theirs = tenancy.get(table.name), tenancy.get(target.name)
            if mine == "sub_account" and theirs == "sub_account":
                _tenant_key(target, "sub_account_id")
                _replace(table, fkc, "sub_account_id", column, target)
            elif "agency_id" in table.c and "agency_id" in target.c and not target.c.agency_id.nullable:
                _tenant_key(target, "agency_id")
                _replace(table, fkc, "agency_id", column, target)
            elif "agency_id" in table.c and theirs == "sub_account_root":
                _replace(table, fkc, "agency_id", column, target)  # sub_accounts (agency_id, id) is unique already
        if "sub_account_id" in table.c and table.c.sub_account_id.nullable:
            # an agency row that may belong to one sub-account (performance metrics): when it does, its
            # sub-account references are tied to that sub-account too (a NULL tenant skips the check)
            for fkc in list(table.foreign_key_constraints):
                cols = [e.parent.name for e in fkc.elements]
                target = fkc.referred_table
                if cols[0] == "agency_id" and len(cols) == 2 and tenancy.get(target.name) == "sub_account":
                    _tenant_key(target, "sub_account_id")
                    table.append_constraint(ForeignKeyConstraint(
                        ["sub_account_id", cols[1]], [target.c.sub_account_id, target.c.id],
                        name=conv(f"fk_{table.name}_{cols[1]}_{target.name}_sub_account"),
                        ondelete=fkc.ondelete))

