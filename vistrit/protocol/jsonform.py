"""The JSON form of messages: every field under its PROTOCOL-v1.md name.

Values map as serde's JSON does, except bytes: UUIDs and socket addresses become strings,
unit enums their variant name, enums with fields ``{"Variant": {fields}}`` (a variant
without fields just ``"Variant"``), options ``null`` or the value, vectors lists, and
``Vec<u8>`` a hex string (JSON has no bytes).

This module never touches sockets, clocks or logging. Read next:
:mod:`vistrit.protocol.examples`.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from vistrit.protocol.frame import Frame
from vistrit.protocol.schema import WireEnum
from vistrit.protocol.wire import SocketAddr


def to_json_value(value: Any) -> Any:
    """*value* (a message, a declared type, or a field value) as plain JSON data."""
    codec = getattr(type(value), "__wire__", None)
    if codec is not None:
        fields = {name: to_json_value(getattr(value, name)) for name in codec.names}
        if isinstance(value, WireEnum):
            return {value.WIRE_NAME: fields} if fields else value.WIRE_NAME
        return fields
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (uuid.UUID, SocketAddr)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, tuple):
        return [to_json_value(item) for item in value]
    return value


def frame_to_json(frame: Frame) -> dict[str, Any]:
    """A decoded frame as ``{"version", "type", "message", "fields"}``."""
    message = frame.message
    fields = to_json_value(message)[message.WIRE_NAME]
    return {
        "version": frame.version,
        "type": f"0x{message.TYPE_BYTE:02x}",
        "message": message.WIRE_NAME,
        "fields": fields,
    }
