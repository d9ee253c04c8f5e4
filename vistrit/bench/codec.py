"""``bench codec``: how fast frames are encoded and decoded, next to the practical limit.

Three messages: a small one (``Heartbeat``), a medium one (``TaskAssign`` of a word-count
task) and a large one (``TaskAssign`` carrying 1 MiB of ``Data``). For each, the rates of
:func:`~vistrit.protocol.encode_frame`, of :class:`~vistrit.protocol.FrameDecoder`, and of
a round trip through both, beside a *baseline*: the bare work any implementation must do
for the same bytes - one precompiled ``struct`` pack of the whole frame, one unpack, and
a ``zlib.crc32`` on each side. The ratio of round-trip time to baseline time says how much
the schema-driven codec costs over that limit.

Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import dataclasses
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

from vistrit.protocol import FrameDecoder, Message, encode_frame
from vistrit.protocol.examples import all_examples, word_count_task
from vistrit.protocol.messages import TaskAssign
from vistrit.protocol.types import Task, TaskPayload


@dataclass(frozen=True)
class CodecFigures:
    """Medians for one message, in frames per second and megabytes (10^6 bytes) per second."""

    workload: str
    message: str
    frame_bytes: int
    encode_per_s: float
    decode_per_s: float
    round_trip_per_s: float
    baseline_round_trip_per_s: float
    encode_mb_s: float
    decode_mb_s: float
    ratio_to_baseline: float

    def as_dict(self) -> dict[str, object]:
        """The figures as plain data, for ``--json``."""
        return asdict(self)


def standard_messages() -> list[tuple[str, Message]]:
    """The three messages of the bench: small, medium and 1 MiB."""
    examples = all_examples()
    medium = word_count_task(b"the quick brown fox jumps over the lazy dog " * 4)
    large = word_count_task(bytes(range(256)) * 4096)  # 1 MiB
    return [
        ("small", examples["Heartbeat"]),
        ("medium", TaskAssign(task=medium)),
        ("1MiB", TaskAssign(task=_with_payload(large))),
    ]


def _with_payload(task: Task) -> Task:
    data = task.payload.data if isinstance(task.payload, TaskPayload.Data) else b""
    return dataclasses.replace(task, payload=TaskPayload.Data(function="sha256", data=data))


def rate(operation: Callable[[], object], seconds: float, repeats: int) -> float:
    """Median operations per second of *repeats* timed batches of about *seconds* each."""
    batch = 1
    while True:  # grow the batch until it takes a measurable time
        started = time.perf_counter()
        for _ in range(batch):
            operation()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds / 4 or batch >= 1 << 24:
            break
        batch *= 4
    batch = max(1, int(batch * seconds / max(elapsed, 1e-9)))
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(batch):
            operation()
        rates.append(batch / (time.perf_counter() - started))
    return statistics.median(rates)


def measure(workload: str, message: Message, seconds: float, repeats: int) -> CodecFigures:
    """Measure the encoder and decoder alone, beside the bare ``struct`` + ``crc32`` rate."""
    frame = encode_frame(message)
    decoder = FrameDecoder()

    def decode() -> object:
        decoder.feed(frame)
        return decoder.next_frame()

    def round_trip() -> object:
        decoder.feed(encode_frame(message))
        return decoder.next_frame()

    # The bare limit: one precompiled struct packs the whole frame (header fields, payload
    # bytes, checksum) and unpacks it again, with a CRC-32 computed on each side.
    payload = frame[10:-4]
    whole = struct.Struct(f">IBBI{len(payload)}sI")
    type_byte = frame[5]

    def baseline() -> object:
        packed = whole.pack(0x56495354, 1, type_byte, len(payload), payload, zlib.crc32(payload))
        _, _, _, _, received, checksum = whole.unpack(packed)
        return zlib.crc32(received) == checksum

    encode_rate = rate(lambda: encode_frame(message), seconds, repeats)
    decode_rate = rate(decode, seconds, repeats)
    round_trip_rate = rate(round_trip, seconds, repeats)
    baseline_rate = rate(baseline, seconds, repeats)
    return CodecFigures(
        workload=workload,
        message=type(message).WIRE_NAME,
        frame_bytes=len(frame),
        encode_per_s=encode_rate,
        decode_per_s=decode_rate,
        round_trip_per_s=round_trip_rate,
        baseline_round_trip_per_s=baseline_rate,
        encode_mb_s=encode_rate * len(frame) / 1e6,
        decode_mb_s=decode_rate * len(frame) / 1e6,
        ratio_to_baseline=baseline_rate / round_trip_rate,
    )


def run(seconds: float = 0.5, repeats: int = 5) -> list[CodecFigures]:
    """Measure the three standard messages."""
    return [measure(name, message, seconds, repeats) for name, message in standard_messages()]
