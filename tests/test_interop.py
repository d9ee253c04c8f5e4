"""Interoperability with the reference implementation, from its captured frames.

The reference binaries are not available to the tests, so their side of each exchange is
replayed byte for byte from tests/data/v1-frames.txt, and Vistrit's answers are checked
against the reference's own answers: byte for byte where nothing in them depends on time
or on the coordinator's identity, field by field otherwise.

* A reference **worker** (conn1) joins a Vistrit coordinator, receives tasks and reports
  results that reach a Vistrit client.
* The reference **CLI** (conn2 onwards; it handshakes as a Worker and never heartbeats)
  submits, queries, lists and cancels; it is never given a task nor listed as a worker.
* A replayed reference **coordinator** drives a Vistrit worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import VECTORS
from nodes import Cluster, wait_until

from vistrit.protocol import NEWEST_VERSION, decode_frame, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import NodeType, TaskPayload, TaskResult, TaskState
from vistrit.transport import Connection, FrameServer, connect

pytestmark = pytest.mark.timeout(60)

#: The reference implementation speaks v1 and cannot authenticate: a coordinator admits it
#: only when told to (``--allow-unauthenticated``), as these tests' coordinators are.
CLUSTER_OPTIONS = {"allow_unauthenticated": True}


def frame(name: str, connection: str, nth: int = 0) -> bytes:
    matches = [v.frame for v in VECTORS if v.name == name and v.connection == connection]
    return matches[nth]


def message(name: str, connection: str, nth: int = 0) -> m.Message:
    return decode_frame(frame(name, connection, nth)).message


HELLO_TASK = message("TaskSubmit", "conn2").task  # type: ignore[attr-defined]
CALC_TASK = message("TaskSubmit", "conn3").task  # type: ignore[attr-defined]
REFERENCE_WORKER = uuid.UUID("144dedf9-e70c-47ac-a12b-37c579917c64")


class Peer:
    """A replayed reference peer: sends captured bytes, reads Vistrit's answers."""

    def __init__(self, cluster: Cluster) -> None:
        self.conn: Connection = connect(cluster.coordinator.address)

    def send(self, data: bytes) -> None:
        self.conn.send_raw(data)

    def receive(self) -> m.Message:
        reply = self.conn.receive(time.monotonic() + 10)
        assert reply is not None
        return reply

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def reference_worker(cluster: Cluster) -> Iterator[Peer]:
    worker = Peer(cluster)
    worker.send(frame("Handshake", "conn1"))
    ack = worker.receive()
    captured = message("HandshakeAck", "conn1")
    assert isinstance(ack, m.HandshakeAck) and isinstance(captured, m.HandshakeAck)
    assert (ack.accepted, ack.node_id, ack.reason) == (captured.accepted, captured.node_id, None)
    assert (
        ack.coordinator_info is not None and ack.coordinator_info.node_type == NodeType.Coordinator
    )
    worker.send(frame("Heartbeat", "conn1"))
    beat_ack = worker.receive()
    assert isinstance(beat_ack, m.HeartbeatAck)
    assert beat_ack.echo_timestamp == message("HeartbeatAck", "conn1").echo_timestamp  # type: ignore[attr-defined]
    assert beat_ack.coordinator_id == ack.coordinator_info.id
    yield worker
    worker.close()


CLI_ID = decode_frame(frame("Handshake", "conn2")).message.node_info.id  # type: ignore[attr-defined]


def reference_cli(cluster: Cluster, request: bytes) -> tuple[Peer, m.Message]:
    """The reference CLI: one connection, a worker-typed Handshake, one request.

    The replay uses the same node id on every connection, so it first waits until the
    coordinator has finished with the previous one (a live id is refused).
    """
    core = cluster.coordinator.core
    assert core is not None
    wait_until(lambda: CLI_ID not in core.peers, what="the previous CLI connection to end")
    cli = Peer(cluster)
    cli.send(frame("Handshake", "conn2"))
    ack = cli.receive()
    assert isinstance(ack, m.HandshakeAck) and ack.accepted, ack
    cli.send(request)
    return cli, cli.receive()


def test_a_reference_worker_and_the_reference_cli_share_a_vistrit_cluster(
    cluster: Cluster, reference_worker: Peer
) -> None:
    client = cluster.client()
    # The CLI submits "hello" (a Command): the ack is the reference coordinator's, byte for byte.
    cli, ack = reference_cli(cluster, frame("TaskSubmit", "conn2"))
    assert encode_frame(ack) == frame("TaskSubmitAck", "conn2")
    cli.close()
    # ... and the task goes to the reference worker, exactly as the reference assigns it.
    assign = reference_worker.receive()
    assert encode_frame(assign) == frame("TaskAssign", "conn1", 0)
    cli, ack = reference_cli(cluster, frame("TaskSubmit", "conn3"))
    assert isinstance(ack, m.TaskSubmitAck) and ack.accepted and ack.task_id == CALC_TASK.id
    cli.close()
    assert encode_frame(reference_worker.receive()) == frame("TaskAssign", "conn1", 1)
    # The reference worker accepts "hello" and reports "calc": the result reaches a client.
    reference_worker.send(frame("TaskAssignAck", "conn1"))
    reference_worker.send(frame("TaskResult", "conn1", 0))
    calc = client.wait(CALC_TASK.id, timeout=10)
    assert (calc.state, calc.output, calc.worker) == ("Completed", b"14", REFERENCE_WORKER)
    assert client.status(HELLO_TASK.id).state == "Running"
    # A TaskQuery from the CLI gets the reference's answer, field by field.
    cli, answer = reference_cli(cluster, encode_frame(m.TaskQuery(task_id=CALC_TASK.id)))
    captured = message("TaskQueryResponse", "conn5")
    assert isinstance(answer, m.TaskQueryResponse) and isinstance(captured, m.TaskQueryResponse)
    assert (answer.task_id, answer.found, answer.result) == (
        captured.task_id,
        captured.found,
        captured.result,
    )
    assert answer.task is not None and captured.task is not None
    assert answer.task.payload == captured.task.payload and answer.task.name == captured.task.name
    assert isinstance(answer.task.state, TaskState.Completed)
    assert answer.task.state.worker_id == captured.task.state.worker_id  # type: ignore[attr-defined]
    cli.close()
    # The CLI was never given a task, and is not a worker.
    assert [w.id for w in client.workers()] == [REFERENCE_WORKER]


def test_cluster_status_and_worker_list_for_the_reference_cli(
    cluster: Cluster, reference_worker: Peer
) -> None:
    cli, status = reference_cli(cluster, frame("ClusterStatusRequest", "conn6"))
    captured = message("ClusterStatusResponse", "conn6")
    assert isinstance(status, m.ClusterStatusResponse) and isinstance(
        captured, m.ClusterStatusResponse
    )
    assert status.request_id == captured.request_id and status.leader_id is not None
    assert (status.total_nodes, status.online_workers) == (2, 1)  # the CLI is not counted
    cli.close()
    cli, listing = reference_cli(cluster, frame("WorkerListRequest", "conn7"))
    captured_list = message("WorkerListResponse", "conn7")
    assert isinstance(listing, m.WorkerListResponse) and isinstance(
        captured_list, m.WorkerListResponse
    )
    assert listing.request_id == captured_list.request_id
    (worker,) = listing.workers
    reference = captured_list.workers[0]
    assert (worker.id, worker.name, worker.address, worker.capabilities) == (
        reference.id,
        reference.name,
        reference.address,
        reference.capabilities,
    )
    cli.close()


def test_cancel_and_unknown_tasks_are_answered_as_the_reference_answers(cluster: Cluster) -> None:
    cancel = message("TaskCancel", "conn11")
    cli, error = reference_cli(
        cluster, frame("TaskCancel", "conn11")
    )  # a task this cluster never saw
    captured = message("Error", "conn13")
    assert isinstance(error, m.Error) and isinstance(captured, m.Error)
    assert (
        (error.code, error.message)
        == (captured.code, captured.message)
        == (
            ErrorCode.TaskNotFound,
            "Task not found or already completed",
        )
    )
    assert error.entity_id == str(cancel.task_id)  # type: ignore[attr-defined]
    cli.close()
    unknown = uuid.UUID(int=1)  # the id the reference CLI asked about in conn14
    cli, answer = reference_cli(cluster, encode_frame(m.TaskQuery(task_id=unknown)))
    assert encode_frame(answer) == frame("TaskQueryResponse", "conn14")
    cli.close()


def test_cancel_from_the_reference_cli_reaches_the_worker(
    cluster: Cluster, reference_worker: Peer
) -> None:
    cli, _ = reference_cli(cluster, frame("TaskSubmit", "conn2"))
    cli.close()
    assert isinstance(reference_worker.receive(), m.TaskAssign)
    cancel = m.TaskCancel(
        task_id=HELLO_TASK.id, requested_by=uuid.uuid4(), reason="Cancelled by client"
    )
    cli, answer = reference_cli(cluster, encode_frame(cancel))
    assert isinstance(answer, m.TaskQueryResponse) and answer.task is not None
    assert isinstance(answer.task.state, TaskState.Cancelled)
    told = reference_worker.receive()
    assert isinstance(told, m.TaskCancel) and told.task_id == HELLO_TASK.id
    cli.close()


def test_unhandled_messages_get_the_reference_error_byte_for_byte(cluster: Cluster) -> None:
    crafted = Peer(cluster)
    crafted.send(frame("Handshake", "conn1"))
    assert isinstance(crafted.receive(), m.HandshakeAck)
    crafted.send(frame("ElectionStart", "conn29"))
    assert encode_frame(crafted.receive()) == frame("Error", "conn29")
    crafted.send(frame("Disconnect", "conn29"))
    assert crafted.conn.receive(time.monotonic() + 10) is None  # closed after the goodbye
    crafted.close()


def test_the_mismatched_type_byte_the_reference_accepted_is_refused(cluster: Cluster) -> None:
    cli, error = reference_cli(cluster, frame("ClusterStatusRequest", "conn32"))
    assert isinstance(error, m.Error) and error.code == ErrorCode.Protocol
    assert "says ClusterStatusRequest" in error.message
    assert cli.conn.receive(time.monotonic() + 10) is None
    cli.close()


def unsupported(hello: m.Handshake) -> m.HandshakeAck:
    """The reference coordinator's answer to a Handshake that does not offer version 1."""
    return m.HandshakeAck(
        accepted=False,
        node_id=hello.node_info.id,
        coordinator_info=None,
        reason="Unsupported protocol version",
    )


def test_a_vistrit_worker_runs_tasks_from_a_replayed_reference_coordinator() -> None:
    from vistrit.worker import Worker

    results: dict[uuid.UUID, m.TaskResultMessage] = {}
    offered: list[int] = []

    def reference_coordinator(conn: Connection) -> None:
        hello = conn.receive(time.monotonic() + 10)
        assert isinstance(hello, m.Handshake)
        offered.append(hello.protocol_version)
        if hello.protocol_version != 1:  # as the reference does
            conn.send(unsupported(hello))
            return
        conn.send_raw(frame("HandshakeAck", "conn1"))
        conn.send_raw(frame("TaskAssign", "conn1", 0) + frame("TaskAssign", "conn1", 1))
        while (received := conn.receive()) is not None:
            if isinstance(received, m.Heartbeat):
                conn.send_raw(frame("HeartbeatAck", "conn1"))
            elif isinstance(received, m.TaskResultMessage):
                results[received.result.task_id] = received

    server = FrameServer(("127.0.0.1", 0), reference_coordinator)
    server.start()
    worker = Worker(
        server.address, allow_commands={"echo"}, heartbeat_interval=0.1, allow_unauthenticated=True
    )
    try:
        worker.start()
        wait_until(lambda: len(results) == 2, what="both results")
    finally:
        worker.stop()
        server.stop()
    assert offered == [NEWEST_VERSION, 1]
    hello, calc = results[HELLO_TASK.id].result, results[CALC_TASK.id].result
    assert (hello.success, hello.data, hello.exit_code) == (True, b"hello from vistrit\n", 0)
    assert (calc.success, calc.data) == (True, b"14")
    assert isinstance(HELLO_TASK.payload, TaskPayload.Command)


def test_a_vistrit_worker_never_falls_back_to_v1_unless_told_to() -> None:
    from vistrit.worker import Worker
    from vistrit.worker.node import HandshakeRefused

    offered: list[int] = []

    def reference_coordinator(conn: Connection) -> None:
        hello = conn.receive(time.monotonic() + 10)
        assert isinstance(hello, m.Handshake)
        offered.append(hello.protocol_version)
        conn.send(unsupported(hello))

    server = FrameServer(("127.0.0.1", 0), reference_coordinator)
    server.start()
    worker = Worker(server.address, heartbeat_interval=0.1)
    try:
        with pytest.raises(HandshakeRefused, match="Unsupported protocol version"):
            worker.start()
    finally:
        server.stop()
    assert offered == [NEWEST_VERSION]  # never an unauthenticated v1 attempt


def test_data_map_and_reduce_tasks_reach_a_reference_worker_and_back(
    cluster: Cluster, reference_worker: Peer
) -> None:
    client = cluster.client()
    futures = [
        client.submit("uppercase", "hello"),
        client.submit_map("word_count", ["a b", "c"]),
        client.submit_reduce("sum", ["1", "2"]),
    ]
    outputs = {futures[0].task_id: b"HELLO", futures[1].task_id: b"2\n1", futures[2].task_id: b"3"}
    for _ in futures:
        assign = reference_worker.receive()
        assert isinstance(assign, m.TaskAssign)
        assert reference_worker.conn.last_frame is not None
        assert reference_worker.conn.last_frame.version == 1  # a v1 frame for a v1 worker
        kind = type(assign.task.payload).__name__
        assert kind in ("Data", "Map", "Reduce")
        # Answer as the reference worker does: output in data, stdout and stderr left None.
        result = TaskResult(
            task_id=assign.task.id,
            success=True,
            data=outputs[assign.task.id],
            error=None,
            exit_code=None,
            duration_ms=0,
            worker_id=REFERENCE_WORKER,
            stdout=None,
            stderr=None,
        )
        reference_worker.send(encode_frame(m.TaskResultMessage(result=result)))
    assert client.gather(futures, 10) == ["HELLO", "2\n1", "3"]


def test_the_reference_clis_task_query_is_answered_field_by_field(
    cluster: Cluster, reference_worker: Peer
) -> None:
    cli, _ = reference_cli(cluster, frame("TaskSubmit", "conn2"))
    cli.close()
    reference_worker.receive()
    cli, answer = reference_cli(cluster, frame("TaskQuery", "conn4"))
    captured = message("TaskQueryResponse", "conn4")
    assert isinstance(answer, m.TaskQueryResponse) and isinstance(captured, m.TaskQueryResponse)
    assert (answer.task_id, answer.found) == (captured.task_id, captured.found)
    assert answer.task is not None and captured.task is not None
    for name in (
        "id",
        "name",
        "payload",
        "priority",
        "max_retries",
        "timeout_seconds",
        "tags",
        "created_at",
        "submitted_by",
        "dependencies",
    ):
        assert getattr(answer.task, name) == getattr(captured.task, name), name
    assert isinstance(answer.task.state, TaskState.Scheduled)  # its worker has not reported yet
    cli.close()


def test_max_retries_is_honoured_where_the_reference_retried_forever(
    cluster: Cluster, reference_worker: Peer
) -> None:
    captured = message("TaskQueryResponse", "conn16")  # the task "bad": Compute "foo"
    assert isinstance(captured, m.TaskQueryResponse) and captured.task is not None
    bad = captured.task
    assert bad.max_retries == 3
    cli, ack = reference_cli(cluster, encode_frame(m.TaskSubmit(task=bad, request_id=uuid.uuid4())))
    assert isinstance(ack, m.TaskSubmitAck) and ack.accepted
    cli.close()
    for attempt in range(1 + bad.max_retries):
        assign = reference_worker.receive()
        assert isinstance(assign, m.TaskAssign) and assign.task.id == bad.id, attempt
        reference_worker.send(frame("TaskResult", "conn1", 1))  # "Cannot evaluate expression: foo"
    client = cluster.client()
    info = client.wait(bad.id, timeout=10)
    assert info.state == "Failed"
    assert info.error is not None and info.error.count("Cannot evaluate expression: foo") == 4
    assert info.task.state.retries == 3  # type: ignore[attr-defined]
