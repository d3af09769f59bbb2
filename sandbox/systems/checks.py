"""What a system's doctor checks give back: a hop of a walk, checked or not, and the verdict with its fix."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Hop:
    name: str
    ok: bool | None  # None: not checked
    detail: str


@dataclass
class Diagnosis:
    connection: str
    hops: list[Hop] = field(default_factory=list)
    verdict: str = ""

    @property
    def ok(self) -> bool:
        return all(h.ok is not False for h in self.hops)


Finding = tuple[str, str] | None  # (the hop's detail, the verdict with its fix)


Judged = tuple[Hop, str | None]  # the hop, and the verdict with its fix when it names a cause
