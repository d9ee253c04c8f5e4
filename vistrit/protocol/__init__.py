"""VistritProtocol as a pure library: bytes in, messages out, and back (sans-I/O).

Nothing in this package touches sockets, threads, clocks or logging; the node layer does
that and calls in here. Reading order, from the bytes on the wire inwards:

1. :mod:`~vistrit.protocol.frame` - a frame's header byte by byte, the checksum, and the
   incremental decoder (:mod:`~vistrit.protocol.errors`: what can go wrong, and whose
   fault it is);
2. :mod:`~vistrit.protocol.messages` and :mod:`~vistrit.protocol.types` - what a payload
   can say: one declaration per message and type; :mod:`~vistrit.protocol.catalogue` -
   which messages each version has, and how peers agree on one;
3. :mod:`~vistrit.protocol.wire` - how each kind of value becomes bytes
   (PROTOCOL-v1.md section 2), and :mod:`~vistrit.protocol.spans` - which bytes hold which field;
4. :mod:`~vistrit.protocol.schema` - how a declaration becomes a codec;
5. :mod:`~vistrit.protocol.annotate` and :mod:`~vistrit.protocol.jsonform` - the byte
   table and the JSON form of a frame.
"""

from vistrit.protocol.annotate import annotate_frame, format_table
from vistrit.protocol.catalogue import CATALOGUES, NEWEST_VERSION, V1, Catalogue, agree_version
from vistrit.protocol.errors import EncodeError, ErrorCode, ProtocolError
from vistrit.protocol.frame import (
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    decode_frame,
    encode_frame,
)
from vistrit.protocol.jsonform import frame_to_json, to_json_value
from vistrit.protocol.messages import Message
from vistrit.protocol.spans import Span

__all__ = [
    "CATALOGUES",
    "MAX_PAYLOAD",
    "NEWEST_VERSION",
    "V1",
    "Catalogue",
    "EncodeError",
    "ErrorCode",
    "Frame",
    "FrameDecoder",
    "Message",
    "ProtocolError",
    "Span",
    "agree_version",
    "annotate_frame",
    "decode_frame",
    "encode_frame",
    "format_table",
    "frame_to_json",
    "to_json_value",
]
