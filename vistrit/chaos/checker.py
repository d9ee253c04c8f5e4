"""The checker: does a run's history show a correct cluster? ``python -m vistrit check DIR``.

It reads ``history.jsonl`` (and, when the run left them, ``frames.jsonl`` and
``terms.jsonl``) and applies these rules, naming every task that breaks one:

* ``lost`` - an acknowledged task has no final outcome: no result, and a read after
  the run does not find it finished;
* ``wrong`` - an outcome's value is not what the function gives for that input;
* ``failed`` - an acknowledged task failed (the workload's function never fails: a
  failure is the cluster's);
* ``phantom`` - an outcome for a task no client ever submitted;
* ``changed`` - two outcomes of one task differ: a result the client saw, then a read
  that finds another value, the task unfinished again, or nothing at all;
* ``two leaders in one term`` - two coordinators accepted work in the same term (terms
  exist to make that impossible).

It also names **split brain**, which the bully algorithm allows: two coordinators that
both believed they led at once (by their election histories), while either accepted work.
That is an anomaly, not a violation, unless it lost or changed a task, which the rules
above then name.

Every line is checked for its shape first: a history that is not one is an error
(:class:`~vistrit.chaos.history.HistoryError`), not a verdict.

Read next: :mod:`vistrit.chaos.report`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vistrit.chaos.history import (
    FRAMES,
    HISTORY,
    OPERATIONS,
    TERMS,
    TYPES,
    HistoryError,
    read_lines,
)
from vistrit.chaos.work import DIGEST, expected
from vistrit.logic.election import LEADER

#: What each function of a workload returns, by its input (the model).
MODEL = {DIGEST: expected}

#: The messages by which a coordinator accepts work, and how their summary says it did
#: (``TaskSubmitAck``: accepted true; ``TaskSubmitBatchAck``: a count of one or more).
ACKS = ("TaskSubmitAck", "TaskSubmitBatchAck")
ACCEPTED = re.compile(r'"accepted":(?:true|[1-9])')


@dataclass(frozen=True)
class Violation:
    """One broken rule: its kind, the task (if it is about one), and what happened."""

    kind: str
    task: str | None
    detail: str


@dataclass
class Verdict:
    """What the checker found, and the counts it found it in."""

    violations: list[Violation] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """True when no rule is broken."""
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        """The verdict as ``verdict.json`` holds it."""
        return {
            "valid": self.valid,
            "counts": self.counts,
            "violations": [asdict(v) for v in self.violations],
            "anomalies": self.anomalies,
        }

    def lines(self) -> list[str]:
        """The verdict in words, a line each."""
        counts = ", ".join(f"{value} {key}" for key, value in self.counts.items())
        head = "valid" if self.valid else f"INVALID: {len(self.violations)} violation(s)"
        out = [f"checker: {head} ({counts})"]
        out += [f"  {v.kind}: {v.task or '-'}: {v.detail}" for v in self.violations]
        out += [f"  anomaly: {a}" for a in self.anomalies]
        return out


def _text(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise HistoryError(f"{where}: {what} must be a string of at most 200 characters")
    return value


def validate(op: dict[str, Any], number: int) -> dict[str, Any]:
    """*op* if it has the shape of an operation; else :class:`HistoryError`."""
    where = f"{HISTORY}, operation {number}"
    if not isinstance(op.get("time"), (int, float)) or isinstance(op.get("time"), bool):
        raise HistoryError(f"{where}: time must be a number")
    if op.get("type") not in TYPES:
        raise HistoryError(f"{where}: type must be one of {', '.join(TYPES)}")
    if op.get("f") not in OPERATIONS:
        raise HistoryError(f"{where}: f must be one of {', '.join(OPERATIONS)}")
    _text(op.get("process"), "process", where)
    _text(op.get("task"), "task", where)
    if op["f"] == "submit" and op["type"] == "invoke":
        value = op.get("value")
        if not isinstance(value, dict) or not isinstance(value.get("input"), str):
            raise HistoryError(f"{where}: a submit's invoke must carry function and input")
        _text(value.get("function"), "function", where)
    return op


class _Task:
    """What the history says of one task."""

    def __init__(self) -> None:
        self.invoked: dict[str, Any] | None = None  # the submit's invoke value
        self.acknowledged = False
        self.outcomes: list[tuple[float, str, Any]] = []  # (time, "ok"/"fail", value)
        self.reads: list[tuple[float, str, Any]] = []


def check_history(
    ops: list[dict[str, Any]],
    frames: list[dict[str, Any]] | None = None,
    terms: list[dict[str, Any]] | None = None,
) -> Verdict:
    """Check a history (operations as ``history.jsonl`` holds them)."""
    tasks: dict[str, _Task] = defaultdict(_Task)
    for number, op in enumerate(ops, 1):
        validate(op, number)
        task = tasks[op["task"]]
        kind, f = op["type"], op["f"]
        if f == "submit" and kind == "invoke":
            task.invoked = op["value"]
        elif f == "submit" and kind == "ok":
            task.acknowledged = True
        elif f == "result" and kind in ("ok", "fail"):
            task.outcomes.append((op["time"], kind, op.get("value")))
        elif f == "read" and kind in ("ok", "fail"):
            task.reads.append((op["time"], kind, op.get("value")))
    verdict = Verdict()
    for key, task in tasks.items():
        verdict.violations += _check_task(key, task)
    acked = sum(task.acknowledged for task in tasks.values())
    verdict.counts = {"tasks": len(tasks), "acknowledged": acked}
    verdict.counts["completed"] = sum(
        any(kind == "ok" for _, kind, _ in task.outcomes) for task in tasks.values()
    )
    if frames is not None and terms is not None:
        _check_terms(frames, terms, verdict)
    return verdict


def _check_task(key: str, task: _Task) -> list[Violation]:
    found: list[Violation] = []
    if task.invoked is None:
        if task.outcomes or any(kind == "ok" for _, kind, _ in task.reads):
            found.append(Violation("phantom", key, "an outcome for a task never submitted"))
        return found
    model = MODEL.get(str(task.invoked.get("function")))
    right = model(task.invoked["input"]) if model is not None else None
    seen: list[tuple[float, str, Any]] = []  # every final outcome: (time, source, value)
    for time, kind, value in task.outcomes:
        if kind == "fail":
            if task.acknowledged:
                found.append(Violation("failed", key, f"the task failed: {str(value)[:200]}"))
            seen.append((time, "result", ("failed", str(value))))
        else:
            if right is not None and value != right:
                found.append(Violation("wrong", key, f"result {str(value)[:80]!r}, not {right!r}"))
            seen.append((time, "result", ("completed", value)))
    for time, kind, value in task.reads:
        if kind == "fail":
            if seen:
                found.append(Violation("changed", key, f"read at {time:.3f} s: the task is gone"))
            continue
        state = value.get("state") if isinstance(value, dict) else None
        if state == "Completed":
            result = value.get("result") if isinstance(value, dict) else None
            if right is not None and result != right:
                found.append(Violation("wrong", key, f"read {str(result)[:80]!r}, not {right!r}"))
            seen.append((time, "read", ("completed", result)))
        elif state in ("Failed", "Cancelled"):
            seen.append((time, "read", ("failed", None)))
        elif task.outcomes:  # finished for the client, unfinished for the cluster
            detail = f"read at {time:.3f} s: the task is {str(state)[:20]} again"
            found.append(Violation("changed", key, detail))
    finals = {value[0] if value[0] == "failed" else value for _, _, value in seen}
    if len(finals) > 1:
        first = min(seen, key=lambda entry: entry[0])
        found.append(
            Violation(
                "changed",
                key,
                f"first {first[2][0]} ({first[1]} at {first[0]:.3f} s), then otherwise",
            )
        )
    if task.acknowledged and not seen:
        found.append(Violation("lost", key, "acknowledged, and no final outcome"))
    return found


def term_of(changes: list[tuple[float, int, str]], at: float) -> int | None:
    """The term a coordinator was in at time *at*, by its changes ``(time, term, role)``."""
    current = None
    for time, term, _ in changes:
        if time > at:
            break
        current = term
    return current


def reigns(changes: list[tuple[float, int, str]]) -> list[tuple[float, float, int]]:
    """When a coordinator believed it led: ``(from, to, term)`` (to: infinity if it still
    did at the end)."""
    out, began = [], None
    for time, term, role in changes:
        if role == LEADER and began is None:
            began = (time, term)
        elif role != LEADER and began is not None:
            out.append((began[0], time, began[1]))
            began = None
    if began is not None:
        out.append((began[0], float("inf"), began[1]))
    return out


def _check_terms(
    frames: list[dict[str, Any]], terms: list[dict[str, Any]], verdict: Verdict
) -> None:
    """Who accepted work in which term: never two in one. Two coordinators leading at
    once, either accepting work meanwhile: split brain, an anomaly."""
    changes: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for change in terms:
        when, term = change.get("time"), change.get("term")
        if isinstance(when, (int, float)) and isinstance(term, int):
            changes[str(change.get("node"))].append((float(when), term, str(change.get("role"))))
    for listed in changes.values():
        listed.sort(key=lambda change: change[0])
    accepted: list[tuple[float, str, int]] = []
    for frame in frames:
        if frame.get("type") in ACKS and ACCEPTED.search(str(frame.get("summary"))):
            node, when = str(frame.get("from")), frame.get("sent")
            if isinstance(when, (int, float)):
                term = term_of(changes.get(node, []), float(when))
                if term is not None:
                    accepted.append((float(when), node, term))
    by_term: dict[int, set[str]] = defaultdict(set)
    for _, node, term in accepted:
        by_term[term].add(node)
    for term, nodes in sorted(by_term.items()):
        if len(nodes) > 1:
            detail = f"term {term}: {', '.join(sorted(nodes))}"
            verdict.violations.append(Violation("two leaders in one term", None, detail))
    verdict.counts["terms with work"] = len(by_term)
    ruled = sorted((start, end, term, node) for node, listed in changes.items()
                   for start, end, term in reigns(listed))  # fmt: skip
    for index, (start, end, term, node) in enumerate(ruled):
        for other_start, other_end, other_term, other in ruled[index + 1 :]:
            begin, finish = max(start, other_start), min(end, other_end)
            if other == node or begin >= finish:
                continue
            work = {n: sum(begin <= t < finish and a == n for t, a, _ in accepted)
                    for n in (node, other)}  # fmt: skip
            if any(work.values()):
                verdict.anomalies.append(
                    f"split brain: {node} (term {term}) and {other} (term {other_term}) both led "
                    f"from {begin:.3f} to {min(finish, 1e9):.3f} s, accepting "
                    f"{work[node]} and {work[other]} task submission(s) meanwhile"
                )


def check(directory: Path) -> Verdict:
    """Check the run in *directory* (:class:`HistoryError` if it holds no history)."""
    if not (directory / HISTORY).is_file():
        raise HistoryError(f"no {HISTORY} in {directory}")
    ops = read_lines(directory / HISTORY)
    frames = read_lines(directory / FRAMES) if (directory / FRAMES).exists() else None
    terms = read_lines(directory / TERMS) if (directory / TERMS).exists() else None
    return check_history(ops, frames, terms)
