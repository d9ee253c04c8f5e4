"""TLS, optional and mutual, with certificates the tests make themselves (trustme): a
cluster that works over it, coordinators linked over it, and clear refusals for a
plaintext node on a TLS port, a TLS node on a plaintext port, and a certificate the
cluster's CA did not sign."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from nodes import heartbeat, wait_until

from vistrit.client import CoordinatorUnavailable, VistritClient
from vistrit.coordinator import Coordinator
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.transport import TLSConfig, connect
from vistrit.transport.tls import TLSError
from vistrit.worker import Worker

pytestmark = pytest.mark.timeout(60)


def issue(ca: trustme.CA, folder: Path, name: str) -> TLSConfig:
    """A certificate for 127.0.0.1 and localhost, signed by *ca*, as the files a node reads."""
    folder.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(folder / f"{name}.pem"))
    cert.private_key_pem.write_to_path(str(folder / f"{name}.key"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return TLSConfig(folder / f"{name}.pem", folder / f"{name}.key", folder / "ca.pem")


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[tuple[trustme.CA, Path]]:
    yield trustme.CA(), tmp_path


@pytest.fixture
def tls_coordinator(pki: tuple[trustme.CA, Path]) -> Iterator[Coordinator]:
    ca, folder = pki
    with Coordinator(("127.0.0.1", 0), tls=issue(ca, folder, "coordinator")) as coordinator:
        yield coordinator


def test_a_cluster_works_over_mutual_tls(
    tls_coordinator: Coordinator, pki: tuple[trustme.CA, Path]
) -> None:
    ca, folder = pki
    host, port = tls_coordinator.address
    worker = Worker((host, port), tls=issue(ca, folder, "worker"), heartbeat_interval=0.2)
    worker.start()
    try:
        with VistritClient(f"{host}:{port}", tls=issue(ca, folder, "client")) as client:
            futures = [client.submit("uppercase", f"secret {n}") for n in range(50)]
            assert [f.result(10) for f in futures] == [f"SECRET {n}" for n in range(50)]
            big = b"x" * (3 << 20)  # many TLS records, in both directions
            assert client.submit("echo", big).result(20) == big
    finally:
        worker.stop()


def test_a_plaintext_node_on_a_tls_port_is_told_so(
    tls_coordinator: Coordinator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    host, port = tls_coordinator.address
    with pytest.raises(CoordinatorUnavailable, match="this coordinator speaks TLS"):
        VistritClient(f"{host}:{port}", connect_timeout=3)
    assert "a node without TLS reached this TLS port" in caplog.text


def test_a_tls_node_on_a_plaintext_port_says_so(pki: tuple[trustme.CA, Path]) -> None:
    ca, folder = pki
    client = issue(ca, folder, "client")
    with Coordinator(("127.0.0.1", 0)) as plain, pytest.raises(TLSError, match="not speak TLS"):
        connect(plain.address, timeout=3, tls=client)


def test_a_certificate_the_cluster_ca_did_not_sign_is_refused(
    tls_coordinator: Coordinator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    stranger = issue(trustme.CA(), tmp_path / "elsewhere", "stranger")
    with pytest.raises(TLSError, match="TLS handshake failed"):
        connect(tls_coordinator.address, timeout=3, tls=stranger)
    wait_until(lambda: "refused: TLS handshake failed" in caplog.text, what="the refusal logged")


def test_coordinators_link_and_elect_over_tls(pki: tuple[trustme.CA, Path]) -> None:
    from vistrit.coordinator.peers import ClusterConfig
    from vistrit.demo import free_port

    ca, folder = pki
    ports = {1: free_port(), 2: free_port()}
    started = []
    try:
        for rank, other in ((1, 2), (2, 1)):
            config = ClusterConfig(rank=rank, peers={other: ("127.0.0.1", ports[other])})
            node = Coordinator(
                ("127.0.0.1", ports[rank]),
                cluster=config,
                name=f"c{rank}",
                tls=issue(ca, folder, f"c{rank}"),
            )
            node.start()
            started.append(node)
        wait_until(
            lambda: [c.cluster.is_leader for c in started if c.cluster] == [False, True],
            what="coordinator 2 to lead",
        )
        client_tls = issue(ca, folder, "client")
        addresses = ",".join(f"127.0.0.1:{ports[r]}" for r in (1, 2))
        with VistritClient(addresses, tls=client_tls) as client:  # redirected, over TLS
            status = client.cluster_status()
            assert status.address == f"127.0.0.1:{ports[2]}" and status.total_nodes == 2
    finally:
        for node in started:
            node.stop()


def test_the_cli_takes_all_three_tls_files_or_none(pki: tuple[trustme.CA, Path]) -> None:
    ca, folder = pki
    tls = issue(ca, folder, "node")
    command = [sys.executable, "-m", "vistrit", "cluster", "--tls-cert", str(tls.cert)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "go together: give all three" in run.stderr
    missing = [*command, "--tls-key", str(folder / "missing.key"), "--tls-ca", str(tls.ca)]
    run = subprocess.run(missing, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "cannot use the TLS files" in run.stderr


def test_an_error_frame_reaches_a_plaintext_peer_before_the_close(
    tls_coordinator: Coordinator,
) -> None:
    conn = connect(tls_coordinator.address, timeout=3)  # no TLS
    try:
        conn.send(heartbeat(uuid.UUID(int=1)))
        error = conn.receive(time.monotonic() + 5)
        assert isinstance(error, m.Error) and error.code == ErrorCode.Protocol
    finally:
        conn.close()
