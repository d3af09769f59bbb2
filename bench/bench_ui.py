"""The sandbox's page: first paint, first data, and how soon a state change reaches it.

    python bench/bench_ui.py [--loads 10] [--changes 10]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME; every component, the bundled spec, with its smoke), opens
the page in Debian's headless Chromium (Selenium) `--loads` times with a fresh browser profile each time, and
reads the browser's own first-contentful-paint and the time until every connection is on the page. Then, with
the page open, it writes a new smoke verdict `--changes` times (what a smoke does when it ends) and times the
moment the page shows it. Targets: first paint ≤ 1 s; a state change on the page ≤ 2 s. Writes
bench/results/ui.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "ui.json"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1000"):
        opts.add_argument(arg)
    opts.binary_location = shutil.which("chromium")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def rows_shown(d) -> int:
    return d.execute_script("return document.querySelectorAll('#connections tbody tr').length")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--changes", type=int, default=10)
    args = ap.parse_args()
    paint, data, change = [], [], []
    with own_sandbox("ui") as env:
        cli(env, "up")
        _, p = cli(env, "ui", "--url")
        link = p.stdout.strip()
        for _ in range(args.loads):
            d = browser()
            try:
                t0 = time.monotonic()
                d.get(link)
                while rows_shown(d) < 4:
                    time.sleep(0.02)
                data.append(time.monotonic() - t0)
                fcp, until = None, time.monotonic() + 5
                while fcp is None and time.monotonic() < until:  # recorded a moment after the paint
                    fcp = d.execute_script(
                        "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e && e.startTime")
                    time.sleep(0.02)
                paint.append(fcp / 1000)
            finally:
                d.quit()
        d = browser()
        try:
            d.get(link)
            while rows_shown(d) < 4:
                time.sleep(0.02)
            verdicts = Path(env["SANDBOX_HOME"]) / "smoke-verdicts.json"
            for n in range(args.changes):
                marker = f"bench change {n}"
                now = json.loads(verdicts.read_text())
                now["tyk_dev_billing"] = {"ok": False, "verdict": marker, "at": time.time()}
                tmp = verdicts.with_suffix(".tmp")
                tmp.write_text(json.dumps(now))
                t0 = time.monotonic()
                os.replace(tmp, verdicts)  # what a smoke's end does: the file's new verdicts
                while marker not in d.execute_script(
                        "return document.querySelector(\"#connections tr[data-connection='tyk_dev_billing']\")"
                        "?.innerText || ''"):
                    time.sleep(0.01)
                change.append(time.monotonic() - t0)
                time.sleep(0.5)
        finally:
            d.quit()
        cli(env, "smoke")  # the verdicts as they really are, before the sandbox goes
    med = lambda xs: round(statistics.median(xs), 3)  # noqa: E731
    save(OUT, {"loads": args.loads, "changes": args.changes,
               "first_paint_s": {"p50": med(paint), "max": round(max(paint), 3), "target": 1.0},
               "first_data_s": {"p50": med(data), "max": round(max(data), 3)},
               "state_change_to_page_s": {"p50": med(change), "max": round(max(change), 3), "target": 2.0}})


if __name__ == "__main__":
    main()
