"""The seams inside a coordinator: what its cluster part and its peer links may use.

A coordinator of a cluster is three objects: the
:class:`~vistrit.coordinator.server.Coordinator` (the server, the core, the journal), its
:class:`~vistrit.coordinator.cluster.Cluster` (election and replication) and one
:class:`~vistrit.coordinator.peers.PeerLink` per peer. Each one reaches the one that owns
it only through a small interface declared here, as a ``typing.Protocol``:

* :class:`Host` - what the cluster needs of its coordinator;
* :class:`LinkOwner` - what a peer link needs of its cluster.

So no part reaches into another's private state, the imports go one way (server ->
cluster -> peers -> host), and a test can drive a cluster with a stand-in host.

Read next: :mod:`vistrit.coordinator.peers`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from vistrit.coordinator.core import Outbox
from vistrit.coordinator.syncing import Syncer
from vistrit.credentials import Credentials
from vistrit.leader import NodeAuth
from vistrit.protocol.types import NodeInfo
from vistrit.transport import TLSConfig


class Host(Protocol):
    """What the cluster needs of its coordinator, and nothing more."""

    name: str
    lock: threading.Lock
    data_dir: Path | None
    credentials: Credentials | None
    tls: TLSConfig | None
    syncer: Syncer | None  # with --fsync always: answers wait for its fsync too

    @property
    def info(self) -> NodeInfo:
        """The coordinator's NodeInfo (its id is its rank)."""
        ...

    def post(self, outbox: Outbox) -> None:
        """Queue each message of *outbox* on its addressee's connection."""
        ...

    def close_clients(self) -> None:
        """Close every worker's and client's connection (they find the leader again)."""
        ...

    def set_coordinators(self, count: int) -> None:
        """How many coordinators the cluster status reports (this one and those reached)."""
        ...

    def describe(self) -> str:
        """What the coordinator holds, for the log: ``"12 task(s) (3 pending)"``."""
        ...

    def live_records(self) -> list[bytes]:
        """Every record of what the coordinator remembers now, encoded (a snapshot)."""
        ...

    def replace_copy(self, records: tuple[bytes, ...], now: float, keep: bool) -> bool:
        """Replace every task (and the journal, kept aside) by a snapshot's *records*;
        False, and nothing changed, if a record is bad. With *keep* (the copy has been
        current), keep the tasks it finished that the snapshot has not, for
        :meth:`adopt_orphans`."""
        ...

    def adopt_orphans(self, now: float) -> None:
        """We lead: finish again the tasks kept from replaced copies that ours has not
        finished, journaled as our own records."""
        ...

    def apply_records(self, records: tuple[bytes, ...], now: float) -> bool:
        """Journal the leader's records and apply them to the copy; False if they are bad
        or cannot be written."""
        ...


class LinkOwner(Protocol):
    """What a :class:`~vistrit.coordinator.peers.PeerLink` needs of its cluster."""

    name: str

    @property
    def info(self) -> NodeInfo:
        """This coordinator's NodeInfo, sent in the link's Handshake."""
        ...

    @property
    def auth(self) -> NodeAuth | None:
        """How the link proves this coordinator to its peer (a coordinator's credential)."""
        ...

    @property
    def tls(self) -> TLSConfig | None:
        """TLS for the link, as for every connection of the cluster (None: plaintext)."""
        ...

    @property
    def leader_timeout(self) -> float:
        """How long the link waits to connect and handshake, and its longest backoff."""
        ...

    def link_up(self, rank: int) -> None:
        """The link to *rank* is open."""
        ...

    def link_down(self, rank: int) -> None:
        """The link to *rank* closed."""
        ...


__all__ = ["Host", "LinkOwner"]
