"""Declaring messages and types once: dataclasses whose annotations are wire types.

A declaration reads like the Rust it mirrors::

    @wire_message(variant=2, type_byte=0x03)
    class Heartbeat(Message):
        node_id: NodeId
        timestamp: Timestamp
        running_tasks: u32
        state: NodeState
        cpu_usage: u8 | None
        memory_usage: u8 | None

The decorator makes the class an immutable, keyword-built dataclass and compiles a
:class:`StructCodec` from its annotations, in declaration order. The encoder, the decoder,
the annotator (and so the wire tracer and the docs' byte tables) and the JSON form all read
that codec; nothing is written twice per message.

How an annotation maps to a wire type (:func:`wire_type_for`):

================================  ==============================================================
annotation                        wire type
================================  ==============================================================
``u8`` ... ``i64``                fixed-width little-endian integer
``Timestamp``                     ``i64`` Unix seconds
``bool``, ``str``, ``bytes``      ``bool``, ``String``, ``Vec<u8>``
``NodeId``, ``TaskId``, ``Uuid``  24-byte UUID (u64 length 16 + 16 bytes)
``SocketAddr``                    the reference's socket-address enum
``X | None``                      ``Option<X>``
``tuple[X, ...]``                 ``Vec<X>`` (decoded as a tuple, so values stay immutable)
an ``IntEnum``                    unit enum: u32 variant index
a ``WireEnum`` base               enum with fields: u32 variant index, then the variant's fields
another declared struct           its fields, in order
================================  ==============================================================

Speed without generated code: consecutive fixed-width fields (integers, UUIDs, unit enums,
bools) are merged into one *run* packed and unpacked by a single precompiled
``struct.Struct``; only variable-size fields (strings, options, vectors...) are walked one by
one.

This module never touches sockets, clocks or logging. Read next:
:mod:`vistrit.protocol.remembered`.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import struct
import types
import typing
import uuid
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from vistrit.protocol import wire
from vistrit.protocol.errors import BadEnumIndex, EncodeError
from vistrit.protocol.spans import Annotator, field_path
from vistrit.protocol.wire import SocketAddr, WireType

# Annotation aliases: the Python type for type checkers, the wire type as metadata.
u8 = Annotated[int, wire.U8]
u16 = Annotated[int, wire.U16]
u32 = Annotated[int, wire.U32]
u64 = Annotated[int, wire.U64]
i32 = Annotated[int, wire.I32]
i64 = Annotated[int, wire.I64]
Timestamp = Annotated[int, wire.TIMESTAMP]
Uuid = Annotated[uuid.UUID, wire.UUID]
NodeId = Annotated[uuid.UUID, wire.NODE_ID]
TaskId = Annotated[uuid.UUID, wire.TASK_ID]

T = TypeVar("T")


class WireValue:
    """Base of every declared struct, enum variant and message."""

    __slots__ = ()
    #: The name PROTOCOL-v1.md uses (usually the class name).
    WIRE_NAME: ClassVar[str]
    #: The codec compiled from the class's annotations.
    __wire__: ClassVar[StructCodec]


class WireEnum(WireValue):
    """Base of an enum whose variants carry fields (``TaskState``, ``TaskPayload``, ``Message``).

    Subclass it once for the enum; each variant subclasses that and is declared with
    :func:`wire_variant`. Variants are looked up by their u32 index.
    """

    __slots__ = ()
    VARIANT: ClassVar[int]
    _variants: ClassVar[dict[int, type[WireEnum]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if WireEnum in cls.__bases__:
            cls._variants = {}

    @classmethod
    def enum_base(cls) -> type[WireEnum]:
        """The enum a variant class belongs to (itself, for the enum's base class)."""
        for klass in cls.__mro__:
            if WireEnum in klass.__bases__:
                return klass
        raise TypeError(f"{cls.__name__} is not a WireEnum")


class StructCodec(WireType):
    """Encodes, decodes and annotates the fields of one declared class, in order.

    For an enum variant, ``prefix`` holds the u32 variant index already packed; the enclosing
    :class:`EnumType` writes and reads it, the codec handles only the fields.
    """

    def __init__(self, cls: type, fields: list[tuple[str, WireType]], variant: int | None) -> None:
        self.cls = cls
        self.name = cls.WIRE_NAME  # type: ignore[attr-defined]
        self.fields = fields
        self.names = tuple(name for name, _ in fields)
        self.prefix = b"" if variant is None else wire._U32.pack(variant)
        self.min_size = sum(wt.min_size for _, wt in fields)
        self.steps = _compile_steps(cls, fields)
        # The steps as the loops below take them: a run of fixed fields is one call; a
        # variable-size field is read or written here, without a call of its own (every
        # message is several nested structs: ``bench codec``, docs/performance.rst).
        self._encoders: list[tuple[Any, Any, Any]] = [
            (step.encode, None, None) if isinstance(step, _Run)
            else (None, step.get, step.wire_type.encode)
            for step in self.steps
        ]  # fmt: skip
        self._decoders: list[tuple[Any, Any, Any]] = [
            (step.decode, None, None) if isinstance(step, _Run)
            else (None, step.wire_type.decode, step.set)
            for step in self.steps
        ]  # fmt: skip
        # No fields (a Pending state, a bare request): every value is equal, and frozen, so
        # one decoded object serves them all - nothing to build, and nothing held per task.
        self.shared: Any = None if fields else _new(cls)

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the struct's fields, in declaration order."""
        if type(value) is not self.cls:
            raise EncodeError(f"{self.name} expected, got {type(value).__name__}")
        done = 0
        try:
            for encode_run, get, encode in self._encoders:
                if encode_run is not None:
                    encode_run(value, out)  # names its fields itself if it fails
                else:
                    encode(get(value), out)
                done += 1
        except _ENCODE_FAILURES as exc:
            step = self.steps[done]
            if isinstance(step, _Run):
                raise
            raise EncodeError(f"{type(value).__name__}.{step.name}: {exc}") from None

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read the struct's fields, in declaration order; returns the value and the next offset.

        The value is made without its ``__init__``: each field is set through its slot as
        it is read. A frozen dataclass's ``__init__`` takes keywords and sets each field
        through ``object.__setattr__``; this costs less than half as much, and every
        message a coordinator reads is built this way."""
        if self.shared is not None:
            return self.shared, pos
        value: Any = _new(self.cls)
        for decode_run, decode, set_field in self._decoders:
            if decode_run is not None:
                pos = decode_run(buf, pos, value)
            else:
                field, pos = decode(buf, pos)
                set_field(value, field)
        return value, pos

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe each field's bytes, for the byte table."""
        for name, wt in self.fields:
            pos = wt.annotate(ann, pos, field_path(path, name))
        return pos


# What a wrong value raises on its way through struct.pack, str.encode and the to_raw
# conversions; each step turns it into an EncodeError naming the field.
_ENCODE_FAILURES = (
    EncodeError,
    struct.error,
    TypeError,
    AttributeError,
    UnicodeError,
    OverflowError,
)


class _Run:
    """Consecutive fixed-width fields, packed and unpacked by one precompiled struct."""

    def __init__(self, cls: type, fields: list[tuple[str, wire.Fixed]]) -> None:
        self.names = [name for name, _ in fields]
        self.setters = [_setter(cls, name) for name in self.names]
        self.types = [wt for _, wt in fields]
        self.struct = struct.Struct("<" + "".join(wt.fmt for wt in self.types))
        self.get = operator.attrgetter(*self.names)
        self.single = len(fields) == 1
        # Most runs are plain integers: the struct items are the field values themselves.
        self.plain = not any(wt.converts for wt in self.types)
        # Otherwise: for each field, how to convert it to struct items (None: it is one)...
        self.to_raws = [wt.to_raw if wt.converts else None for wt in self.types]
        # ...and where its items start, how many, and how to convert them back.
        self.converters = []
        start = 0
        for name, wt in fields:
            convert = wt.from_pair if isinstance(wt, wire.Uuid) else wt.from_raw
            self.converters.append(
                (_setter(cls, name), start, start + wt.arity, convert if wt.converts else None)
            )
            start += wt.arity
        # One id alone is the commonest run of all (a task's id, a request's): :meth:`decode`
        # reads it without its loop.
        first = self.types[0]
        self.one_uuid = first.from_pair if self.single and isinstance(first, wire.Uuid) else None

    def encode(self, value: Any, out: bytearray) -> None:
        got = self.get(value)
        values = (got,) if self.single else got
        try:
            if self.plain:
                out += self.struct.pack(*values)
                return
            if self.single:  # one converted field (most often an id): its items, packed
                out += self.struct.pack(*self.to_raws[0](got))  # type: ignore[misc]
                return
            items: list[Any] = []
            for to_raw, item in zip(self.to_raws, values):
                if to_raw is None:
                    items.append(item)
                else:
                    items.extend(to_raw(item))
            out += self.struct.pack(*items)
        except _ENCODE_FAILURES as exc:
            raise EncodeError(f"{type(value).__name__}.{'/'.join(self.names)}: {exc}") from None

    def decode(self, buf: bytes, pos: int, value: Any) -> int:
        if self.one_uuid is not None:
            self.setters[0](value, self.one_uuid(*self.struct.unpack_from(buf, pos)))
            return pos + 24
        raw = self.struct.unpack_from(buf, pos)
        if self.plain:
            for set_field, item in zip(self.setters, raw):
                set_field(value, item)
        else:
            for set_field, start, stop, convert in self.converters:
                if convert is None:
                    set_field(value, raw[start])
                elif stop - start == 2:  # a UUID: its length and its bytes, no slice made
                    set_field(value, convert(raw[start], raw[start + 1]))
                else:
                    set_field(value, convert(*raw[start:stop]))
        return pos + self.struct.size


class _Single:
    """One variable-size field (string, option, vector, nested struct...): how to get it
    and set it, and its wire type. :class:`StructCodec` reads and writes it in its own
    loops."""

    def __init__(self, cls: type, name: str, wt: WireType) -> None:
        self.name = name
        self.get = operator.attrgetter(name)
        self.set = _setter(cls, name)
        self.wire_type = wt


#: Makes an instance without calling ``__init__`` (its fields are then set one by one).
_new = object.__new__


def _setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """What sets field *name* of a *cls* (a slotted, frozen dataclass) that is being built:
    the slot's own descriptor, which a frozen class's ``__setattr__`` does not guard."""
    setter: Callable[[Any, Any], None] = cls.__dict__[name].__set__
    return setter


def _compile_steps(cls: type, fields: list[tuple[str, WireType]]) -> list[_Run | _Single]:
    steps: list[_Run | _Single] = []
    run: list[tuple[str, wire.Fixed]] = []
    for name, wt in fields:
        if isinstance(wt, wire.Fixed):
            run.append((name, wt))
            continue
        if run:
            steps.append(_Run(cls, run))
            run = []
        steps.append(_Single(cls, name, wt))
    if run:
        steps.append(_Run(cls, run))
    return steps


class EnumType(WireType):
    """An enum with fields: u32 LE variant index, then that variant's fields."""

    min_size = 4

    def __init__(self, base: type[WireEnum]) -> None:
        self.base = base
        self.name = base.WIRE_NAME

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the variant's index (u32), then its fields."""
        if not isinstance(value, self.base):
            raise EncodeError(f"{self.name} expected, got {type(value).__name__}")
        codec = type(value).__wire__
        out += codec.prefix
        codec.encode(value, out)

    def variant_class(self, index: int) -> type[WireEnum]:
        """The variant class for a variant index; a ProtocolError if there is none."""
        cls = self.base._variants.get(index)
        if cls is None:
            raise BadEnumIndex(f"{self.name} variant index {index} is unknown")
        return cls

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read a variant index, then that variant's fields."""
        (index,) = wire._U32.unpack_from(buf, pos)
        cls = self.base._variants.get(index)  # (variant_class, without a call of its own)
        if cls is None:
            raise BadEnumIndex(f"{self.name} variant index {index} is unknown")
        return cls.__wire__.decode(buf, pos + 4)

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the variant index and the variant's fields, for the byte table."""
        cls: type[WireEnum] = ann.read(_VariantProbe(self), pos, path)[0]
        label = f"{path} (variant)" if path else "message (variant)"
        ann.add(pos, 4, label, "u32", f"{cls.VARIANT} = {cls.WIRE_NAME}")
        return cls.__wire__.annotate(ann, pos + 4, path)


class _VariantProbe(WireType):
    """Reads only a variant index and resolves it, so annotation errors name the field."""

    def __init__(self, enum_type: EnumType) -> None:
        self.enum_type = enum_type
        self.name = enum_type.name

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        (index,) = wire._U32.unpack_from(buf, pos)
        return self.enum_type.variant_class(index), pos + 4


_cache: dict[Any, WireType] = {}


def wire_type_for(annotation: Any) -> WireType:
    """The wire type an annotation stands for (see the table in the module docstring)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, WireType):
                return meta
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        (inner,) = (arg for arg in args if arg is not type(None))
        return wire.Option(wire_type_for(inner))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return wire.Vec(wire_type_for(args[0]))
    simple = {bool: wire.BOOL, str: wire.STRING, bytes: wire.BYTES, uuid.UUID: wire.UUID}
    if annotation in simple:
        return simple[annotation]
    if annotation is SocketAddr:
        return wire.SOCKET_ADDR
    if isinstance(annotation, type) and annotation not in _cache:
        if issubclass(annotation, enum.IntEnum):
            _cache[annotation] = wire.UnitEnum(annotation)
        elif issubclass(annotation, WireEnum) and WireEnum in annotation.__bases__:
            _cache[annotation] = EnumType(annotation)
        elif "__wire__" in vars(annotation):
            _cache[annotation] = vars(annotation)["__wire__"]
    if annotation in _cache:
        return _cache[annotation]
    raise TypeError(f"no wire type for the annotation {annotation!r}")


def declare_struct(
    cls: type[T],
    variant: int | None,
    wire_name: str | None,
    codec: type[StructCodec] = StructCodec,
) -> type[T]:
    """Make *cls* a frozen, slotted, keyword-built dataclass with a *codec* compiled from
    its annotations, in declaration order (what the decorators below do)."""
    if "WIRE_NAME" not in vars(cls):
        cls.WIRE_NAME = wire_name or cls.__name__  # type: ignore[attr-defined]
    data_cls: Any = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    hints = typing.get_type_hints(data_cls, include_extras=True)
    fields = [(f.name, wire_type_for(hints[f.name])) for f in dataclasses.fields(data_cls)]
    data_cls.__wire__ = codec(data_cls, fields, variant)
    return typing.cast(type[T], data_cls)


# dataclass_transform tells type checkers that these decorators make frozen, keyword-only
# dataclasses (PEP 681), so ``Heartbeat(node_id=...)`` is checked field by field.
@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def wire_struct(cls: type[T]) -> type[T]:
    """Declare a struct: its fields are encoded in declaration order, without names."""
    return declare_struct(cls, None, None)


@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def wire_variant(index: int, *, wire_name: str | None = None) -> Callable[[type[T]], type[T]]:
    """Declare a variant, with the u32 *index*, of the ``WireEnum`` the class derives from."""

    def declare(cls: type[T]) -> type[T]:
        data_cls = declare_struct(cls, index, wire_name)
        base = data_cls.enum_base()  # type: ignore[attr-defined]
        if index in base._variants:
            raise TypeError(f"{base.__name__} already has a variant {index}")
        data_cls.VARIANT = index  # type: ignore[attr-defined]
        base._variants[index] = data_cls
        return data_cls

    return declare
