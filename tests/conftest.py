"""Shared test helpers: the reference vectors, frame surgery, Hypothesis profiles."""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings

from vistrit.credentials import Credentials

DATA = Path(__file__).parent / "data"

# "default" keeps the suite fast; "long" is the documented long fuzz run:
#   VISTRIT_HYPOTHESIS=long pytest tests/test_fuzz.py
settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("VISTRIT_HYPOTHESIS", "default"))

# Every node the tests start, in this process or as a subprocess, finds the cluster's
# secret in this file (never in the user's ~/.vistrit): one fresh token per test run.
_TOKENS = Path(tempfile.mkdtemp(prefix="vistrit-tests-"))
TOKEN_FILE = _TOKENS / "token"
os.environ["VISTRIT_TOKEN_FILE"] = str(TOKEN_FILE)
atexit.register(shutil.rmtree, _TOKENS, True)
Credentials.create(TOKEN_FILE)


@dataclass(frozen=True)
class Vector:
    """One frame captured from the reference implementation (tests/data/v1-frames.txt)."""

    direction: str
    type_byte: int
    name: str
    connection: str
    frame: bytes

    @property
    def label(self) -> str:
        return f"{self.name}-{self.connection}"


def load_vectors() -> list[Vector]:
    vectors = []
    for line in (DATA / "v1-frames.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        direction, type_byte, name, connection, frame = line.split()
        vectors.append(
            Vector(direction, int(type_byte, 16), name, connection, bytes.fromhex(frame))
        )
    return vectors


VECTORS = load_vectors()
# The reference CLI once sent a WorkerListRequest payload under the ClusterStatusRequest type
# byte; the reference coordinator ignored the type byte. Vistrit refuses such a frame.
MISMATCHED = [v for v in VECTORS if v.connection == "conn32" and v.name == "ClusterStatusRequest"]
CONSISTENT = [v for v in VECTORS if v not in MISMATCHED]


def vector(name: str, connection: str | None = None) -> bytes:
    """The frame of the first vector with this message name (and connection)."""
    for v in VECTORS:
        if v.name == name and (connection is None or v.connection == connection):
            return v.frame
    raise KeyError(name)


def reframe(payload: bytes, type_byte: int, version: int = 1) -> bytes:
    """A frame with a correct header and checksum around any payload bytes."""
    body = struct.pack(">BBI", version, type_byte, len(payload)) + payload
    return b"VIST" + body + struct.pack(">I", zlib.crc32(body))


def payload_of(frame: bytes) -> bytes:
    return frame[10:-4]


import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[object]:
    """A coordinator on a free port (workers and clients added by the test), then a check
    that stopping everything left no thread behind."""
    import dataclasses

    from nodes import GATES, Cluster

    from vistrit.coordinator import Coordinator
    from vistrit.defaults import Limits, Policy

    # A module may set CLUSTER_OPTIONS (the interop tests admit unauthenticated peers).
    options = {**getattr(request.module, "CLUSTER_OPTIONS", {}), **getattr(request, "param", {})}
    names = {f.name for f in dataclasses.fields(Policy)}
    policy = Policy(**{k: options.pop(k) for k in list(options) if k in names})
    names = {f.name for f in dataclasses.fields(Limits)}
    options["limits"] = Limits(**{k: options.pop(k) for k in list(options) if k in names})
    before = set(threading.enumerate())
    coordinator = Coordinator(("127.0.0.1", 0), policy=policy, **options)
    coordinator.start()
    running = Cluster(coordinator)
    try:
        yield running
    finally:
        for event in GATES.values():
            event.set()
        running.stop()
        GATES.clear()
        leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        for thread in leftover:
            thread.join(5)
        assert not [t for t in leftover if t.is_alive()], f"threads left behind: {leftover}"
