"""Take the README's screenshots from a running `make run` (the demo agency): the staff app's inbox with a lead
waiting for a person, that conversation, the handoff metrics, the analyst answering with a chart and the
integrations' sync status; and the demo funnel page a visitor sees.

    make run            # in another terminal
    .venv/bin/python docs/screenshots.py [--base http://127.0.0.1:8000]

A lead asking for a person is played through the real lead graph first (as the worker would), so the inbox
has a live handoff to show. Writes docs/screenshots/*.png."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def lead_asks_for_a_person() -> uuid.UUID:
    """A new SMS lead of restaurant A asks two questions, the second for a person: a real handoff."""
    from sqlalchemy import select

    from agents.lead.runner import run_turn
    from channels import inbound
    from models.conversations import Channel
    from models.db import TenantScope, owner_session, tenant_session
    from models.tenancy import SubAccount
    from services import crm

    with owner_session() as session:
        sub = session.scalars(select(SubAccount).where(SubAccount.slug == "restaurant-a")).one()
    scope = TenantScope(agency_id=sub.agency_id, sub_account_id=sub.id)
    phone = f"+1917555{uuid.uuid4().int % 9000 + 1000}"
    with tenant_session(scope) as session:
        channel = session.scalars(select(Channel).where(Channel.channel_type == "sms")).one()
        contact, _ = crm.match_or_create_contact(session=session, sub_account_id=sub.id, phone=phone,
                                                 defaults={"first_name": "Maria", "last_name": "Lopez",
                                                           "source": "sms"})
        conversation = inbound.open_conversation(session, channel, contact.id)
        conversation_id = conversation.id
    for i, text in enumerate(("Hi! Do you host birthday dinners for 12 people?",
                              "Can I talk to a real person about the menu please")):
        with tenant_session(scope) as session:
            conversation = session.get(inbound.Conversation, conversation_id)
            stored = inbound.store_message(session, conversation, idempotency_key=f"shot:{phone}:{i}", body=text)
        run_turn(agency_id=sub.agency_id, sub_account_id=sub.id, conversation_id=conversation_id,
                 message_id=stored.message_id)
    return conversation_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    conversation = f'.conv[data-id="{lead_asks_for_a_person()}"]'
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        page.goto(f"{args.base}/app/sign-in")
        page.fill("input[name=email]", "john@restaurant.com")
        page.fill("input[name=password]", "demo1234")
        page.click("button[type=submit]")
        page.wait_for_selector("#live.on")
        page.locator(conversation).wait_for()
        page.screenshot(path=str(OUT / "inbox.png"))
        page.locator(conversation).click()
        page.locator(".handoff-box").wait_for()
        page.fill("textarea.reply-text", "Hi Maria, this is John, the manager. Happy to help with the birthday menu!")
        page.screenshot(path=str(OUT / "conversation.png"))
        page.click("button[data-tool=metrics]")
        page.locator(".metrics img.chart").wait_for()
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUT / "handoff-metrics.png"))
        page.click("button[data-tool=analyst]")
        page.fill("input[name=question]", "which campaign had the best ROI this quarter?")
        page.click(".ask button")
        page.locator(".answer img.chart").wait_for(timeout=30_000)
        page.screenshot(path=str(OUT / "analyst.png"))
        page.click("button[data-tool=integrations]")
        page.locator(".tool.integrations table").wait_for()
        page.screenshot(path=str(OUT / "integrations.png"))
        site = browser.new_page(viewport={"width": 1000, "height": 900})
        site.goto(f"{args.base}/s/restaurant-a/holiday-parties")
        site.locator(".lp-booking").wait_for()
        site.screenshot(path=str(OUT / "site.png"), full_page=True)
        browser.close()
    print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.png')))} to {OUT}")


if __name__ == "__main__":
    main()
