"""The trust map written out: Markdown a reviewer pastes into a control document, CSV for tools, and an SVG picture
(one column per hop, DAG -> connection -> client -> policy -> API -> upstream, each path coloured by its state).
Plain functions of a TrustMap; the SVG's layout is deterministic (same map, same bytes)."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from sandbox.commands.render import age
from sandbox.commands.trust_map import Edge, TrustMap

COLOURS = {"ok": "#2e7d32", "failing": "#c62828", "drift": "#ef6c00", "unchecked": "#757575", "no grant": "#c62828"}
COLUMNS = ("DAG (audit)", "connection", "client @ realm", "policy", "API", "upstream")
FIELDS = ("state", "DAGs seen calling", "connection", "account", "scopes", "policy", "API", "upstream",
          "token lifespan", "secret", "last smoke", "drift from the spec")


def _age(seconds: int | None) -> str:
    return "age unknown" if seconds is None else f"{age(seconds)} old"  # as `status --credentials` writes an age


def _dags(e: Edge) -> str:
    return ", ".join(f"{d['dag']} ({d['calls']} calls{_unverified(d)}, last {d['last_seen']})" for d in e.dags) or "-"


def _unverified(d: dict) -> str:
    """Calls whose X-Airflow-* headers no task instance of Airflow's explains (audit.explained)."""
    return f", {d['unverified']} unverified" if d.get("unverified") else ""


def row(e: Edge) -> dict[str, str]:
    """One edge as the table's cells (Markdown and CSV share them)."""
    return {
        "state": e.state,
        "DAGs seen calling": _dags(e),
        "connection": e.connection or "-",
        "account": f"{e.account} (client {e.client}, realm {e.realm})",
        "scopes": " ".join(e.scopes) or "-",
        "policy": f"{e.policy} ({e.rate}, quota {e.quota})" if e.policy else "none: the gateway refuses",
        "API": f"{e.api} {e.route} (issuer {e.issuer}, audience {e.audience}, JWKS {e.jwks})",
        "upstream": e.upstream,
        "token lifespan": f"{e.token_lifespan_s} s",
        "secret": f"{'; '.join(e.secret_lives_in)} ({_age(e.secret_age_s)})",
        "last smoke": f"{e.smoke}" + (f" ({e.smoke_at})" if e.smoke_at else ""),
        "drift from the spec": "; ".join(e.drift) or "none",
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(m: TrustMap) -> str:
    rows = [row(e) for e in m.edges]
    head = list(FIELDS)
    lines = [f"# Trust map of `{m.spec}`", "",
             f"Generated {m.generated_at} by `sandbox map`, from the spec and checked against the live systems. Each "
             "row is a trust edge: which DAGs call through which connection, as which service account (an OAuth "
             "client of the environment's realm, client-credentials grant), with which scopes, let through by which "
             "gateway policy at what rate and quota, to which API and upstream; where the account's secret lives "
             "and how old it is; and the evidence that it is so.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(r[k]) for k in head) + " |" for r in rows]
    lines += ["", "## Evidence", ""] + [f"- **{k}**: {v}" for k, v in m.checked.items()]
    drifted = [e for e in m.edges if e.drift]
    if drifted:
        lines += ["", "## Drift from the spec", ""]
        lines += [f"- {e.env}/{e.account} → {e.service}: {'; '.join(e.drift)}" for e in drifted]
    return "\n".join(lines) + "\n"


TERMINAL_COLUMNS = ("env", "account → service", "connection", "scopes", "rate", "state", "secret", "DAGs seen")


def terminal_rows(m: TrustMap) -> list[list[str]]:
    """The map for a terminal, one short row an edge (the whole of each edge is in -o md, json and csv)."""
    return [[e.env, f"{e.account} → {e.service}", e.connection or "-", "\n".join(e.scopes) or "-",
             e.rate if e.policy else "-", e.state + (" (drift)" if e.drift and e.state != "drift" else ""),
             age(e.secret_age_s), "\n".join(d["dag"] for d in e.dags) or "-"] for e in m.edges]


def to_csv(m: TrustMap) -> str:
    buf = io.StringIO()
    rows = [row(e) for e in m.edges]
    w = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ---- the picture -----------------------------------------------------------------------------------------------------
BOX_W, BOX_H, GAP_X, GAP_Y, TOP, LEFT = 230, 60, 50, 16, 70, 20


def _nodes(e: Edge) -> list[tuple[int, str, str]]:
    """(column, key, label lines joined by newline) of each hop of one edge, left to right."""
    out = [(0, f"dag:{d['dag']}", f"{d['dag']}\n{d['calls']} call(s){_unverified(d)}, last {d['last_seen'][11:19]} UTC")
           for d in e.dags]
    if e.connection:
        out.append((1, f"conn:{e.connection}", f"{e.connection}\nsmoke: {e.smoke.split(':')[0]}"))
    out.append((2, f"client:{e.env}/{e.account}", f"{e.account} @ {e.realm}\nsecret {_age(e.secret_age_s)}"))
    if e.policy:
        out.append((3, f"policy:{e.policy}", f"{e.policy}\n{e.rate}, quota {e.quota}\n{' '.join(e.scopes)}"))
    out.append((4, f"api:{e.api}", f"{e.api} {e.route}\naud {e.audience}\niss {e.issuer}"))
    if e.direction == "in":  # a caller into Airflow: what its grant reaches there, one box per caller
        out.append((5, f"into:{e.env}/{e.account}", "into Airflow\n" + "\n".join(e.reaches[:3])))
        return out
    up = urlsplit(e.upstream)
    out.append((5, f"up:{e.upstream}", f"{up.netloc}\n{up.path or '/'}"))
    return out


def svg(m: TrustMap) -> str:
    placed: dict[str, tuple[int, int, str]] = {}  # key -> column, row, label
    per_column = [0] * len(COLUMNS)
    paths: list[tuple[str, str, Edge, bool]] = []
    for e in m.edges:
        hops = _nodes(e)
        for col, key, label in hops:
            if key not in placed:
                placed[key] = (col, per_column[col], label)
                per_column[col] += 1
        dags = [k for c, k, _ in hops if c == 0]
        rest = [k for c, k, _ in hops if c > 0]
        for d in dags:
            paths.append((d, rest[0], e, False))
        paths += [(a, b, e, e.policy is None and placed[b][0] == 4) for a, b in zip(rest, rest[1:], strict=False)]
    width = LEFT * 2 + len(COLUMNS) * BOX_W + (len(COLUMNS) - 1) * GAP_X
    height = TOP + max(per_column + [1]) * (BOX_H + GAP_Y) + 60
    root = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(width), height=str(height),
                      viewBox=f"0 0 {width} {height}", role="img", **{"font-family": "sans-serif", "font-size": "11"})
    ET.SubElement(root, "title").text = f"Trust map of {m.spec}"
    ET.SubElement(root, "rect", width=str(width), height=str(height), fill="#ffffff")
    head = ET.SubElement(root, "text", x=str(LEFT), y="22", **{"font-size": "15", "font-weight": "bold"})
    head.text = f"Trust map of {m.spec} — {m.generated_at}"

    def x_of(col: int) -> int:
        return LEFT + col * (BOX_W + GAP_X)

    def y_of(r: int) -> int:
        return TOP + r * (BOX_H + GAP_Y)

    for col, name in enumerate(COLUMNS):
        t = ET.SubElement(root, "text", x=str(x_of(col)), y=str(TOP - 14), **{"font-weight": "bold"})
        t.text = name
    for a, b, e, dashed in paths:
        (ca, ra, _), (cb, rb, _) = placed[a], placed[b]
        x1, y1, x2, y2 = x_of(ca) + BOX_W, y_of(ra) + BOX_H // 2, x_of(cb), y_of(rb) + BOX_H // 2
        mid = (x1 + x2) // 2
        p = ET.SubElement(root, "path", d=f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}", fill="none",
                          stroke=COLOURS[e.state], **{"stroke-width": "2", "data-state": e.state,
                                                      "data-connection": e.connection or ""})
        if dashed:
            p.set("stroke-dasharray", "6 4")
        ET.SubElement(p, "title").text = f"{e.env}/{e.account} → {e.service}: {e.state}" + (
            f" ({'; '.join(e.drift)})" if e.drift else f" (smoke: {e.smoke})" if e.connection else "")
    for key, (col, r, label) in sorted(placed.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        g = ET.SubElement(root, "g", **{"data-node": key})
        ET.SubElement(g, "rect", x=str(x_of(col)), y=str(y_of(r)), width=str(BOX_W), height=str(BOX_H), rx="6",
                      fill="#f5f7fa", stroke="#90a4ae")
        for i, line in enumerate(label.split("\n")):
            t = ET.SubElement(g, "text", x=str(x_of(col) + 8), y=str(y_of(r) + 17 + i * 15))
            t.text = line if len(line) <= 36 else line[:35] + "…"
            if len(line) > 36:
                ET.SubElement(t, "title").text = line
            if i == 0:
                t.set("font-weight", "bold")
    legend_y = height - 22
    for i, (state, colour) in enumerate(COLOURS.items()):
        ET.SubElement(root, "line", x1=str(LEFT + i * 120), y1=str(legend_y), x2=str(LEFT + i * 120 + 24),
                      y2=str(legend_y), stroke=colour, **{"stroke-width": "3"})
        t = ET.SubElement(root, "text", x=str(LEFT + i * 120 + 30), y=str(legend_y + 4))
        t.text = state
    return ET.tostring(root, encoding="unicode") + "\n"
