"""The scenario catalogue: one module per credential bug, each injected into the real systems."""

from __future__ import annotations

from sandbox.scenarios.base import Scenario
from sandbox.scenarios.cross_environment import CrossEnvironment
from sandbox.scenarios.issuer_mismatch import IssuerMismatch
from sandbox.scenarios.missing_scope import MissingScope
from sandbox.scenarios.quota_exhausted import QuotaExhausted
from sandbox.scenarios.rotated_secret import RotatedSecret
from sandbox.scenarios.wrong_audience import WrongAudience

CATALOGUE: dict[str, Scenario] = {s.name: s for s in (RotatedSecret(), MissingScope(), WrongAudience(),
                                                      CrossEnvironment(), IssuerMismatch(), QuotaExhausted())}
