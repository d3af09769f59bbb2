"""The benchmark tables of docs/benchmarks.md are what bench/results/*.json say: none is typed by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "tools" / "bench_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_table_in_the_benchmarks_page_is_made_from_its_results_file():
    tool = _tool()
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert tool.rewrite(text) == text, "docs/benchmarks.md differs from bench/results: run python tools/bench_tables.py"
    for name in tool.TABLES:  # each declared table is on the page
        assert f"<!-- bench:{name} -->" in text, name


def test_a_table_shows_the_figures_of_its_file():
    table = _tool().render("gateway")
    assert "| what the gateway adds | 0.62 ms p50 (p99 1.2 ms) |" in table
