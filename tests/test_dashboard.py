"""The dashboard's server and JSON API, over real sockets: the token, every view, hostile
requests, a restart that keeps the history, and a follower that says where the leader is.
(The pages in a real browser: ``test_dashboard_browser.py``.)"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import Cluster, wait_until
from spawn import Processes, free_port

from vistrit.coordinator import Coordinator
from vistrit.coordinator.elections import KEPT, Change, ElectionLog
from vistrit.coordinator.peers import ClusterConfig
from vistrit.credentials import Credentials
from vistrit.dashboard import Dashboard, dashboard_token
from vistrit.dashboard import frames as frames_module
from vistrit.dashboard import server as dashboard_server
from vistrit.dashboard.frames import PER_SECOND, FrameSampler
from vistrit.protocol import decode_frame
from vistrit.protocol import messages as m
from vistrit.results import TaskError

pytestmark = pytest.mark.timeout(60)


class Browserless:
    """Requests to a dashboard, as a script would send them."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.host, self.port = dashboard.address

    def get(
        self, path: str, token: str | None = "", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if token == "":
            token = self.dashboard.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
def board(cluster: Cluster) -> Iterator[Browserless]:
    dashboard = Dashboard(cluster.coordinator, ("127.0.0.1", 0))
    dashboard.start()
    try:
        yield Browserless(dashboard)
    finally:
        dashboard.stop()


# -- the token ------------------------------------------------------------------------------


def test_nothing_is_served_without_the_token(board: Browserless) -> None:
    for path in ("/", "/static/app.js", "/static/style.css", "/api/cluster", "/api/tasks"):
        status, _, body = board.get(path, token=None)
        assert status == 401, path
        assert b"needs its token" in body
        assert board.get(path, token="0" * 32)[0] == 401
        assert board.get(path, token=board.dashboard.token[:-1])[0] == 401
        assert board.get(f"{path}?token=nope", token=None)[0] == 401
    assert board.get("/api/cluster")[0] == 200


def test_the_url_puts_the_token_in_a_cookie_and_out_of_the_address_bar(board: Browserless) -> None:
    url = board.dashboard.url
    assert url.startswith(f"http://127.0.0.1:{board.port}/?token=")
    status, headers, _ = board.get(url.split(str(board.port), 1)[1], token=None)
    assert status == 303
    assert headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{dashboard_server.COOKIE}={board.dashboard.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, body = board.get("/", token=None, headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and b"<title>Vistrit dashboard</title>" in body
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    # A script may carry it in the query of an API call too.
    token = board.dashboard.token
    assert board.get(f"/api/elections?token={token}", token=None)[0] == 200


def test_the_token_comes_from_the_client_secret_and_never_shows_it() -> None:
    first = Credentials({"client": b"a" * 32, "coordinator": b"b" * 32})
    same = Credentials({"client": b"a" * 32, "worker": b"c" * 32})
    other = Credentials({"client": b"d" * 32})
    assert dashboard_token(first) == dashboard_token(same)  # every coordinator, every restart
    assert dashboard_token(first) != dashboard_token(other)
    assert len(dashboard_token(first)) == 32
    assert (b"a" * 32).hex() not in dashboard_token(first)


# -- the views --------------------------------------------------------------------------------


def test_the_cluster_view_shows_workers_counts_and_those_that_left(
    cluster: Cluster, board: Browserless
) -> None:
    alpha = cluster.add_worker(name="alpha", slots=2)
    cluster.add_worker(name="beta")
    client = cluster.client()
    client.gather([client.submit("echo", b"x") for _ in range(5)], 20)
    view = board.json("/api/cluster")
    assert view["coordinator"]["role"] == "Leader" and view["coordinator"]["peers"] == []
    workers = {w["name"]: w for w in view["workers"]}
    assert set(workers) == {"alpha", "beta"}
    assert workers["alpha"]["slots"] == 2
    assert "echo" in workers["alpha"]["offers"]["function"]
    assert 0 <= workers["beta"]["heartbeat_age"] < 5
    assert view["counts"]["completed_total"] == 5
    assert view["counts"]["remembered"] == 5
    assert view["counts"]["clients"] == 1
    alpha.stop()
    wait_until(lambda: board.json("/api/cluster")["departed"], what="alpha marked gone")
    view = board.json("/api/cluster")
    assert [w["name"] for w in view["workers"]] == ["beta"]
    assert [w["name"] for w in view["departed"]] == ["alpha"]
    assert view["departed"][0]["left_at"] <= time.time()


def test_the_task_list_filters_and_pages_newest_first(cluster: Cluster, board: Browserless) -> None:
    cluster.add_worker(name="alpha", modules=["callables"])
    client = cluster.client()
    done = [client.submit("echo", str(n).encode(), name=f"t{n}") for n in range(6)]
    client.gather(done, 20)
    bad = client.submit("callables:fail", "planned", name="doomed", retries=0)
    with pytest.raises(TaskError):
        bad.result(20)
    page = board.json("/api/tasks?limit=3")
    assert [t["name"] for t in page["tasks"]] == ["doomed", "t5", "t4"]
    assert page["total"] == 7
    assert [t["name"] for t in board.json("/api/tasks?limit=3&offset=3")["tasks"]] == [
        "t3",
        "t2",
        "t1",
    ]
    failed = board.json("/api/tasks?state=Failed")["tasks"]
    assert [t["name"] for t in failed] == ["doomed"]
    completed = board.json("/api/tasks?state=Completed&limit=100")["tasks"]
    assert len(completed) == 6 and all(t["worker_name"] == "alpha" for t in completed)


def test_a_task_page_has_attempts_workers_times_and_the_remote_traceback(
    cluster: Cluster, board: Browserless
) -> None:
    cluster.add_worker(name="alpha", modules=["callables"])
    client = cluster.client()
    ok = client.submit("callables:identity", "hello")
    ok.result(20)
    failing = client.submit("callables:fail", "planned", retries=0)
    with pytest.raises(TaskError):
        failing.result(20)
    page = board.json(f"/api/tasks/{ok.task_id.hex[:10]}")  # a prefix is enough
    assert page["id"] == str(ok.task_id)
    assert page["state"] == "Completed" and page["final"]
    assert [w["name"] for w in page["workers"]] == ["alpha"]
    assert page["output_bytes"] > 0 and page["duration_ms"] is not None
    assert page["submitted_at"] <= page["finished_at"]
    page = board.json(f"/api/tasks/{failing.task_id}")
    assert page["state"] == "Failed"
    assert "planned" in page["error"]
    assert "_deeper" in page["traceback"]  # where it was raised, in the task's own code


def test_the_task_stream_places_each_task_on_its_worker(
    cluster: Cluster, board: Browserless
) -> None:
    alpha = cluster.add_worker(name="alpha")
    client = cluster.client()
    client.gather([client.submit("echo", b"x") for _ in range(4)], 20)
    stream = board.json("/api/stream")
    assert [w["name"] for w in stream["workers"]] == ["alpha"]
    assert len(stream["tasks"]) == 4
    for bar in stream["tasks"]:
        assert bar["worker"] == str(alpha.id)
        assert bar["start"] <= bar["end"] <= stream["now"]


def test_bad_requests_get_a_clear_400_and_unknown_ones_404(
    cluster: Cluster, board: Browserless
) -> None:
    for path in (
        "/api/tasks?limit=0",
        "/api/tasks?limit=1001",
        "/api/tasks?limit=-1",
        "/api/tasks?limit=1e3",
        "/api/tasks?offset=x",
        "/api/tasks?state=Lost",
        "/api/tasks/zz-not-hex",
        "/api/tasks/ab",  # too short a prefix to mean anything
        "/api/frames/abc",
        "/api/stream?limit=99999999999999999999999",
    ):
        status, _, body = board.get(path)
        assert status == 400, path
        assert json.loads(body)["error"]
    for path in (
        f"/api/tasks/{uuid.uuid4()}",
        "/api/frames/999999",
        "/api/nothing",
        "/static/../server.py",
        "/static/app.js.map",
        "/favicon.ico",
    ):
        assert board.get(path)[0] == 404, path
    connection = http.client.HTTPConnection(board.host, board.port, timeout=10)
    connection.request("POST", "/api/cluster", body=b"{}")
    assert connection.getresponse().status == 405
    connection.close()


def test_frames_are_sampled_with_their_byte_tables(
    cluster: Cluster, board: Browserless, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames_module, "PER_SECOND", 10_000)  # heartbeats may not crowd out
    cluster.add_worker(name="alpha")
    client = cluster.client()
    client.submit("echo", b"hello").result(20)
    frames = board.json("/api/frames")["frames"]
    kinds = {(f["direction"], f["type"]) for f in frames}
    assert ("in", "TaskSubmit") in kinds and ("out", "TaskAssign") in kinds
    submit = next(f for f in frames if f["type"] == "TaskSubmit")
    assert submit["peer"].startswith("client")
    table = board.json(f"/api/frames/{submit['number']}")
    data = bytes.fromhex(table["hex"])
    assert len(data) == submit["size"] and not table["truncated"]
    assert type(decode_frame(data).message).__name__ == "TaskSubmit"
    covered = sum(span["length"] for span in table["spans"])
    assert covered == len(data)  # every byte, once
    later = board.json(f"/api/frames?after={frames[-1]['number']}")["frames"]
    assert all(f["number"] > frames[-1]["number"] for f in later)


def test_the_sampler_keeps_at_most_its_share_a_second(cluster: Cluster) -> None:
    dashboard = Dashboard(cluster.coordinator, ("127.0.0.1", 0))
    now = [1000.0]
    sampler = FrameSampler(lambda _: ("client c", 4), lambda: now[0])
    me = uuid.uuid4()
    beats = [
        m.HeartbeatAck(coordinator_id=me, echo_timestamp=n, coordinator_timestamp=n)
        for n in range(50)
    ]
    sampler.tap("out", uuid.uuid4(), beats)
    assert len(sampler.frames()) == PER_SECOND
    now[0] += 1
    sampler.tap("out", uuid.uuid4(), beats[:3])
    assert len(sampler.frames()) == PER_SECOND + 3
    assert dashboard.frames.frames() == []


# -- hostile clients ----------------------------------------------------------------------------


def test_a_silent_connection_is_closed_and_a_flood_is_turned_away(
    board: Browserless, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_server._Handler, "timeout", 0.5)
    silent = socket.create_connection((board.host, board.port), timeout=5)
    assert silent.recv(100) == b""  # closed by the server, not by us
    silent.close()
    monkeypatch.setattr(dashboard_server._Handler, "timeout", 60)  # held until we close
    held = [
        socket.create_connection((board.host, board.port), timeout=5)
        for _ in range(dashboard_server.MAX_CLIENTS)
    ]
    try:
        wait_until(lambda: _in_use(board) == dashboard_server.MAX_CLIENTS, what="slots taken")
        extra = socket.create_connection((board.host, board.port), timeout=5)
        assert extra.recv(100) == b""  # one too many: closed at once
        extra.close()
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: _in_use(board) == 0, what="slots freed")
    assert board.get("/api/cluster")[0] == 200


def _in_use(board: Browserless) -> int:
    server = board.dashboard._server
    assert server is not None
    return dashboard_server.MAX_CLIENTS - server.slots._value  # type: ignore[attr-defined]


def test_garbage_and_oversized_requests_are_refused(board: Browserless) -> None:
    for request in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40 + b"\r\n\r\n",  # TLS hello
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    ):
        with socket.create_connection((board.host, board.port), timeout=10) as sock:
            sock.sendall(request)
            answer = sock.recv(200)
        # (to a request line it cannot read, http.server answers as to HTTP/0.9: no status line)
        assert re.match(rb"(HTTP/1\.[01] |.*Error code: )4\d\d", answer, re.S), answer
    assert board.get("/api/cluster")[0] == 200


# -- a restart, elections, a follower ------------------------------------------------------------


def test_a_restarted_coordinator_shows_what_happened_before_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Coordinator(("127.0.0.1", 0), data_dir=data)
    first.start()
    running = Cluster(first)
    try:
        running.add_worker(name="alpha")
        client = running.client()
        futures = [client.submit("echo", b"x", name=f"t{n}") for n in range(3)]
        client.gather(futures, 20)
        ids = [future.task_id for future in futures]
    finally:
        running.stop()
    second = Coordinator(("127.0.0.1", 0), data_dir=data)
    second.start()
    dashboard = Dashboard(second, ("127.0.0.1", 0))
    dashboard.start()
    try:
        board = Browserless(dashboard)
        tasks = board.json("/api/tasks")["tasks"]
        assert sorted(t["id"] for t in tasks) == sorted(str(i) for i in ids)
        assert all(t["state"] == "Completed" and t["finished_at"] for t in tasks)
        throughput = board.json("/api/cluster")["throughput"]
        assert sum(point["completed"] for point in throughput) == 3  # drawn from the journal
        assert board.json("/api/cluster")["coordinator"]["journal"].startswith(str(data))
    finally:
        dashboard.stop()
        second.stop()


def test_a_follower_says_where_the_leader_is_and_the_elections_survive_a_restart(
    tmp_path: Path,
) -> None:
    ports = {1: free_port(), 2: free_port()}
    peers = {rank: ("127.0.0.1", port) for rank, port in ports.items()}
    started: list[Coordinator] = []

    def start(rank: int) -> Coordinator:
        config = ClusterConfig(rank=rank, peers={r: a for r, a in peers.items() if r != rank})
        node = Coordinator(
            ("127.0.0.1", ports[rank]),
            name=f"c{rank}",
            cluster=config,
            data_dir=tmp_path / f"d{rank}",
        )
        node.start()
        started.append(node)
        return node

    boards: list[Dashboard] = []
    try:
        low, high = start(1), start(2)
        wait_until(lambda: high.cluster is not None and high.cluster.is_leader, 20, "a leader")
        follower = Dashboard(low, ("127.0.0.1", 0))
        follower.start()
        boards.append(follower)
        wait_until(
            lambda: Browserless(follower).json("/api/cluster")["coordinator"]["leader"], 20, "news"
        )
        view = Browserless(follower).json("/api/cluster")["coordinator"]
        assert view["role"] == "Follower"
        assert view["leader"]["rank"] == 2
        assert view["leader"]["address"] == f"127.0.0.1:{ports[2]}"
        assert [p["rank"] for p in view["peers"]] == [2]
        history = Browserless(follower).json("/api/elections")
        assert history["cluster"] and history["leader"] == 2
        assert history["changes"][-1]["role"] == "Follower"
        moves = _elections(high)
        leader_moves = [c["event"] for c in moves]
        assert "unanswered" in leader_moves and moves[-1]["role"] == "Leader"  # it won
        assert moves[-1]["why"]  # said in words
        high.stop()
        again = Coordinator(
            ("127.0.0.1", ports[2]),
            name="c2",
            cluster=ClusterConfig(rank=2, peers={1: peers[1]}),
            data_dir=tmp_path / "d2",
        )
        again.start()
        started.append(again)
        assert [c["event"] for c in _elections(again)][: len(leader_moves)] == leader_moves
    finally:
        for board in boards:
            board.stop()
        for node in reversed(started):
            node.stop()


def _elections(coordinator: Coordinator) -> list[dict[str, Any]]:
    dashboard = Dashboard(coordinator, ("127.0.0.1", 0))
    dashboard.start()
    try:
        return list(Browserless(dashboard).json("/api/elections")["changes"])
    finally:
        dashboard.stop()


def test_the_election_log_skips_damaged_lines_and_keeps_the_last(tmp_path: Path) -> None:
    log = ElectionLog(tmp_path)
    for term in range(KEPT + 10):
        log.record(Change(float(term), "leader silent", "Candidate", term, None))
    with open(tmp_path / "elections.log", "a") as file:
        file.write("not json\n{\"time\": 1}\n" + json.dumps({"time": 1, "event": "x", "role": "y",
                   "term": -5, "leader": None}) + "\n\xff\n")  # fmt: skip
    again = ElectionLog(tmp_path)
    assert len(again.changes) == KEPT
    assert again.changes[-1].term == KEPT + 9
    assert ElectionLog(None).changes == type(again.changes)()


def test_the_cli_prints_the_dashboard_url_and_refuses_a_bad_address(tmp_path: Path) -> None:
    group = Processes(tmp_path, dict(os.environ))
    try:
        process, ready = group.start(
            "coordinator", "--bind", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"
        )
        assert ready.startswith("vistrit coordinator listening on")
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("vistrit dashboard at http://127.0.0.1:")
        host_port, token = url.split("http://", 1)[1].split("/?token=")
        host, port = host_port.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/api/cluster", headers={"Authorization": f"Bearer {token}"})
        assert connection.getresponse().status == 200
        connection.close()
        code, _ = group.stop(process)
        assert code == 0
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            busy = f"127.0.0.1:{blocker.getsockname()[1]}"
            taken = group.run("coordinator", "--bind", "127.0.0.1:0", "--dashboard", busy)
        assert taken.returncode == 1
        assert "the dashboard cannot listen" in taken.stderr
        bad = group.run("coordinator", "--bind", "127.0.0.1:0", "--dashboard", "127.0.0.1:x")
        assert bad.returncode == 2 and "bad port" in bad.stderr
    finally:
        for process in group.running:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=20)
