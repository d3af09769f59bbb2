"""Why a component's process exited, from the last lines of its log: the error line that says it, and the fix.

A log ends with whatever the component's other processes wrote after the crash (Airflow's scheduler keeps
logging its shutdown), so the last lines alone rarely say why: the cause is the last line that reads as an
error — a Python exception line first, then a line logged at error level.
"""

from __future__ import annotations

import re

# `ValueError: …`, `airflow.exceptions.AirflowConfigException: …`, `TriggerNotBuilt: …` (no logger names such as
# "uvicorn.error", which carry no colon after them)
EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b: \S")
# what a process raises because another one is stopping (a pipe to it closed): a consequence, never the cause
SHUTDOWN = re.compile(r"\b(BrokenPipeError|ConnectionResetError|ConnectionAbortedError|IncompleteReadError|"
                      r"CancelledError|KeyboardInterrupt|SystemExit)\b")
ERROR_LEVEL = re.compile(r"\[(?:error|critical)\s*\]|\b(?:ERROR|CRITICAL|FATAL)\b")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GENERIC_FIX = "correct what the line names if it is the cause, then `sandbox up` again (it restarts only what is down)"


def cause(lines: list[str]) -> str | None:
    """The line of `lines` (oldest first) that best says why a process ended, or None."""
    clean = [line for line in (ANSI.sub("", raw).strip() for raw in lines) if not SHUTDOWN.search(line)]
    for pattern in (EXCEPTION_LINE, ERROR_LEVEL):
        found = next((line for line in reversed(clean) if pattern.search(line)), None)
        if found:
            return found[:400]
    return None


def fix_for(line: str, fixes: tuple[tuple[str, str], ...]) -> str:
    """The component's fix for the first of its known fragments in `line`, else the generic one."""
    return next((fix for fragment, fix in fixes if fragment.lower() in line.lower()), GENERIC_FIX)
