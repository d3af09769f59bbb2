"""The sandbox's state file: which runtime, which ports, which processes belong to which component."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.host.credentials import write_private
from sandbox.host.supervisor import ProcessRecord  # noqa: F401 (the state file's records)

STATE_VERSION = 1


@dataclass
class State:
    runtime: str = "local"
    ports: dict[str, int] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    processes: dict[str, list[ProcessRecord]] = field(default_factory=dict)
    # components whose processes are being spawned: an `up` interrupted half-way leaves one here, and its
    # recorded processes, all alive, are then not the whole component
    starting: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # docker runtime: the image each component runs
    # docker runtime: the ID of that image when its containers were made (they are made from the ID, so a tag moved
    # by a rebuild or a pull in between is not what a restart runs unseen)
    image_ids: dict[str, str] = field(default_factory=dict)
    cluster: dict[str, str] = field(default_factory=dict)  # kubernetes runtime: its context and namespace

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, **asdict(self)}, indent=2)


def load(path: Path) -> State | None:
    """The state at `path` (SandboxPaths.state), or None when there is none yet."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
        return State(
            runtime=str(raw["runtime"]),
            ports={str(k): int(v) for k, v in raw["ports"].items()},
            disabled=[str(x) for x in raw.get("disabled", [])],
            processes={
                comp: [ProcessRecord(str(p["name"]), int(p["pid"]), float(p["create_time"]), list(p["cmd"]),
                                     dict(p.get("extra_env") or {}))
                       for p in procs]
                for comp, procs in raw["processes"].items()
            },
            starting=[str(x) for x in raw.get("starting", [])],
            images={str(k): str(v) for k, v in (raw.get("images") or {}).items()},
            image_ids={str(k): str(v) for k, v in (raw.get("image_ids") or {}).items()},
            cluster={str(k): str(v) for k, v in (raw.get("cluster") or {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SandboxError(
            f"The sandbox state file {path} is corrupt ({type(e).__name__}: {e}).",
            "run `sandbox down --force`: it stops every process of this sandbox without the state file "
            "and resets it.",
        ) from e


def save(path: Path, state: State) -> None:
    write_private(path, state.to_json())


def reset(path: Path) -> None:
    path.unlink(missing_ok=True)
