"""Hypothesis strategies derived from the wire types, so every declaration is covered.

Like the encoder and decoder, the generators read the one declaration of each message:
a field added to a message is generated without touching this file.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from vistrit.protocol import wire
from vistrit.protocol.catalogue import V1
from vistrit.protocol.messages import Message
from vistrit.protocol.schema import EnumType, StructCodec

_INT_RANGES = {
    "B": (0, 2**8 - 1),
    "H": (0, 2**16 - 1),
    "I": (0, 2**32 - 1),
    "Q": (0, 2**64 - 1),
    "i": (-(2**31), 2**31 - 1),
    "q": (-(2**63), 2**63 - 1),
}

# Any Unicode scalar value (surrogates cannot be UTF-8); small sizes keep runs quick.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
SOCKET_ADDRS = st.builds(
    lambda ip, port: wire.SocketAddr(str(ip), port),
    st.ip_addresses(),
    st.integers(0, 65535),
)


def values_for(wt: wire.WireType) -> st.SearchStrategy[Any]:
    """A strategy for the Python values of wire type *wt*."""
    if isinstance(wt, wire.Integer):
        low, high = _INT_RANGES[wt.fmt]
        return st.integers(low, high)
    if isinstance(wt, wire.Bool):
        return st.booleans()
    if isinstance(wt, wire.Uuid):
        return st.uuids()
    if isinstance(wt, wire.UnitEnum):
        return st.sampled_from(wt.members)
    if isinstance(wt, wire.String):
        return TEXT
    if isinstance(wt, wire.Bytes):
        return st.binary(max_size=64)
    if isinstance(wt, wire.SocketAddrType):
        return SOCKET_ADDRS
    if isinstance(wt, wire.Option):
        return st.none() | values_for(wt.inner)
    if isinstance(wt, wire.Vec):
        return st.lists(values_for(wt.inner), max_size=4).map(tuple)
    if isinstance(wt, StructCodec):
        return st.builds(wt.cls, **{name: values_for(ft) for name, ft in wt.fields})
    if isinstance(wt, EnumType):
        return st.one_of(*(values_for(cls.__wire__) for cls in wt.base._variants.values()))
    raise TypeError(f"no strategy for {wt!r}")


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    return values_for(cls.__wire__)


ANY_MESSAGE = st.one_of(*(messages_of(cls) for cls in V1.messages))  # v1 frames only
