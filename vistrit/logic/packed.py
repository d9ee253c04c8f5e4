"""Finished tasks, packed: one ``bytes`` object in place of a record's seven.

A fast path for memory, kept apart from :mod:`vistrit.logic.tasks` so that the record
stays a plain dataclass. What it buys: a coordinator remembers every finished task for
its retention (an hour by default), and a plain success, kept as Python objects, is a
record, its task, its payload, its state, its input, its result and its sequence number:
about 500 bytes of objects for a 16-byte echo. Packed, the same facts take one ``bytes``
of about 200 (``docs/performance.rst``). :meth:`vistrit.logic.store.TaskStore.compact`
packs what it can at the next tick, after the outcome has been sent; reading a packed
task unpacks it into an equal :class:`~vistrit.logic.tasks.TaskRecord`.

Only the common case is packed: a task that completed, whose result is a plain success
(compacted: :meth:`~vistrit.logic.tasks.TaskRecord.compact`), whose payload is ``Data``
or ``Call``, with no failed attempts, exclusions or other workers tried, and whose input
and result come to at most ``MAX_PACKED_BYTES``. Anything else stays a record:
:func:`pack` returns None.

The layout, little-endian (this is never sent or written, only held in memory):

====================  =======================================================
``HEAD``              flags, payload kind, sequence, submitted_at, finished_at,
                      deadline, completed_at, duration_ms, attempts, lost_workers,
                      priority, max_retries, timeout_seconds, created_at, worker
client                16 bytes, if flag ``CLIENT``
submitted_by          16 bytes, if flag ``SUBMITTER`` (not if it is the client)
name, function        each a u32 length and UTF-8
input, result         each a u32 length and the bytes
tags                  a u32 count, then each a u32 length and UTF-8
dependencies          a u32 count, then 16 bytes each
====================  =======================================================

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.store`.
"""

from __future__ import annotations

import struct
import uuid

from vistrit.logic.tasks import PENDING_STATE, TaskRecord
from vistrit.protocol.sharing import shared_text, shared_uuid
from vistrit.protocol.types import Task, TaskPayload, TaskPriority, TaskState

#: Input and result together, at most: a larger task would be copied whole to save the
#: same few hundred bytes (a small share of it), and its bytes are let go anyway once its
#: client has them (:mod:`vistrit.coordinator.release`).
MAX_PACKED_BYTES = 4096

HEAD = struct.Struct("<BBqdddqQQQBIQq16s")
_LENGTH = struct.Struct("<I")

# The flags.
ACKNOWLEDGED, CLIENT, SUBMITTER, SUBMITTED_BY_CLIENT, DEADLINE = 1, 2, 4, 8, 16
# The payload kinds.
DATA, CALL = 0, 1


def pack(record: TaskRecord) -> bytes | None:
    """*record* as one ``bytes``, or None if it is not the common case (see the module),
    or has a value the layout cannot hold (a number out of range, text that is not UTF-8)."""
    try:
        return _pack(record)
    except (struct.error, UnicodeEncodeError):
        return None


def _pack(record: TaskRecord) -> bytes | None:
    task, state, tried = record.task, record.state, record.tried
    payload = task.payload
    if (
        type(state) is not TaskState.Completed
        or (kept := record.plain_data()) is None
        or record.errors
        or record.excluded
        or (tried and tried != (state.worker_id,))  # (compacting drops the one it ran on)
        or record.waiting is not None
        or record.finished_at is None
        or type(task.state) is not TaskState.Pending
    ):
        return None
    if type(payload) is TaskPayload.Data:
        kind, data = DATA, payload.data
    elif type(payload) is TaskPayload.Call:
        kind, data = CALL, payload.arguments
    else:
        return None
    if len(data) + len(kept) > MAX_PACKED_BYTES:
        return None
    client, submitter = record.client, task.submitted_by
    flags = ACKNOWLEDGED if record.acknowledged else 0
    parts = [b""]  # the head, below
    if client is not None:
        flags |= CLIENT
        parts.append(client.int.to_bytes(16, "big"))
    if submitter is not None and submitter == client:
        flags |= SUBMITTED_BY_CLIENT
    elif submitter is not None:
        flags |= SUBMITTER
        parts.append(submitter.int.to_bytes(16, "big"))
    if record.deadline is not None:
        flags |= DEADLINE
    for text in (task.name, payload.function):
        _add(parts, text.encode())
    _add(parts, data)
    _add(parts, kept)
    parts.append(_LENGTH.pack(len(task.tags)))
    for tag in task.tags:
        _add(parts, tag.encode())
    parts.append(_LENGTH.pack(len(task.dependencies)))
    parts += [dependency.int.to_bytes(16, "big") for dependency in task.dependencies]
    parts[0] = HEAD.pack(
        flags,
        kind,
        record.sequence,
        record.submitted_at,
        record.finished_at,
        record.deadline or 0.0,
        state.completed_at,
        state.duration_ms,
        record.attempts,
        record.lost_workers,
        task.priority,
        task.max_retries,
        task.timeout_seconds,
        task.created_at,
        state.worker_id.int.to_bytes(16, "big"),
    )
    return b"".join(parts)


def _add(parts: list[bytes], data: bytes) -> None:
    parts.append(_LENGTH.pack(len(data)))
    parts.append(data)


def unpack(task_id: uuid.UUID, packed: bytes) -> TaskRecord:
    """The record that :func:`pack` made *packed* of, compacted
    (:meth:`~vistrit.logic.tasks.TaskRecord.compact`): equal to it in every field then."""
    (
        flags,
        kind,
        sequence,
        submitted_at,
        finished_at,
        deadline,
        completed_at,
        duration_ms,
        attempts,
        lost_workers,
        priority,
        max_retries,
        timeout_seconds,
        created_at,
        worker,
    ) = HEAD.unpack_from(packed)
    reader = _Reader(packed, HEAD.size)
    client = shared_uuid(reader.take(16)) if flags & CLIENT else None
    submitter = shared_uuid(reader.take(16)) if flags & SUBMITTER else None
    if flags & SUBMITTED_BY_CLIENT:
        submitter = client
    name, function = reader.text(), reader.text()
    data, kept = reader.data(), reader.data()
    tags = tuple(reader.text() for _ in range(reader.length()))
    dependencies = tuple(shared_uuid(reader.take(16)) for _ in range(reader.length()))
    payload: TaskPayload
    if kind == DATA:
        payload = TaskPayload.Data(function=function, data=data)
    else:
        payload = TaskPayload.Call(function=function, arguments=data)
    task = Task(
        id=task_id,
        name=name,
        payload=payload,
        state=PENDING_STATE,
        priority=TaskPriority(priority),
        max_retries=max_retries,
        timeout_seconds=timeout_seconds,
        tags=tags,
        created_at=created_at,
        submitted_by=submitter,
        dependencies=dependencies,
    )
    return TaskRecord(
        task=task,
        sequence=sequence,
        submitted_at=submitted_at,
        client=client,
        state=TaskState.Completed(
            worker_id=shared_uuid(worker), completed_at=completed_at, duration_ms=duration_ms
        ),
        kept=kept,
        attempts=attempts,
        deadline=deadline if flags & DEADLINE else None,
        lost_workers=lost_workers,
        acknowledged=bool(flags & ACKNOWLEDGED),
        finished_at=finished_at,
    )


class _Reader:
    """Reads the variable part of a packed task, in order."""

    def __init__(self, packed: bytes, offset: int) -> None:
        self.packed, self.offset = packed, offset

    def take(self, size: int) -> bytes:
        start = self.offset
        self.offset += size
        return self.packed[start : self.offset]

    def length(self) -> int:
        (length,) = _LENGTH.unpack_from(self.packed, self.offset)
        self.offset += _LENGTH.size
        return int(length)

    def data(self) -> bytes:
        return self.take(self.length())

    def text(self) -> str:
        return shared_text(self.data().decode())


__all__ = ["MAX_PACKED_BYTES", "pack", "unpack"]
