"""`leadpilot eval run|diff`: run scenario folders k times and write report.json + report.html; compare two
reports. Trials run on copies of a template database on the embedded (or configured) Postgres server, never on
the product database, and their Celery hand-offs go to a Redis database of their own."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

EVALS_DIR = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = EVALS_DIR / "scenarios"
BASELINE = EVALS_DIR / "baseline.json"
eval_app = typer.Typer(help="Scenario evals of the lead agent and the analyst (tau-bench style, pass^k).",
                       no_args_is_help=True)
console = Console()


def _cli_databases() -> object:
    from evals.harness.database import Databases, ensure_demo_template
    from leadpilot.infra import ensure_infra
    from leadpilot.settings import get_settings

    urls = ensure_infra()
    if urls.embedded_redis and "REDIS_URL" not in os.environ:
        os.environ["REDIS_URL"] = urls.redis_url.rsplit("/", 1)[0] + "/14"  # not the product worker's queue
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    template = ensure_demo_template(urls.database_url, get_settings().state_dir)
    return Databases(urls.database_url, template, f"lp_eval_{uuid.uuid4().hex[:6]}")


def print_table(report: dict) -> None:  # type: ignore[type-arg]
    k = report["k"]
    table = Table("split", "capability", "scenarios", *[f"pass^{j}" for j in range(1, k + 1)])
    for split, part in report.get("splits", {}).items():
        for capability, row in [*part["capabilities"].items(), ("all", part)]:
            table.add_row(split, capability, str(row["scenarios"]),
                          *[f"{row[f'pass^{j}']:.2f}" for j in range(1, k + 1)])
    table.add_row("all", "all", str(report["overall"]["scenarios"]),
                  *[f"{report['overall'][f'pass^{j}']:.2f}" for j in range(1, k + 1)])
    console.print(table)


@eval_app.command("run")
def eval_run(
    paths: Annotated[list[Path] | None, typer.Argument(help="Scenario files or folders")] = None,
    k: Annotated[int, typer.Option("--k", help="Trials per scenario")] = 1,
    capability: Annotated[str | None, typer.Option(help="Only this capability")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split (core, wild, analyst_wild, ...)")] = None,
    scenario_id: Annotated[list[str] | None, typer.Option("--id", help="Only these scenario ids")] = None,
    report: Annotated[Path, typer.Option(help="Folder for report.json and report.html")] = Path("evals/out"),
    simulator: Annotated[str, typer.Option(
        help="scripted (offline), llm (the user played by the model at OPENAI_BASE_URL, seeded per trial), or "
             "auto: llm when OPENAI_BASE_URL is set")] = "auto",
    check_floor: Annotated[bool, typer.Option(help="Exit 1 if a capability is below evals/baseline.json")] = False,
) -> None:
    """Run scenarios k times each, print pass^1..pass^k per capability, write the reports."""
    from evals.harness.report import below_floor, build_report, write_report
    from evals.harness.runner import run_suite
    from evals.harness.scenario import load_scenarios

    scenarios = load_scenarios(paths or [SCENARIOS_DIR], capability=capability, ids=scenario_id or [],
                               split=split)
    if not scenarios:
        raise typer.BadParameter("no scenario matched")
    if simulator == "auto":
        from leadpilot.settings import get_settings

        simulator = "llm" if get_settings().openai_base_url else "scripted"
    dbs = _cli_databases()
    started = time.perf_counter()

    def progress(trial) -> None:  # type: ignore[no-untyped-def]
        mark = "[green]pass[/green]" if trial.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {trial.scenario_id} #{trial.trial} ({trial.seconds:.2f}s)"
                      + ("" if trial.passed else f"  {trial.why()[:160]}"))

    trials = run_suite(scenarios, k=k, dbs=dbs, simulator=simulator, progress=progress)  # type: ignore[arg-type]
    seconds = round(time.perf_counter() - started, 1)
    out = build_report(trials, k=k, meta={"simulator": simulator, "seconds": seconds, "trials": len(trials)})
    json_path, html_path = write_report(out, report)
    print_table(out)
    console.print(f"{len(trials)} trials in {seconds}s -> {json_path}, {html_path}")
    if check_floor:
        problems = below_floor(out, json.loads(BASELINE.read_text()))
        for p in problems:
            console.print(f"[red]{p}[/red]")
        if problems:
            raise typer.Exit(1)


@eval_app.command("diff")
def eval_diff(before: Path, after: Path,
              tolerance: Annotated[float, typer.Option(help="Ignore drops up to this much")] = 0.0) -> None:
    """Compare two report.json files; exit 1 when anything regressed."""
    from evals.harness.report import diff_reports

    result = diff_reports(json.loads(before.read_text()), json.loads(after.read_text()), tolerance=tolerance)
    table = Table("capability or split", "before", "after", "delta")
    for c in result["capabilities"]:
        table.add_row(c["capability"], str(c["before"]), str(c["after"]), str(c["delta"]))
    console.print(table)
    for s in result["scenarios"]:
        color = {"regressed": "red", "improved": "green"}.get(s["change"], "yellow")
        console.print(f"[{color}]{s['change']}[/{color}] {s['id']} {s.get('before', '')} -> {s.get('after', '')} "
                      f"{s.get('why', '')[:160]}")
    if result["regressions"]:
        console.print(f"[red]{len(result['regressions'])} regression(s)[/red]")
        raise typer.Exit(1)
    console.print("[green]no regressions[/green]")
