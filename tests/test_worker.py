"""The worker's parts: the arithmetic evaluator, task functions, payload execution, and
its handshake fallback to protocol v1."""

from __future__ import annotations

import operator
import threading
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vistrit.protocol import NEWEST_VERSION
from vistrit.protocol import messages as m
from vistrit.protocol.examples import word_count_task
from vistrit.protocol.types import TaskPayload
from vistrit.transport import Connection, FrameServer
from vistrit.worker import TaskContext, Worker
from vistrit.worker.arithmetic import ArithmeticError_, evaluate, format_number
from vistrit.worker.execution import run_task
from vistrit.worker.functions import DEFAULT, FunctionRegistry, TaskFailed, to_bytes

pytestmark = pytest.mark.timeout(60)

# -- arithmetic -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("2**3**2", 512),  # right-associative, as in mathematics
        ("-2**2", -4),
        ("7/2", 3.5),
        ("7//2", 3),
        ("-7 % 3", 2),
        ("1e3 + .5", 1000.5),
        ("  10 - 2 - 3 ", 5),
        ("+-+1", -1),
    ],
)
def test_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("", "empty expression"),
        ("1 +", "ends too early"),
        ("(1 + 2", r"missing '\)'"),
        ("1 2", "unexpected '2'"),
        ("__import__('os')", "unexpected '_'"),
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("2 ** 100000", "larger than 10000"),
        ("9 ** 9999 * 9 ** 9999 * 9 ** 9999 * 9 ** 9999", "more than 10000 digits"),
        ("1" * 10_001, "longer than 10000"),
        ("* 3", "unexpected '*'"),
    ],
)
def test_arithmetic_refuses_what_it_cannot_do(expression: str, error: str) -> None:
    with pytest.raises(ArithmeticError_, match=error):
        evaluate(expression)


def test_numbers_are_shown_as_the_reference_shows_them() -> None:
    assert format_number(6 / 3) == "2" and format_number(2.5) == "2.5" and format_number(7) == "7"
    assert format_number(1e20) == "1e+20"


OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
trees = st.recursive(
    st.integers(0, 1000).map(lambda n: (str(n), n)),
    lambda inner: st.tuples(inner, st.sampled_from(sorted(OPS)), inner).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})", OPS[t[1]](t[0][1], t[2][1]))
    ),
    max_leaves=12,
)


@given(trees)
def test_generated_expressions_evaluate_exactly(tree: tuple[str, int]) -> None:
    text, value = tree
    assert evaluate(text) == value


# -- functions and execution ----------------------------------------------------------------


def run(payload: TaskPayload, **options: object) -> object:
    task = word_count_task()
    task = type(task)(
        **{**{n: getattr(task, n) for n in type(task).__wire__.names}, "payload": payload}
    )
    ctx = options.pop("ctx", TaskContext("t"))
    return run_task(task, ctx, DEFAULT, allow_commands=set(options.get("allow_commands", ())))  # type: ignore[arg-type]


def test_outputs_become_bytes() -> None:
    assert to_bytes(None) == b"" and to_bytes(True) == b"true" and to_bytes(2.5) == b"2.5"
    assert to_bytes(bytearray(b"x")) == b"x" and to_bytes("é") == "é".encode()
    with pytest.raises(TaskFailed, match="returned dict"):
        to_bytes({})


def test_registry_errors() -> None:
    registry = FunctionRegistry()
    with pytest.raises(ValueError, match="non-empty name"):
        registry.register("", lambda data: data)
    registry.register("double", lambda data: data * 2)
    assert registry.call("double", b"ab", TaskContext("t")) == b"abab"
    with pytest.raises(TaskFailed, match="unknown reduce function 'median'"):
        registry.call_reduce("median", [])


def test_reduce_errors_are_task_failures() -> None:
    assert (
        run(TaskPayload.Reduce(function="sum", intermediate_results=(b"1", b"x"))).error
        == "input 1 is not a number: 'x'"
    )  # type: ignore[attr-defined]
    assert (
        run(TaskPayload.Reduce(function="max", intermediate_results=())).error
        == "no inputs to reduce"
    )  # type: ignore[attr-defined]


def test_map_reports_progress_chunk_by_chunk() -> None:
    seen: list[int] = []
    ctx = TaskContext("t", _report=seen.append)
    outcome = run(
        TaskPayload.Map(function="word_count", input_chunks=(b"a", b"b c", b"d e f", b"")), ctx=ctx
    )
    assert outcome.data == b"1\n2\n3\n0" and seen == [25, 50, 75, 100]  # type: ignore[attr-defined]


def test_a_cancelled_map_stops_between_chunks() -> None:
    ctx = TaskContext("t")
    ctx._cancel.set()
    outcome = run(TaskPayload.Map(function="echo", input_chunks=(b"a",)), ctx=ctx)
    assert outcome.error == "cancelled"  # type: ignore[attr-defined]


def test_command_timeout_kills_the_program() -> None:
    task = word_count_task()
    fields = {n: getattr(task, n) for n in type(task).__wire__.names}
    slow = type(task)(
        **{
            **fields,
            "payload": TaskPayload.Command(command="sleep", args=("30",)),
            "timeout_seconds": 1,
        }
    )
    started = time.monotonic()
    outcome = run_task(slow, TaskContext("t"), DEFAULT, allow_commands={"sleep"})
    assert outcome.error == "timed out after 1 s; the command was killed"
    assert time.monotonic() - started < 10


def test_command_cancellation_kills_the_program() -> None:
    ctx = TaskContext("t")
    threading.Timer(0.2, ctx._cancel.set).start()
    outcome = run(
        TaskPayload.Command(command="sleep", args=("30",)), ctx=ctx, allow_commands={"sleep"}
    )
    assert outcome.error == "cancelled"  # type: ignore[attr-defined]


def test_command_errors() -> None:
    missing_program = "no-such-program-here"
    missing = run(
        TaskPayload.Command(command=missing_program, args=()), allow_commands={missing_program}
    )
    assert "cannot run 'no-such-program-here'" in missing.error  # type: ignore[attr-defined]
    empty = run(TaskPayload.Command(command="   ", args=()), allow_commands={"false"})
    assert empty.error == "empty command"  # type: ignore[attr-defined]
    quiet = run(TaskPayload.Command(command="false", args=()), allow_commands={"false"})
    assert quiet.error == "exit code 1: no output on stderr" and quiet.exit_code == 1  # type: ignore[attr-defined]


def test_only_the_programs_named_run_and_never_a_shell_that_was_not() -> None:
    allowed = {"echo"}
    assert run(TaskPayload.Command(command="echo hi", args=()), allow_commands=allowed).data == (  # type: ignore[attr-defined]
        b"hi\n"
    )
    for command in ("sh -c 'echo pwned'", "/bin/echo hi", "bash"):
        refused = run(TaskPayload.Command(command=command, args=()), allow_commands=allowed)
        assert "this worker does not run" in refused.error  # type: ignore[attr-defined]
    none = run(TaskPayload.Command(command="echo hi", args=()))
    assert "start it with --allow-commands PROG" in none.error  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="names of the programs"):
        Worker(("127.0.0.1", 1), allow_commands=True)  # type: ignore[arg-type]


# -- the worker's handshake -----------------------------------------------------------------


def test_worker_falls_back_to_v1_for_a_coordinator_that_refuses_newer_versions() -> None:
    """A stand-in for the reference coordinator, which accepts only protocol_version 1."""
    offered: list[int] = []

    def reference_like(conn: Connection) -> None:
        hello = conn.receive(time.monotonic() + 5)
        assert isinstance(hello, m.Handshake)
        offered.append(hello.protocol_version)
        accepted = hello.protocol_version == 1
        reason = None if accepted else "Unsupported protocol version"
        conn.send(
            m.HandshakeAck(
                accepted=accepted, node_id=hello.node_info.id, coordinator_info=None, reason=reason
            )
        )
        while conn.receive() is not None:  # heartbeats, until the worker says goodbye
            pass

    server = FrameServer(("127.0.0.1", 0), reference_like)
    server.start()
    try:
        worker = Worker(server.address, heartbeat_interval=0.1, allow_unauthenticated=True)
        worker.start()
        assert offered == [NEWEST_VERSION, 1]
        worker.stop()
    finally:
        server.stop()


def test_a_refused_worker_says_why() -> None:
    def refuse(conn: Connection) -> None:
        hello = conn.receive(time.monotonic() + 5)
        assert isinstance(hello, m.Handshake)
        conn.send(
            m.HandshakeAck(
                accepted=False, node_id=uuid.uuid4(), coordinator_info=None, reason="go away"
            )
        )

    server = FrameServer(("127.0.0.1", 0), refuse)
    server.start()
    try:
        from vistrit.worker import HandshakeRefused

        with pytest.raises(HandshakeRefused, match="go away"):
            Worker(server.address).start()
        with pytest.raises(ValueError, match="at least one slot"):
            Worker(server.address, slots=0)
    finally:
        server.stop()


def test_a_call_is_checked_before_and_after_the_function_runs() -> None:
    import callables  # imported, as a worker imports its --tasks modules at start

    from vistrit.protocol.values import decode_value, encode_call, encode_value
    from vistrit.worker.calls import run_call
    from vistrit.worker.functions import TaskContext, TaskFailed

    ctx = TaskContext("t")
    allowed = {"callables"}
    ok, data, error, trace = run_call("callables:area", encode_call((2, 3), {}), ctx, allowed)
    assert ok and decode_value(data) == 6 and error is None and trace is None
    ok, data, _, _ = run_call("callables:area@map", encode_call(([(1, 2), (3, 4)],), {}), ctx,
                              allowed)  # fmt: skip
    assert ok and decode_value(data) == [2, 12]
    for path, arguments, why in [
        ("callables:area", b"\x0b", "malformed"),
        ("callables:area", encode_value([1]), "malformed"),
        ("callables:area@map", encode_call((1, 2), {}), "one list of argument tuples"),
        ("callables:area@map", encode_call(([1],), {}), "one list of argument tuples"),
        ("callables:returns_a_set", encode_call((), {}), "cannot travel"),
    ]:
        with pytest.raises(TaskFailed, match=why):
            run_call(path, arguments, ctx, allowed)
    ok, data, error, trace = run_call("callables:fail", encode_call(("no",), {}), ctx, allowed)
    assert not ok and error == "ValueError: no" and trace is not None
    assert decode_value(data) == {"type": "ValueError", "message": "no", "traceback": trace}
    assert callables.__name__ in allowed


def test_slots_run_in_order_take_back_what_waits_and_survive_a_failure() -> None:
    from vistrit.worker.slots import Slots

    slots = Slots(1, "test")
    ran: list[object] = []
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("a slot's task failed outside the task's own handling")

    slots.submit(uuid.uuid4(), boom)  # logged; the slot goes on
    for n in range(3):
        slots.submit(uuid.uuid4(), lambda n=n: ran.append(n))
    slots.submit(uuid.uuid4(), done.set)
    assert done.wait(10) and ran == [0, 1, 2]  # one slot: in order
    started, held = threading.Event(), threading.Event()
    running, queued = uuid.uuid4(), uuid.uuid4()
    slots.submit(running, lambda: (started.set(), held.wait(10), ran.append("late")))
    slots.submit(queued, lambda: ran.append("never"))
    assert started.wait(10)
    assert slots.take_back() == [queued]  # it waits for the slot: taken back
    held.set()
    assert slots.shutdown() == []  # waits for the running one
    assert ran[-1] == "late" and "never" not in ran
