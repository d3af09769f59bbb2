"""The benchmark tables of docs/benchmarks.md, made from bench/results/*.json: no figure in them is typed by hand.

    python tools/bench_tables.py           # rewrite each table between its <!-- bench:NAME --> markers
    python tools/bench_tables.py --check   # exit 1 when a table differs from what its results say (a unit test runs it)

A table is declared below: the results file it reads and, per row, a label and the figure(s) as a format over the
file's values (dotted paths in braces: `{up.local.apply_s}`).
"""

from __future__ import annotations

import json
import re
import string
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"

RUNTIMES = ("local", "docker", "kubernetes")


def _per_runtime(fmt: str) -> list[str]:
    return [fmt.replace("{rt}", rt) for rt in RUNTIMES]


# name -> (results file, header, rows: (label, format per column))
TABLES: dict[str, tuple[str, tuple[str, ...], list[tuple[str, list[str]]]]] = {
    "runtimes": ("runtimes.json", ("measure", *RUNTIMES), [
        ("`sandbox up` (start, apply, smoke), fresh home", _per_runtime("{up.{rt}.up_wall_s} s")),
        ("apply", _per_runtime("{up.{rt}.apply_s} s")),
        ("smoke (4 connections, 2 DAG runs)", _per_runtime("{up.{rt}.smoke_s} s")),
        ("a smoke task, queued → running (p50)", _per_runtime("{up.{rt}.task_wait_s} s")),
        ("that wait's share of the smoke", _per_runtime("{up.{rt}.pod_share_of_smoke:%} %")),
        ("Keycloak / Airflow healthy after",
         _per_runtime("{up.{rt}.components_s.keycloak} / {up.{rt}.components_s.airflow} s")),
    ]),
    "connection": ("connection.json", ("measure", "result"), [
        ("first lookup in a task process: a fresh token from Keycloak",
         ["{fresh_token_ms.p50} ms p50 (max {fresh_token_ms.max} ms)"]),
        ("later lookups: the process's cached token (target ≤ {cached_p50_target_ms} ms)",
         ["{cached_ms.p50} ms p50 (p95 {cached_ms.p95} ms, {cached_ms.lookups} lookups)"]),
        ("an unmanaged connection (Airflow's own chain)", ["{unmanaged_ms.p50} ms p50 (p95 {unmanaged_ms.p95} ms)"]),
    ]),
    "inbound": ("inbound.json", ("measure", "result"), [
        ("through the gateway, the caller's Keycloak token",
         ["{through_gateway_ms.p50} ms p50 (p95 {through_gateway_ms.p95} ms, {runs} triggers)"]),
        ("Airflow's API directly, a cached Airflow token",
         ["{direct_cached_token_ms.p50} ms p50 (p95 {direct_cached_token_ms.p95} ms)"]),
        ("the gateway's share (p50 difference)", ["{gateway_share_p50_ms} ms"]),
        ("the exchange (Airflow's `/auth/token`, jwt-bearer), once per token",
         ["{exchange_ms.p50} ms p50 (max {exchange_ms.max} ms); a token's first call through the gateway "
          "{first_call_through_gateway_ms} ms"]),
    ]),
    "snapshot": ("snapshot.json", ("measure", "result"), [
        ("`sandbox snapshot FILE` (target ≤ {target_s.snapshot} s)",
         ["{seconds.snapshot.p50} s p50 (max {seconds.snapshot.max} s, {repeat} runs)"]),
        ("`sandbox compare A B`, two files (target ≤ {target_s.compare_files} s)",
         ["{seconds.compare_files.p50} s p50 (max {seconds.compare_files.max} s)"]),
        ("`sandbox compare A`, against the sandbox now (a snapshot on the way)",
         ["{seconds.compare_now.p50} s p50 (max {seconds.compare_now.max} s)"]),
    ]),
    "tyk_build": ("tyk_build.json", ("measure", "result"), [
        ("cold build (empty Go caches)", ["{cold_build_s} s"]),
        ("rebuild with Go's caches warm", ["{warm_build_s} s"]),
        ("gateway binary (`CGO_ENABLED=0`, stripped)", ["{binary_mib} MiB"]),
    ]),
    "vault": ("vault.json", ("measure", "result"), [
        ("first `sandbox up` of the vault (start, initialisation, mounts, policy, Airflow's token)",
         ["{first_up_s.p50} s p50"]),
        ("`sandbox up` after `down` (auto-unsealed)", ["{restart_up_s.p50} s p50"]),
        ("a read of a client secret with Airflow's token",
         ["{airflow_read_ms.p50} ms p50 (p95 {airflow_read_ms.p95} ms, {airflow_read_ms.n} reads)"]),
    ]),
    "startup": ("startup.json", ("measure", "result"), [
        ("`sandbox up --no-apply`, command to every component healthy", ["{sandbox_up_no_apply_wall_s} s p50"]),
        ("`airflow standalone`, command to healthy", ["{airflow_standalone_wall_s} s p50"]),
        ("ratio, pair by pair ({pairs} pairs; target ≤ {target_ratio}×)", ["**{ratio_wall_p50}×**"]),
        ("CPU-s in all, sandbox / `airflow standalone`", ["{sandbox_cpu_total_s} / {airflow_standalone_cpu_s}"]),
    ]),
    "stack": ("stack.json", ("measure", "result"), [
        ("solo start-to-healthy: Keycloak / Airflow / Tyk / Redis / upstream / OpenBao",
         ["{solo_start_s.keycloak} / {solo_start_s.airflow} / {solo_start_s.tyk} / {solo_start_s.redis} / "
          "{solo_start_s.upstream} / {solo_start_s.openbao} s"]),
        ("parallel `sandbox up`, all of them", ["{parallel_up_s} s = {parallel_vs_slowest_solo}× the slowest solo"]),
        ("warm `sandbox up` (all running)", ["{warm_up_s} s"]),
        ("`sandbox down` (whole command)", ["{down_s} s"]),
        ("the stack's memory (RSS, all components)", ["{total_rss_mib} MiB"]),
    ]),
    "apply": ("apply.json", ("measure", "result"), [
        ("fresh apply ({plan_objects_total} objects, {applied_changes} changes)", ["{fresh_apply_s} s"]),
        ("apply with nothing to change", ["{noop_apply_s} s (the whole command {noop_apply_cli_wall_s} s)"]),
        ("the pytest fixture attaching to a running sandbox", ["{attach_fixture_setup_s} s"]),
    ]),
    "smoke": ("smoke.json", ("measure", "result"), [
        ("first smoke ({connections} connections)", ["{first_smoke_s} s"]),
        ("a later smoke", ["{smoke_s} s (of which the calls {calls_s} s)"]),
    ]),
    "gateway": ("gateway.json", ("measure", "result"), [
        ("through the gateway ({calls} calls)", ["{gateway.p50_ms} ms p50 (p99 {gateway.p99_ms} ms)"]),
        ("directly", ["{direct.p50_ms} ms p50 (p99 {direct.p99_ms} ms)"]),
        ("what the gateway adds", ["{added_p50_ms} ms p50 (p99 {added_p99_ms} ms)"]),
    ]),
    "page": ("ui.json", ("measure", "result"), [
        ("the page's first paint (target ≤ {first_paint_s.target} s)",
         ["**{first_paint_s.p50} s p50** (max {first_paint_s.max} s)"]),
        ("the page showing every connection", ["{first_data_s.p50} s p50 (max {first_data_s.max} s)"]),
        ("a state change to the page showing it (target ≤ {state_change_to_page_s.target} s)",
         ["**{state_change_to_page_s.p50} s p50** (max {state_change_to_page_s.max} s)"]),
    ]),
    "map": ("map.json", ("format", "`sandbox map`, whole command"), [
        (fmt, [f"{{map_s.{fmt}.p50}} s p50 (max {{map_s.{fmt}.max}} s; target ≤ {{target_s}} s)"])
        for fmt in ("md", "json", "csv", "svg")
    ]),
    "rotation": ("rotation.json", ("measure", "result"), [
        ("`sandbox rotate` ({client_secrets} client secrets)",
         ["{secrets_s.p50} s p50, of which the work {secrets_s.work_p50} s"]),
        ("`sandbox rotate --signing-key` ({realms} realms)",
         ["{signing_keys_s.p50} s p50, of which the work {signing_keys_s.work_p50} s"]),
        ("the whole drill", ["{drill_s} s"]),
    ]),
}


def _value(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data


class _Figures(string.Formatter):
    """`{a.b.c}` is a dotted path into the results; `:%` shows a share as a percentage."""

    def __init__(self, data: dict):
        self.data = data

    def get_field(self, field_name, args, kwargs):
        return _value(self.data, field_name), field_name

    def format_field(self, value, format_spec):
        if format_spec == "%":
            return f"{round(value * 100)}"
        if isinstance(value, float):
            return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}"
        return format(value, format_spec)


def render(name: str) -> str:
    file, header, rows = TABLES[name]
    data = json.loads((RESULTS / file).read_text())
    fmt = _Figures(data)
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for label, cells in rows:
        lines.append(f"| {fmt.format(label)} | {' | '.join(fmt.format(c) for c in cells)} |")
    when = f" ({data['date']})" if "date" in data else ""
    lines.append(f"\n<sub>`bench/results/{file}`{when}</sub>")
    return "\n".join(lines)


def rewrite(text: str) -> str:
    def one(m: re.Match) -> str:
        return f"<!-- bench:{m.group(1)} -->\n{render(m.group(1))}\n<!-- /bench:{m.group(1)} -->"
    return re.sub(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->", one, text, flags=re.S)


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = rewrite(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC.relative_to(ROOT)} differs from bench/results: run `python tools/bench_tables.py`")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
