"""Versions: the header's version byte selects a catalogue; later versions only append."""

from __future__ import annotations

import pytest

from vistrit.protocol import (
    CATALOGUES,
    NEWEST_VERSION,
    V1,
    agree_version,
    decode_frame,
    encode_frame,
)
from vistrit.protocol.catalogue import V2, V3, V4, Catalogue, first_version
from vistrit.protocol.errors import UnknownMessageType
from vistrit.protocol.examples import all_examples
from vistrit.protocol.messages import Message, wire_message
from vistrit.protocol.schema import u64
from vistrit.protocol.types import NodeType

FAMILIES = {
    "connection": (0x01, 0x0F),
    "task": (0x10, 0x1F),
    "cluster": (0x20, 0x2F),
    "election": (0x30, 0x3F),
    "error": (0xE0, 0xE0),
}


def test_v1_is_the_reference_catalogue() -> None:
    assert CATALOGUES[1] is V1 and NEWEST_VERSION == 4
    assert [m.VARIANT for m in V1.messages] == list(range(22))
    assert [hex(m.TYPE_BYTE) for m in V1.messages] == [
        "0x1", "0x2", "0x3", "0x4", "0x5", "0x10", "0x11", "0x12", "0x13", "0x14", "0x15",
        "0x16", "0x17", "0x18", "0x20", "0x21", "0x22", "0x23", "0x30", "0x31", "0x32", "0xe0",
    ]  # fmt: skip


def test_every_type_byte_is_in_its_family_range() -> None:
    for message in V1.messages:
        assert any(low <= message.TYPE_BYTE <= high for low, high in FAMILIES.values())


def test_a_later_version_appends_without_changing_v1() -> None:
    @wire_message(99, 0x4F)
    class ReplicateRecord(Message):  # an example later message (replication family)
        sequence: u64

    try:
        v4 = V3.extended(4, [ReplicateRecord])
        assert v4.messages[:22] == V1.messages and v4.messages[:30] == V3.messages
        assert v4.message_for_type(0x4F) is ReplicateRecord
        with pytest.raises(UnknownMessageType):
            V3.message_for_type(0x4F)
    finally:
        del Message._variants[99]  # keep the real catalogue as it was


def test_v2_appends_four_messages_and_the_client_node_kind() -> None:
    added = V2.messages[22:]
    assert [(m.WIRE_NAME, m.VARIANT, m.TYPE_BYTE) for m in added] == [
        ("TaskCancelAck", 22, 0x19),
        ("TaskListRequest", 23, 0x1A),
        ("TaskListResponse", 24, 0x1B),
        ("TaskOutcome", 25, 0x1C),
    ]
    assert NodeType.Client == 2 and list(NodeType)[:2] == [NodeType.Coordinator, NodeType.Worker]
    with pytest.raises(UnknownMessageType):
        V1.message_for_type(0x19)


def test_v3_appends_the_redirect_and_the_replication_family() -> None:
    added = V3.messages[26:]
    assert [(m.WIRE_NAME, m.VARIANT, m.TYPE_BYTE) for m in added] == [
        ("Redirect", 26, 0x06),
        ("Replicate", 27, 0x40),
        ("ReplicateAck", 28, 0x41),
        ("ReplicaSnapshot", 29, 0x42),
    ]
    assert V3.messages[:26] == V2.messages
    assert [first_version(m) for m in (V1.messages[0], V2.messages[-1], added[0])] == [1, 2, 3]
    with pytest.raises(UnknownMessageType):
        V2.message_for_type(0x40)


def test_v4_appends_authentication_offers_paging_and_batches_each_in_its_family_range() -> None:
    added = V4.messages[30:]
    assert [(m.WIRE_NAME, m.VARIANT, m.TYPE_BYTE) for m in added] == [
        ("AuthChallenge", 30, 0x50),
        ("AuthResponse", 31, 0x51),
        ("AuthConfirm", 32, 0x52),
        ("WorkerOffer", 33, 0x07),
        ("TaskListQuery", 34, 0x1D),
        ("TaskSubmitBatch", 35, 0x1E),
        ("TaskSubmitBatchAck", 36, 0x1F),
        ("TaskOutcomeAck", 37, 0x24),
    ]
    assert V4.messages[:30] == V3.messages
    assert all(0x50 <= m.TYPE_BYTE <= 0x5F for m in added[:3])
    assert 0x06 <= added[3].TYPE_BYTE <= 0x0F
    assert all(0x19 <= m.TYPE_BYTE <= 0x1F for m in added[4:7])  # the task family's range
    assert 0x24 <= added[7].TYPE_BYTE <= 0x2F  # which is full: the cluster family's
    assert first_version(added[0]) == 4 and first_version(added[-1]) == 4
    with pytest.raises(UnknownMessageType):
        V3.message_for_type(0x50)
    with pytest.raises(UnknownMessageType):
        V3.message_for_type(0x07)


def test_duplicate_type_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Catalogue(9, (V1.messages[0], V1.messages[0]))


@pytest.mark.parametrize(
    ("ours", "theirs", "agreed"), [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 0, None), (5, 9, None)]
)
def test_agree_version(ours: int, theirs: int, agreed: int | None) -> None:
    assert agree_version(ours, theirs) == agreed


def test_frames_carry_their_version() -> None:
    frame = encode_frame(all_examples()["Heartbeat"], version=1)
    assert frame[4] == 1 and decode_frame(frame).version == 1
