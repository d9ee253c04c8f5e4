"""The value encoding of a Call's arguments and result (vistrit.protocol.values): every
kind round-trips, each has the bytes the table says, and hostile bytes are refused."""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vistrit.protocol.errors import ProtocolError
from vistrit.protocol.values import (
    MAX_DEPTH,
    annotate_value,
    decode_call,
    decode_value,
    encode_call,
    encode_value,
)

pytestmark = pytest.mark.timeout(60)

keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda inner: st.tuples(inner, inner),
    max_leaves=4,
)  # fmt: skip
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(keys, inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_every_kind_and_its_nesting_round_trips_with_its_type(value: Any) -> None:
    decoded = decode_value(encode_value(value))
    assert decoded == value
    assert _shape(decoded) == _shape(value)  # a tuple stays a tuple, True stays a bool


def _shape(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (type(value), [_shape(v) for v in value])
    if isinstance(value, dict):
        return (dict, [(_shape(k), _shape(v)) for k, v in value.items()])
    return type(value)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_to_a_value_or_a_protocol_error(data: bytes) -> None:
    try:
        decode_value(data)
    except ProtocolError:
        pass


def test_each_kind_has_the_bytes_the_table_gives() -> None:
    assert encode_value(None) == b"\x00"
    assert encode_value(False) + encode_value(True) == b"\x01\x02"
    assert encode_value(5) == b"\x03" + struct.pack("<q", 5)
    assert encode_value(-(2**63)) == b"\x03" + struct.pack("<q", -(2**63))
    assert encode_value(2**63) == b"\x04" + struct.pack("<I", 9) + (2**63).to_bytes(9, "little")
    assert encode_value(1.5) == b"\x05" + struct.pack("<d", 1.5)
    assert encode_value("hé") == b"\x06\x03\x00\x00\x00h\xc3\xa9"
    assert encode_value(b"\xff") == b"\x07\x01\x00\x00\x00\xff"
    assert encode_value([None]) == b"\x08\x01\x00\x00\x00\x00"
    assert encode_value((None,)) == b"\x09\x01\x00\x00\x00\x00"
    assert encode_value({"a": 1}) == b"\x0a\x01\x00\x00\x00" + encode_value("a") + encode_value(1)
    assert math.isnan(decode_value(encode_value(float("nan"))))
    assert decode_value(encode_value(bytearray(b"x"))) == b"x"


@pytest.mark.parametrize(
    ("value", "error"),
    [({1, 2}, TypeError), (object(), TypeError), ("\udc80", ValueError)],
    ids=["set", "object", "lone surrogate"],
)
def test_what_cannot_travel_is_refused_naming_it(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_value(value)


def test_a_cycle_or_deep_nesting_is_refused_both_ways() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="nested more than"):
        encode_value(cycle)
    deep = b"\x08\x01\x00\x00\x00" * (MAX_DEPTH + 2) + b"\x00"
    with pytest.raises(ProtocolError, match="nest more than"):
        decode_value(deep)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "value tag"),
        (b"\x0b", "unknown value tag 0x0b"),
        (b"\x03\x01", "int: needs 8"),
        (b"\x06\xff\xff\xff\xff", "str of 4294967295 needs"),
        (b"\x08\xff\xff\xff\x7f", "list of 2147483647 needs"),
        (b"\x06\x01\x00\x00\x00\xff", "not UTF-8"),
        (b"\x0a\x01\x00\x00\x00\x08\x00\x00\x00\x00\x00", "key cannot be a list"),
        (b"\x0a\x02\x00\x00\x00\x00\x00\x00\x00", "given twice"),
        (b"\x04\x01\x00\x00\x00\x05", "fits in an i64"),
        (b"\x00\x00", "after the value"),
    ],
)
def test_hostile_bytes_are_refused_saying_what_and_where(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_value(data)


def test_a_huge_key_given_twice_is_named_without_printing_it() -> None:
    huge = encode_value(10**5000)
    data = b"\x0a\x02\x00\x00\x00" + huge + b"\x00" + huge + b"\x00"
    with pytest.raises(ProtocolError, match="the dict key <16610-bit int> is given twice"):
        decode_value(data)
    assert decode_value(encode_value({10**5000: 1})) == {10**5000: 1}
    spans = annotate_value(encode_value({("k" * 100,): 1}))
    assert max(len(s.field) for s in spans) < 80


def test_a_call_is_a_tuple_of_args_and_a_dict_of_str_keywords() -> None:
    assert decode_call(encode_call((1, "a"), {"k": [2]})) == ((1, "a"), {"k": [2]})
    for bad in ([(), {}], ((), {1: 2}), ((), {}, None), [1]):
        with pytest.raises(ProtocolError):
            decode_call(encode_value(bad))


def test_the_annotation_covers_every_byte_once() -> None:
    data = encode_value({"n": [1, 2.5, None], "b": b"\x00\x01"})
    spans = annotate_value(data)
    covered = sorted((s.offset, s.offset + s.length) for s in spans)
    assert covered[0][0] == 0 and covered[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
    assert any(s.field == "value['n'][1]" and s.value == "2.5" for s in spans)
