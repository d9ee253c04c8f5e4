"""Addresses as people write them: ``host:port``, ``host``, ``[v6]:port``, and lists of them.

The command line and the SDK take coordinator addresses as text; this module turns the
text into ``(host, port)`` pairs, or says clearly what is wrong with it. It is plain
string handling: it never resolves a name or touches a socket (:func:`vistrit.transport.
resolve` does that).

Read next: :mod:`vistrit.transport`.
"""

from __future__ import annotations

from vistrit import defaults


def parse_address(text: str, default_port: int = defaults.PORT) -> tuple[str, int]:
    """``"host:port"``, ``"host"`` or ``"[v6]:port"`` as ``(host, port)``; ValueError if bad."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"bad port in {text!r}")
        port = int(port_text)
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, port


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """``"a:7878,b:7878"`` (several coordinators) as a list of ``(host, port)``; raises
    ``ValueError`` for a bad address or an empty list."""
    try:
        addresses = [parse_address(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"bad coordinator address: {exc}") from None
    if not addresses:
        raise ValueError("no coordinator address given")
    return addresses


__all__ = ["parse_address", "parse_addresses"]
