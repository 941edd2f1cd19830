"""Decide which listed files are new for the new-file sensor (pure: no Dagster, no warehouse).

A file's identity is (path, size, version tag). A file triggers a run once its identity has been seen
on two consecutive ticks (so a file still being written, whose size changes, waits), and never again
unless it changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from revrec_pipelines.lib.sources import RemoteFile


def identity(f: RemoteFile) -> str:
    return f"{f.path}|{f.size}|{f.version_tag}"


@dataclass
class WatchState:
    triggered: dict[str, str] = field(default_factory=dict)  # path → identity that triggered a run
    pending: dict[str, str] = field(default_factory=dict)  # path → identity seen once, waiting to be stable

    def to_json(self) -> str:
        return json.dumps({"triggered": self.triggered, "pending": self.pending}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> WatchState:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(dict(data.get("triggered", {})), dict(data.get("pending", {})))


@dataclass
class WatchDecision:
    ready: list[RemoteFile]
    waiting: list[RemoteFile]
    state: WatchState

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(identity(f) for f in self.ready)).encode()).hexdigest()
        return f"files-{digest[:20]}"


def decide(listed: list[RemoteFile], state: WatchState) -> WatchDecision:
    triggered = dict(state.triggered)
    pending: dict[str, str] = {}
    ready, waiting = [], []
    for f in listed:
        ident = identity(f)
        if triggered.get(f.path) == ident:
            continue
        if state.pending.get(f.path) == ident:
            ready.append(f)
            triggered[f.path] = ident
        else:
            pending[f.path] = ident
            waiting.append(f)
    return WatchDecision(ready, waiting, WatchState(triggered, pending))
