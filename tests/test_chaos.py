"""The lab: the checker on planted violations, the nemesis's schedule, the relays' faults,
and a short seeded ``python -m vistrit chaos`` run with every nemesis, on real processes
(and, where this machine allows it, with every node in a network namespace of its own)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from spawn import Processes, stop_all

from vistrit.chaos.checker import check, check_history
from vistrit.chaos.history import HistoryError, read_lines
from vistrit.chaos.hosts import netns_unavailable
from vistrit.chaos.nemesis import Schedule
from vistrit.chaos.relay import Links, who
from vistrit.chaos.work import expected
from vistrit.protocol import encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.examples import all_examples

pytestmark = pytest.mark.timeout(300)

INPUT = "client1-0|10"


def submitted(task: str = "t1", data: str = INPUT, ack: bool = True) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [
        {"time": 0.1, "process": "client1", "type": "invoke", "f": "submit", "task": task,
         "value": {"function": "digest", "input": data}},
    ]  # fmt: skip
    if ack:
        ops.append({"time": 0.2, "process": "client1", "type": "ok", "f": "submit", "task": task})
    return ops


def outcome(task: str = "t1", kind: str = "ok", value: Any = None, f: str = "result",
            time: float = 1.0) -> dict[str, Any]:  # fmt: skip
    if value is None and kind == "ok":
        right = expected(INPUT)
        value = right if f == "result" else {"state": "Completed", "result": right}
    return {"time": time, "process": "client1", "type": kind, "f": f, "task": task, "value": value}


def kinds(ops: list[dict[str, Any]], **extra: Any) -> list[str]:
    return [v.kind for v in check_history(ops, **extra).violations]


# -- the checker ---------------------------------------------------------------------------


def test_a_correct_history_is_valid() -> None:
    ops = [*submitted(), outcome(), outcome(f="read", time=2.0)]
    verdict = check_history(ops)
    assert verdict.valid and verdict.counts == {"tasks": 1, "acknowledged": 1, "completed": 1}


def test_each_planted_violation_is_named_with_its_task() -> None:
    assert kinds([*submitted(), outcome(f="read", kind="fail", value="not found")]) == ["lost"]
    assert kinds(submitted()) == ["lost"]  # acknowledged, then nothing at all
    assert kinds([*submitted(), outcome(value="0" * 64)]) == ["wrong"]
    assert kinds([*submitted(), outcome(kind="fail", value="boom")]) == ["failed"]
    assert kinds([outcome(task="t9")]) == ["phantom"]
    gone = [*submitted(), outcome(), outcome(f="read", kind="fail", value="not found", time=2)]
    assert kinds(gone) == ["changed"]
    other = {"state": "Completed", "result": "f" * 64}
    assert sorted(kinds([*submitted(), outcome(), outcome(f="read", value=other, time=2)])) == [
        "changed",
        "wrong",
    ]
    again = {"state": "Running", "result": None}
    assert kinds([*submitted(), outcome(), outcome(f="read", value=again, time=2)]) == ["changed"]
    assert kinds([*submitted(), outcome(f="read", value=again, time=2)]) == ["lost"]
    named = check_history([*submitted("t7"), outcome("t7", value="x")]).violations
    assert [(v.kind, v.task) for v in named] == [("wrong", "t7")]


def test_an_unacknowledged_task_may_have_an_outcome_or_none() -> None:
    assert check_history(submitted(ack=False)).valid
    assert check_history([*submitted(ack=False), outcome()]).valid


def ack(node: str, sent: float, accepted: bool = True) -> dict[str, Any]:
    summary = json.dumps({"TaskSubmitAck": {"accepted": accepted}}, separators=(",", ":"))
    return {"time": sent, "sent": sent, "from": node, "to": "client1", "type": "TaskSubmitAck",
            "summary": summary}  # fmt: skip


def term(node: str, time: float, number: int) -> dict[str, Any]:
    return {"node": node, "time": time, "event": "unanswered", "role": "Leader", "term": number}


def test_two_coordinators_accepting_work_in_one_term_is_a_violation() -> None:
    terms = [term("c1", 0.0, 2), term("c2", 0.0, 2)]
    found = check_history([], frames=[ack("c1", 1.0), ack("c2", 1.5)], terms=terms).violations
    assert [(v.kind, v.detail) for v in found] == [("two leaders in one term", "term 2: c1, c2")]
    refused = check_history([], frames=[ack("c1", 1.0), ack("c2", 1.5, False)], terms=terms)
    assert refused.valid
    none = {**ack("c2", 1.5), "type": "TaskSubmitBatchAck", "summary": '{"TaskSubmitBatchAck":'
            '{"request_id":"x","accepted":0,"refused":[]}}'}  # fmt: skip
    assert check_history([], frames=[ack("c1", 1.0), none], terms=terms).valid  # took nothing


def test_two_coordinators_leading_at_once_while_accepting_work_is_named_split_brain() -> None:
    terms = [term("c3", 0.0, 2), term("c2", 5.0, 3), {**term("c3", 9.0, 3), "role": "Follower"}]
    frames = [ack("c3", 1.0), ack("c3", 6.0), ack("c3", 7.0), ack("c2", 9.5)]
    verdict = check_history([], frames=frames, terms=terms)
    assert verdict.valid  # the bully algorithm allows it: an anomaly, named
    assert verdict.anomalies == [
        "split brain: c3 (term 2) and c2 (term 3) both led from 5.000 to 9.000 s, "
        "accepting 2 and 0 task submission(s) meanwhile"
    ]
    quiet = check_history([], frames=[ack("c3", 1.0), ack("c2", 9.5)], terms=terms)
    assert quiet.anomalies == []  # a paused leader that accepted nothing: no harm done


def test_a_history_that_is_not_one_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text('{"time": 1}\n')
    with pytest.raises(HistoryError, match="operation 1: type must be"):
        check(tmp_path)
    (tmp_path / "history.jsonl").write_text("[1, 2]\n")
    with pytest.raises(HistoryError, match="line 1: not a JSON object"):
        check(tmp_path)
    (tmp_path / "history.jsonl").write_bytes(b"\xff\xfe\n")
    with pytest.raises(HistoryError, match="line 1: not JSON"):
        check(tmp_path)


def test_check_exits_0_valid_1_violation_2_no_history(tmp_path: Path) -> None:
    group = Processes(tmp_path, dict(os.environ))
    good, bad, empty = tmp_path / "good", tmp_path / "bad", tmp_path / "empty"
    for directory, ops in ((good, [*submitted(), outcome()]), (bad, submitted())):
        directory.mkdir()
        (directory / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in ops))
    empty.mkdir()
    assert group.run("check", str(good)).returncode == 0
    run = group.run("check", str(bad))
    assert run.returncode == 1 and "lost: t1: acknowledged, and no final outcome" in run.stdout
    run = group.run("check", str(empty))
    assert run.returncode == 2 and "no history.jsonl" in run.stderr


# -- the nemesis and the relays -----------------------------------------------------------


class Names:
    def __init__(self) -> None:
        self.coordinators = ["c1", "c2", "c3"]
        self.workers = ["w1", "w2"]
        self.clients = ["client1"]


def test_the_schedule_is_the_seed_s_and_every_kind_comes_in_each_round() -> None:
    def faults(seed: int) -> list[Any]:
        schedule = Schedule(("kill", "pause", "partition", "slow"), seed)
        return [schedule.next(Names()) for _ in range(8)]

    assert faults(7) == faults(7)
    assert faults(7) != faults(8)
    first, second = faults(7)[:4], faults(7)[4:]
    every = {"kill", "pause", "partition", "slow"}
    assert {f.kind for f in first} == {f.kind for f in second} == every
    for fault in faults(7):
        if fault.kind == "partition":
            sides = [set(side) for side in fault.nodes]
            assert len(sides) == 2 and sides[0] and sides[1] and not sides[0] & sides[1]
    with pytest.raises(ValueError, match="nemesis must be some of"):
        Schedule(("flood",), 1)


def test_a_cut_link_holds_frames_until_it_heals() -> None:
    links = Links()
    links.partition([("c1",), ("c2", "w1")])
    assert links.cut("c1", "w1") and links.cut("w1", "c1") and not links.cut("c2", "w1")
    released = threading.Event()
    holder = threading.Thread(target=lambda: links.hold("w1", "c1") and released.set())
    holder.start()
    assert not released.wait(0.2)  # held while cut
    links.heal()
    holder.join(5)
    assert released.is_set() and not links.cut("c1", "w1")


def test_a_relay_knows_a_node_by_its_handshake() -> None:
    hello = all_examples()["Handshake"]
    assert isinstance(hello, m.Handshake) and hello.node_info.name
    assert who(encode_frame(hello)) == hello.node_info.name
    assert who(b"\x00" * 20) == "?"


# -- real runs -----------------------------------------------------------------------------


def chaos(tmp_path: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return Processes(tmp_path, dict(os.environ)).run("chaos", *args, timeout=timeout)


def left_running(marker: str) -> list[str]:
    """Processes whose command line names *marker* (the run's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in command:
                found.append(command)
    return found


def assert_run_is_whole(out: Path, run: subprocess.CompletedProcess[str], kinds: set[str]) -> None:
    """Everything a run leaves is there and agrees; the exit code is the verdict's."""
    verdict = json.loads((out / "verdict.json").read_text())
    assert run.returncode == (0 if verdict["valid"] else 1), run.stdout + run.stderr
    for violation in verdict["violations"]:  # each one named on the way out
        assert f"{violation['kind']}: {violation['task'] or '-'}: " in run.stdout
    faults = read_lines(out / "faults.jsonl")
    started = {f["fault"] for f in faults if f.get("event") == "start"}
    ended = {f["fault"] for f in faults if f.get("event") == "end"}
    assert started == ended == kinds
    history = read_lines(out / "history.jsonl")
    acknowledged = {op["task"] for op in history if op["f"] == "submit" and op["type"] == "ok"}
    results = {op["task"] for op in history if op["f"] == "result" and op["type"] == "ok"}
    assert acknowledged and acknowledged <= results  # the client saw every outcome
    frames = read_lines(out / "frames.jsonl")
    types = {frame["type"] for frame in frames}
    assert {"Handshake", "AuthChallenge", "TaskSubmit", "TaskAssign", "TaskOutcome"} <= types
    assert read_lines(out / "terms.jsonl")
    report = (out / "report.html").read_text()
    assert report.count('class="frame ') == len(frames) and "<svg" in report
    assert left_running(str(out)) == []


def test_a_seeded_run_with_every_nemesis_is_checked_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = chaos(tmp_path, "--tasks", "40", "--rate", "20", "--work-ms", "100", "--interval", "0.5",
                "--fault-duration", "1", "--seed", "5", "--out", str(out))  # fmt: skip
    assert "cluster up: c1, c2, c3, w1, w2, w3 (local)" in run.stdout
    assert_run_is_whole(out, run, {"kill", "pause", "partition", "slow"})
    assert "report: " in run.stdout


def test_kills_pauses_and_slow_links_lose_nothing(tmp_path: Path) -> None:
    """Without partitions there is no split brain: every acknowledged task ends once,
    right, and stays so (the partition's case is the tutorial's)."""
    out = tmp_path / "run"
    run = chaos(tmp_path, "--tasks", "60", "--rate", "30", "--work-ms", "100", "--interval",
                "0.4", "--fault-duration", "1", "--nemesis", "kill,pause,slow", "--seed", "11",
                "--out", str(out))  # fmt: skip
    assert_run_is_whole(out, run, {"kill", "pause", "slow"})
    assert run.returncode == 0 and json.loads((out / "verdict.json").read_text())["valid"]


def test_an_interrupted_run_stops_everything_it_started(tmp_path: Path) -> None:
    out = tmp_path / "run"
    group = Processes(tmp_path, dict(os.environ))
    try:
        process = group.spawn("chaos", "--tasks", "5000", "--rate", "50", "--out", str(out))
        assert process.stdout is not None
        assert process.stdout.readline().startswith("cluster up: c1, c2, c3, w1, w2, w3")
        assert left_running(str(out))  # the nodes run...
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130 and "interrupted" in err
        assert left_running(str(out)) == []  # ...and no longer
        assert not (out / "verdict.json").exists()
    finally:
        stop_all(group)


def test_chaos_refuses_bad_arguments_with_exit_2(tmp_path: Path) -> None:
    run = chaos(tmp_path, "--nemesis", "kill,flood", "--out", str(tmp_path / "x"))
    assert run.returncode == 2 and "--nemesis: flood: choose among kill" in run.stderr
    run = chaos(tmp_path, "--coordinators", "0", "--out", str(tmp_path / "x"))
    assert run.returncode == 2 and "must be positive" in run.stderr
    run = chaos(tmp_path, "--workers", "99", "--out", str(tmp_path / "x"))
    assert run.returncode == 2 and "at most 16" in run.stderr
    run = chaos(tmp_path, "--seed", str(2**64), "--out", str(tmp_path / "x"))
    assert run.returncode == 2 and "--seed: at most 4,294,967,295" in run.stderr
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "history.jsonl").write_text("")
    run = chaos(tmp_path, "--out", str(tmp_path / "x"))
    assert run.returncode == 2 and "already holds a run" in run.stderr


def test_a_run_with_every_node_in_a_namespace_of_its_own(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    out = tmp_path / "run"
    run = chaos(tmp_path, "--hosts", "netns", "--coordinators", "2", "--workers", "2",
                "--tasks", "20", "--work-ms", "50", "--nemesis", "partition,kill",
                "--interval", "0.5", "--fault-duration", "1", "--seed", "2",
                "--out", str(out))  # fmt: skip
    assert "(netns)" in run.stdout, run.stdout + run.stderr
    assert_run_is_whole(out, run, {"partition", "kill"})
    for name in ("c1", "c2"):
        assert "listening on 10.213." in (out / "nodes" / f"{name}.log").read_text()
    made = json.loads((out / "run.json").read_text())["namespaces"]
    assert len(made) == 4
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [name for name in made if name in listed]  # every one deleted


def test_the_report_keeps_hostile_frame_text_inert() -> None:
    """A frame's summary comes from the network: the report must carry it as data."""
    from vistrit.chaos.report import Run, render

    evil = "</script><script>alert(1)</script><!--<script>"
    frame = {"time": 1.0, "sent": 0.9, "from": "c1", "to": "w1", "type": "TaskAssign",
             "size": 3, "summary": evil, "bytes": "zz"}  # fmt: skip
    info = {"coordinators": ["c1"], "workers": ["w1"], "clients": []}
    page = render(Run(info, [], [], [frame], {}))
    assert evil not in page and "<script>alert" not in page
    data = page.split('<script type="application/json" id="run-data">')[1].split("</script>")[0]
    decoded = json.loads(data)["frames"][0]
    assert decoded["summary"] == evil and decoded["table"] is None  # bad hex: no table
