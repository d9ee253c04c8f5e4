"""The tools: ``trace`` (the wire tracer), ``decode``, ``bench`` and ``demo``.

Read next: :mod:`vistrit.cli` (``main``).
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from vistrit import defaults
from vistrit.bench import codec as codec_bench
from vistrit.bench import floor as bench_floor
from vistrit.bench import instructions as bench_instructions
from vistrit.bench import peers as bench_peers
from vistrit.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_tls_options,
    address,
    positive_float,
    positive_int,
    tls_of,
    until_signalled,
    wait_for,
)
from vistrit.protocol import (
    FrameDecoder,
    ProtocolError,
    annotate_frame,
    encode_frame,
    format_table,
    frame_to_json,
)
from vistrit.protocol.examples import all_examples
from vistrit.protocol.frame import decode_frame, split_frames


def add_commands(commands: Any) -> None:
    """Add the tool subcommands: trace, decode, bench and demo."""
    trace = commands.add_parser(
        "trace",
        help="relay connections to a coordinator, printing every frame",
        description="Listen on --listen, relay each connection to --upstream, and print "
        "every frame in both directions, annotated field by field. Point a worker or a "
        "client at --listen to watch its conversation.",
    )
    trace.add_argument("--listen", required=True, metavar="HOST:PORT", help="where to listen")
    trace.add_argument(
        "--upstream",
        default=defaults.COORDINATOR,
        metavar="HOST:PORT",
        help="the coordinator (default %(default)s)",
    )
    trace.set_defaults(run=run_trace)

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
    decode.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="read binary frames from PATH (a coordinator's journal.vst, say) instead of hex",
    )
    decode.set_defaults(run=run_decode)

    bench = commands.add_parser(
        "bench",
        help="measure Vistrit's speed",
        description="Run standard workloads and print their figures, each the median of --repeats "
        "runs. The cluster workloads start a coordinator and worker processes on "
        "127.0.0.1: throughput (W1: many 16-byte echo tasks from one client), latency "
        "(W2: sequential submit-and-wait round trips, 1 worker), scaling (W3: 32 tasks "
        "of ~50 ms of CPU on 1 and on 2 workers), payload (W4: echo tasks of 8 MiB). "
        "codec measures the protocol's encoder and decoder alone; detection the time to "
        "requeue the task of a killed or frozen worker; journal what --data-dir costs W1 "
        "and W2 in each --fsync mode; failover the time from killing the leader of "
        "three coordinators to the first task the new leader accepts, and to the end of "
        "the interrupted run; replication W1 with one coordinator and with three, and "
        "the CPU a task of each (the leader, the followers); "
        "handshake what joining costs (an authenticated v4 join against an "
        "unauthenticated v1 one); memory the coordinator's resident memory per "
        "remembered task, and what ten 8 MiB calls leave held; dashboard W1 without the "
        "dashboard and with it open; curves how the figures scale with tasks (1k-100k), "
        "workers (1-16), prefetch (0-16), clients (1-16) and a 100k backlog; instructions the "
        "coordinator's instructions per W1 task and per W2 round trip, counted by "
        "valgrind where it is installed (a figure the machine's noise hardly moves); "
        "peers W1, W2 and W4 on "
        "Dask, Celery and RQ (each with a Redis of its own), where they are installed, "
        "side by side. Default: the four cluster workloads, after this machine's floor "
        "(a bare loopback round trip between two processes, bare frames), which W1, W2 "
        "and W4 are printed beside and as ratios to. With the TLS options, W1, W2 and "
        "handshake run over mutual TLS.",
    )
    bench.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help="codec, throughput, latency, scaling, payload, detection, journal, failover, "
        "replication, handshake, memory, dashboard, curves, instructions, peers, or all",
    )
    bench.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="runs per figure (default 3; codec: 5 batches)",
    )
    bench.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        help="worker processes for W1 and W4 (default 2)",
    )
    bench.add_argument("--tasks", type=positive_int, default=10_000, help="W1 tasks (10000)")
    bench.add_argument(
        "--round-trips", type=positive_int, default=1_000, help="W2 round trips (1000)"
    )
    bench.add_argument("--cpu-tasks", type=positive_int, default=32, help="W3 tasks (32)")
    bench.add_argument("--payload-tasks", type=positive_int, default=20, help="W4 tasks (20)")
    bench.add_argument(
        "--payload-mib", type=positive_float, default=8.0, help="W4 task size in MiB (8)"
    )
    bench.add_argument(
        "--seconds", type=positive_float, default=0.5, help="codec: time per timed batch (0.5)"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON line per workload")
    add_tls_options(bench)  # W1, W2 and handshake over TLS
    bench.set_defaults(run=run_bench)

    demo = commands.add_parser(
        "demo",
        help="run a local cluster doing real work, then stop it",
        description="Start a coordinator (with its dashboard: the link is printed) and "
        "workers on this machine, run a word count over a text that ships with Vistrit as "
        "map/reduce (plus a few other tasks), check every answer, and stop everything (with "
        "--keep, once you press Ctrl-C). --wire shows the protocol instead: the frames "
        "of a task's life, one byte by byte. --election shows leader election instead: "
        "three coordinators elect a leader, the leader stops, the others elect another; "
        "every election message drawn as a sequence diagram.",
    )
    demo.add_argument("--workers", type=positive_int, default=2, help="how many (default 2)")
    demo.add_argument("--wire", action="store_true", help="show the frames instead")
    demo.add_argument(
        "--election", action="store_true", help="show an election among coordinators instead"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the cluster up after the work, to look at it in the dashboard (Ctrl-C stops)",
    )
    demo.set_defaults(run=run_demo)


def run_trace(args: argparse.Namespace, out: TextIO) -> int:
    """Relay a connection and print every frame that crosses it, decoded."""
    from vistrit.tracer import TracedFrame, TraceRelay

    lock = threading.Lock()
    names: dict[int, str] = {}  # the connecting node of each connection, from its Handshake

    def show(frame: TracedFrame) -> None:
        if frame.message == "Handshake" and frame.error is None:
            names[frame.connection] = _node_name(frame.data)
        node = names.get(frame.connection, "node")
        arrow = f"{node} -> coordinator" if frame.direction == "->" else f"coordinator -> {node}"
        with lock:
            print(
                f"\n#{frame.connection} {arrow}: {frame.message} ({len(frame.data)} bytes)",
                file=out,
            )
            if frame.spans:
                print(format_table(frame.spans, frame.data), file=out)
            if frame.error is not None:
                print(f"!! {type(frame.error).__name__}: {frame.error}", file=out)
            out.flush()

    relay = TraceRelay(address(args.listen), address(args.upstream), show)
    stop = until_signalled()
    try:
        relay.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = relay.address
    print(
        f"vistrit trace listening on {host}:{port}, relaying to {args.upstream}",
        file=out,
        flush=True,
    )
    wait_for(stop)
    relay.stop()
    return EXIT_OK


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


def run_decode(args: argparse.Namespace, out: TextIO) -> int:
    """Explain a frame given as hex, or every frame of a file, field by field."""
    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        if not data:
            raise UsageError(f"{args.file} is empty")
    else:
        text = " ".join(args.hex) if args.hex and args.hex != ["-"] else sys.stdin.read()
        data = parse_hex(text)
    frames, rest = split_frames(data)
    if rest:
        frames.append(rest)  # a short last frame: the annotator says what is missing
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


def run_bench(args: argparse.Namespace, out: TextIO) -> int:
    """Run the benchmarks and print their figures (or JSON)."""
    from vistrit.bench import cluster as cluster_bench

    known = (*cluster_bench.WORKLOADS, *cluster_bench.MORE_WORKLOADS)
    chosen = args.workloads or list(cluster_bench.WORKLOADS)
    optional = {"peers": bench_peers, "instructions": bench_instructions}  # where installed
    if "all" in chosen:
        chosen = ["codec", *(w for w in known if w not in optional or optional[w].available())]
    if "peers" in chosen and not bench_peers.available():
        raise UsageError(
            f"peers runs the workloads on Dask, Celery or RQ: {bench_peers.HOW_TO_INSTALL}"
        )
    if "instructions" in chosen and not bench_instructions.available():
        raise UsageError(f"instructions counts with valgrind: {bench_instructions.HOW_TO_INSTALL}")
    unknown = [w for w in chosen if w != "codec" and w not in known]
    if unknown:
        raise UsageError(
            f"unknown workload {unknown[0]!r}; choose from codec, {', '.join(known)} or all"
        )
    if "codec" in chosen:
        _bench_codec(args, out)
    floor = bench_floor.measure() if any(w in bench_floor.AGAINST for w in chosen) else {}
    if floor and args.json:
        print(json.dumps({"bench": "floor", "figures": floor}), file=out, flush=True)
    elif floor:
        shown = ", ".join(f"{key} {_figure(value)}" for key, value in floor.items())
        print(f"floor (this machine, now): {shown}", file=out, flush=True)
    for workload in (w for w in chosen if w != "codec"):
        figures = cluster_bench.run(
            workload,
            repeats=args.repeats or 3,
            workers=args.workers,
            tasks=args.tasks,
            round_trips=args.round_trips,
            cpu_tasks=args.cpu_tasks,
            payload_tasks=args.payload_tasks,
            payload_bytes=int(args.payload_mib * 1024 * 1024),
            tls=tls_of(args),
        )
        against = bench_floor.ratio(workload, figures.figures, floor)
        if args.json:
            extra = {"floor": floor, "ratio": against} if against else {}
            print(
                json.dumps({"bench": workload, **figures.as_dict(), **extra}), file=out, flush=True
            )
        else:
            shown = ", ".join(f"{key} {_figure(value)}" for key, value in figures.figures.items())
            beside = f"; {against}" if against else ""
            print(
                f"{figures.workload}: {shown}  (median of {figures.settings['repeats']}{beside})",
                file=out,
                flush=True,
            )
    return EXIT_OK


def _bench_codec(args: argparse.Namespace, out: TextIO) -> None:
    repeats = args.repeats or 5
    results = codec_bench.run(seconds=args.seconds, repeats=repeats)
    if args.json:
        for figures in results:
            print(json.dumps({"bench": "codec", **figures.as_dict()}), file=out)
        return
    print(f"codec: medians of {repeats} batches of ~{args.seconds} s", file=out)
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


def run_wire_demo(out: TextIO) -> int:
    """Show the frames of a typical exchange, byte by byte."""
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


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Run the demo: a local cluster doing real work (or, with ``--election``, an election)."""
    if args.wire:
        return run_wire_demo(out)
    if args.election:
        from vistrit import election_demo

        print(election_demo.draw(election_demo.record()), file=out)
        return EXIT_OK
    from vistrit import demo

    print(f"Vistrit demo: a coordinator and {args.workers} workers on this machine", file=out)
    keep = None
    if args.keep:  # (only then: without it, Ctrl-C interrupts the demo at once)
        stop = until_signalled()
        keep = lambda: wait_for(stop)  # noqa: E731
    ok = demo.run(args.workers, report=lambda line: print(line, file=out, flush=True), keep=keep)
    print("all answers correct" if ok else "SOME ANSWERS WERE WRONG", file=out)
    return EXIT_OK if ok else EXIT_FAILED


def _figure(value: float) -> str:
    """A measured figure: two decimals below 10 (seconds, ratios), one above."""
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def _node_name(frame: bytes) -> str:
    """``client``, ``worker`` or, for a coordinator of a cluster, ``coordinator N``."""
    from vistrit.protocol import decode_frame
    from vistrit.protocol import messages as m

    hello = decode_frame(frame).message
    assert isinstance(hello, m.Handshake)
    kind = hello.node_info.node_type.name.lower()
    if kind == "coordinator" and hello.node_info.id.int < 1 << 32:
        return f"coordinator {hello.node_info.id.int}"
    return kind
