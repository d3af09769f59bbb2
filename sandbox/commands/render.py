"""Turning results into what a person or a script reads: tables, JSON, env lines. No logic beyond that."""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys
import threading
import time
from dataclasses import asdict, fields
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sandbox.host.credentials import mask
from sandbox.runtime.base import ComponentStatus

out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal and "COLUMNS" not in os.environ:
    out.width = 160  # piped output: keep URLs whole rather than fold them at 80 columns (COLUMNS says otherwise)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def cell(value: Any) -> Text:
    """A table cell of data (a name, a server's words, an audit tag): shown as it is, never read as markup."""
    return Text("" if value is None else str(value))


def e(value: Any) -> str:
    """Data inside a line that has markup of ours: escaped, so "[/x]" in it is text."""
    return escape("" if value is None else str(value))


def dump_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)))


class ProgressPrinter:
    """Progress lines on stderr, so `-o json` on stdout stays clean."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, component: str, message: str) -> None:
        with self.lock:
            err.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/] [bold cyan]{component:<9}[/] {e(message)}")


def status_dicts(rows: list[ComponentStatus], show_secrets: bool) -> list[dict]:
    """Each row as data: a masked secret is `null` with `masked: true` (a string of stars would read as a value);
    a component that is not running has no URL of its own (the default port may be another sandbox's)."""
    out_rows = []
    for r in rows:
        d = asdict(r)
        d["masked"] = bool(d["secret"]) and not show_secrets
        if d["masked"]:
            d["secret"] = None
        if r.state in ("stopped", "disabled"):
            d["url"], d["urls"], d["inner_url"], d["replicas"] = "", {}, "", {}
        out_rows.append(d)
    return out_rows


HEALTH = {True: "[green]✓ healthy[/]", False: "[red]✗ unhealthy[/]", None: "[dim]–[/]"}
STATE = {"running": "[green]running[/]", "crashed": "[red]crashed[/]", "stopped": "[dim]stopped[/]",
         "unsupervised": "[yellow]unsupervised[/]", "disabled": "[dim]disabled[/]"}


def status_table(rows: list[ComponentStatus], show_secrets: bool) -> None:
    runtime = rows[0].runtime if rows else ""
    t = Table(title=f"airflow-tyk-sandbox ({runtime} runtime)" if runtime else "airflow-tyk-sandbox",
              title_justify="left")
    for col in ("component", "state", "health", "url", "login"):
        t.add_column(col)
    for row, r in zip(rows, status_dicts(rows, show_secrets), strict=True):
        secret = mask(row.secret or "") if r["masked"] else r["secret"]
        login = f"{r['username']} / {secret}" if r["username"] and secret else (r["username"] or "")
        health = HEALTH[r["healthy"]] + (f" [dim]{e(r['detail'])}[/]" if r["healthy"] is False else "")
        if r["state"] in ("crashed", "unsupervised"):
            health = f"[{'red' if r['state'] == 'crashed' else 'yellow'}]{e(r['detail'])}[/]"
        t.add_row(cell(r["name"]), STATE.get(r["state"], e(r["state"])), health, cell(r["url"]), cell(login))
        for label, url in r["urls"].items():
            t.add_row("", "", "", f"[dim]{e(label)}:[/] {e(url)}", "")
    out.print(t)
    if not show_secrets:
        out.print("[dim]Secrets are masked; `sandbox status --show-secrets` shows them.[/]")


def status_env(rows: list[ComponentStatus], show_secrets: bool) -> None:
    for r in status_dicts(rows, show_secrets):
        key = "SANDBOX_" + r["name"].upper()
        print(f"{key}_STATE={r['state']}")
        print(f"{key}_URL={shlex.quote(r['url'])}")
        for port_name, port in r["ports"].items():
            print(f"SANDBOX_{port_name.upper().replace('-', '_')}_PORT={port}")
        if r["username"]:
            print(f"{key}_USERNAME={shlex.quote(r['username'])}")
        if r["secret"] and show_secrets:  # a masked value in an env file would only mislead a script
            print(f"{key}_SECRET={shlex.quote(r['secret'])}")


def age(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    d, h, m, s = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60, seconds % 60
    return f"{d}d {h}h" if d else f"{h}h {m}m" if h else f"{m}m {s}s" if m else f"{s}s"


def simple_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")  # a narrow terminal folds a long name, never cuts it
    for row in rows:
        t.add_row(*map(cell, row))
    out.print(t)


ACTION = {"create": "[green]+ create[/]", "update": "[yellow]~ update[/]", "delete": "[red]- delete[/]"}


def changes(report, applied: bool) -> None:
    """A plan or apply report: one row per change, then what was not compared and why."""
    if report.changes:
        t = Table(title=("applied" if applied else "plan") + f" ({report.seconds:.1f}s)", title_justify="left")
        for col in ("system", "action", "kind", "name", "detail"):
            t.add_column(col)
        for c in report.changes:
            t.add_row(cell(c.system), ACTION.get(c.action, e(c.action)), cell(c.kind), cell(c.name), cell(c.detail))
        out.print(t)
    else:
        out.print(f"No changes: the live systems match the spec ({report.seconds:.1f}s; "
                  + ", ".join(f"{n} {k}" for k, n in report.counts.items()) + ").")
    for system, why in report.skipped.items():
        out.print(f"[dim]{e(system)}: not compared ({e(why)}).[/]")


MARK = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]–[/]"}


def diagnoses(results) -> None:
    """One small table per connection, each ending with its one-sentence verdict."""
    for d in results:
        t = Table(title=e(d.connection), title_justify="left", show_header=False)
        t.add_column("hop")
        t.add_column("")
        t.add_column("detail")
        for h in d.hops:
            t.add_row(cell(h.name), MARK[h.ok], cell(h.detail))
        out.print(t)
        out.print(("[green]" if d.ok else "[red]") + e(d.verdict) + "[/]\n")


def comparison(c) -> None:
    """`sandbox compare`: the differences by hop, then each failing connection's explanation."""
    head = f"A ({c.a.get('runtime')}, {c.a.get('taken')}) against B ({c.b.get('runtime')}, {c.b.get('taken')})"
    if c.equal:
        out.print(f"[green]{e(head)}: no difference.[/]")
    else:
        simple_table(f"{head}: {len(c.differences)} differences", ["hop", "fact", "A", "B"],
                     [[d.hop, d.path, _fact(d.a), _fact(d.b)] for d in c.differences])
    for side, conn, why in c.failures():
        out.print(f"[red]{e(why.sentence)}[/]" if why else f"[yellow]{side}'s {e(conn)} fails, and no difference "
                  "the catalogue knows explains it: see its doctor verdict in the snapshot.[/]")


def comparison_md(c) -> str:
    lines = [f"# A ({c.a.get('runtime')}, {c.a.get('taken')}) against B ({c.b.get('runtime')}, {c.b.get('taken')})",
             ""]
    if c.equal:
        lines.append("No difference.")
    else:
        lines += ["| hop | fact | A | B |", "|---|---|---|---|"]
        lines += [f"| {d.hop} | `{d.path}` | {_cell_md(d.a)} | {_cell_md(d.b)} |" for d in c.differences]
    lines += [""] + [f"- {x.sentence}" for x in c.explained]
    return "\n".join(lines) + "\n"


def _cell_md(value: Any) -> str:
    return _fact(value).replace("|", "\\|").replace("\n", " ")


def _fact(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value) if not isinstance(value, str) else value


def call_result(r) -> None:
    """`sandbox call`: the status line, the gateway's refusal if any, the token's claims, then the answer."""
    colour = "green" if r.ok else "red"
    out.print(f"[bold]{e(r.method)} {e(r.url)}[/] → [{colour}]HTTP {r.status}[/] ({r.seconds * 1000:.0f} ms)")
    if r.gateway_error:
        out.print(f"[red]gateway: {e(r.gateway_error)}[/]")
    exp = r.claims.get("exp")
    left = f" (in {exp - time.time():.0f}s)" if isinstance(exp, int | float) else ""
    out.print(f"[dim]token: azp={e(r.claims.get('azp'))} scope={e(repr(r.claims.get('scope')))} exp={e(exp)}{left}[/]")
    if not r.gateway_error:
        print(json.dumps(r.body, indent=2) if not isinstance(r.body, str) else r.body)


def smoke(report) -> None:
    """One row per connection: ✓/✗ per hop, status, latency; under a failure its verdict and log lines."""
    t = Table(title=f"smoke ({report.seconds:.1f}s; the calls {report.calls_seconds * 1000:.0f} ms, the rest Airflow)",
              title_justify="left")
    for col in ("connection", "conn", "token", "gateway", "upstream", "status", "ms"):  # conn: it resolves
        t.add_column(col)
    for r in report.rows:
        marks = {h["name"]: MARK[h["ok"]] for h in r.hops}
        ms = sum(h.get("ms") or 0 for h in r.hops)
        t.add_row(cell(r.connection), marks.get("connection", ""), marks.get("token", ""), marks.get("gateway", ""),
                  marks.get("upstream", ""), str(r.status or "–"), f"{ms:.0f}")
    out.print(t)
    for r in report.rows:
        if r.ok:
            continue
        failed = next((h for h in r.hops if h["ok"] is False), None)
        why = f"{failed['name']} hop: {failed['detail']}" if failed else r.verdict
        out.print(f"[red]✗ {e(r.connection)}[/]: {e(why)}")
        for line in r.log:
            out.print(f"    [dim]{e(line)}[/]")
    out.print("[green]Every connection works end to end.[/]" if report.ok else
              f"[red]{sum(not r.ok for r in report.rows)} of {len(report.rows)} connections failed.[/] "
              "`sandbox doctor --connection <id>` walks one hop by hop.")


def audit(rows, tally) -> None:
    """One row a DAG, task, API, status; narrow enough for 100 columns (first seen and p95 are in -o json/csv)."""
    calls = sum(r.count for r in rows)
    t = Table(title=f"gateway calls by DAG: {calls} of the {tally.read} records read", title_justify="left")
    for col in ("dag", "task", "api", "status", "calls", "p50 ms", "last seen", "checked"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*map(cell, (r.dag, r.task, r.api, r.status, r.count, f"{r.p50_ms:g}", r.last_seen[11:19])),
                  "verified" if r.verified else "[red]unverified[/]")
    out.print(t)
    if tally.untagged or tally.filtered:
        outside = f", {tally.filtered} left out by the filters" if tally.filtered else ""
        out.print(f"[dim]Not in the table: {tally.untagged} call(s) without an X-Airflow-Dag-Id header (not a "
                  f"task's: `sandbox call`, curl, a script){outside}. Times are UTC.[/]", soft_wrap=False)
    if any(not r.verified for r in rows):
        out.print("[dim]unverified: no task instance of Airflow's was running with that DAG, task and run when the "
                  "call came — its X-Airflow-* headers were set by whoever called.[/]", soft_wrap=False)
    if not rows:
        out.print("[dim]No call tagged with X-Airflow-Dag-Id yet (`sandbox smoke` makes some).[/]")


def csv_rows(rows, row_type) -> None:
    """Dataclass rows as CSV with a header line (also when there are none), for spreadsheets and scripts."""
    writer = csv.writer(sys.stdout)
    writer.writerow([f.name for f in fields(row_type)])
    for r in rows:
        writer.writerow([csv_safe(v) for v in asdict(r).values()])


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (= + - @, tab, CR first) gets a leading quote."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def scenarios(catalogue) -> None:
    t = Table(title="scenario catalogue", title_justify="left")
    for col in ("scenario", "connection", "symptom", "cause", "fix"):
        t.add_column(col)
    for sc in catalogue:
        x = sc.expected
        t.add_row(*map(cell, (sc.name, sc.connection,
                              f"{x.hop} hop" + (f", HTTP {x.status}" if x.status else "") + f": {x.words}",
                              sc.cause, sc.fix)))
    out.print(t)


def repro_result(r) -> None:
    """Story, symptom (expected and seen), cause, fix, and whether it is green again."""
    mark = "[green]✓[/]" if r.ok else "[red]✗[/]"
    out.print(f"{mark} [bold]{e(r.scenario)}[/] on {e(r.connection)} ({r.seconds:.1f}s)")
    out.print(f"  story:    {e(r.story)}")
    x, o = r.expected, r.observed
    out.print("  expected: " + e(f"{x.hop} hop" + (f", HTTP {x.status}" if x.status else "") + f": {x.words}"))
    out.print("  seen:     " + e(f"{o.hop} hop" + (f", HTTP {o.status}" if o.status else "") + f": {o.words}"
                                   if o else "nothing failed"))
    out.print(f"  cause:    {e(r.cause)}")
    out.print(f"  fix:      {e(r.fix)}")
    out.print("  [yellow]kept in place: `sandbox doctor` names it; `sandbox repro revert` takes it out[/]" if r.kept
              else ("  reverted: green again" if r.green_after else "  [red]reverted, but not green again[/]"))
