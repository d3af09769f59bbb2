"""Every module of the package imports on its own, first, in a fresh interpreter: an import cycle that a lucky order
hides (the page's server imports one module first, a task process another) fails here, not in a running sandbox."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sandbox

MODULES = sorted(m.name for m in pkgutil.walk_packages(sandbox.__path__, "sandbox.")
                 if ".lib" not in m.name)  # Airflow's lib folder runs inside Airflow, on its own path


def test_every_module_imports_first_in_a_fresh_interpreter():
    program = "\n".join([
        "import importlib, sys",
        "failed = []",
        f"for name in {MODULES!r}:",
        "    for loaded in [m for m in sys.modules if m == 'sandbox' or m.startswith('sandbox.')]:",
        "        del sys.modules[loaded]",
        "    try:",
        "        importlib.import_module(name)",
        "    except Exception as e:",
        "        failed.append(f'{name}: {type(e).__name__}: {e}')",
        "print('\\n'.join(failed))",
    ])
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
    assert len(MODULES) > 60
