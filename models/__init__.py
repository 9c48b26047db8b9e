"""SQLAlchemy 2 ORM of LeadPilot: one module per domain; importing this package registers every table."""

from models import (  # noqa: F401  (imported for their table registrations)
    activity,
    ai,
    calendars,
    conversations,
    crm,
    marketing,
    payments,
    performance,
    pipelines,
    sandbox,
    sites,
    tenancy,
    workflows,
)
from models.base import Base
from models.tenant_refs import tie_references_to_tenants

metadata = Base.metadata
tie_references_to_tenants(metadata)

__all__ = ["Base", "metadata"]
