"""The declarations match PROTOCOL-v1.md (a copy is in tests/data), field by field.

The spec's tables list every shared type and message with its fields in wire order; this
test reads them and compares names and types with the one declaration in the code.
"""

from __future__ import annotations

import re

import pytest
from conftest import DATA

from vistrit.protocol.catalogue import V1
from vistrit.protocol.schema import wire_type_for
from vistrit.protocol.types import NodeCapabilities, NodeInfo, Task, TaskResult

SPEC = (DATA / "PROTOCOL-v1.md").read_text()
MESSAGE_ROW = re.compile(r"^\| (\d+) \| 0x([0-9A-F]{2}) \| (\w+) \| (.*) \|$", re.M)
TYPE_ROW = re.compile(r"^\| `(\w+)` \| `(.*)` \|$", re.M)

# How the spec spells a wire type, for the names our declarations print.
ALIASES = {"Uuid": "Uuid", "NodeId": "NodeId", "TaskId": "TaskId", "Timestamp": "i64"}


def spec_fields(text: str) -> list[tuple[str, str]]:
    """'`a: u8, b: Option<String>`' -> [('a', 'u8'), ('b', 'Option<String>')]."""
    fields = []
    for part in re.split(r",\s*(?![^<]*>)", text.strip("` ")):
        name, _, type_text = part.partition(":")
        fields.append((name.strip(), type_text.strip()))
    return fields


def code_fields(cls: type) -> list[tuple[str, str]]:
    return [(name, wt.name) for name, wt in cls.__wire__.fields]  # type: ignore[attr-defined]


def normalise(type_text: str) -> str:
    return type_text.replace("Vec<u8>", "Vec<u8>").replace(" ", "")


def test_every_message_matches_the_spec_table() -> None:
    rows = MESSAGE_ROW.findall(SPEC)
    assert len(rows) == 22
    for (index, type_byte, name, fields), cls in zip(rows, V1.messages, strict=True):
        assert (int(index), int(type_byte, 16), name) == (cls.VARIANT, cls.TYPE_BYTE, cls.WIRE_NAME)
        expected = [(n, normalise(t)) for n, t in spec_fields(fields)]
        assert [(n, normalise(t)) for n, t in code_fields(cls)] == expected, name


@pytest.mark.parametrize("cls", [NodeCapabilities, NodeInfo, Task, TaskResult])
def test_shared_struct_matches_the_spec_table(cls: type) -> None:
    rows = dict(TYPE_ROW.findall(SPEC))
    expected = [(n, normalise(t)) for n, t in spec_fields(rows[cls.__name__])]
    assert [(n, normalise(t)) for n, t in code_fields(cls)] == expected


def test_enum_variants_are_in_spec_order() -> None:
    from vistrit.protocol.types import NodeState, NodeType, TaskPayload, TaskPriority, TaskState

    assert [m.name for m in NodeType][:2] == ["Coordinator", "Worker"]  # v2 appends Client
    assert [m.name for m in NodeState] == ["Starting", "Ready", "Busy", "Draining", "Offline"]
    assert [m.name for m in TaskPriority] == ["Low", "Normal", "High", "Critical"]
    states = wire_type_for(TaskState).base._variants  # type: ignore[attr-defined]
    assert [states[i].__name__ for i in range(6)] == [
        "Pending", "Scheduled", "Running", "Completed", "Failed", "Cancelled",
    ]  # fmt: skip
    payloads = wire_type_for(TaskPayload).base._variants  # type: ignore[attr-defined]
    assert [payloads[i].__name__ for i in range(5)] == [
        "Command",
        "Data",
        "Compute",
        "Map",
        "Reduce",
    ]
