"""Helpers shared by tests: a missing server or tool fails in CI (REVREC_CI=1) and skips elsewhere."""

from __future__ import annotations

import os
import socket

import pytest

IN_CI = os.environ.get("REVREC_CI") == "1"


def require(condition: bool, what: str) -> None:
    """Skip locally when `what` is unavailable; fail in CI, where .ci/run installs everything."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI (REVREC_CI=1) but is not available", pytrace=False)
    pytest.skip(f"{what} is not available on this machine")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
