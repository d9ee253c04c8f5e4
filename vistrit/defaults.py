"""Every tunable of Vistrit in one place, with the reason for its value.

Nodes take these as defaults for their constructor arguments and the CLI shows them in
``--help``; nothing else hard-codes a timeout or a size. All times are in seconds.

This module is pure data: it never touches sockets, threads, clocks or logging. Read next:
:mod:`vistrit.transport`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where a coordinator listens, and where clients and workers look for it. Loopback by
#: default: a cluster that spans machines must say so with ``--bind 0.0.0.0:7878``.
HOST = "127.0.0.1"
PORT = 7878
COORDINATOR = f"localhost:{PORT}"

#: How often a worker tells the coordinator it is alive. One second keeps the worker list
#: fresh on a laptop and costs a 61-byte frame per second per worker.
HEARTBEAT_INTERVAL = 1.0

#: How long the coordinator waits without hearing from a worker (a heartbeat or any other
#: message) before it declares the worker dead and gives its tasks to others: five missed
#: heartbeats. On a LAN one missed heartbeat is already unusual, but a laptop under load
#: (a full CPU, a garbage collection, a swap storm) can delay one by a second or two;
#: five keeps a busy but healthy worker from being declared dead, while a killed, frozen
#: or cut-off worker is noticed within about five seconds.
HEARTBEAT_TIMEOUT = 5 * 1.0

#: How often the coordinator checks for silent workers, overdue tasks and due retries.
TICK_INTERVAL = 0.25

#: The pause before a failed task's next attempt: RETRY_BACKOFF seconds, doubling with each
#: attempt up to RETRY_BACKOFF_MAX, each pause between half and all of that at random
#: ("jitter"), so that tasks which failed together do not all return at once.
RETRY_BACKOFF = 0.5
RETRY_BACKOFF_MAX = 30.0

#: How many workers a task may lose (die or fall silent while running it) before it is
#: failed as a *poison* task, one that kills whatever runs it. Lost workers do not use up
#: the task's own retries: a task is not to blame for a worker that was killed.
MAX_LOST_WORKERS = 3

#: How long a new connection may take to send its Handshake before it is dropped. Long
#: enough for a slow machine, short enough that a port scanner does not hold a thread.
HANDSHAKE_TIMEOUT = 10.0

#: The largest frame payload accepted before a node has proved who it is (the handshake's
#: frames are a few hundred bytes). A stranger cannot make a coordinator buffer 16 MiB.
HANDSHAKE_MAX_PAYLOAD = 64 * 1024

#: The most input bytes one task may carry (and a worker be sent in one ``TaskAssign``):
#: a frame's 16 MiB (``MAX_PAYLOAD``), less 64 KiB for the rest of the task. The SDK
#: refuses a larger task before it leaves, the coordinator one that would grow past it.
ASSIGN_BYTES = 16 * 1024 * 1024 - 64 * 1024

#: The most tasks one listing (a ``TaskListResponse``) carries: with names and tags within
#: their limits, they fit in a frame. Longer listings are read a page at a time.
TASK_LIST_LIMIT = 1000

#: How long a worker's or a client's connection may stay silent before the coordinator
#: closes it. Both heartbeat every second, so only a node that died without a word, or a
#: connection left open and forgotten, is closed; it holds a thread and a file until then.
IDLE_TIMEOUT = 60.0

#: How many connections a coordinator serves at once. Each holds a thread and a file
#: descriptor; past this, a new connection is told so and closed at once (the limit is
#: also kept under half the process's open-file limit).
MAX_CONNECTIONS = 512

#: How long a peer may take to finish a frame it has started. A peer that stalls mid-frame
#: is dropped after this, so it cannot pin a thread and a buffer forever.
FRAME_TIMEOUT = 30.0

#: How long one send may block on a peer that does not read (its socket buffer is full).
SEND_TIMEOUT = 10.0

#: How long to wait for a TCP connection to be accepted.
CONNECT_TIMEOUT = 5.0

#: How long a client waits for the coordinator's answer to a request (not for a task to
#: finish: that is the caller's ``timeout``).
REQUEST_TIMEOUT = 30.0

#: How long a finished task and its result stay queryable on the coordinator.
RESULT_RETENTION = 3600.0

#: The most bytes of inputs and results the coordinator keeps, all clients together:
#: past it, the oldest finished tasks are forgotten before their retention ends (an hour
#: of 8 MiB results would otherwise hold gigabytes).
RETAIN_BYTES = 1024**3

#: From how many bytes of input and result together a task's payload is let go once its
#: client has the outcome (``TaskOutcomeAck``, v4: :mod:`vistrit.coordinator.release`).
RELEASE_BYTES = 64 * 1024

#: How often the coordinator logs how many finished tasks it forgot, and looks whether its
#: journal needs compacting. (It forgets on every tick: that costs what it forgets.)
PURGE_INTERVAL = 10.0

#: How many tasks a worker runs at once: the reference worker's default.
WORKER_SLOTS = 4

#: How many tasks the coordinator gives a worker beyond its slots, queued there to start
#: the moment a slot frees, so that the worker never sits idle waiting for its next
#: assignment. Only v2 workers get them (a v1 worker gets its slots' worth), and a worker
#: that fails gives them all back. One is enough to hide the round trip. The price: a task
#: already queued on a worker runs before a more urgent one submitted after it; 0 gives
#: strict priority order.
PREFETCH = 1

#: What one client may keep on a coordinator: unfinished tasks, and the bytes of inputs
#: and results remembered for it (until their retention ends). Past either, its
#: submissions are refused, saying which quota; other clients are not held up by one.
MAX_PENDING_PER_CLIENT = 250_000
MAX_RETAINED_BYTES_PER_CLIENT = 2 * 1024**3

#: The longest task name, function name or tag, and the most tags, a task or a worker
#: may have: every listing of tasks or workers then fits in a frame.
MAX_NAME_CHARS = 256
MAX_TAGS = 32

#: The most slots a coordinator believes a worker has, whatever it claims. A worker says
#: how many tasks it runs at once; one that claims a thousand would otherwise be given
#: almost every task and hoard them (the others idle, the tasks late). Sixty-four covers
#: a large machine; ``--max-slots`` raises it.
MAX_SLOTS = 64

#: The most tasks a Vistrit worker accepts beyond its slots (the coordinator's
#: ``--prefetch`` and ``--quick-prefetch`` may be at most this).
MAX_PREFETCH = 16

#: How many tasks the coordinator gives a worker beyond its slots while the worker's runs
#: are quick (``--quick-prefetch``; it never goes below ``--prefetch``, and with
#: ``--prefetch 0`` nothing is queued at all). A task that takes a few tens of
#: microseconds is over before the coordinator has turned the last result into the next
#: assignment, so with one task queued the worker idles while it does; with four queued,
#: a task is waiting. The price is ``PREFETCH``'s, and small: what is queued is quick. A
#: worker's runs are quick after ``QUICK_RUNS`` results in a row that each took under a
#: millisecond; its queue is back to ``--prefetch`` at the first sign of a longer run (a
#: result that took longer, or a Running status: a v4 worker says that a task runs only
#: when it is not over at once; :mod:`vistrit.worker.news`).
QUICK_PREFETCH = 4
QUICK_RUNS = 8

#: The largest number of bytes asked of one ``recv()``. Many frames arrive in one call.
#: Below the C allocator's 128 KiB threshold for ``mmap``: a larger buffer, allocated for
#: every call and then shrunk to what arrived, cost three extra system calls per
#: ``recv`` (``mmap``, ``mremap``, ``munmap``; measured with ``strace -c``).
RECV_SIZE = 64 * 1024

#: The cyclic garbage collector's first threshold in a coordinator or worker process (the
#: interpreter's default is 700). A task makes some dozens of objects, none of them in a
#: cycle, so at 700 a coordinator ran about 11 youngest-generation collections per 1,000
#: W1 tasks, 3.3 to 4.8 us of its CPU per task (timed with ``gc.callbacks``), against 0.9
#: to 1.8 at 20,000. A library leaves its caller's collector alone: a client's process
#: is not changed.
NODE_GC_THRESHOLD = 20_000

#: How long a worker asked to stop (SIGTERM, Ctrl-C) lets its running tasks finish before
#: it hands them back. Ten seconds covers most short tasks without making an operator wait.
DRAIN_TIMEOUT = 10.0

#: How long a worker or a client keeps trying to reach its coordinator again after losing
#: it (a restart, a network cut) before it gives up. Between attempts it waits
#: RECONNECT_BACKOFF seconds, doubling up to RECONNECT_BACKOFF_MAX, with jitter.
RECONNECT_TIMEOUT = 60.0
RECONNECT_BACKOFF = 0.1
RECONNECT_BACKOFF_MAX = 2.0


#: Several coordinators (``--id``, ``--peers``): the timeouts of their election, for a LAN.
#: The leader sends every follower a heartbeat (an empty ``Replicate``) every
#: LEADER_HEARTBEAT seconds; a follower that hears nothing for LEADER_TIMEOUT (plus up to
#: ELECTION_JITTER at random, so that followers do not all stand at once) starts an
#: election. Five missed heartbeats, as for workers: one late packet or a short garbage
#: collection pause does not depose a leader, and a dead one is replaced within a second.
#: A follower whose connection from the leader closes (the leader's process died) stands
#: after the jitter alone, without waiting for the timeout.
LEADER_HEARTBEAT = 0.1
LEADER_TIMEOUT = 0.5
ELECTION_JITTER = 0.15

#: How long a candidate waits for an answer from the coordinators above it before it
#: declares itself the winner (a LAN round trip is well under a millisecond; a busy
#: machine may take a tick or two), and how long, once answered, it waits for the
#: winner's announcement before it stands again.
ANSWER_TIMEOUT = 0.2
ANNOUNCE_TIMEOUT = 1.0

#: How long the leader waits for a follower to acknowledge records before it stops
#: waiting for that follower (it is then no longer required for acknowledgements, until
#: it has caught up). Two leader timeouts: a follower that is slow to ``fsync`` is not
#: dropped at once, and a dead one holds the cluster's answers up for one second at most.
REPLICATION_TIMEOUT = 2 * LEADER_TIMEOUT

#: How far ahead of its own term a coordinator believes another's term. Terms grow by one
#: per election: a million elections missed while away is implausible, so a bigger jump is
#: a faulty (or hostile) peer, refused and logged rather than adopted for good.
MAX_TERM_JUMP = 1_000_000

#: How often a coordinator of a cluster checks its election's deadlines.
CLUSTER_TICK = 0.05

#: How long a worker or a client waits without hearing from its coordinator (it answers
#: every heartbeat) before it looks for the leader elsewhere: three heartbeats. A frozen
#: (``SIGSTOP``) leader is left this long after it stops answering.
COORDINATOR_TIMEOUT = 3 * HEARTBEAT_INTERVAL


@dataclass(frozen=True)
class Policy:
    """How a coordinator schedules and copes with failure: one value, passed whole from the
    command line to the coordinator's core. Each field defaults to the constant above that
    explains it."""

    strategy: str = "least-loaded"
    retention: float = RESULT_RETENTION
    retain_bytes: int = RETAIN_BYTES
    prefetch: int = PREFETCH
    quick_prefetch: int = QUICK_PREFETCH
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    retry_backoff: float = RETRY_BACKOFF
    retry_backoff_max: float = RETRY_BACKOFF_MAX
    max_lost_workers: int = MAX_LOST_WORKERS
    max_slots: int = MAX_SLOTS
    max_pending_per_client: int = MAX_PENDING_PER_CLIENT
    max_retained_bytes_per_client: int = MAX_RETAINED_BYTES_PER_CLIENT

    def __post_init__(self) -> None:
        if not 0 <= self.prefetch <= MAX_PREFETCH:
            raise ValueError(f"prefetch must be between 0 and {MAX_PREFETCH}")
        if not 0 <= self.quick_prefetch <= MAX_PREFETCH:
            raise ValueError(f"quick_prefetch must be between 0 and {MAX_PREFETCH}")
        if self.max_slots < 1:
            raise ValueError("max_slots must be at least 1")
        if self.heartbeat_timeout <= 0 or self.retry_backoff <= 0 or self.retention <= 0:
            raise ValueError("timeouts, backoff and retention must be positive")
        if self.retain_bytes < 0:
            raise ValueError("retain_bytes cannot be negative")


#: The policy a coordinator uses unless told otherwise.
DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Limits:
    """What a coordinator gives each connection, and how many it serves: one value, passed
    whole from the command line to the coordinator. Each field defaults to the constant
    above that explains it."""

    handshake_timeout: float = HANDSHAKE_TIMEOUT
    frame_timeout: float = FRAME_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if min(self.handshake_timeout, self.frame_timeout) <= 0 or self.idle_timeout < 0:
            raise ValueError("timeouts must be positive (an idle timeout of 0 turns it off)")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


#: The limits a coordinator uses unless told otherwise.
DEFAULT_LIMITS = Limits()
