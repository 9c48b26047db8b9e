"""Which tools an agent gets, from its ai_agents.capabilities. Each tool re-checks its own capability, so a
tool handed out by mistake still refuses."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from tools import calendars, crm, handoff, knowledge, payments, pipelines, reporting

CAPABILITY_TOOLS: dict[str, list[BaseTool]] = {
    "answer_faq": [knowledge.search_knowledge],
    "book_appointments": [calendars.list_services, calendars.check_availability, calendars.book_appointment,
                          calendars.reschedule_appointment, calendars.cancel_appointment,
                          calendars.list_appointments],
    "qualify_leads": [crm.get_contact, crm.update_contact, crm.add_tag, crm.add_note, crm.create_task,
                      pipelines.create_opportunity, pipelines.move_opportunity],
    "take_payments": [payments.list_products, payments.create_invoice, payments.send_payment_link,
                      payments.invoice_status, payments.subscription_status],
    "escalate_to_human": [handoff.request_human_handoff],
    "reporting": [crm.search_contacts, crm.unbooked_leads, pipelines.pipeline_summary, reporting.report_metric,
                  reporting.compare_campaigns, reporting.sales_call_outcomes],
}


def tools_for(capabilities: list[str] | frozenset[str]) -> list[BaseTool]:
    """The tools for these capabilities, each once, in a stable order; unknown capabilities are refused."""
    unknown = sorted(set(capabilities) - set(CAPABILITY_TOOLS))
    if unknown:
        raise ValueError(f"Unknown capabilities: {', '.join(unknown)}")
    seen: dict[str, BaseTool] = {}
    for capability in CAPABILITY_TOOLS:
        if capability in capabilities:
            for t in CAPABILITY_TOOLS[capability]:
                seen.setdefault(t.name, t)
    return list(seen.values())
