"""Authentication (protocol v4): the token file, the challenge-response, roles, and what is
refused: a wrong secret, a wrong role, a replayed answer, a downgrade, an impostor
coordinator, an unauthenticated old node, and a frame newer than the agreed version."""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from nodes import Cluster, join_raw, wait_until, worker_auth

from vistrit.client import CoordinatorUnavailable, VistritClient
from vistrit.credentials import Credentials, CredentialsError, default_path
from vistrit.leader import NodeAuth, answer_challenge
from vistrit.logic.auth import MAY_JOIN_AS, check_node, coordinator_proof, node_proof, role_for
from vistrit.protocol import NEWEST_VERSION, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.examples import WORKER
from vistrit.protocol.types import NodeInfo, NodeType, SocketAddr, introduce
from vistrit.transport import Connection, FrameServer, connect
from vistrit.worker import Worker
from vistrit.worker.node import HandshakeRefused

pytestmark = pytest.mark.timeout(60)

SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))

# -- the pure rules -------------------------------------------------------------------------


def test_a_proof_binds_the_role_the_version_the_node_and_both_nonces() -> None:
    node, ours, theirs = uuid.uuid4(), b"c" * 32, b"n" * 32
    proof = node_proof(SECRET, "worker", 4, node, ours, theirs)
    good = check_node({"worker": SECRET}, NodeType.Worker, "worker", 4, node, ours, theirs, proof)
    assert good is None
    changes: list[tuple[str, int, uuid.UUID, bytes, bytes]] = [
        ("client", 4, node, ours, theirs),  # another role
        ("worker", 5, node, ours, theirs),  # another version
        ("worker", 4, uuid.uuid4(), ours, theirs),  # another node
        ("worker", 4, node, b"C" * 32, theirs),  # another challenge: a replay
        ("worker", 4, node, ours, b"N" * 32),  # another node nonce
    ]
    secrets = {"worker": SECRET, "client": SECRET}
    for role, version, who, challenge, nonce in changes:
        why = check_node(secrets, NodeType.Client, role, version, who, challenge, nonce, proof)
        assert why is not None and "wrong proof" in why
    # the coordinator's proof is never the node's: it cannot be reflected back
    assert coordinator_proof(SECRET, "worker", 4, node, ours, theirs) != proof


def test_roles_bound_what_a_credential_may_join_as() -> None:
    assert MAY_JOIN_AS["client"] == {NodeType.Client}
    assert NodeType.Coordinator not in MAY_JOIN_AS["worker"]
    node, ours, theirs = uuid.uuid4(), b"c" * 32, b"n" * 32
    proof = node_proof(SECRET, "client", 4, node, ours, theirs)
    why = check_node({"client": SECRET}, NodeType.Worker, "client", 4, node, ours, theirs, proof)
    assert why == "a client credential cannot join as a worker"
    assert role_for(NodeType.Worker, {"client": SECRET}) is None
    assert role_for(NodeType.Client, {"client": SECRET, "worker": SECRET}) == "client"


# -- the token file -------------------------------------------------------------------------


def test_a_token_file_holds_a_secret_per_role_and_all_stands_for_every_role() -> None:
    text = f"# comment\n\nworker {SECRET.hex()}\nclient {OTHER.hex()}\n"
    credentials = Credentials.parse(text)
    assert credentials.secrets == {"worker": SECRET, "client": OTHER}
    assert credentials.own(NodeType.Client) == ("client", OTHER)
    with pytest.raises(CredentialsError, match="may join as a coordinator"):
        credentials.own(NodeType.Coordinator)
    assert set(Credentials.parse(f"all {SECRET.hex()}").secrets) == {
        "coordinator",
        "worker",
        "client",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no credential"),
        ("worker", "line 1: expected 'ROLE SECRET'"),
        (f"admin {SECRET.hex()}", "unknown role 'admin'"),
        ("worker nothex!", "not hex"),
        ("worker abcd", "at least 16"),
        (f"all {SECRET.hex()}\nworker {OTHER.hex()}", "line 2: a second secret for worker"),
    ],
)
def test_a_malformed_token_file_is_refused_naming_the_line(text: str, error: str) -> None:
    with pytest.raises(CredentialsError, match=error):
        Credentials.parse(text)


def test_a_coordinator_creates_a_private_token_file_once(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "token"
    created = Credentials.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert Credentials.load_or_create(path).secrets == created.secrets  # read, not replaced
    with pytest.raises(FileExistsError):
        Credentials.create(path)
    with pytest.raises(CredentialsError, match="no token file at"):
        Credentials.load(tmp_path / "missing")


def test_coordinators_starting_together_agree_on_one_token_file(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(20):  # a race shows only sometimes: try it often
        path = tmp_path / f"fresh-{attempt}" / "token"
        with ThreadPoolExecutor(8) as pool:
            found = list(pool.map(Credentials.load_or_create, [path] * 16))
        assert all(c.secrets == found[0].secrets for c in found)  # one secret, no half file
        assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temporary left


def test_a_token_file_others_can_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text(f"all {SECRET.hex()}\n")
    os.chmod(path, 0o644)
    assert Credentials.load(path).secrets["client"] == SECRET
    assert "can be read by other users" in caplog.text


def test_the_token_file_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISTRIT_TOKEN_FILE", "/somewhere/token")
    assert default_path() == Path("/somewhere/token")
    monkeypatch.delenv("VISTRIT_TOKEN_FILE")
    assert default_path() == Path.home() / ".vistrit" / "token"


# -- against a real coordinator -------------------------------------------------------------


def test_a_client_with_the_right_secret_is_served(cluster: Cluster) -> None:
    cluster.add_worker()
    assert cluster.client().submit("uppercase", "in").result(10) == "IN"


def test_a_wrong_secret_is_refused(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    wrong = Credentials.parse(f"all {OTHER.hex()}")
    with pytest.raises(CoordinatorUnavailable, match="authentication failed"):
        VistritClient(cluster.address, credentials=wrong, connect_timeout=2)
    assert "a wrong proof for the role 'client'" in caplog.text
    with pytest.raises(HandshakeRefused, match="authentication failed"):
        Worker(cluster.coordinator.address, credentials=wrong).start()


def test_a_credential_cannot_join_in_a_role_above_its_own(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    secret = Credentials.load(default_path()).secrets["client"]
    with pytest.raises(ConnectionError, match="AuthFailed: authentication failed"):
        join_proving(cluster.coordinator.address, WORKER, NodeAuth("client", secret))
    assert "a client credential cannot join as a worker" in caplog.text
    with pytest.raises(CredentialsError, match="may join as a worker"):
        Worker(cluster.coordinator.address, credentials=Credentials.parse(f"client {SECRET.hex()}"))


def join_proving(address: tuple[str, int], info: NodeInfo, auth: NodeAuth) -> m.Message | None:
    """Say Handshake (v4) as *info* and prove *auth* when challenged; the answer after the
    coordinator's proof. Raises what the node side raises when the proof is refused."""
    conn = connect(address)
    try:
        hello = m.Handshake(node_info=info, protocol_version=NEWEST_VERSION)
        conn.send(hello)
        challenge = conn.receive(time.monotonic() + 5)
        assert isinstance(challenge, m.AuthChallenge)
        return answer_challenge(conn, hello, challenge, auth, time.monotonic() + 5)
    finally:
        conn.close()


def test_a_replayed_answer_is_refused(cluster: Cluster) -> None:
    first, answer = join_raw(cluster.coordinator.address, WORKER)
    assert isinstance(answer, m.HandshakeAck) and answer.accepted
    first.close()
    # A recorder saw the first exchange's AuthResponse; it replays it on a new connection.
    auth = worker_auth()
    nonce = b"r" * 32
    old_challenge = b"o" * 32
    recorded = m.AuthResponse(
        role=auth.role,
        nonce=nonce,
        proof=node_proof(auth.secret, auth.role, 4, WORKER.id, old_challenge, nonce),
    )
    conn = connect(cluster.coordinator.address)
    try:
        conn.send(m.Handshake(node_info=WORKER, protocol_version=NEWEST_VERSION))
        challenge = conn.receive(time.monotonic() + 5)
        assert isinstance(challenge, m.AuthChallenge) and challenge.nonce != old_challenge
        conn.agree(NEWEST_VERSION)
        conn.send(recorded)
        error = conn.receive(time.monotonic() + 5)
        assert isinstance(error, m.Error) and error.code == ErrorCode.AuthFailed
        assert conn.receive(time.monotonic() + 5) is None  # and the connection is closed
    finally:
        conn.close()


def test_an_old_node_is_refused_unless_the_coordinator_admits_it(cluster: Cluster) -> None:
    conn, answer = join_raw(cluster.coordinator.address, WORKER, version=1)
    conn.close()
    assert isinstance(answer, m.HandshakeAck) and not answer.accepted
    assert "authentication required" in (answer.reason or "")
    assert "--allow-unauthenticated" in (answer.reason or "")


@pytest.mark.parametrize("cluster", [{"allow_unauthenticated": True}], indirect=True)
def test_an_admitted_old_node_may_not_send_newer_frames(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    conn, answer = join_raw(cluster.coordinator.address, WORKER, version=1)
    try:
        assert isinstance(answer, m.HandshakeAck) and answer.accepted
        assert "admitting worker worker-a" in caplog.text
        newer = m.TaskListRequest(request_id=uuid.uuid4(), limit=5)  # a v2 message
        conn.send_raw(encode_frame(newer, 2))
        error = conn.receive(time.monotonic() + 5)
        assert isinstance(error, m.Error) and error.code == ErrorCode.Protocol
        assert "a v2 frame (TaskListRequest) on a connection that agreed on v1" in error.message
        assert conn.receive(time.monotonic() + 5) is None
    finally:
        conn.close()
    assert cluster.client().cluster_status().online_workers == 0  # and the server serves on


# -- against coordinators that do not prove themselves ---------------------------------------


def fake_coordinator(answer: Callable[[Connection, m.Handshake], None]) -> FrameServer:
    """A stand-in coordinator that answers each Handshake with *answer*."""

    def serve(conn: Connection) -> None:
        hello = conn.receive(time.monotonic() + 5)
        assert isinstance(hello, m.Handshake)
        answer(conn, hello)
        while conn.receive(time.monotonic() + 5) is not None:
            pass

    server = FrameServer(("127.0.0.1", 0), serve)
    server.start()
    return server


def accept_without_a_challenge(conn: Connection, hello: m.Handshake) -> None:
    me = introduce(uuid.UUID(int=1), NodeType.Coordinator, SocketAddr(*conn.local), "fake", 0)
    ack = m.HandshakeAck(
        accepted=True, node_id=hello.node_info.id, coordinator_info=me, reason=None
    )
    conn.send(ack)


def challenge_with_a_forged_proof(conn: Connection, hello: m.Handshake) -> None:
    conn.agree(NEWEST_VERSION)
    conn.send(m.AuthChallenge(nonce=os.urandom(32)))
    response = conn.receive(time.monotonic() + 5)
    assert isinstance(response, m.AuthResponse)
    conn.send(m.AuthConfirm(proof=os.urandom(32)))  # it does not know the secret
    accept_without_a_challenge(conn, hello)


def test_a_downgrade_to_an_unauthenticated_coordinator_is_refused() -> None:
    server = fake_coordinator(accept_without_a_challenge)
    address = server.address
    try:
        with pytest.raises(CoordinatorUnavailable, match="did not authenticate itself"):
            VistritClient("{}:{}".format(*address), connect_timeout=2)
        with pytest.raises(HandshakeRefused, match="did not authenticate itself"):
            Worker(address).start()
        told = Worker(address, allow_unauthenticated=True, heartbeat_interval=0.1)
        told.start()  # told to: it joins, and the operator was warned by the flag's name
        told.stop()
    finally:
        server.stop()


def test_an_impostor_coordinator_that_cannot_prove_the_secret_is_refused() -> None:
    server = fake_coordinator(challenge_with_a_forged_proof)
    try:
        with pytest.raises(CoordinatorUnavailable, match="could not prove it holds"):
            VistritClient("{}:{}".format(*server.address), connect_timeout=2)
        told = Worker(server.address, allow_unauthenticated=True)
        with pytest.raises(HandshakeRefused, match="could not prove it holds"):
            told.start()  # the flag admits old coordinators, never a failed proof
    finally:
        server.stop()


# -- the command line, in real processes ----------------------------------------------------


def test_the_cli_creates_the_token_file_and_refuses_a_node_with_another(tmp_path: Path) -> None:
    import subprocess
    import sys

    from vistrit.demo import free_port

    address = f"127.0.0.1:{free_port()}"
    token = tmp_path / "cluster" / "token"
    stranger = tmp_path / "stranger"
    stranger.write_text(f"all {OTHER.hex()}\n")
    os.chmod(stranger, 0o600)
    env = {**os.environ, "VISTRIT_TOKEN_FILE": str(tmp_path / "unused")}

    def vistrit(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "vistrit", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)

    coordinator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vistrit",
            "coordinator",
            "--bind",
            address,
            "--token-file",
            str(token),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert coordinator.stdout is not None
        assert (
            coordinator.stdout.readline().strip() == f"vistrit coordinator listening on {address}"
        )
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        refused = vistrit("worker", "--coordinator", address, "--token-file", str(stranger))
        assert refused.returncode == 4 and "authentication failed" in refused.stderr
        missing = vistrit("cluster", "--coordinator", address)  # $VISTRIT_TOKEN_FILE: no file
        assert (
            missing.returncode == 1 and f"no token file at {tmp_path / 'unused'}" in missing.stderr
        )
        served = vistrit("cluster", "--coordinator", address, "--token-file", str(token))
        assert served.returncode == 0 and "workers:   0" in served.stdout
    finally:
        coordinator.terminate()
        _, err = coordinator.communicate(timeout=20)
    assert f"created the token file {token}" in err
    assert "a wrong proof for the role 'worker'" in err


# -- authorization: who may say what ---------------------------------------------------------


def raw_node(
    address: tuple[str, int], kind: NodeType, name: str, node_id: uuid.UUID | None = None
) -> Connection:
    """A connection that proved the tests' credential as a *kind*, handshake done."""
    info = introduce(node_id or uuid.uuid4(), kind, SocketAddr("127.0.0.1", 0), name, 0)
    conn = connect(address)
    hello = m.Handshake(node_info=info, protocol_version=NEWEST_VERSION)
    conn.send(hello)
    deadline = time.monotonic() + 5
    challenge = conn.receive(deadline)
    assert isinstance(challenge, m.AuthChallenge)
    credentials = Credentials.load(default_path())
    auth = NodeAuth(*credentials.own(kind))
    answer = answer_challenge(conn, hello, challenge, auth, deadline)
    assert isinstance(answer, m.HandshakeAck) and answer.accepted, answer
    conn.agree(NEWEST_VERSION)
    return conn


def forged_result(task_id: uuid.UUID, worker_id: uuid.UUID) -> m.TaskResultMessage:
    from vistrit.protocol.types import TaskResult

    result = TaskResult(
        task_id=task_id,
        success=True,
        data=b"FORGED",
        error=None,
        exit_code=None,
        duration_ms=1,
        worker_id=worker_id,
        stdout=None,
        stderr=None,
    )
    return m.TaskResultMessage(result=result)


def test_a_client_cannot_report_a_result_for_someone_elses_task(cluster: Cluster) -> None:
    from nodes import gate

    cluster.add_worker()
    victim = cluster.client()
    future = victim.submit("test-gate", "honest")
    wait_until(lambda: victim.status(future.task_id).state == "Running", what="it to run")
    attacker = raw_node(cluster.coordinator.address, NodeType.Client, "attacker")
    try:
        attacker.send(forged_result(future.task_id, uuid.uuid4()))
        refusal = attacker.receive(time.monotonic() + 5)
        assert isinstance(refusal, m.Error) and refusal.code == ErrorCode.PermissionDenied
        assert refusal.message == "a client may not send TaskResult"
    finally:
        attacker.close()
    gate("honest").set()
    assert future.result(10) == "honest"


def test_a_worker_cannot_complete_a_task_it_was_never_given(cluster: Cluster) -> None:
    from nodes import gate

    cluster.add_worker(name="honest")
    client = cluster.client()
    future = client.submit("test-gate", "real")
    impostor = raw_node(cluster.coordinator.address, NodeType.Worker, "impostor")
    try:
        impostor.send(forged_result(future.task_id, uuid.uuid4()))
        gate("real").set()
        assert future.result(10) == "real"  # the forged success was ignored
    finally:
        impostor.close()
    assert client.status(future.task_id).output == b"real"


def test_a_worker_claiming_a_thousand_slots_is_believed_up_to_the_cap() -> None:
    from vistrit.coordinator.core import CoordinatorCore
    from vistrit.defaults import MAX_SLOTS, Policy
    from vistrit.protocol.examples import COORDINATOR
    from vistrit.protocol.types import NodeCapabilities

    core = CoordinatorCore(COORDINATOR, started_at=0, policy=Policy(max_slots=8))
    greedy = introduce(
        uuid.uuid4(),
        NodeType.Worker,
        SocketAddr("127.0.0.1", 1),
        "greedy",
        0,
        NodeCapabilities(max_concurrent_tasks=1000, available_memory_bytes=0, cpu_cores=1, tags=()),
    )
    _, peer = core.join(m.Handshake(node_info=greedy, protocol_version=NEWEST_VERSION), 0)
    assert peer is not None
    entry = core.registry.get(peer.id)
    assert entry is not None and entry.slots == 8
    assert MAX_SLOTS == 64 and Policy().max_slots == MAX_SLOTS


# -- between coordinators --------------------------------------------------------------------


def test_election_messages_must_be_the_senders_own_and_their_terms_plausible() -> None:
    from vistrit.logic.election import TERM_LIMIT, Election, Timing, coordinator_id

    election = Election(
        1,
        SocketAddr("127.0.0.1", 1),
        {2: SocketAddr("127.0.0.1", 2), 3: SocketAddr("127.0.0.1", 3)},
        Timing(0.5, 0.2, 1.0, 0.1),
        now=0,
        random=lambda: 0.0,
        term=5,
    )
    start = m.ElectionStart(term=6, candidate_id=coordinator_id(2), priority=2)
    assert election.implausible(2, start) is None
    assert "candidate_id is not coordinator 3's" in (election.implausible(3, start) or "")
    for term in (2**64 - 1, TERM_LIMIT + 1, 5 + 1_000_001):
        huge = m.ElectionStart(term=term, candidate_id=coordinator_id(2), priority=2)
        assert "implausible" in (election.implausible(2, huge) or "")
    relayed = m.LeaderAnnounce(term=6, leader_id=coordinator_id(3), leader_address=None)
    assert election.implausible(2, relayed) is None  # news of another leader may be relayed


def test_a_coordinator_must_prove_a_coordinators_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from vistrit.coordinator import Coordinator
    from vistrit.coordinator.peers import ClusterConfig
    from vistrit.demo import free_port

    port, absent = free_port(), free_port()
    config = ClusterConfig(rank=1, peers={2: ("127.0.0.1", absent)})
    coordinator = Coordinator(
        ("127.0.0.1", port), cluster=config, name="c1", allow_unauthenticated=True
    )
    coordinator.start()
    try:
        claim = introduce(
            uuid.UUID(int=2), NodeType.Coordinator, SocketAddr("127.0.0.1", 9), "x", 0
        )
        for version in (1, 3):  # admitted unauthenticated as a node, never as a coordinator
            conn, answer = join_raw(("127.0.0.1", port), claim, version)
            conn.close()
            assert isinstance(answer, m.HandshakeAck) and not answer.accepted
            assert "must prove a coordinator's credential" in (answer.reason or "")
        worker_secret = Credentials.load(default_path()).secrets["worker"]
        with pytest.raises(ConnectionError, match="authentication failed"):
            join_proving(("127.0.0.1", port), claim, NodeAuth("worker", worker_secret))
    finally:
        coordinator.stop()
    assert "a worker credential cannot join as a coordinator" in caplog.text


def test_a_hostile_peer_cannot_push_the_term_past_reason(caplog: pytest.LogCaptureFixture) -> None:
    from vistrit.coordinator import Coordinator
    from vistrit.coordinator.peers import ClusterConfig
    from vistrit.demo import free_port
    from vistrit.logic.election import coordinator_id

    caplog.set_level(logging.WARNING)
    port, absent = free_port(), free_port()
    config = ClusterConfig(rank=1, peers={2: ("127.0.0.1", absent)})
    coordinator = Coordinator(("127.0.0.1", port), cluster=config, name="c1")
    coordinator.start()
    try:
        assert coordinator.cluster is not None and coordinator.cluster.election is not None
        election = coordinator.cluster.election
        wait_until(lambda: election.is_leader, what="it to lead alone")
        term = election.term
        hostile = raw_node(("127.0.0.1", port), NodeType.Coordinator, "hostile", coordinator_id(2))
        try:
            two = coordinator_id(2)
            hostile.send(
                m.ElectionStart(term=2**64 - 1, candidate_id=two, priority=2),
                m.ReplicaSnapshot(
                    term=term + 1,
                    leader_id=coordinator_id(1),
                    index=0,
                    part=0,
                    last=True,
                    records=(),
                ),
            )
            wait_until(lambda: caplog.text.count("ignored") >= 2, what="both refused")
        finally:
            hostile.close()
        assert election.term == term and election.is_leader
        assert "term 18446744073709551615 is implausible" in caplog.text
        assert "its leader_id is not coordinator 2's" in caplog.text
        with VistritClient(f"127.0.0.1:{port}") as client:
            assert client.cluster_status().term == term  # still serving, in its own term
    finally:
        coordinator.stop()
