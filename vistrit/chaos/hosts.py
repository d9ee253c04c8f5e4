"""Where the lab's nodes run: all on 127.0.0.1, or each in a network namespace of its own.

With ``--hosts netns`` (Linux, as root) every coordinator and worker runs in its own
network namespace, a separate network stack with its own interfaces, addresses and
routes: as separate machines are. Namespace *k* is joined to this one by a veth pair, a
virtual cable: ``10.213.k.1`` on this side, ``10.213.k.2`` inside, and a default route
through the cable. The node binds ``10.213.k.2``; the relays, here, listen on the
``10.213.k.1`` ends, so a node can reach a coordinator only through its relay, and the
relay can reach the coordinator only through the cable. (The clients are threads of the
chaos process itself, so they run here.)

:class:`Namespaces` makes them with ``ip`` (iproute2) and deletes every one it made when
stopped (deleting a namespace deletes its cable). :func:`netns_unavailable` says why
namespaces cannot be had, if they cannot.

Read next: :mod:`vistrit.chaos.lab`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

#: The first two bytes of every address given to a namespace.
PREFIX = "10.213"

#: How long one ``ip`` command may take.
IP_TIMEOUT = 10.0


class HostsError(Exception):
    """Namespaces cannot be made here (the message says why)."""


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are a Linux feature"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    addresses = subprocess.run(["ip", "-4", "addr", "show"], capture_output=True, text=True)
    if f" {PREFIX}." in addresses.stdout:
        return f"addresses {PREFIX}.0.0/16 are already in use on this machine"
    probe = f"vistrit-probe-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if done.returncode != 0:
        raise HostsError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Namespaces:
    """The namespaces of one run, named ``vistrit-RUN-NODE``."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:6]
        self.made: dict[str, tuple[str, str, str]] = {}  # node -> (namespace, inside, outside)

    def add(self, node: str) -> tuple[str, str]:
        """A namespace for *node*: its address inside, and the address of this side."""
        reason = netns_unavailable() if not self.made else None
        if reason is not None:
            raise HostsError(reason)
        number = len(self.made) + 1
        if number > 250:
            raise HostsError("at most 250 namespaces in a run")
        name = f"vistrit-{self.run}-{node}"
        outer, inner = f"vx{self.run}{number:02d}a", f"vx{self.run}{number:02d}b"
        inside, outside = f"{PREFIX}.{number}.2", f"{PREFIX}.{number}.1"
        _ip("netns", "add", name)
        self.made[node] = (name, inside, outside)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("addr", "add", f"{outside}/24", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", name, "addr", "add", f"{inside}/24", "dev", inner)
        _ip("-n", name, "link", "set", inner, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "route", "add", "default", "via", outside)
        return inside, outside

    def command(self, node: str, argv: list[str]) -> list[str]:
        """*argv* run inside *node*'s namespace."""
        return ["ip", "netns", "exec", self.made[node][0], *argv]

    def names(self) -> list[str]:
        """The namespaces made (and not yet deleted)."""
        return [name for name, _, _ in self.made.values()]

    def delete(self) -> None:
        """Delete every namespace made (their cables go with them)."""
        for name, _, _ in self.made.values():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=IP_TIMEOUT)
        self.made.clear()
