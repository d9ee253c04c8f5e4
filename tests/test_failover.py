"""Several coordinators in real processes: the bully election, and failover that loses no
acknowledged task. Each coordinator's log goes to a file in the test's directory, and is
read to check what it did."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import answer_to_a_worker, wait_until

from vistrit.addresses import parse_address
from vistrit.bench.tasks import spin
from vistrit.client import VistritClient
from vistrit.demo import ProcessGroup
from vistrit.protocol import messages as m

pytestmark = pytest.mark.timeout(120)

WORKER = ("--tasks", "vistrit.bench.tasks", "--heartbeat", "0.2")


class Cluster:
    """Coordinators 1..n, workers, and the files their logs go to."""

    def __init__(
        self, group: ProcessGroup, logs: Path, count: int, *options: str, data: bool = False
    ) -> None:
        self.group = group
        self.logs = logs
        self.options = options
        self.data = data
        started = group.start_coordinators(count, *options, log_dir=logs, data=data)
        self.processes = {rank: process for rank, (process, _) in started.items()}
        self.addresses = {rank: address for rank, (_, address) in started.items()}
        self.peers = ",".join(f"{r}@{a}" for r, a in self.addresses.items())

    @property
    def all(self) -> str:
        return ",".join(self.addresses.values())

    def log(self, rank: int) -> str:
        return (self.logs / f"coordinator-{rank}.log").read_text()

    def worker(self, name: str, *options: str) -> subprocess.Popen[str]:
        return self.group.start_worker(self.all, name, *WORKER, *options)

    def restart(self, rank: int, *options: str) -> None:
        process = self.group.start_coordinator_at(
            self.addresses[rank],
            rank,
            self.peers,
            *self.options,
            *(("--data-dir", str(self.logs / f"data-{rank}")) if self.data else ()),
            *options,
            log=self.logs / f"coordinator-{rank}.log",
        )
        self.group.first_line(process, f"coordinator {rank}")
        self.processes[rank] = process

    def kill(self, rank: int) -> None:
        self.processes[rank].send_signal(signal.SIGKILL)
        self.processes[rank].wait(10)


def leader_of(client: VistritClient) -> int:
    leader = client.cluster_status().leader_id
    assert leader is not None
    return leader.int


def redirects_to(address: str, leader: int) -> bool:
    answer = answer_to_a_worker(parse_address(address))
    return isinstance(answer, m.Redirect) and answer.leader_id == uuid.UUID(int=leader)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    processes = ProcessGroup()
    yield processes
    for process in processes.processes:
        if process.poll() is None:
            process.kill()
    processes.stop_all()


def work(client: VistritClient, count: int, start: int = 0) -> list[object]:
    return [client.submit("bench-spin", str(n), retries=2) for n in range(start, start + count)]


def expected(count: int, start: int = 0) -> list[str]:
    return [str(spin(str(n).encode())) for n in range(start, start + count)]


def test_simultaneous_starts_elect_the_highest_and_followers_redirect(
    group: ProcessGroup, tmp_path: Path
) -> None:
    cluster = Cluster(group, tmp_path, 3)
    with VistritClient(cluster.addresses[1]) as client:  # redirected to the leader
        assert leader_of(client) == 3
        status = client.cluster_status()  # the leader's address and term, as announced
        assert status.address == cluster.addresses[3] and status.term >= 1
        wait_until(lambda: client.cluster_status().total_nodes == 3, what="3 coordinators")
    for rank in (1, 2):
        wait_until(lambda r=rank: redirects_to(cluster.addresses[r], 3), what="redirects to 3")
        assert "now Follower" in cluster.log(rank)
    assert isinstance(answer_to_a_worker(parse_address(cluster.addresses[3])), m.HandshakeAck)
    # Coordinator 3 won. Usually one election settles it; under load a follower that has
    # not yet heard the new leader stands in a newer term, and the bully's leader steps
    # down and wins again (a known limit, docs/limits.rst): never a lower coordinator.
    moves = [line for line in cluster.log(3).splitlines() if "now Leader" in line]
    assert 1 <= len(moves) <= 2, "\n".join(moves)


def test_killing_the_leader_mid_run_loses_no_acknowledged_task(
    group: ProcessGroup, tmp_path: Path
) -> None:
    """Three coordinators, two workers, a client running 1,000 tasks; SIGKILL the leader
    mid-run: every task ends with exactly one correct outcome."""
    cluster = Cluster(group, tmp_path, 3, data=True)
    for name in ("w1", "w2"):
        cluster.worker(name, "--slots", "2")
    with VistritClient(cluster.all) as client:
        futures = work(client, 1000, 2000)
        client.status(futures[-1].task_id)  # answered after every submission: all acknowledged
        wait_until(lambda: sum(f.done() for f in futures) >= 100, what="100 done")
        assert leader_of(client) == 3
        cluster.kill(3)
        assert client.gather(futures, 90) == expected(1000, 2000)
        assert leader_of(client) == 2
        status = client.cluster_status()
        assert (status.completed_tasks, status.failed_tasks, status.pending_tasks) == (1000, 0, 0)
        outcomes = {t.id: t.state for t in client.tasks(1000)}
        assert len(outcomes) == 1000 and set(outcomes.values()) == {"Completed"}
    log = cluster.log(2)
    assert "now Leader" in log and "leading in term" in log


def test_a_paused_leader_steps_down_and_does_not_act_on_its_old_term(
    group: ProcessGroup, tmp_path: Path
) -> None:
    cluster = Cluster(group, tmp_path, 3, "--no-takeover")
    cluster.worker("w1")
    with VistritClient(cluster.all) as client:
        assert client.submit("bench-spin", "1").result(20) == expected(1, 1)[0]
        cluster.processes[3].send_signal(signal.SIGSTOP)  # the leader freezes, sockets open
        futures = work(client, 50)  # held by the frozen leader: resubmitted to the next
        assert client.gather(futures, 60) == expected(50)
        assert leader_of(client) == 2
        cluster.processes[3].send_signal(signal.SIGCONT)
        wait_until(lambda: "no longer the leader" in cluster.log(3), what="3 steps down")
        wait_until(lambda: redirects_to(cluster.addresses[3], 2), what="3 redirects to 2")
        assert leader_of(client) == 2  # it did not take over (--no-takeover)
        assert client.submit("bench-spin", "7").result(20) == expected(1, 7)[0]
    log = cluster.log(3)
    assert "we were deposed" in log or "announced: now Follower" in log
    stepped = log.index("no longer the leader")
    assert "joined" not in log[stepped:].replace("joins", "")  # no worker or client since


def test_a_higher_ranked_coordinator_that_rejoins_takes_over_with_every_task(
    group: ProcessGroup, tmp_path: Path
) -> None:
    cluster = Cluster(group, tmp_path, 3)
    cluster.worker("w1")
    with VistritClient(cluster.all) as client:
        first = work(client, 20)
        client.gather(first, 30)
        cluster.kill(3)
        second = work(client, 20, 20)
        client.gather(second, 30)
        assert leader_of(client) == 2
        cluster.restart(3)  # follows 2, receives its tasks, then takes over (the default)
        wait_until(lambda: redirects_to(cluster.addresses[2], 3), timeout=20, what="3 leads")
        assert leader_of(client) == 3
        log = cluster.log(3)  # it followed 2 and took its copy before it led again
        assert log.index("in sync with leader 2") < log.rindex("unanswered: now Leader")
        assert [client.status(f.task_id).output for f in [*first, *second]] == [
            r.encode() for r in expected(40)
        ]
        assert client.gather(work(client, 5, 40), 30) == expected(5, 40)


def test_with_no_takeover_a_rejoining_coordinator_follows(
    group: ProcessGroup, tmp_path: Path
) -> None:
    cluster = Cluster(group, tmp_path, 3, "--no-takeover")
    with VistritClient(cluster.all) as client:
        cluster.kill(3)
        wait_until(lambda: leader_of(client) == 2, timeout=20, what="2 leads")
        cluster.restart(3)
        wait_until(lambda: "in sync with leader 2" in cluster.log(3), what="3 in sync")
        assert leader_of(client) == 2 and redirects_to(cluster.addresses[3], 2)


def test_the_last_coordinator_standing_leads_with_every_result(
    group: ProcessGroup, tmp_path: Path
) -> None:
    cluster = Cluster(group, tmp_path, 3)
    cluster.worker("w1")
    with VistritClient(cluster.all) as client:
        done = work(client, 10)
        client.gather(done, 30)
        cluster.kill(3)
        client.gather(work(client, 10, 10), 30)
        cluster.kill(2)
        assert client.gather(work(client, 10, 20), 30) == expected(10, 20)
        assert leader_of(client) == 1
        assert [client.status(f.task_id).output for f in done] == [r.encode() for r in expected(10)]
