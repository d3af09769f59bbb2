"""The scenario catalogue: one module per credential bug, each injected into the real systems."""

from __future__ import annotations

from sandbox.commands.compare import Known
from sandbox.errors import SandboxError
from sandbox.scenarios.base import Scenario, connections_of
from sandbox.scenarios.connection_code import ExtraSentAsHeader, TokenExpiresMidTask
from sandbox.scenarios.container_issuer import ContainerVsHostIssuer
from sandbox.scenarios.cross_environment import CrossEnvironment
from sandbox.scenarios.expired_token import ExpiredToken
from sandbox.scenarios.gateway_limits import QuotaExhausted, RateLimited, StaleQuotaAfterReseed
from sandbox.scenarios.header_style import BasicAuthClobbersBearer, NetrcOverride
from sandbox.scenarios.inbound import (
    AirflowTokenOutlivesIdpToken,
    ExchangeWithoutOpenid,
    FederationNotAllowlisted,
    InboundWrongDag,
    LightweightAccessToken,
    M2mWrongClient,
)
from sandbox.scenarios.issuer_mismatch import IssuerMismatch
from sandbox.scenarios.jwks import PlainJwksUrl, RotationWithoutGrace, SigningKeyRotation, SplitGatewayCache
from sandbox.scenarios.missing_scope import MissingScope
from sandbox.scenarios.rotated_secret import RotatedSecret
from sandbox.scenarios.task_pods import TaskPodMissingConfig
from sandbox.scenarios.triggerer import DeferrableDropsAuth, TriggererImport
from sandbox.scenarios.vault import KvVersionMismatch, VaultSealed, VaultSilentFallback, VaultTokenExpired
from sandbox.scenarios.worker_env import ClockSkew, EnvShadowedConnection, ProxyEnv
from sandbox.scenarios.wrong_audience import WrongAudience
from sandbox.spec import Spec

CATALOGUE: dict[str, Scenario] = {s.name: s for s in (
    ExpiredToken(), RotatedSecret(), SigningKeyRotation(), IssuerMismatch(), WrongAudience(), MissingScope(),
    CrossEnvironment(), RateLimited(), QuotaExhausted(), BasicAuthClobbersBearer(), NetrcOverride(), PlainJwksUrl(),
    EnvShadowedConnection(), ProxyEnv(), ClockSkew(), ContainerVsHostIssuer(), TokenExpiresMidTask(),
    ExtraSentAsHeader(), DeferrableDropsAuth(), StaleQuotaAfterReseed(), TriggererImport(), VaultSealed(),
    VaultTokenExpired(), RotationWithoutGrace(), VaultSilentFallback(), KvVersionMismatch(), TaskPodMissingConfig(),
    SplitGatewayCache(), InboundWrongDag(), LightweightAccessToken(), FederationNotAllowlisted(),
    AirflowTokenOutlivesIdpToken(), M2mWrongClient(), ExchangeWithoutOpenid())}


def known_differences(spec: Spec) -> list[Known]:
    """What `compare` knows of the scenarios that declare the snapshot facts their fault changes; doctor's words for
    each as it says them on every connection of `spec` (some name the connection)."""
    out = []
    conns = [c.conn_id for c in connections_of(spec)]
    for sc in CATALOGUE.values():
        if not sc.differs:
            continue
        words = []
        for conn in conns:
            try:
                words.append(sc.on(spec, conn).doctor_says)
            except (SandboxError, AttributeError):  # words that need more than the connection: said unbound
                continue
        try:
            words = words or [sc.doctor_says]
        except AttributeError:  # words of a connection, and the spec has none: nothing to name it by
            continue
        out.append(Known(sc.name, sc.differs, sc.cause, sc.fix, tuple(dict.fromkeys(words))))
    return out
