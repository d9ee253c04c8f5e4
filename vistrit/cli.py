"""The command line: ``python -m vistrit COMMAND`` (also installed as ``vistrit``).

This is the only module that parses arguments, configures logging or prints; everything
it shows comes from the layers below as data. Exit codes: 0 success, 1 the work failed
(a bad frame, a failed task...), 2 bad usage.

Commands:

* ``decode [HEX ...]`` - print the byte table of frames given as hex (or read from stdin);
  ``--json`` prints each decoded message as JSON instead.
* ``bench [codec]`` - measure the codec (frames/s and MB/s, beside the bare limit).
* ``demo`` - the frames of one task's life: encoded, traced and decoded back.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
from collections.abc import Sequence
from typing import TextIO

from vistrit import __version__
from vistrit.bench import codec as codec_bench
from vistrit.protocol import (
    MAX_PAYLOAD,
    FrameDecoder,
    ProtocolError,
    annotate_frame,
    encode_frame,
    format_table,
    frame_to_json,
)
from vistrit.protocol.examples import all_examples
from vistrit.protocol.frame import HEADER_SIZE, decode_frame

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input on the command line: shown in one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vistrit",
        description="Vistrit: an educational distributed computing platform.",
    )
    parser.add_argument("--version", action="version", version=f"vistrit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    decode = commands.add_parser(
        "decode",
        help="show the byte table of VistritProtocol frames given as hex",
        description="Decode frames given as hex (spaces allowed) and print, for every byte "
        "range, its offset, length, bytes, field, wire type and value. With no HEX, or "
        "'-', the hex is read from standard input. Several frames in a row are decoded in "
        "turn. A bad frame prints what was understood, then the precise error (exit 1).",
    )
    decode.add_argument("hex", nargs="*", metavar="HEX", help="the frame bytes, as hex")
    decode.add_argument(
        "--json", action="store_true", help="print each message as one line of JSON instead"
    )
    decode.set_defaults(run=run_decode)

    bench = commands.add_parser(
        "bench",
        help="measure Vistrit's speed",
        description="Run a standard workload and print its figures (medians of repeats).",
    )
    bench.add_argument(
        "workload", nargs="?", default="codec", choices=["codec"], help="what to measure"
    )
    bench.add_argument(
        "--seconds", type=_positive_float, default=0.5, help="time per timed batch (0.5)"
    )
    bench.add_argument("--repeats", type=_positive_int, default=5, help="batches per figure (5)")
    bench.add_argument("--json", action="store_true", help="print one JSON line per workload")
    bench.set_defaults(run=run_bench)

    demo = commands.add_parser(
        "demo",
        help="show the frames of one task's life, encoded, traced and decoded",
        description="Encode one example of every message, in the order of a task's life, "
        "show the TaskSubmit frame byte by byte, then decode the whole stream fed one "
        "byte at a time and check every message comes back unchanged.",
    )
    demo.set_defaults(run=run_demo)
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


# -- decode -------------------------------------------------------------------------------


def parse_hex(text: str) -> bytes:
    """Hex digits, with any spacing, and optional ``0x`` prefixes, as bytes."""
    cleaned = "".join(text.split()).replace("0x", "").replace("0X", "")
    bad = next((char for char in cleaned if char not in string.hexdigits), None)
    if bad is not None:
        raise UsageError(f"not hex: {bad!r}")
    if len(cleaned) % 2:
        raise UsageError(f"odd number of hex digits ({len(cleaned)})")
    if not cleaned:
        raise UsageError("no hex given")
    return bytes.fromhex(cleaned)


def split_frames(data: bytes) -> list[bytes]:
    """Cut a byte string into frames by their length fields (the last may be short)."""
    frames = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 6 : pos + HEADER_SIZE], "big")
        size = HEADER_SIZE + length + 4
        if len(data) - pos < HEADER_SIZE or length > MAX_PAYLOAD:
            size = len(data) - pos
        frames.append(data[pos : pos + size])
        pos += size
    return frames


def run_decode(args: argparse.Namespace, out: TextIO) -> int:
    text = " ".join(args.hex) if args.hex and args.hex != ["-"] else sys.stdin.read()
    frames = split_frames(parse_hex(text))
    for number, frame in enumerate(frames, 1):
        try:
            if args.json:
                print(json.dumps(frame_to_json(decode_frame(frame))), file=out)
                continue
            spans = annotate_frame(frame)
        except ProtocolError as exc:
            if not args.json and exc.spans:
                print(format_table(exc.spans, frame), file=out)
            print(
                f"error: frame {number}: {type(exc).__name__} ({exc.code.name}): {exc}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if len(frames) > 1:
            print(f"frame {number}", file=out)
        print(format_table(spans, frame), file=out)
    return EXIT_OK


# -- bench --------------------------------------------------------------------------------


def run_bench(args: argparse.Namespace, out: TextIO) -> int:
    results = codec_bench.run(seconds=args.seconds, repeats=args.repeats)
    if args.json:
        for figures in results:
            print(json.dumps({"bench": "codec", **figures.as_dict()}), file=out)
        return EXIT_OK
    print(f"codec: medians of {args.repeats} batches of ~{args.seconds} s", file=out)
    header = (
        f"{'message':<22}{'bytes':>9}{'encode/s':>11}{'decode/s':>11}{'round trips/s':>15}"
        f"{'enc MB/s':>10}{'dec MB/s':>10}{'bare limit/s':>14}{'ratio':>7}"
    )
    print(header, file=out)
    for f in results:
        print(
            f"{f.workload + ' ' + f.message:<22}{f.frame_bytes:>9,}{f.encode_per_s:>11,.0f}"
            f"{f.decode_per_s:>11,.0f}{f.round_trip_per_s:>15,.0f}{f.encode_mb_s:>10,.1f}"
            f"{f.decode_mb_s:>10,.1f}{f.baseline_round_trip_per_s:>14,.0f}"
            f"{f.ratio_to_baseline:>6.1f}x",
            file=out,
        )
    print(
        "ratio: round-trip time over the bare limit (struct pack/unpack + crc32 of the same frame)",
        file=out,
    )
    return EXIT_OK


# -- demo ---------------------------------------------------------------------------------

_SENDERS = {
    "Handshake": "worker → coordinator",
    "HandshakeAck": "coordinator → worker",
    "Heartbeat": "worker → coordinator",
    "HeartbeatAck": "coordinator → worker",
    "Disconnect": "worker → coordinator",
    "TaskSubmit": "client → coordinator",
    "TaskSubmitAck": "coordinator → client",
    "TaskAssign": "coordinator → worker",
    "TaskAssignAck": "worker → coordinator",
    "TaskStatus": "worker → coordinator",
    "TaskResult": "worker → coordinator",
    "TaskCancel": "client → coordinator",
    "TaskQuery": "client → coordinator",
    "TaskQueryResponse": "coordinator → client",
    "ClusterStatusRequest": "client → coordinator",
    "ClusterStatusResponse": "coordinator → client",
    "WorkerListRequest": "client → coordinator",
    "WorkerListResponse": "coordinator → client",
    "ElectionStart": "coordinator → coordinator",
    "ElectionVote": "coordinator → coordinator",
    "LeaderAnnounce": "coordinator → all",
    "Error": "coordinator → client",
}


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    examples = all_examples()
    frames = {name: encode_frame(message) for name, message in examples.items()}
    print(
        "The frames of a small cluster's life, as VistritProtocol v1 puts them on the wire:",
        file=out,
    )
    for number, (name, frame) in enumerate(frames.items(), 1):
        print(
            f"{number:>3}. {_SENDERS[name]:<26}{name:<22}{len(frame):>5} bytes  "
            f"{frame[:14].hex(' ')} …",
            file=out,
        )
    submit = frames["TaskSubmit"]
    print("\nThe TaskSubmit frame, byte by byte:", file=out)
    print(format_table(annotate_frame(submit), submit), file=out)

    stream = b"".join(frames.values())
    decoder = FrameDecoder()
    decoded = []
    for index in range(len(stream)):  # the worst case for a reader: one byte per recv()
        decoder.feed(stream[index : index + 1])
        message = decoder.next_message()
        if message is not None:
            decoded.append(message)
    same = decoded == list(examples.values())
    print(
        f"\nDecoded the {len(stream):,}-byte stream fed one byte at a time: "
        f"{len(decoded)} messages, {'all equal to' if same else 'NOT equal to'} what was sent.",
        file=out,
    )
    print("Next: python -m vistrit decode HEX  ·  python -m vistrit bench codec", file=out)
    return EXIT_OK if same else EXIT_FAILED


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args, out or sys.stdout))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
