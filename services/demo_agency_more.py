"""Demo agency, part 2: conversations and AI, payments, automation, marketing, sites, webhooks, analytics."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from knowledge.sources import Chunk
from models.activity import AnalyticsEvent, Webhook, WebhookLog
from models.ai import AIAgent, AIConversationLog, KnowledgeBase, KnowledgeSource, TrainingData
from models.calendars import Calendar
from models.conversations import (
    CannedResponse,
    Channel,
    Conversation,
    ConversationAIConfig,
    Handoff,
    Message,
    OutboxEvent,
)
from models.marketing import EmailClick, EmailTemplate, MessageCampaign, MessageCampaignRecipient, SmsTemplate
from models.payments import (
    Invoice,
    InvoiceLineItem,
    PaymentMethod,
    Price,
    Product,
    Subscription,
    Transaction,
)
from models.sandbox import SandboxDelivery
from models.sites import Form, FormSubmission, Funnel, Page, Survey, SurveyResponse
from models.tenancy import DocumentSequence
from models.workflows import Workflow, WorkflowAction, WorkflowActionExecution, WorkflowExecution, WorkflowTrigger
from services.demo_agency import CENT, Business, _Ctx, content_hash

Rows = list[dict[str, Any]]


def seed_rest(
    ctx: _Ctx,
    sub_id: uuid.UUID,
    biz: Business,
    contacts: Rows,
    staff_ids: list[uuid.UUID],
    faq: dict[str, Any],
    appointments: Rows,
) -> None:
    """Everything of one business beyond CRM, calendars and sales."""
    agent_id = _ai(ctx, sub_id, biz, faq)
    _conversations(ctx, sub_id, biz, contacts, staff_ids, agent_id)
    _payments(ctx, sub_id, contacts)
    _workflows(ctx, sub_id, contacts)
    _marketing(ctx, sub_id, biz, contacts)
    _sites(ctx, sub_id, biz, contacts)
    _webhooks_and_events(ctx, sub_id, contacts, appointments)


def _ai(ctx: _Ctx, sub_id: uuid.UUID, biz: Business, faq: dict[str, Any]) -> uuid.UUID:
    agent_id, kb_id, source_id = ctx.uid(), ctx.uid(), ctx.uid()
    ctx.add(
        AIAgent,
        [
            {
                "id": agent_id,
                "sub_account_id": sub_id,
                "name": faq["agent_name"],
                "model": "local",
                "temperature": Decimal("0.3"),
                "max_tokens": 600,
                "system_prompt": f"You are {faq['agent_name']}, the assistant of {biz.name}. "
                "Answer only from the knowledge base, book consultations, qualify catering and event leads, "
                "and hand off when unsure.",
                "personality": {"tone": "friendly", "style": "concise", "emoji_usage": "minimal", "max_sms_chars": 320,
                                # the restaurant's own wording of a template (agents/lead/replies.yaml keys)
                                "messages": {"qualified": {
                                    "en": "Thank you, that's everything we need! Our events team will reach out "
                                          "shortly with options and pricing.",
                                    "es": "¡Gracias, es todo lo que necesitamos! Nuestro equipo de eventos te "
                                          "escribirá en breve con opciones y precios."}}},
                "capabilities": [
                    "answer_faq",
                    "book_appointments",
                    "qualify_leads",
                    "take_payments",
                    "escalate_to_human",
                ],
                "enabled_channels": ["sms", "email", "webchat"],
                "channel_modes": {"email": "suggestive"},
                "qualification_questions": [
                    {"key": "party_size", "question": "How many guests are you expecting?", "field": "party_size"},
                    {"key": "event_date", "question": "What date is your event?", "field": "event_date"},
                    {
                        "key": "dietary",
                        "question": "Any dietary needs we should plan for?",
                        "field": "dietary_preferences",
                    },
                ],
                # the restaurant's own words for what its questions qualify (the agent code knows none)
                "intents": [{"name": "event enquiry", "action": "qualify", "examples": [
                    "we're planning a party for 40 people", "can you host our rehearsal dinner",
                    "I'd like to book a private event", "I'm organizing a company event",
                    "can you host a birthday party for us?", "I'd like catering for my office lunch",
                    "we need food for a wedding of 120 guests", "do you cater corporate events?",
                    "estamos organizando una fiesta para 40 personas", "¿hacéis catering para eventos?"]}],
                "pipeline_settings": {"on_qualified": "Qualified", "on_booked": "Proposal Sent"},
                "handoff_settings": {
                    "human_requested": {
                        "message": "Connecting you with our team now.",
                        "tags": ["handoff"],
                        "create_task": True,
                        "reactivate_after_minutes": 120,
                    },
                    "negative_sentiment": {"message": "I'm sorry - a manager will reply shortly."},
                },
            }
        ],
    )
    ctx.add(
        KnowledgeBase,
        [
            {
                "id": kb_id,
                "sub_account_id": sub_id,
                "ai_agent_id": agent_id,
                "name": faq["knowledge_base"],
                "source_type": "manual",
            }
        ],
    )
    entries = faq["entries"]
    ctx.add(
        KnowledgeSource,
        [
            {
                "id": source_id,
                "sub_account_id": sub_id,
                "knowledge_base_id": kb_id,
                "source_type": "manual",
                "name": "FAQ entered by staff",
                "status": "ready",
                "progress": Decimal(1),
                "chunk_count": len(entries),
                "content_hash": content_hash(*(e["question"] + e["answer"] for e in entries)),
            }
        ],
    )
    ctx.add(
        TrainingData,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "knowledge_base_id": kb_id,
                "source_id": source_id,
                "question": e["question"],
                "answer": e["answer"],
                "category": e["category"],
                "tags": e["tags"],
                "chunk_index": i,
                "content_hash": Chunk(question=e["question"], answer=e["answer"]).hash(),
            }
            for i, e in enumerate(entries)
        ],
    )
    return agent_id


INBOUND = [
    "Hi, do you do catering for about 40 people?",
    "What time do you open on Sunday?",
    "Can I book a tasting for next week?",
    "Is the private room free on the 12th?",
    "Do you have gluten free options?",
    "I'd like to talk to a person please",
]
OUTBOUND = [
    "Yes! Our catering covers 15 to 200 guests. What date is your event?",
    "Happy to help - want me to book a free consultation?",
    "You're booked. See you then!",
    "Let me check that for you.",
]


CANNED = (
    ("hours", "Opening hours", "{biz.name} is open {biz.opens:%-I:%M %p} to {biz.closes:%-I:%M %p}. "
                               "Anything else I can help with?"),
    ("thanks", "Thanks and goodbye", "Thanks for reaching out to {biz.name}! Have a great day."),
    ("manager", "Manager will call", "I've asked our manager to call you back today. What's the best time?"),
)


def _conversations(
    ctx: _Ctx, sub_id: uuid.UUID, biz: Business, contacts: Rows, staff_ids: list[uuid.UUID], agent_id: uuid.UUID
) -> None:
    rng = ctx.rng
    channels = {
        "sms": {
            "id": ctx.uid(),
            "channel_type": "sms",
            "provider": "twilio",
            "address": biz.sms_number,
            "name": "Main number",
            "config": {"phone_number": biz.sms_number},
        },
        "email": {
            "id": ctx.uid(),
            "channel_type": "email",
            "provider": "smtp",
            "address": biz.inbox,
            "name": "Inbox",
            "config": {"from_name": biz.name},
        },
        "webchat": {
            "id": ctx.uid(),
            "channel_type": "webchat",
            "provider": "leadpilot",
            "name": "Website chat",
            "address": f"wk_{biz.slug}_{ctx.uid().hex[:12]}",
            "config": {"color": "#7c3aed"},
        },
    }
    ctx.add(Channel, [{**c, "sub_account_id": sub_id} for c in channels.values()])
    ctx.add(CannedResponse, [{"id": ctx.uid(), "sub_account_id": sub_id, "shortcut": key, "title": title,
                              "body": body.format(biz=biz)} for key, title, body in CANNED])
    conversations, messages, configs, logs = [], [], [], []
    for i, contact in enumerate(rng.sample(contacts, 30)):
        kind = ["sms", "sms", "email", "webchat"][i % 4]
        if kind == "sms" and not contact["phone"] or kind == "email" and not contact["email"]:
            kind = "webchat"
        channel = channels[kind]
        conv_id = ctx.uid()
        at = ctx.ago(rng.uniform(0.1, 60))
        turns = rng.randint(2, 6)
        for t in range(turns):
            inbound = t % 2 == 0
            body = rng.choice(INBOUND if inbound else OUTBOUND)
            msg_id = ctx.uid()
            provider_id = {"sms": f"SM{ctx.uid().hex}", "email": f"<{ctx.uid().hex}@mail.example>"}.get(kind)
            messages.append(
                {
                    "id": msg_id,
                    "sub_account_id": sub_id,
                    "conversation_id": conv_id,
                    "channel_id": channel["id"],
                    "contact_id": contact["id"],
                    "direction": "inbound" if inbound else "outbound",
                    "sender_type": "contact" if inbound else "bot",
                    "sender_id": contact["id"] if inbound else agent_id,
                    "content_type": "email" if kind == "email" else "text",
                    "body": body,
                    "subject": "Catering question" if kind == "email" else None,
                    "status": "received" if inbound else rng.choice(["sent", "delivered", "delivered", "read"]),
                    "provider_message_id": provider_id if inbound or kind == "sms" else None,
                    "idempotency_key": None if inbound else f"reply:{conv_id}:{t}",
                    "sent_at": None if inbound else at,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            if not inbound:
                logs.append(
                    {
                        "id": ctx.uid(),
                        "sub_account_id": sub_id,
                        "ai_agent_id": agent_id,
                        "conversation_id": conv_id,
                        "message_id": msg_id,
                        "user_input": messages[-2]["body"],
                        "ai_response": body,
                        "decision": "answer",
                        "model": "local",
                        "confidence_score": Decimal(str(round(rng.uniform(0.55, 0.98), 3))),
                        "was_helpful": rng.choice([True, True, None]),
                        "prompt_tokens": rng.randint(200, 900),
                        "completion_tokens": rng.randint(20, 90),
                        "latency_ms": rng.randint(40, 400),
                        "created_at": at,
                    }
                )
                logs[-1]["total_tokens"] = logs[-1]["prompt_tokens"] + logs[-1]["completion_tokens"]
            at += timedelta(minutes=rng.uniform(0.2, 30))
        conversations.append(
            {
                "id": conv_id,
                "sub_account_id": sub_id,
                "channel_id": channel["id"],
                "contact_id": contact["id"],
                "status": rng.choice(["open", "open", "pending", "resolved"]),
                "last_message_at": at,
                "last_inbound_at": at - timedelta(minutes=1),
                "unread_count": rng.randint(0, 2),
                "subject": "Catering question" if kind == "email" else None,
                "external_thread_id": messages[-turns]["provider_message_id"] if kind == "email" else None,
            }
        )
        configs.append(
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "conversation_id": conv_id,
                "ai_agent_id": agent_id,
                "mode": "suggestive" if kind == "email" else "autopilot",
                "messages_handled": turns // 2,
                "satisfaction_score": Decimal("4.50"),
            }
        )
    ctx.add(Conversation, conversations)
    ctx.add(Message, messages)
    ctx.add(ConversationAIConfig, configs)
    ctx.add(AIConversationLog, logs)
    waiting, done = conversations[0], conversations[1]
    for cfg in configs[:1]:
        cfg.update(is_active=False)
    ctx.add(
        Handoff,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "conversation_id": waiting["id"],
                "contact_id": waiting["contact_id"],
                "ai_agent_id": agent_id,
                "reason": "human_requested",
                "summary": "Lead wants to discuss a 60-guest event.",
                "requested_at": ctx.ago(0.05),
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "conversation_id": done["id"],
                "contact_id": done["contact_id"],
                "ai_agent_id": agent_id,
                "reason": "lack_of_information",
                "status": "resolved",
                "summary": "Asked about a price not in the knowledge base.",
                "requested_at": ctx.ago(3),
                "claimed_by": staff_ids[0],
                "claimed_at": ctx.ago(2.99),
                "resolved_at": ctx.ago(2.9),
                "resolved_by": staff_ids[0],
            },
        ],
    )
    last_inbound = next(m for m in reversed(messages) if m["direction"] == "inbound")
    ctx.add(
        OutboxEvent,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "topic": "agent.turn",
                "aggregate_type": "message",
                "aggregate_id": last_inbound["id"],
                "payload": {"conversation_id": str(last_inbound["conversation_id"])},
                "dedupe_key": f"agent.turn:{last_inbound['id']}",
                "status": "done",
                "dispatched_at": last_inbound["created_at"],
                "done_at": last_inbound["created_at"],
            }
        ],
    )


def _payments(ctx: _Ctx, sub_id: uuid.UUID, contacts: Rows) -> None:
    rng = ctx.rng
    products = [
        {"id": ctx.uid(), "name": "Catering deposit", "product_type": "one_time"},
        {"id": ctx.uid(), "name": "Cooking class seat", "product_type": "one_time"},
        {"id": ctx.uid(), "name": "Supper club membership", "product_type": "recurring"},
    ]
    ctx.add(Product, [{**p, "sub_account_id": sub_id, "description": p["name"]} for p in products])
    prices: list[dict[str, Any]] = [
        {"id": ctx.uid(), "product_id": products[0]["id"], "amount": Decimal("250.00"), "nickname": "Deposit"},
        {"id": ctx.uid(), "product_id": products[1]["id"], "amount": Decimal("120.00"), "nickname": "Per seat"},
        {
            "id": ctx.uid(),
            "product_id": products[2]["id"],
            "amount": Decimal("29.00"),
            "billing_period": "month",
            "billing_interval": 1,
            "nickname": "Monthly",
        },
        {
            "id": ctx.uid(),
            "product_id": products[2]["id"],
            "amount": Decimal("290.00"),
            "billing_period": "year",
            "billing_interval": 1,
            "trial_period_days": 14,
            "nickname": "Yearly",
        },
    ]
    ctx.add(Price, [{**p, "sub_account_id": sub_id} for p in prices])
    customers = [c for c in contacts if c["lifecycle_stage"] == "customer" and c["email"]][:12]
    methods = [
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "contact_id": c["id"],
            "method_type": "card",
            "brand": rng.choice(["visa", "mastercard", "amex"]),
            "last4": f"{rng.randint(0, 9999):04d}",
            "exp_month": rng.randint(1, 12),
            "exp_year": ctx.now.year + rng.randint(1, 4),
            "is_default": True,
            "gateway": "sandbox",
            "gateway_payment_method_id": f"pm_{ctx.uid().hex[:24]}",
        }
        for c in customers
    ]
    ctx.add(PaymentMethod, methods)
    subs = []
    for i, (c, pm) in enumerate(zip(customers[:8], methods, strict=False)):
        status = ["active", "active", "trialing", "cancelled"][i % 4]
        price = prices[3] if status == "trialing" else prices[2]
        start = ctx.ago(rng.uniform(20, 200))
        period_start = ctx.ago(rng.uniform(0, 28))
        subs.append(
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "contact_id": c["id"],
                "product_id": products[2]["id"],
                "price_id": price["id"],
                "payment_method_id": pm["id"],
                "status": status,
                "created_at": start,
                "trial_start": ctx.ago(3) if status == "trialing" else None,
                "trial_end": ctx.ago(3) + timedelta(days=14) if status == "trialing" else None,
                "current_period_start": period_start,
                "current_period_end": period_start + timedelta(days=30),
                "cancelled_at": ctx.ago(2) if status == "cancelled" else None,
                "cancel_at_period_end": status == "cancelled",
                "ended_at": period_start + timedelta(days=30) if status == "cancelled" else None,
            }
        )
    ctx.add(Subscription, subs)
    invoices, lines, txns = [], [], []
    for n, c in enumerate(customers, start=1):
        issued = ctx.ago(rng.uniform(1, 150))
        items = [(prices[0], Decimal(1)), (prices[1], Decimal(rng.randint(1, 4)))][: rng.randint(1, 2)]
        invoice_id = ctx.uid()
        subtotal = sum((p["amount"] * q).quantize(CENT) for p, q in items)
        tax = (subtotal * Decimal("0.08875")).quantize(CENT)
        discount = Decimal("10.00") if n % 5 == 0 else Decimal("0.00")
        total = subtotal + tax - discount
        status = "paid" if n % 4 else "open"
        invoices.append(
            {
                "id": invoice_id,
                "sub_account_id": sub_id,
                "contact_id": c["id"],
                "invoice_number": f"INV-{ctx.now.year}-{n:04d}",
                "status": status,
                "subtotal": subtotal,
                "tax_rate": Decimal("0.0888"),
                "tax_amount": tax,
                "discount_amount": discount,
                "total_amount": total,
                "amount_paid": total if status == "paid" else Decimal(0),
                "issue_date": issued.date(),
                "due_date": (issued + timedelta(days=14)).date(),
                "paid_at": issued + timedelta(days=2) if status == "paid" else None,
                "created_at": issued,
            }
        )
        lines += [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "invoice_id": invoice_id,
                "product_id": p["product_id"],
                "price_id": p["id"],
                "description": p["nickname"],
                "quantity": q,
                "unit_price": p["amount"],
                "amount": (p["amount"] * q).quantize(CENT),
                "position": i,
            }
            for i, (p, q) in enumerate(items)
        ]
        if status == "paid":
            txns.append(
                {
                    "id": ctx.uid(),
                    "sub_account_id": sub_id,
                    "contact_id": c["id"],
                    "invoice_id": invoice_id,
                    "transaction_type": "payment",
                    "amount": total,
                    "status": "succeeded",
                    "gateway": "sandbox",
                    "gateway_transaction_id": f"ch_{ctx.uid().hex[:24]}",
                    "processed_at": issued + timedelta(days=2),
                }
            )
    refunded = txns[0]
    txns.append(
        {
            **refunded,
            "id": ctx.uid(),
            "transaction_type": "refund",
            "amount": Decimal("25.00"),
            "gateway_transaction_id": f"re_{ctx.uid().hex[:24]}",
            "processed_at": refunded["processed_at"] + timedelta(days=3),
        }
    )
    links = []
    for invoice in (i for i in invoices if i["status"] == "open"):
        invoice["payment_link_url"] = f"http://127.0.0.1:8000/sandbox/pay/{invoice['id']}"
        links.append({"id": ctx.uid(), "sub_account_id": sub_id, "provider": "stripe",
                      "operation": "checkout.sessions.create", "idempotency_key": f"link:{invoice['id']}:0.00",
                      "request": {"invoice_number": invoice["invoice_number"],
                                  "amount": int(invoice["total_amount"] * 100), "currency": "usd"},
                      "response": {"url": invoice["payment_link_url"]}, "created_at": invoice["created_at"]})
    ctx.add(Invoice, invoices)
    ctx.add(SandboxDelivery, links)
    ctx.add(InvoiceLineItem, lines)
    ctx.add(Transaction, txns)
    ctx.add(
        DocumentSequence,
        [{"sub_account_id": sub_id, "name": "invoice", "year": ctx.now.year, "last_value": len(invoices)}],
    )


def _workflows(ctx: _Ctx, sub_id: uuid.UUID, contacts: Rows) -> None:
    """The seed's "Welcome Series" tree, and executions down both branches."""
    wf_id = ctx.uid()
    ctx.add(
        Workflow,
        [
            {
                "id": wf_id,
                "sub_account_id": sub_id,
                "name": "Welcome Series",
                "status": "published",
                "published_at": ctx.ago(90),
                "description": "Welcome new website leads",
            }
        ],
    )
    ctx.add(
        WorkflowTrigger,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "workflow_id": wf_id,
                "trigger_type": "contact_created",
                "conditions": {"source": "website_form"},
            }
        ],
    )
    ids = {k: ctx.uid() for k in range(1, 8)}
    spec = [
        (1, None, None, "send_email", "Send Welcome Email", {"template": "welcome"}),
        (2, 1, None, "wait", "Wait 1 Day", {"duration": "P1D"}),
        (3, 2, None, "if_else", "Opened Email?", {"condition": {"event": "email_opened", "of_action": 1}}),
        (4, 3, "yes", "send_email", "Send Product Tips", {"template": "tips"}),
        (5, 3, "no", "send_email", "Send Re-engagement Email", {"template": "reengage"}),
        (6, 4, None, "add_tag", "Add Tag: Engaged", {"tag": "Engaged"}),
        (7, 5, None, "add_tag", "Add Tag: Needs Nurture", {"tag": "Needs Nurture"}),
    ]
    ctx.add(
        WorkflowAction,
        [
            {
                "id": ids[k],
                "sub_account_id": sub_id,
                "workflow_id": wf_id,
                "parent_action_id": ids[p] if p else None,
                "branch": b,
                "action_type": t,
                "name": n,
                "config": cfg,
                "position": k,
            }
            for k, p, b, t, n, cfg in spec
        ],
    )
    executions, steps = [], []
    for i, contact in enumerate(c for c in contacts if c["lead_source"] == "website_form"):
        if i >= 6:
            break
        opened = i % 2 == 0
        path = [1, 2, 3, 4, 6] if opened else [1, 2, 3, 5, 7]
        started = contact["created_at"]
        exec_id = ctx.uid()
        executions.append(
            {
                "id": exec_id,
                "sub_account_id": sub_id,
                "workflow_id": wf_id,
                "contact_id": contact["id"],
                "status": "completed",
                "context": {"opened_email": opened},
                "started_at": started,
                "completed_at": started + timedelta(days=1, minutes=5),
                "trigger_event": {"type": "contact_created", "source": "website_form"},
            }
        )
        for k in path:
            at = started + (timedelta(days=1) if k > 2 else timedelta(0))
            steps.append(
                {
                    "id": ctx.uid(),
                    "sub_account_id": sub_id,
                    "workflow_execution_id": exec_id,
                    "workflow_action_id": ids[k],
                    "status": "completed",
                    "started_at": at,
                    "scheduled_for": at if k == 3 else None,
                    "completed_at": at + timedelta(seconds=2),
                    "attempts": 1,
                    "result": {"branch": "yes" if opened else "no"} if k == 3 else {},
                }
            )
    ctx.add(WorkflowExecution, executions)
    ctx.add(WorkflowActionExecution, steps)


def _marketing(ctx: _Ctx, sub_id: uuid.UUID, biz: Business, contacts: Rows) -> None:
    rng = ctx.rng
    email_t, sms_t = ctx.uid(), ctx.uid()
    ctx.add(
        EmailTemplate,
        [
            {
                "id": email_t,
                "sub_account_id": sub_id,
                "name": "Monthly newsletter",
                "subject": "Hi {{first_name}}, what's new at " + biz.name,
                "html_content": "<p>Hey {{first_name}},</p><p>Our holiday menu is here.</p>",
                "variables": [{"name": "first_name", "default": "there"}],
            }
        ],
    )
    ctx.add(
        SmsTemplate,
        [
            {
                "id": sms_t,
                "sub_account_id": sub_id,
                "name": "Happy hour",
                "body": "{{first_name}}, happy hour starts at 3pm today! Reply STOP to opt out.",
                "variables": [{"name": "first_name", "default": "friend"}],
            }
        ],
    )
    campaigns, recipients, clicks = [], [], []
    for channel_type, template in (("email", email_t), ("sms", sms_t)):
        camp_id = ctx.uid()
        audience = [
            c for c in contacts if (c["email"] if channel_type == "email" else c["phone"]) and not c["dnd_channels"]
        ][:60]
        sent_at = ctx.ago(rng.uniform(5, 40))
        counts = {"sent": 0, "opened": 0, "clicked": 0}
        for c in audience:
            rec_id = ctx.uid()
            opened = channel_type == "email" and rng.random() < 0.42
            clicked = opened and rng.random() < 0.35
            status = "clicked" if clicked else "opened" if opened else "delivered"
            counts["sent"] += 1
            counts["opened"] += opened
            counts["clicked"] += clicked
            recipients.append(
                {
                    "id": rec_id,
                    "sub_account_id": sub_id,
                    "message_campaign_id": camp_id,
                    "contact_id": c["id"],
                    "status": status,
                    "sent_at": sent_at,
                    "delivered_at": sent_at + timedelta(seconds=30),
                    "tracking_token": rec_id.hex,
                    "opened_at": sent_at + timedelta(hours=2) if opened else None,
                    "open_count": rng.randint(1, 3) if opened else 0,
                    "first_clicked_at": sent_at + timedelta(hours=2, minutes=3) if clicked else None,
                    "click_count": 1 if clicked else 0,
                }
            )
            if clicked:
                clicks.append(
                    {
                        "id": ctx.uid(),
                        "sub_account_id": sub_id,
                        "recipient_id": rec_id,
                        "url": rng.choice(["/holiday-menu", "/book", "/pricing"]),
                        "clicked_at": sent_at + timedelta(hours=2, minutes=3),
                    }
                )
        campaigns.append(
            {
                "id": camp_id,
                "sub_account_id": sub_id,
                "channel_type": channel_type,
                "name": "November newsletter" if channel_type == "email" else "Happy hour blast",
                "email_template_id": template if channel_type == "email" else None,
                "sms_template_id": template if channel_type == "sms" else None,
                "audience": {"tags": ["Newsletter"], "exclude_dnd": True},
                "status": "sent",
                "scheduled_at": sent_at,
                "started_at": sent_at,
                "completed_at": sent_at + timedelta(minutes=4),
                "total_recipients": len(audience),
                "sent_count": counts["sent"],
                "delivered_count": counts["sent"],
                "opened_count": counts["opened"],
                "clicked_count": counts["clicked"],
            }
        )
    ctx.add(MessageCampaign, campaigns)
    ctx.add(MessageCampaignRecipient, recipients)
    ctx.add(EmailClick, clicks)


def _sites(ctx: _Ctx, sub_id: uuid.UUID, biz: Business, contacts: Rows) -> None:
    rng = ctx.rng
    funnel_id, landing, thanks = ctx.uid(), ctx.uid(), ctx.uid()
    ctx.add(
        Funnel,
        [
            {
                "id": funnel_id,
                "sub_account_id": sub_id,
                "name": "Holiday parties",
                "slug": "holiday-parties",
                "status": "published",
            }
        ],
    )
    form_id, survey_id = ctx.uid(), ctx.uid()
    calendar_id = ctx.session.scalar(select(Calendar.id).where(Calendar.sub_account_id == sub_id)
                                     .order_by(Calendar.name).limit(1))
    deposit_id = ctx.session.scalar(select(Price.id).where(Price.sub_account_id == sub_id,
                                                           Price.nickname == "Deposit"))
    widget_key = ctx.session.scalar(select(Channel.address).where(Channel.sub_account_id == sub_id,
                                                                  Channel.channel_type == "webchat"))
    ctx.add(
        Page,
        [
            {
                "id": landing,
                "sub_account_id": sub_id,
                "funnel_id": funnel_id,
                "name": "Landing",
                "slug": "/",
                "page_type": "landing",
                "position": 0,
                "is_published": True,
                "builder_json": {
                    "version": "1.0",
                    "blocks": [
                        {"type": "hero", "props": {"title": f"Holiday parties at {biz.name}",
                                                   "subtitle": "Private rooms, set menus, up to 120 guests.",
                                                   "cta_text": "Plan yours", "cta_href": f"#form-{form_id}"}},
                        {"type": "form", "props": {"form_id": str(form_id), "title": "Tell us about your party"}},
                        {"type": "calendar", "props": {"calendar_id": str(calendar_id),
                                                       "title": "Or book a tasting visit"}},
                        {"type": "pricing", "props": {"price_id": str(deposit_id), "title": "Hold your date",
                                                      "features": ["Refundable up to 14 days before"],
                                                      "button_text": "Pay the deposit"}},
                        {"type": "webchat", "props": {"widget_key": widget_key}},
                    ],
                },
            },
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "funnel_id": funnel_id,
                "name": "Menu",
                "slug": "/menu",
                "position": 1,
                "is_published": True,
                "html_content": "<h1>Holiday menu</h1>",
            },
            {
                "id": thanks,
                "sub_account_id": sub_id,
                "funnel_id": funnel_id,
                "name": "Thank you",
                "slug": "/thank-you",
                "page_type": "thank_you",
                "position": 2,
                "is_published": True,
                "html_content": "<h1>Thanks!</h1>",
            },
        ],
    )
    ctx.add(
        Form,
        [
            {
                "id": form_id,
                "sub_account_id": sub_id,
                "page_id": landing,
                "name": "Event inquiry",
                "fields": [
                    {"key": "full_name", "type": "text", "required": True},
                    {"key": "email", "type": "email", "required": True},
                    {"key": "phone", "type": "phone"},
                    {"key": "party_size", "type": "number", "maps_to": "custom_fields.party_size"},
                ],
                "settings": {"redirect": "/thank-you", "honeypot": "website", "tags": ["Lead - Website"]},
            }
        ],
    )
    _form_follow_up(ctx, sub_id, biz, form_id)
    ctx.add(
        Survey,
        [
            {
                "id": survey_id,
                "sub_account_id": sub_id,
                "page_id": thanks,
                "name": "Event needs",
                "questions": [
                    {
                        "key": "type",
                        "text": "What are you celebrating?",
                        "options": ["Birthday", "Company party", "Wedding"],
                    },
                    {
                        "key": "budget",
                        "text": "Budget per guest?",
                        "options": ["<$40", "$40-80", "$80+"],
                        "scores": [1, 2, 3],
                    },
                ],
            }
        ],
    )
    leads = [c for c in contacts if c["lead_source"] == "website_form" and c["email"]][:15]
    ctx.add(
        FormSubmission,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "form_id": form_id,
                "contact_id": c["id"],
                "data": {
                    "full_name": f"{c['first_name']} {c['last_name']}",
                    "email": c["email"],
                    "party_size": c["custom_fields"].get("party_size", 10),
                },
                "ip_address": ctx.fake.ipv4_public(),
                "user_agent": ctx.fake.user_agent(),
                "is_processed": True,
                "processed_at": c["created_at"],
                "created_at": c["created_at"],
            }
            for c in leads
        ],
    )
    ctx.add(
        SurveyResponse,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "survey_id": survey_id,
                "contact_id": c["id"],
                "answers": {"type": rng.choice(["Birthday", "Company party", "Wedding"]), "budget": "$40-80"},
                "score": Decimal(2),
                "completed_at": c["created_at"] + timedelta(minutes=1),
            }
            for c in leads[:8]
        ],
    )


def _form_follow_up(ctx: _Ctx, sub_id: uuid.UUID, biz: Business, form_id: uuid.UUID) -> None:
    """The seed's "Form Follow-up": confirmation email, a task for the sales team, the website-lead tag."""
    wf_id, email, task, tag = ctx.uid(), ctx.uid(), ctx.uid(), ctx.uid()
    ctx.add(Workflow, [{"id": wf_id, "sub_account_id": sub_id, "name": "Form Follow-up", "status": "published",
                        "published_at": ctx.ago(60), "description": "Answer every event inquiry"}])
    ctx.add(WorkflowTrigger, [{"id": ctx.uid(), "sub_account_id": sub_id, "workflow_id": wf_id,
                               "trigger_type": "form_submitted", "conditions": {"form_id": str(form_id)}}])
    ctx.add(WorkflowAction, [
        {"id": email, "sub_account_id": sub_id, "workflow_id": wf_id, "action_type": "send_email", "position": 1,
         "name": "Send confirmation email",
         "config": {"subject": "We got your party inquiry", "defaults": {"first_name": "there"},
                    "body": f"Hi {{{{ first_name }}}}, thanks for asking about a party at {biz.name}. "
                            "We'll call you within a day with menus and dates."}},
        {"id": task, "sub_account_id": sub_id, "workflow_id": wf_id, "parent_action_id": email, "position": 2,
         "action_type": "create_task", "name": "Create task for sales team",
         "config": {"title": "Call back the event inquiry", "due_in_hours": 24}},
        {"id": tag, "sub_account_id": sub_id, "workflow_id": wf_id, "parent_action_id": task, "position": 3,
         "action_type": "add_tag", "name": "Add tag: Lead - Website", "config": {"tag": "Lead - Website"}},
    ])


def _webhooks_and_events(ctx: _Ctx, sub_id: uuid.UUID, contacts: Rows, appointments: Rows) -> None:
    rng = ctx.rng
    hook_id = ctx.uid()
    ctx.add(
        Webhook,
        [
            {
                "id": hook_id,
                "sub_account_id": sub_id,
                "url": "https://hooks.example.com/leadpilot",
                "events": ["contact.created", "appointment.booked", "opportunity.won"],
                "secret": f"whsec_{ctx.uid().hex}",
                # an example endpoint: nothing is sent to it until someone points it at a real URL and enables it
                "description": "Example endpoint (disabled): set your URL and enable it",
                "is_active": False,
            }
        ],
    )
    ctx.add(
        WebhookLog,
        [
            {
                "id": ctx.uid(),
                "sub_account_id": sub_id,
                "webhook_id": hook_id,
                "delivery_id": ctx.uid(),
                "event_type": "contact.created",
                "payload": {"event": "contact.created", "data": {"id": str(c["id"])}},
                "response_status": 200,
                "response_time_ms": rng.randint(80, 400),
                "status": "success",
                "created_at": c["created_at"],
            }
            for c in contacts[:5]
        ],
    )
    events = []
    for c in rng.sample(contacts, 60):
        session_id = ctx.uid().hex[:16]
        at = c["created_at"] - timedelta(minutes=5)
        for name, category, props in (
            ("page_viewed", "engagement", {"page_url": "/", "referrer": "facebook.com"}),
            ("page_viewed", "engagement", {"page_url": "/menu", "duration_seconds": 45}),
            ("form_submitted", "conversion", {"form": "Event inquiry"}),
        ):
            events.append(
                {
                    "id": ctx.uid(),
                    "sub_account_id": sub_id,
                    "contact_id": c["id"],
                    "event_name": name,
                    "event_category": category,
                    "properties": props,
                    "source": "web",
                    "session_id": session_id,
                    "created_at": at,
                }
            )
            at += timedelta(seconds=rng.randint(20, 120))
    events += [
        {
            "id": ctx.uid(),
            "sub_account_id": sub_id,
            "contact_id": a["contact_id"],
            "event_name": "appointment_booked",
            "event_category": "conversion",
            "properties": {"appointment_id": str(a["id"])},
            "source": a["source"],
            "created_at": a["created_at"],
        }
        for a in appointments[:80]
    ]
    ctx.add(AnalyticsEvent, events)
