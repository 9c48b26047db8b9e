"""pass^k (tau-bench): the chance that all k independent trials of a scenario succeed, estimated without bias
from n >= k trials with c successes as C(c, k) / C(n, k), averaged over the scenarios of a capability. Reports
as JSON for machines and one HTML page for people, and the comparison of two report JSONs."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from math import comb
from pathlib import Path
from typing import Any

from evals.harness.runner import Trial


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """C(successes, k) / C(trials, k): unbiased estimate of the chance that k fresh trials all pass."""
    if k < 1 or trials < k:
        raise ValueError(f"pass^{k} needs at least {k} trials, got {trials}")
    return comb(successes, k) / comb(trials, k)


def build_report(trials: list[Trial], *, k: int, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json: per-capability pass^1..pass^k and every scenario's successes and failures."""
    by_scenario: dict[str, list[Trial]] = defaultdict(list)
    for trial in trials:
        by_scenario[trial.scenario_id].append(trial)
    scenarios = []
    for sid, runs in sorted(by_scenario.items()):
        failures = [{"trial": t.trial, "why": t.why(), "transcript": t.transcript, "tool_calls": t.tool_calls,
                     "checks": [c for c in t.checks if not c["passed"]], "metrics": t.metrics,
                     "db_diff": t.db_diff, "error": t.error} for t in runs if not t.passed]
        scenarios.append({"id": sid, "split": runs[0].split, "capability": runs[0].capability,
                          "successes": sum(t.passed for t in runs),
                          "trials": len(runs), "seconds": round(sum(t.seconds for t in runs), 2),
                          "failures": failures,
                          "sample": None if failures else {"transcript": runs[0].transcript,
                                                           "tool_calls": runs[0].tool_calls}})
    splits = {}
    for split in sorted({s["split"] for s in scenarios}):
        items = [s for s in scenarios if s["split"] == split]
        splits[split] = {**_rates(items, k), "capabilities": _by_capability(items, k)}
    return {"k": k, "capabilities": _by_capability(scenarios, k), "overall": _rates(scenarios, k),
            "splits": splits, "meta": meta or {}, "scenarios": scenarios}


def _rates(items: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """pass^1..pass^k averaged over scenarios."""
    return {"scenarios": len(items), **{f"pass^{j}": round(sum(
        pass_hat_k(s["successes"], s["trials"], j) for s in items) / max(len(items), 1), 4) for j in range(1, k + 1)}}


def _by_capability(items: list[dict[str, Any]], k: int) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in items:
        grouped[s["capability"]].append(s)
    return {capability: _rates(group, k) for capability, group in sorted(grouped.items())}


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """report.json and report.html in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(report, indent=1, default=str))
    html_path.write_text(render_html(report))
    return json_path, html_path


def _esc(value: Any) -> str:
    return html.escape(str(value))


def render_html(report: dict[str, Any]) -> str:
    """One self-contained page: the pass^k table, then each failing scenario with transcript, tools, diff."""
    k = report["k"]
    head = "".join(f"<th>pass^{j}</th>" for j in range(1, k + 1))
    rows = "".join(
        f"<tr{' class=total' if c == 'all' else ''}><td>{_esc(split)}</td><td>{_esc(c)}</td><td>{v['scenarios']}</td>"
        + "".join(f"<td>{v[f'pass^{j}']:.2f}</td>" for j in range(1, k + 1)) + "</tr>"
        for split, part in report.get("splits", {}).items()
        for c, v in [*part["capabilities"].items(), ("all", part)])
    overall = report["overall"]
    rows += (f"<tr class=total><td>all</td><td>all</td><td>{overall['scenarios']}</td>"
             + "".join(f"<td>{overall[f'pass^{j}']:.2f}</td>" for j in range(1, k + 1)) + "</tr>")
    failing = []
    for s in report["scenarios"]:
        for f in s["failures"]:
            turns = "".join(f"<div class={_esc(t['role'])}><b>{_esc(t['role'])}</b> {_esc(t['text'])}</div>"
                            for t in f["transcript"])
            checks = "".join(f"<li>{_esc(c['name'])}: {_esc(c['reason'])}</li>" for c in f["checks"])
            tools = "".join(f"<li><code>{_esc(c['name'])}</code> {_esc(json.dumps(c.get('args'), default=str))}</li>"
                            for c in f["tool_calls"])
            diff = _esc(json.dumps(f["db_diff"], indent=1, default=str)[:20000])
            error = f"<pre>{_esc(f['error'])}</pre>" if f.get("error") else ""
            failing.append(
                f"<details><summary><b>{_esc(s['id'])}</b> ({_esc(s['capability'])}, trial {f['trial']}, "
                f"{s['successes']}/{s['trials']} passed): {_esc(f['why'][:300])}</summary>{error}"
                f"<h4>Failed checks</h4><ul>{checks}</ul><h4>Transcript</h4>{turns}"
                f"<h4>Tool calls</h4><ul>{tools or '<li>none</li>'}</ul>"
                f"<h4>Database diff</h4><pre>{diff}</pre></details>")
    return f"""<!doctype html><html><head><meta charset=utf-8><title>LeadPilot evals</title><style>
body{{font:14px system-ui;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
.total{{font-weight:bold}}.user{{color:#1a4d8f}}.agent{{color:#2d6a2d}}.world{{color:#777}}
details{{border:1px solid #ddd;margin:6px 0;padding:6px}}pre{{white-space:pre-wrap;font-size:12px}}
</style></head><body><h1>LeadPilot eval report</h1>
<p>k = {k}; {len(report['scenarios'])} scenarios; {_esc(json.dumps(report.get('meta', {}), default=str))}</p>
<table><tr><th>split</th><th>capability</th><th>scenarios</th>{head}</tr>{rows}</table>
<h2>Failures ({sum(len(s['failures']) for s in report['scenarios'])} trials)</h2>
{''.join(failing) or '<p>None.</p>'}</body></html>"""


def diff_reports(before: dict[str, Any], after: dict[str, Any], *, tolerance: float = 0.0) -> dict[str, Any]:
    """Capability and scenario changes from `before` to `after`; regressions are drops beyond `tolerance`."""
    def rate(s: dict[str, Any]) -> float:
        return s["successes"] / s["trials"] if s["trials"] else 0.0

    caps = []
    for capability in sorted(set(before["capabilities"]) | set(after["capabilities"])):
        a = before["capabilities"].get(capability, {}).get("pass^1")
        b = after["capabilities"].get(capability, {}).get("pass^1")
        caps.append({"capability": capability, "before": a, "after": b,
                     "delta": None if a is None or b is None else round(b - a, 4)})
    for split in sorted(set(before.get("splits", {})) | set(after.get("splits", {}))):
        a = before.get("splits", {}).get(split, {}).get("pass^1")
        b = after.get("splits", {}).get(split, {}).get("pass^1")
        caps.append({"capability": f"split:{split}", "before": a, "after": b,
                     "delta": None if a is None or b is None else round(b - a, 4)})
    old = {s["id"]: s for s in before["scenarios"]}
    new = {s["id"]: s for s in after["scenarios"]}
    scenarios = []
    for sid in sorted(set(old) | set(new)):
        a, b = old.get(sid), new.get(sid)
        if a is None or b is None:
            scenarios.append({"id": sid, "change": "added" if a is None else "removed"})
            continue
        if rate(b) < rate(a) - tolerance:
            why = b["failures"][0]["why"] if b["failures"] else ""
            scenarios.append({"id": sid, "change": "regressed", "before": f"{a['successes']}/{a['trials']}",
                              "after": f"{b['successes']}/{b['trials']}", "why": why})
        elif rate(b) > rate(a) + tolerance:
            scenarios.append({"id": sid, "change": "improved", "before": f"{a['successes']}/{a['trials']}",
                              "after": f"{b['successes']}/{b['trials']}"})
    regressions = [c for c in caps if c["delta"] is not None and c["delta"] < -tolerance]
    regressions += [s for s in scenarios if s["change"] == "regressed"]
    return {"capabilities": caps, "scenarios": scenarios, "regressions": regressions}


def below_floor(report: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Capabilities (and whole splits, as "all") whose pass^1 is under the floor in evals/baseline.json:
    `floors` are the core split's, `splits.<name>.floors` another split's."""
    out = []
    wanted = {"core": baseline.get("floors", {}), **{name: spec.get("floors", {})
                                                    for name, spec in baseline.get("splits", {}).items()}}
    for split, floors in wanted.items():
        got_split = report.get("splits", {}).get(split)
        if got_split is None:
            continue  # this run did not include the split
        for capability, floor in floors.items():
            got = got_split.get("pass^1") if capability == "all" else \
                got_split["capabilities"].get(capability, {}).get("pass^1")
            if got is None or got < floor:
                out.append(f"{'' if split == 'core' else split + '/'}{capability}: pass^1 {got} < floor {floor}")
    return out
