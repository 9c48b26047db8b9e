"""The `leadpilot` command: embedded infrastructure, migrations, demo data, and running the product."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from leadpilot.settings import PROJECT_ROOT, get_settings

app = typer.Typer(help="LeadPilot: AI-agent-centric agency CRM.", no_args_is_help=True)
infra_app = typer.Typer(help="Embedded PostgreSQL + pgvector and Redis.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(db_app, name="db")
key_app = typer.Typer(help="REST API keys.", no_args_is_help=True)
app.add_typer(key_app, name="api-key")
kb_app = typer.Typer(help="Knowledge bases.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
TYPE_BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html",
                  ".pdf": "pdf", ".csv": "csv"}
console = Console()


@infra_app.command("up")
def infra_up() -> None:
    """Start the embedded servers (or check the configured ones) and print their URLs."""
    from leadpilot.infra import ensure_infra

    urls = ensure_infra()
    console.print(f"postgres  {urls.database_url}  ({'embedded' if urls.embedded_postgres else 'DATABASE_URL'})")
    console.print(f"redis     {urls.redis_url}  ({'embedded' if urls.embedded_redis else 'REDIS_URL'})")


@infra_app.command("down")
def infra_down() -> None:
    """Stop the embedded servers of this state folder."""
    from leadpilot.infra import stop_infra

    for name, stopped in stop_infra().items():
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


@infra_app.command("status")
def infra_status() -> None:
    """Say whether Postgres and Redis answer, and at which revision the schema is."""
    import redis
    from sqlalchemy import create_engine, pool, text

    from leadpilot.infra import ensure_infra
    from models.migrate import current_revision

    urls = ensure_infra()
    engine = create_engine(urls.database_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar()
    engine.dispose()
    table = Table("service", "status", "detail")
    table.add_row("postgres", "up", f"{version}, schema {current_revision(urls.database_url) or 'not migrated'}")
    table.add_row("redis", "up" if redis.Redis.from_url(urls.redis_url).ping() else "down", urls.redis_url)
    console.print(table)


@db_app.command("migrate")
def db_migrate(revision: str = "head") -> None:
    """Upgrade the database to `revision` (as the owner) and set the app role's password if configured."""
    from leadpilot.infra import ensure_infra
    from models.migrate import upgrade

    upgrade(ensure_infra().database_url, revision=revision, app_password=get_settings().app_db_password)
    console.print(f"[green]database at {revision}[/green]")


@app.command("seed-demo")
def seed_demo_cmd(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    as_of: Annotated[str | None, typer.Option(help="Anchor date YYYY-MM-DD (default today).")] = None,
    reset: Annotated[bool, typer.Option(help="Delete an existing demo agency first.")] = False,
) -> None:
    """Seed the "Digital Marketing Co" demo agency."""
    from models.db import owner_session
    from services.demo_agency import delete_demo, demo_exists, seed_demo

    with owner_session() as session:
        if demo_exists(session=session):
            if not reset:
                console.print("[yellow]demo agency already exists; use --reset to recreate it[/yellow]")
                raise typer.Exit(0)
            delete_demo(session=session)
        with console.status("seeding demo agency..."):
            started = time.perf_counter()
            summary = seed_demo(session=session, seed=seed, as_of=date.fromisoformat(as_of) if as_of else None)
    console.print(f"[green]seeded in {time.perf_counter() - started:.1f}s[/green]: "
                  + ", ".join(f"{t} {n}" for t, n in sorted(summary.counts.items()) if n))
    _print_logins(summary.logins)


def _print_logins(logins: list[tuple[str, str, str]]) -> None:
    table = Table("demo login", "password", "role")
    for email, password, role in logins:
        table.add_row(email, password, role)
    console.print(table)


@app.command("serve")
def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("api.app:app", host=host or settings.api_host, port=port or settings.api_port, log_config=None)


@app.command("worker")
def worker(concurrency: int = 2) -> None:
    """Run a Celery worker on every queue."""
    from workers.app import QUEUES, celery_app

    celery_app.worker_main(["worker", "-Q", ",".join(QUEUES), "-c", str(concurrency), "-l", "INFO"])


def _issue_key(email: str, name: str, sub_account: str | None) -> str:
    from sqlalchemy import func, select

    from models.db import TenantScope, owner_session, tenant_session
    from models.tenancy import SubAccount, User
    from services.access import issue_api_key

    with owner_session() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is None:
            raise typer.BadParameter(f"no user {email}", param_hint="--email")
        sub_id = None
        if sub_account:
            sub_id = session.scalar(select(SubAccount.id).where(SubAccount.agency_id == user.agency_id,
                                                                SubAccount.slug == sub_account))
            if sub_id is None:
                raise typer.BadParameter(f"no sub-account {sub_account}", param_hint="--sub-account")
    # issued inside the user's own agency, so the audit trail records it there
    with tenant_session(TenantScope(agency_id=user.agency_id, user_id=user.id)) as session:
        _, token = issue_api_key(session=session, user_id=user.id, name=name, sub_account_id=sub_id)
    return token


@key_app.command("create")
def api_key_create(
    email: Annotated[str, typer.Option(help="The user the key acts as.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "cli",
    sub_account: Annotated[str | None, typer.Option(help="Pin the key to this sub-account slug.")] = None,
) -> None:
    """Create an API key and print its token (shown once)."""
    console.print(_issue_key(email, name, sub_account))


@kb_app.command("ingest")
def kb_ingest(
    path: Annotated[Path, typer.Argument(exists=True, help="A file, or a folder of .md .txt .html .pdf .csv files.")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name (created when missing).")],
    sub_account: Annotated[str, typer.Option(help="Sub-account slug.")] = "restaurant-a",
    agency: Annotated[str, typer.Option(help="Agency slug.")] = "digital-marketing-co",
) -> None:
    """Chunk, embed and store documents in a knowledge base, with a progress bar per file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import select

    from knowledge import ingest
    from models.ai import KnowledgeBase
    from models.db import TenantScope, owner_session, tenant_unit_of_work
    from models.tenancy import Agency, SubAccount

    with owner_session() as session:
        found = session.execute(select(Agency.id, SubAccount.id).join(SubAccount, SubAccount.agency_id == Agency.id)
                                .where(Agency.slug == agency, SubAccount.slug == sub_account)).first()
    if found is None:
        raise typer.BadParameter(f"no sub-account {sub_account} in agency {agency}", param_hint="--sub-account")
    scope = TenantScope(agency_id=found[0], sub_account_id=found[1])
    files = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.suffix.lower() in TYPE_BY_SUFFIX)
    if not files:
        raise typer.BadParameter("no .md .txt .html .pdf or .csv file there", param_hint="PATH")
    with tenant_unit_of_work(scope) as session:
        base = session.scalar(select(KnowledgeBase).where(KnowledgeBase.name == kb, KnowledgeBase.deleted_at.is_(None)))
        if base is None:
            base = ingest.create_knowledge_base(session=session, sub_account_id=found[1], name=kb)
            console.print(f"created knowledge base {kb!r}")
        session.commit()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            for file in files:
                source, created = ingest.add_source(session=session, kb_id=base.id, name=file.name,
                                                    source_type=TYPE_BY_SUFFIX[file.suffix.lower()],
                                                    data=file.read_bytes())
                task = progress.add_task(file.name, total=100)
                if not created:
                    progress.update(task, completed=100, description=f"{file.name} (unchanged)")
                    continue

                def tick(source=source, task=task) -> None:  # type: ignore[no-untyped-def]
                    session.commit()
                    progress.update(task, completed=float(source.progress) * 100)

                ingest.process_source(session=session, source_id=source.id, commit=tick)
                session.commit()
                progress.update(task, completed=100, description=f"{file.name}: {source.chunk_count} chunks")


@app.command("run")
def run(
    port: Annotated[int | None, typer.Option(help="API port.")] = None,
    worker: Annotated[bool, typer.Option(help="Also run a Celery worker and beat.")] = True,
) -> None:
    """Everything on the embedded defaults: infra, migrations, demo agency, API and worker."""
    from sqlalchemy import select

    from leadpilot.infra import ensure_infra
    from models.db import owner_session
    from models.migrate import upgrade
    from models.tenancy import Role, User
    from services.demo_agency import DEMO_PASSWORD, demo_exists, seed_demo

    settings = get_settings()
    started = time.perf_counter()
    with console.status("starting Postgres and Redis..."):
        urls = ensure_infra()
    with console.status("migrating..."):
        upgrade(urls.database_url, app_password=settings.app_db_password)
    with owner_session() as session:
        if not demo_exists(session=session):
            with console.status("seeding the demo agency..."):
                seed_demo(session=session)
    from leadpilot import dev_secrets

    dev = dev_secrets.child_env(settings)  # only for the webhook credentials left unset
    env = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url, **dev}
    port = port or settings.api_port
    py = sys.executable
    procs = [subprocess.Popen([py, "-m", "leadpilot.cli", "serve", "--port", str(port)], env=env, cwd=PROJECT_ROOT)]
    if worker:
        state = settings.state_dir
        procs.append(subprocess.Popen([py, "-m", "leadpilot.cli", "worker"], env=env, cwd=PROJECT_ROOT))
        procs.append(subprocess.Popen(
            [py, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO", "-s", str(state / "celerybeat-schedule")],
            env=env, cwd=PROJECT_ROOT,
        ))
    base = f"http://{settings.api_host}:{port}"
    _wait_ready(base)
    console.rule(f"LeadPilot is running ({time.perf_counter() - started:.1f}s)")
    console.print(f"API        {base}\nDocs       {base}/docs\nReadiness  {base}/readyz")
    console.print(f"Postgres   {urls.database_url}\nRedis      {urls.redis_url}")
    with owner_session() as session:
        from models.conversations import Channel

        widget_key = session.scalars(select(Channel.address).where(Channel.channel_type == "webchat")
                                     .order_by(Channel.created_at).limit(1)).first()
        if widget_key:
            console.print(f"Webchat    {base}/widget/demo?key={widget_key}  (the widget on a demo page; embed it "
                          f"with <script src=\"{base}/widget.js\" data-key=\"{widget_key}\" async></script>)")
        from models.sites import Funnel
        from models.tenancy import SubAccount

        site = session.execute(select(SubAccount.slug, Funnel.slug).join(Funnel, Funnel.sub_account_id == SubAccount.id)
                               .where(Funnel.status == "published").order_by(SubAccount.slug).limit(1)).first()
        if site:
            console.print(f"Site       {base}/s/{site[0]}/{site[1]}  (a funnel page: form, booking, checkout, chat)")
        rows = session.execute(select(User.email, Role.name).join(Role, Role.id == User.role_id)
                               .order_by(Role.name, User.email)).all()
    _print_logins([(email, DEMO_PASSWORD, role) for email, role in rows])
    token = _issue_key("admin@digitalmarketing.com", "quick start", None)
    console.print(f"API key    {token}  (agency admin; try: curl -H 'Authorization: Bearer {token}' "
                  f"{base}/v1/agency/reports)")
    if dev:
        where = dev_secrets.path(settings.state_dir)
        console.print(f"Webhooks   development secrets from {where} (only for what TWILIO_AUTH_TOKEN / "
                      "STRIPE_WEBHOOK_SECRET leave unset):")
        for name, value in dev.items():
            console.print(f"           {name.removeprefix('LEADPILOT_DEV_')}={value}")
        console.print('           try: leadpilot sms send --from +15555550100 "Do you have a table for 4 tonight?"'
                      "\n                leadpilot stripe event payment_intent.succeeded --sub-account restaurant-a")
    console.print("Ctrl-C stops the API and worker; `leadpilot infra down` stops Postgres and Redis.")
    _supervise(procs)


def _wait_ready(base: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise typer.Exit(f"API did not become ready at {base}")


def _supervise(procs: list[subprocess.Popen[bytes]]) -> None:
    # the worker finishes the turns it runs (warm shutdown; what it reserved but had not started goes back to
    # the broker): a grace shorter than a turn left leads to the reclaim
    grace = get_settings().worker_shutdown_grace_seconds

    def stop(*_: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
        raise typer.Exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        console.print("[red]a child process exited; stopping the rest[/red]")
    except KeyboardInterrupt:
        pass
    stop()


from evals.harness.cli import eval_app  # noqa: E402  (the eval sub-app; evals/ is packaged with the product)
from leadpilot.try_cli import sms_app, stripe_app  # noqa: E402  (signed requests to the running API)

app.add_typer(eval_app, name="eval")
app.add_typer(sms_app, name="sms")
app.add_typer(stripe_app, name="stripe")

if __name__ == "__main__":
    app()

