"""The links between coordinators, and how a coordinator is told about its peers.

* :class:`ClusterConfig`: one coordinator's place in a cluster (``--id``, ``--peers``)
  and the election's timeouts;
* :func:`parse_peers` and :func:`cluster_of`: the ``--peers`` list, ``ID@HOST:PORT,...``;
* :class:`PeerLink`: the connection this coordinator keeps open *to* one peer, by its own
  thread, reconnecting with backoff. Everything this coordinator sends to that peer goes
  on it; what the peer sends back comes on the link the peer opened, through the
  coordinator's ordinary server. So each message between two coordinators travels on its
  sender's link, one way.

Read next: :mod:`vistrit.coordinator.cluster`.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vistrit import defaults
from vistrit.addresses import parse_address
from vistrit.coordinator.host import LinkOwner
from vistrit.leader import handshake
from vistrit.logic.backoff import Backoff
from vistrit.logic.election import Timing
from vistrit.protocol import ProtocolError
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION, frame_version
from vistrit.protocol.frame import encode_frame_gathered
from vistrit.protocol.gather import Gather
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout, connect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterConfig:
    """One coordinator's place in a cluster: its rank, its peers', and the timeouts."""

    rank: int
    peers: dict[int, tuple[str, int]]
    takeover: bool = True
    leader_heartbeat: float = defaults.LEADER_HEARTBEAT
    leader_timeout: float = defaults.LEADER_TIMEOUT
    answer_timeout: float = defaults.ANSWER_TIMEOUT
    announce_timeout: float = defaults.ANNOUNCE_TIMEOUT
    jitter: float = defaults.ELECTION_JITTER
    replication_timeout: float = defaults.REPLICATION_TIMEOUT
    tick: float = field(default=defaults.CLUSTER_TICK)
    #: Where workers and clients are sent to reach this coordinator when it leads: its own
    #: entry in ``--peers``. None: the address it listens on.
    advertise: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError("a coordinator's --id must be a positive number")
        if not self.peers:
            raise ValueError("a cluster needs at least one peer")
        if self.rank in self.peers:
            raise ValueError(f"--id {self.rank} is also one of the peers")
        if self.leader_heartbeat >= self.leader_timeout:
            raise ValueError("the leader's heartbeat must be shorter than the leader timeout")

    @property
    def timing(self) -> Timing:
        """The election's timeouts, as the election takes them."""
        return Timing(self.leader_timeout, self.answer_timeout, self.announce_timeout, self.jitter)


def parse_peers(text: str, own: int | None = None) -> dict[int, tuple[str, int]]:
    """``"1@host:7878,2@host:7879"`` as ``{1: ("host", 7878), ...}``; *own* is left out
    (every coordinator may be given the same list, see :func:`cluster_of`)."""
    peers: dict[int, tuple[str, int]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        rank_text, at, address = item.partition("@")
        if not at or not rank_text.strip().isdigit() or int(rank_text) < 1:
            raise ValueError(f"a peer is ID@HOST:PORT with a positive ID, not {item!r}")
        rank = int(rank_text)
        if rank in peers:
            raise ValueError(f"peer id {rank} is given twice")
        peers[rank] = parse_address(address)
    if own is not None:
        peers.pop(own, None)
    return peers


def cluster_of(text: str, rank: int) -> tuple[dict[int, tuple[str, int]], tuple[str, int] | None]:
    """The peers of coordinator *rank*, and its own address if the list has it."""
    everyone = parse_peers(text)
    own = everyone.pop(rank, None)
    return everyone, own


class PeerLink:
    """The connection from this coordinator to one peer, kept open by its own thread."""

    def __init__(self, cluster: LinkOwner, rank: int, address: tuple[str, int]) -> None:
        self.cluster = cluster
        self.rank = rank
        self.address = address
        self.conn: Connection | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()  # try again now, without waiting out the backoff
        self._thread = threading.Thread(
            target=self._run, name=f"{cluster.name} link to {rank}", daemon=True
        )

    def start(self) -> None:
        """Start the link's thread."""
        self._thread.start()

    def wake(self) -> None:
        """The peer is back (it connected to us): if this link is down, retry at once."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the link's thread and close its connection."""
        self._stopping.set()
        self._wake.set()
        conn = self.conn
        if conn is not None:
            conn.close()
        self._thread.join(defaults.SEND_TIMEOUT)

    def post(self, messages: Sequence[m.Message | bytes | Gather]) -> bool:
        """Queue messages (or encoded frames) to the peer; False (and dropped) while the
        link is down."""
        conn = self.conn
        if conn is None:
            return False
        try:
            conn.post(messages)
        except ConnectionClosed:
            return False
        return True

    def _run(self) -> None:
        """Keep the link open: connect, read until it closes, back off, again."""
        cap = self.cluster.leader_timeout  # a peer that comes back is found within this
        backoff = Backoff(min(defaults.RECONNECT_BACKOFF, cap), cap)
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            conn = self._open()
            if conn is None:
                failures += 1
                self._wake.wait(backoff.pause(failures, random.random))
                continue
            failures = 0
            self.conn = conn
            self.cluster.link_up(self.rank)
            try:
                while conn.receive() is not None:
                    pass  # the peer answers on its own link; only its HandshakeAck came here
            except (ProtocolError, ConnectionClosed, PeerTimeout):
                pass
            finally:
                self.conn = None
                conn.close()
                conn.join_writer()
                self.cluster.link_down(self.rank)

    def _open(self) -> Connection | None:
        timeout = self.cluster.leader_timeout
        try:
            conn = connect(
                self.address, timeout=timeout, name=f"peer {self.rank}", tls=self.cluster.tls
            )
        except OSError:
            return None
        hello = m.Handshake(node_info=self.cluster.info, protocol_version=NEWEST_VERSION)
        try:
            handshake(conn, hello, 2 * timeout, self.cluster.auth)
        except ConnectionError as exc:  # refused, or no answer in time
            log.debug("%s: no link to peer %d: %s", self.cluster.name, self.rank, exc)
            conn.close()
            return None
        conn.start_writer()
        return conn


def post_to_all(links: Iterable[PeerLink], message: m.Message) -> None:
    """Queue *message* on every link that is up, encoded once for each protocol version
    the links agreed on, not once a link: a ``Replicate`` carries every new record, and
    encoding it again for each follower cost the leader about a microsecond a record. (A
    large record is spliced into the frame, not copied: :mod:`vistrit.protocol.gather`.)"""
    frames: dict[int, Gather] = {}
    for link in links:
        conn = link.conn
        if conn is None:
            continue
        frame = frames.get(conn.version)
        if frame is None:
            frame = encode_frame_gathered(message, frame_version(message, conn.version))
            frames[conn.version] = frame
        link.post([frame])


__all__ = ["ClusterConfig", "PeerLink", "cluster_of", "parse_peers", "post_to_all"]
