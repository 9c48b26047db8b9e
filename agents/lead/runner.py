"""Running one turn of the lead agent for a stored inbound message: config from the conversation (never from
the message), the graph on the Postgres checkpointer (thread = conversation), the reply stored once."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
import tzdata
from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.types import Command
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.ai import AIAgent, AIConversationLog
from models.calendars import Service
from models.conversations import Channel, Conversation, ConversationAIConfig, Handoff, Message
from models.crm import Contact, ContactCustomField
from models.db import TenantScope, tenant_session
from models.pipelines import Opportunity, Pipeline, PipelineStage
from models.tenancy import SubAccount, User, UserSubAccountMembership
from services.errors import NotFound
from services.workflows import next_business_moment


@dataclass(frozen=True)
class TurnResult:
    """What a turn produced."""

    decision: str  # answer | ask | handoff | opted_out | skipped | superseded | resumed
    reply: str = ""
    reply_message_id: uuid.UUID | None = None
    handoff: dict[str, Any] = field(default_factory=dict)


_local = threading.local()


def lead_graph() -> Any:
    """The compiled lead graph on the configured model and this thread's Postgres checkpointer."""
    graph = getattr(_local, "graph", None)
    if graph is None:
        from agents.checkpoint import checkpointer
        from agents.lead.graph import build_lead_graph
        from agents.models import chat_model

        graph = _local.graph = build_lead_graph(chat_model(), checkpointer())
    return graph


def preload() -> float:
    """Import the turn's code and read the embedding model's weights, computing nothing: safe before a fork
    (no model pass has started torch's thread pools, no database or broker connection is open), so a worker's
    pool processes inherit it. Returns the seconds taken."""
    started = time.perf_counter()
    from agents.lead import graph  # noqa: F401  (the graph's modules, its tools and their services)
    from agents.understanding import intents  # noqa: F401
    from knowledge.embedders import embedder_for

    embedder_for()
    return time.perf_counter() - started


def warm_up() -> float:
    """Load what a first turn needs (the chat model, the embedder and a forward pass, the local model's intent
    exemplars, the graph on its checkpointer) so that a fresh worker answers its first lead as fast as its
    hundredth: a cold first turn took 10-36 s, longer than a stopping worker's grace. Returns the seconds taken."""
    from agents.lead.frame import read_turn
    from knowledge.embedders import embedder_for

    started = time.perf_counter()
    embedder_for().embed(["warming up"])
    # every reader of a message once: the intent exemplars, lingua's models (about five seconds), dateparser's
    # locale and time-zone tables (about one), vader's lexicon, phonenumbers' metadata
    for text in ("hi, can I book something tomorrow at 7?", "hola, ¿tenéis hueco el 12 de diciembre? 612 345 678"):
        read_turn(text, {}, {"timezone": "UTC", "languages": ["en"]})
    lead_graph()
    return time.perf_counter() - started


def run_config(session: Session, conversation_id: uuid.UUID, *, message_id: uuid.UUID | None = None,
               now: datetime | None = None) -> tuple[dict[str, Any], ConversationAIConfig | None]:
    """The run config of a conversation: tenant, contact, agent and its settings, all read from the database."""
    configurable, ai_config, _ = _run_config(session, conversation_id, message_id=message_id, now=now)
    return configurable, ai_config


def _conversation_rows(session: Session, conversation_id: uuid.UUID) -> Any:
    """The conversation with its channel, contact, sub-account, AI config, agent and the names of the business's
    staff, in one query (each None where `session.get` would find none)."""
    staff = (select(func.array_agg(User.name))
             .join(UserSubAccountMembership, UserSubAccountMembership.user_id == User.id)
             .where(UserSubAccountMembership.sub_account_id == Conversation.sub_account_id, User.deleted_at.is_(None))
             .correlate(Conversation).scalar_subquery())
    return session.execute(
        select(Conversation, Channel, Contact, SubAccount, ConversationAIConfig, AIAgent, staff)
        .outerjoin(Channel, Channel.id == Conversation.channel_id)
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(SubAccount, SubAccount.id == Conversation.sub_account_id)
        .outerjoin(ConversationAIConfig, ConversationAIConfig.conversation_id == Conversation.id)
        .outerjoin(AIAgent, AIAgent.id == ConversationAIConfig.ai_agent_id)
        .where(Conversation.id == conversation_id)).first()


def _run_config(session: Session, conversation_id: uuid.UUID, *, message_id: uuid.UUID | None = None,
                now: datetime | None = None) -> tuple[dict[str, Any], ConversationAIConfig | None, AIAgent | None]:
    """`run_config`, and the agent (held by the caller, the session finds it again without a query)."""
    row = _conversation_rows(session, conversation_id)
    conversation = row[0] if row is not None else None
    if conversation is None or conversation.deleted_at is not None:
        raise NotFound("No such conversation.")
    _, channel, contact, sub, ai_config, agent, staff = row
    agent = agent if ai_config and ai_config.ai_agent_id else None
    assert sub is not None and channel is not None
    handoff_settings = (agent.handoff_settings if agent else {}) or {}
    definitions = {d.key: d for d in session.scalars(select(ContactCustomField).where(
        ContactCustomField.deleted_at.is_(None)))}
    answered = (contact.custom_fields if contact else {}) or {}
    qualification = [  # the agent's questions whose answer the contact does not have yet, in order
        {"field": q["field"], "question": q["question"], "type": definitions[q["field"]].field_type,
         "options": list(definitions[q["field"]].options), "translations": q.get("translations") or {},
         "ask": q.get("ask") or "on_enquiry"}
        for q in ((agent.qualification_questions if agent else []) or [])
        if q.get("field") in definitions and answered.get(q["field"]) in (None, "", [])]
    services = [{"id": str(s.id), "name": s.name, "synonyms": list(getattr(s, "synonyms", None) or []),
                 "minutes": s.duration_minutes}
                for s in session.scalars(select(Service).where(Service.is_active, Service.deleted_at.is_(None))
                                         .order_by(Service.name))]
    languages = list(getattr(agent, "languages", None) or []) or [str((sub.settings or {}).get("language") or "en")]
    moment = now or datetime.now(UTC)
    opens = next_business_moment(moment, (sub.settings or {}).get("business_hours") or {}, sub.timezone)
    deal = session.execute(  # the lead's latest open deal in the default pipeline, which the agent may move
        select(Opportunity.id, Opportunity.name, PipelineStage.name)
        .join(PipelineStage, PipelineStage.id == Opportunity.stage_id)
        .join(Pipeline, Pipeline.id == Opportunity.pipeline_id)
        .where(Opportunity.contact_id == conversation.contact_id, Opportunity.status == "open",
               Opportunity.deleted_at.is_(None), Pipeline.is_default, Pipeline.deleted_at.is_(None))
        .order_by(Opportunity.created_at.desc()).limit(1)).first()
    configurable = {
        "thread_id": str(conversation_id), "agency_id": str(sub.agency_id), "sub_account_id": str(sub.id),
        "contact_id": str(conversation.contact_id), "conversation_id": str(conversation_id),
        "ai_agent_id": str(agent.id) if agent else None,
        "capabilities": list(agent.capabilities) if agent else [],
        "timezone": (contact.timezone if contact else None) or sub.timezone,
        "channel": channel.channel_type, "business": sub.name, "agent_name": agent.name if agent else None,
        "persona": (agent.personality or {}).get("persona") if agent else None,
        "messages": dict((agent.personality or {}).get("messages") or {}) if agent else {},
        "system_prompt": agent.system_prompt if agent else None,
        "max_tool_loops": agent.max_tool_loops if agent else 6,
        "qualification": qualification,
        "pipeline": {k: v for k, v in ((agent.pipeline_settings if agent else {}) or {}).items()
                     if k in ("on_qualified", "on_booked") and isinstance(v, str) and v.strip()},
        "deal": {"id": str(deal[0]), "name": deal[1], "stage": deal[2]} if deal else None,
        "handoff_message": (handoff_settings.get("human_requested") or {}).get("message"),
        "handoff_messages": _handoff_messages(handoff_settings, languages),
        "services": services, "intents": list(getattr(agent, "intents", None) or []) if agent else [],
        "languages": languages, "lead_name": _known_name(contact), "country": _country(sub),
        "team": _first_names(staff or []),
        "do_not_contact": bool(contact and (contact.dnd_all or (contact.dnd_channels or {}).get(
            channel.channel_type))),
        "opens_at": opens.isoformat() if opens > moment else None,
        "message_id": str(message_id) if message_id else None,
        "turn_id": str(message_id) if message_id else None,
        "now": moment.isoformat(),
    }
    return configurable, ai_config, agent


PLACEHOLDER_NAMES = {"visitor", "guest", "unknown", "lead", "customer", "anonymous"}


def _first_names(names: list[str]) -> list[str]:
    """The first names of the business's staff, so a lead asking for one of them by name is put through."""
    return sorted({n.split()[0] for n in names if n and n.split() and len(n.split()[0]) >= 2})


def _known_name(contact: Contact | None) -> str | None:
    """The lead's first name, unless it is a placeholder (a webchat 'Visitor')."""
    name = (contact.first_name or "").strip() if contact else ""
    return name if name and name.lower() not in PLACEHOLDER_NAMES else None


def _handoff_messages(settings: dict[str, Any], languages: list[str]) -> dict[str, str]:
    """The agent's final handoff message per language: the configured one is in the business's first language,
    its `translations` in the others."""
    configured = settings.get("human_requested") or {}
    messages = {lang: text for lang, text in (configured.get("translations") or {}).items() if text}
    if configured.get("message"):
        messages[languages[0] if languages else "en"] = configured["message"]
    return messages


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO country, from the system's zone.tab (for reading local phone numbers)."""
    table: dict[str, str] = {}
    for path in (Path("/usr/share/zoneinfo/zone.tab"), Path(tzdata.__file__).with_name("zoneinfo") / "zone.tab"):
        if path.exists():
            for line in path.read_text().splitlines():
                if line and not line.startswith("#"):
                    parts = line.split("\t")
                    table.setdefault(parts[2], parts[0])
    return table


def _country(sub: SubAccount) -> str:
    """The business's country (how its leads write local phone numbers): from its timezone, else from its own
    phone number; US when neither says."""
    zone_country = _zone_countries().get(sub.timezone)
    if zone_country:
        return zone_country
    if sub.phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(sub.phone, None))
            if region:
                return region
        except phonenumbers.NumberParseException:
            pass
    return "US"


MODE_ORDER = ("off", "suggestive", "autopilot")


def effective_mode(session: Session, ai_config: ConversationAIConfig | None, channel: str) -> str:
    """The most careful of the conversation's mode, the agent's mode for this channel (GoHighLevel's per-channel
    setting) and the agent's own mode; an inactive agent is off."""
    if ai_config is None:
        return "off"
    agent = session.get(AIAgent, ai_config.ai_agent_id) if ai_config.ai_agent_id else None
    modes = [ai_config.mode]
    if agent is not None:
        modes += [agent.mode if agent.is_active and agent.deleted_at is None else "off",
                  (agent.channel_modes or {}).get(channel, agent.mode)]
    return min(modes, key=MODE_ORDER.index)


def _store_reply(session: Session, conversation: Conversation, message_id: uuid.UUID, reply: str, mode: str,
                 decision: str) -> Message | None:
    """The reply, stored once per inbound message (the one stored before, when a redelivered turn gets here)."""
    key = f"ai-reply:{message_id}"
    stored = session.scalars(pg_insert(Message).values(
        sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
        channel_id=conversation.channel_id, contact_id=conversation.contact_id, direction="outbound",
        sender_type="bot", body=reply, status="pending_approval" if mode == "suggestive" else "queued",
        idempotency_key=key, metadata={"decision": decision, "in_reply_to": str(message_id)},
    ).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message)).first()
    return stored or session.scalar(select(Message).where(Message.idempotency_key == key))


def _store_logs(session: Session, configurable: dict[str, Any], message_id: uuid.UUID,
                entries: list[dict[str, Any]]) -> None:
    """Every model call of the turn, in the reply's transaction."""
    for entry in entries:
        confidence = entry.get("confidence_score")
        session.add(AIConversationLog(
            sub_account_id=uuid.UUID(configurable["sub_account_id"]), conversation_id=uuid.UUID(
                configurable["conversation_id"]), message_id=message_id,
            ai_agent_id=uuid.UUID(configurable["ai_agent_id"]) if configurable.get("ai_agent_id") else None,
            **{**entry, "confidence_score": Decimal(str(confidence)) if confidence is not None else None}))


def _unanswered(session: Session, inbound: Message) -> list[str] | None:
    """What the lead said since the business last wrote, up to this message, oldest first (a burst of texts is
    answered as one); None when a newer message from the lead exists, whose turn will answer them all."""
    conversation = Message.conversation_id == inbound.conversation_id
    from_lead = (Message.direction == "inbound") & (Message.sender_type == "contact")
    if session.scalar(select(Message.id).where(conversation, from_lead, Message.created_at > inbound.created_at)
                      .limit(1)) is not None:
        return None
    last_out = session.scalar(select(func.max(Message.created_at)).where(
        conversation, Message.direction == "outbound", Message.created_at <= inbound.created_at))
    bodies = list(session.scalars(select(Message.body).where(
        conversation, from_lead, Message.created_at <= inbound.created_at,
        *([Message.created_at > last_out] if last_out is not None else [])).order_by(Message.created_at)))
    return [b for b in bodies if b.strip()] or [inbound.body]


def _run(graph: Any, graph_input: Any, config: dict[str, Any], stream_to: Any = None) -> Any:
    """Run the graph to its end (or its interrupt) and return the state; with `stream_to`, every piece of text
    the agent's model writes is handed to it as it comes (tool calls are not: they are not for the lead)."""
    if stream_to is None:
        return graph.invoke(graph_input, config)
    state: Any = {}
    for mode, payload in graph.stream(graph_input, config, stream_mode=["messages", "values"]):
        if mode == "values":
            state = payload
            continue
        chunk, meta = payload
        if (meta.get("langgraph_node") == "agent" and isinstance(chunk, AIMessageChunk) and chunk.content
                and not chunk.tool_call_chunks):
            stream_to(str(chunk.content))
    return state


def _delta_publisher(sub_account_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID) -> Any:
    from channels import realtime

    channels = [realtime.sub_channel(sub_account_id), realtime.conversation_channel(conversation_id)]

    def publish(delta: str) -> None:
        realtime.publish(channels, {"type": "message.delta", "conversation_id": str(conversation_id),
                                    "in_reply_to": str(message_id), "delta": delta})

    return publish


def run_turn(*, agency_id: uuid.UUID, sub_account_id: uuid.UUID, conversation_id: uuid.UUID,
             message_id: uuid.UUID, graph: Any = None, now: datetime | None = None) -> TurnResult:
    """Answer one stored inbound message. Safe to run again for the same message: an existing reply is
    returned, and a turn that died half-way continues from its last checkpoint instead of starting over."""
    scope = TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)
    with tenant_session(scope) as session:
        done = session.scalar(select(Message).where(Message.idempotency_key == f"ai-reply:{message_id}"))
        if done is not None:
            return TurnResult(decision=str(done.metadata_.get("decision", "answer")), reply=done.body,
                              reply_message_id=done.id)
        inbound = session.get(Message, message_id)
        if inbound is None or inbound.conversation_id != conversation_id or inbound.direction != "inbound":
            raise NotFound("No such inbound message in this conversation.")
        configurable, ai_config, agent = _run_config(session, conversation_id, message_id=message_id, now=now)
        mode = effective_mode(session, ai_config, configurable["channel"])  # finds `agent` in the session
        if ai_config is None or not ai_config.is_active or mode == "off":
            return TurnResult(decision="skipped")
        burst = _unanswered(session, inbound)
        if burst is None:  # the lead wrote again meanwhile: that message's turn answers both
            return TurnResult(decision="superseded")
        body = "\n".join(burst)
    from channels import realtime

    realtime.typing(sub_account_id, conversation_id, "bot", True)
    graph = graph or lead_graph()
    config = {"configurable": configurable}
    # a webchat lead on autopilot watches the reply arrive as the model writes it (never a draft for approval)
    stream_to = (_delta_publisher(sub_account_id, conversation_id, message_id)
                 if configurable["channel"] == "webchat" and mode == "autopilot" else None)
    pending = graph.get_state(config)
    last = next((m for m in reversed(pending.values.get("messages", [])) if isinstance(m, HumanMessage)), None)
    this_turn = last is not None and last.id == str(message_id)
    # `tasks`, not `next`: a node that finished just before the worker died has its writes saved but no
    # checkpoint after it, and LangGraph leaves such a task out of `next`; the turn is still unfinished
    unfinished = bool(pending.tasks) and not pending.interrupts
    if this_turn and unfinished:
        state = _run(graph, None, config, stream_to)  # the same turn died mid-way: continue from its checkpoint
    elif this_turn:
        state = pending.values  # the turn finished but its reply was never stored: store that one, run nothing
    else:
        state = _run(graph, {"messages": [HumanMessage(content=body, id=str(message_id))]}, config, stream_to)
    reply, decision = state.get("reply", ""), state.get("decision", "answer")
    with tenant_session(scope) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        stored = _store_reply(session, conversation, message_id, reply, mode, decision) if reply else None
        reply_id = stored.id if stored is not None else None
        if stored is not None:
            from channels.outbound import queue_send

            if stored.status == "queued":  # suggestive mode: waits in the inbox for a person's approval
                queue_send(session, stored)
            else:
                realtime.message_event(session, stored)
        _store_logs(session, configurable, message_id, state.get("logs") or [])
        session.execute(update(ConversationAIConfig).where(ConversationAIConfig.conversation_id == conversation_id)
                        .values(messages_handled=ConversationAIConfig.messages_handled + 1))
    return TurnResult(decision=decision, reply=reply, reply_message_id=reply_id, handoff=state.get("handoff") or {})


def return_to_ai(*, agency_id: uuid.UUID, sub_account_id: uuid.UUID, conversation_id: uuid.UUID,
                 human_messages: list[str] | None = None, graph: Any = None) -> TurnResult:
    """Staff hand the conversation back (or the reactivation timer fired): close the handoff, reactivate the
    AI on the conversation, and resume the waiting graph with what the humans said meanwhile (by default,
    every staff message sent since the handoff opened)."""
    from services.handoff import human_replied_since

    scope = TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)
    with tenant_session(scope) as session:
        configurable, ai_config = run_config(session, conversation_id)
        said: list[str] = []
        now = datetime.now(UTC)
        for handoff in session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id,
                                                             Handoff.resolved_at.is_(None))):
            said += human_replied_since(session=session, conversation_id=conversation_id, since=handoff.requested_at)
            handoff.status, handoff.resolved_at, handoff.returned_to_ai_at = "returned_to_ai", now, now
        human_messages = said if human_messages is None else human_messages
        if ai_config is not None:
            ai_config.is_active, ai_config.handoff_to_human = True, False
    graph = graph or lead_graph()
    config = {"configurable": configurable}
    if not graph.get_state(config).interrupts:
        return TurnResult(decision="resumed")
    state = graph.invoke(Command(resume={"action": "return_to_ai", "human_messages": human_messages}), config)
    return TurnResult(decision=state.get("decision", "resumed"))
