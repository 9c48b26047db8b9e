"""Who a tool acts for. Everything here comes from the run's config, set by the graph runner from the
conversation or the signed-in user; nothing comes from the model's arguments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from sqlalchemy.orm import Session

from models.db import TenantScope, apply_scope, tenant_session


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value in (None, "") else value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@dataclass(frozen=True)
class AgentContext:
    """The tenant, conversation and permissions of one agent run."""

    agency_id: uuid.UUID
    sub_account_id: uuid.UUID | None
    contact_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    ai_agent_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    timezone: str | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, config: RunnableConfig | None) -> AgentContext:
        """Read the context the runner put in `config["configurable"]`."""
        configurable = (config or {}).get("configurable", {})
        agency_id = _uuid(configurable.get("agency_id"))
        if agency_id is None:
            raise PermissionError("The run carries no tenant: refusing to touch data.")
        return cls(
            agency_id=agency_id,
            sub_account_id=_uuid(configurable.get("sub_account_id")),
            contact_id=_uuid(configurable.get("contact_id")),
            conversation_id=_uuid(configurable.get("conversation_id")),
            ai_agent_id=_uuid(configurable.get("ai_agent_id")),
            user_id=_uuid(configurable.get("user_id")),
            timezone=configurable.get("timezone"),
            capabilities=frozenset(configurable.get("capabilities", ())),
        )

    @property
    def scope(self) -> TenantScope:
        """The row-level-security scope every query of the tool runs under."""
        return TenantScope(agency_id=self.agency_id, sub_account_id=self.sub_account_id, user_id=self.user_id)


@contextmanager
def session_for(ctx: AgentContext, config: RunnableConfig | None) -> Iterator[Session]:
    """A session scoped to the run's tenant: the runner's own (shared transaction) when it passed one,
    otherwise a fresh committed-on-success one."""
    shared = (config or {}).get("configurable", {}).get("db_session")
    if shared is not None:
        apply_scope(shared, ctx.scope)
        with shared.begin_nested():
            yield shared
        return
    with tenant_session(ctx.scope) as session:
        yield session
