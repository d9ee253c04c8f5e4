"""The report of a chaos run: ``DIR/report.html``, one file that needs nothing else.

It holds the checker's verdict; a **Lamport diagram** in SVG (time runs down, a vertical
line per node, an arrow per frame from the moment its relay read it to the moment it sent
it on, so a frame held by a partition or a slow link slants; kills, pauses and slow links
marked on the nodes' lines, partitions as bands); the fault timeline; and the latency of
every task over the run. Clicking an arrow shows the frame decoded: its summary and its
byte table, made by the same annotator as the tracer's and the protocol page's.

:func:`sequence_svg` draws a window of a run in logical time instead, a row per frame:
the docs' election and fault-tolerance pages embed it, recorded from a real run while the
docs are built (:mod:`vistrit.chaos.scenes`).

Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vistrit.chaos import history as files
from vistrit.protocol import ProtocolError, annotate_frame
from vistrit.protocol import messages as m

#: Each message's family: its colour in the diagram, and a switch to hide it.
FAMILIES = {
    "election": ("ElectionStart", "ElectionVote", "LeaderAnnounce"),
    "replication": ("Replicate", "ReplicateAck", "ReplicaSnapshot"),
    "joining": (
        "Handshake",
        "HandshakeAck",
        "AuthChallenge",
        "AuthResponse",
        "AuthConfirm",
        "Redirect",
        "Disconnect",
        "Error",
    ),
    "heartbeat": ("Heartbeat", "HeartbeatAck"),
}

#: The families shown when the report opens (the others, ten frames a second, hide them).
SHOWN = ("task", "election", "joining")

#: The most frames given a byte table in a report (every frame is drawn).
MAX_TABLES = 4000

#: Where the protocol page is, from the report (``python -m vistrit chaos --docs-url URL``).
PROTOCOL_PAGE = "protocol.html"

SVG = '<svg xmlns="http://www.w3.org/2000/svg"'
COLUMN = 110  # the spacing of the nodes' lines, in pixels
TOP = 40
LEFT = 60


def family(message: str) -> str:
    """The family of a message (``task`` for everything about tasks)."""
    for name, members in FAMILIES.items():
        if message in members:
            return name
    return "task"


@dataclass
class Run:
    """Everything a run left, read back."""

    info: dict[str, Any]
    history: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    frames: list[dict[str, Any]]
    verdict: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> Run:
        """Read the run in *directory*."""
        verdict_path = directory / files.VERDICT
        return cls(
            files.read_json(directory / files.RUN),
            files.read_lines(directory / files.HISTORY),
            files.read_lines(directory / files.FAULTS),
            files.read_lines(directory / files.FRAMES),
            files.read_json(verdict_path) if verdict_path.exists() else {},
        )

    @property
    def nodes(self) -> list[str]:
        """The nodes, in the order their lines are drawn."""
        info = self.info
        return [*info.get("clients", []), *info.get("coordinators", []), *info.get("workers", [])]

    @property
    def end(self) -> float:
        """When the last thing recorded happened."""
        times = [
            r["time"]
            for r in (*self.frames, *self.history, *self.faults)
            if isinstance(r.get("time"), (int, float))
        ]
        return max(times, default=1.0)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def lamport_svg(run: Run) -> str:
    """The Lamport diagram of the whole of *run*, in real time (the report's)."""
    start, end = 0.0, run.end
    span = max(end, 0.001)
    scale = min(200.0, max(30.0, 9000.0 / span))  # pixels to a second
    nodes = run.nodes
    x = {node: float(LEFT + COLUMN * index) for index, node in enumerate(nodes)}
    width, height = LEFT + COLUMN * len(nodes), TOP + span * scale + 20

    def y(time: float) -> float:
        return round(TOP + (time - start) * scale, 1)

    hidden = " ".join(f"hide-{name}" for name in ["task", *FAMILIES] if name not in SHOWN)
    out = [
        f'{SVG} class="lamport {hidden}" width="{width}" '
        f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}">',
        '<defs><marker id="head" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>',
    ]
    for second in range(0, int(end) + 1, 1 if span < 60 else 5):
        out.append(f'<text class="tick" x="4" y="{y(second) + 4}">{second} s</text>')
        out.append(
            f'<line class="tick" x1="{LEFT - 20}" x2="{width}" y1="{y(second)}" y2="{y(second)}"/>'
        )
    out += _fault_marks(run, x, y, start, end, width)
    for node in nodes:
        out.append(f'<text class="node" x="{x[node]}" y="{TOP - 14}">{html.escape(node)}</text>')
        out.append(
            f'<line class="life" x1="{x[node]}" x2="{x[node]}" y1="{TOP}" y2="{height - 10:.0f}"/>'
        )
    for index, frame in enumerate(run.frames):
        kind = str(frame.get("type"))
        sent, got = _number(frame.get("sent")), _number(frame.get("time"))
        source, target = frame.get("from"), frame.get("to")
        if source not in x or target not in x:
            continue
        out.append(
            f'<line class="frame {family(kind)}" data-i="{index}" x1="{x[source]}" y1="{y(sent)}" '
            f'x2="{x[target]}" y2="{y(got)}" marker-end="url(#head)"><title>{html.escape(kind)} '
            f"{html.escape(str(source))} → {html.escape(str(target))} "
            f"at {sent:.3f} s</title></line>"
        )
    out.append("</svg>")
    return "\n".join(out)


def header_svg(run: Run) -> str:
    """The nodes' names over their lines: kept in view above the diagram as it scrolls."""
    width = LEFT + COLUMN * len(run.nodes)
    names = "".join(
        f'<text class="node" x="{LEFT + COLUMN * index}" y="16">{html.escape(node)}</text>'
        for index, node in enumerate(run.nodes)
    )
    return f'{SVG} class="lamport header" width="{width}" height="22">{names}</svg>'


def sequence_svg(run: Run, start: float, end: float, messages: set[str]) -> str:
    """The frames of *messages* between *start* and *end* in the order they were sent,
    one row each, with the faults that began meanwhile: a Lamport diagram in logical
    time, for frames that real time would draw on top of each other (the docs' pages)."""
    nodes = [
        n for n in run.nodes if any(f.get("from") == n or f.get("to") == n for f in run.frames)
    ]
    x = {node: float(LEFT + COLUMN * index) for index, node in enumerate(nodes)}
    events: list[tuple[float, str, dict[str, Any]]] = [
        (_number(f.get("sent")), "frame", f)
        for f in run.frames
        if str(f.get("type")) in messages
        and f.get("from") in x
        and f.get("to") in x
        and start <= _number(f.get("sent")) <= end
    ]
    events += [
        (_number(f.get("time")), "fault", f)
        for f in run.faults
        if start <= _number(f.get("time")) <= end and f.get("event") in ("start", "end")
    ]
    events.sort(key=lambda event: event[0])
    row, width = 26, LEFT + COLUMN * max(len(nodes), 1) + 200
    height = TOP + row * (len(events) + 1)
    out = [
        f'{SVG} class="lamport" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<style>{_static('lamport.css')}</style>",
        '<defs><marker id="head" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>',
    ]
    for node in nodes:
        out.append(f'<text class="node" x="{x[node]}" y="{TOP - 14}">{html.escape(node)}</text>')
        out.append(f'<line class="life" x1="{x[node]}" x2="{x[node]}" y1="{TOP}" y2="{height}"/>')
    down: dict[str, float] = {}
    for number, (when, what, record) in enumerate(events):
        y = TOP + row * number + row / 2
        label = x_end = LEFT + COLUMN * len(nodes) - 40
        if what == "fault":
            sides = record.get("nodes") if isinstance(record.get("nodes"), list) else []
            node = str(sides[0][0]) if sides and sides[0] else ""
            kind, event = str(record.get("fault")), record.get("event")
            text = f"{when:.3f} s: {kind} {node} " + ("begins" if event == "start" else "ends")
            if node in x and kind in ("kill", "pause") and event == "start":
                down[node] = y
            elif node in down:
                out.append(
                    f'<line class="{kind}" x1="{x[node]}" x2="{x[node]}" '
                    f'y1="{down.pop(node)}" y2="{y}"/>'
                )
            out.append(f'<text class="fault" x="{label}" y="{y + 4}">{html.escape(text)}</text>')
            continue
        kind, source, target = (
            str(record.get("type")),
            str(record.get("from")),
            str(record.get("to")),
        )
        out.append(
            f'<line class="frame {family(kind)}" x1="{x[source]}" y1="{y - 6}" '
            f'x2="{x[target]}" y2="{y + 6}" marker-end="url(#head)"/>'
        )
        middle = (x[source] + x[target]) / 2
        out.append(f'<text class="label" x="{middle}" y="{y - 6}">{html.escape(kind)}</text>')
        out.append(f'<text class="when" x="{x_end}" y="{y + 4}">{when:.3f} s</text>')
    for node, top in down.items():
        out.append(f'<line class="kill" x1="{x[node]}" x2="{x[node]}" y1="{top}" y2="{height}"/>')
    out.append("</svg>")
    return "\n".join(out)


def _fault_marks(
    run: Run, x: dict[str, float], y: Any, start: float, end: float, width: float
) -> list[str]:
    """Kills, pauses and slow links on the nodes' lines; partitions as bands."""
    out: list[str] = []
    opened: dict[tuple[str, str], float] = {}
    for fault in run.faults:
        kind, event, when = str(fault.get("fault")), fault.get("event"), _number(fault.get("time"))
        listed = fault.get("nodes")
        sides: list[Any] = listed if isinstance(listed, list) else []
        key = (kind, json.dumps(sides))
        if event == "start":
            opened[key] = when
            continue
        if event != "end" or key not in opened:
            continue
        began = max(opened.pop(key), start)
        if when < start or began > end:
            continue
        top, bottom = y(began), y(min(when, end))
        label = html.escape(f"{kind} {' | '.join(' '.join(map(str, s)) for s in sides)}")
        if kind == "partition":
            out.append(
                f'<rect class="band" x="{LEFT - 30}" y="{top}" width="{width}" '
                f'height="{max(bottom - top, 1)}"><title>{label}</title></rect>'
            )
            out.append(f'<text class="fault" x="{LEFT - 28}" y="{top + 12}">{label}</text>')
            continue
        node = sides[0][0] if sides and sides[0] else None
        if node not in x:
            continue
        out.append(
            f'<line class="{kind}" x1="{x[node]}" x2="{x[node]}" y1="{top}" y2="{bottom}">'
            f"<title>{label}</title></line>"
        )
        out.append(
            f'<text class="fault" x="{x[node] + 6}" y="{top + 4}">{html.escape(kind)}</text>'
        )
    return out


def anchor(message: str) -> str:
    """Where *message* is on the protocol page: its section's id (``#`` and all), or ``""``."""
    cls = getattr(m, message, None) if message.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, m.Message) and hasattr(cls, "VARIANT")):
        return ""
    return f"#{message.lower()}-variant-{cls.VARIANT}-type-0x{cls.TYPE_BYTE:02x}"


def _table(frame: dict[str, Any]) -> list[list[Any]] | None:
    """The frame's byte table: ``[offset, length, field, wire type, value, hex]`` rows."""
    try:
        data = bytes.fromhex(str(frame.get("bytes", "")))
        spans = annotate_frame(data)
    except (ValueError, ProtocolError):
        return None
    return [
        [
            s.offset,
            s.length,
            s.field,
            s.wire_type,
            s.value[:200],
            data[s.offset : s.offset + min(s.length, 32)].hex(),
        ]
        for s in spans
    ]


def _frames_json(run: Run) -> list[dict[str, Any]]:
    """What a click shows, per frame; byte tables for the first :data:`MAX_TABLES` frames
    that are not heartbeats or replication (those show their summary and hex)."""
    out, tables = [], 0
    for frame in run.frames:
        kind = str(frame.get("type"))
        entry = {key: frame.get(key) for key in ("time", "sent", "from", "to", "size", "summary")}
        entry.update(type=kind, anchor=anchor(kind))
        if tables < MAX_TABLES and family(kind) not in ("heartbeat", "replication"):
            entry["table"] = _table(frame)
            tables += 1
        else:
            entry["hex"] = str(frame.get("bytes", ""))[:256]
        out.append(entry)
    return out


def _timeline(run: Run, width: float = 900) -> str:
    """The faults over time: a row per kind, a bar per fault."""
    end, kinds = run.end, ["kill", "pause", "partition", "slow"]
    scale = (width - 100) / max(end, 0.001)
    out = [f'{SVG} class="timeline" width="{width}" height="{30 + 22 * len(kinds)}">']
    opened: dict[str, float] = {}
    for index, kind in enumerate(kinds):
        out.append(f'<text x="4" y="{34 + 22 * index}">{kind}</text>')
    for fault in run.faults:
        kind = str(fault.get("fault"))
        if kind not in kinds:
            continue
        if fault.get("event") == "start":
            opened[kind] = _number(fault.get("time"))
        elif fault.get("event") == "end" and kind in opened:
            began = opened.pop(kind)
            row = 20 + 22 * kinds.index(kind)
            what = html.escape(json.dumps(fault.get("nodes")))
            out.append(
                f'<rect class="{kind}" x="{90 + began * scale:.1f}" y="{row}" height="16" '
                f'width="{max(1.0, (_number(fault.get("time")) - began) * scale):.1f}">'
                f"<title>{kind} {what}: {began:.2f}–{_number(fault.get('time')):.2f} s"
                "</title></rect>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _latencies(run: Run, width: float = 900, height: float = 220) -> str:
    """Each task's latency (submitted to outcome) against when it was submitted."""
    invoked: dict[str, float] = {}
    points: list[tuple[float, float, str]] = []
    for op in run.history:
        if op.get("f") == "submit" and op.get("type") == "invoke":
            invoked[str(op.get("task"))] = _number(op.get("time"))
        elif op.get("f") == "result" and op.get("type") in ("ok", "fail", "info"):
            began = invoked.get(str(op.get("task")))
            if began is not None:
                points.append((began, _number(op.get("time")) - began, str(op.get("type"))))
    top = max((p[1] for p in points), default=1.0) or 1.0
    sx, sy = (width - 80) / max(run.end, 0.001), (height - 40) / top
    out = [
        f'{SVG} class="latency" width="{width}" height="{height}">',
        f'<text x="4" y="14">{top:.2f} s</text><text x="4" y="{height - 24}">0 s</text>',
        f'<text x="{width - 80}" y="{height - 4}">{run.end:.0f} s</text>',
    ]
    for began, took, kind in points:
        out.append(
            f'<circle class="{kind}" cx="{70 + began * sx:.1f}" '
            f'cy="{height - 24 - took * sy:.1f}" r="2.5">'
            f"<title>submitted at {began:.2f} s: {kind} after {took:.3f} s</title></circle>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _verdict_html(verdict: dict[str, Any]) -> str:
    if not verdict:
        return "<p>Not checked yet: <code>python -m vistrit check DIR</code>.</p>"
    valid = bool(verdict.get("valid"))
    counts = ", ".join(
        f"{v} {html.escape(str(k))}" for k, v in dict(verdict.get("counts", {})).items()
    )
    out = [
        f'<p class="{"valid" if valid else "invalid"}">'
        f"{'Valid' if valid else 'Invalid'}: {counts}.</p>"
    ]
    rows = [
        f"<li><b>{html.escape(str(v.get('kind')))}</b> {html.escape(str(v.get('task') or ''))}: "
        f"{html.escape(str(v.get('detail')))}</li>"
        for v in verdict.get("violations", [])
    ]
    rows += [f"<li><b>anomaly</b> {html.escape(str(a))}</li>" for a in verdict.get("anomalies", [])]
    if rows:
        out.append("<ul>" + "".join(rows) + "</ul>")
    return "\n".join(out)


def render(run: Run, docs: str = PROTOCOL_PAGE) -> str:
    """The whole report, as HTML text."""
    # Every "<" escaped: no text from the network can end the script element, or open a
    # comment in it (JSON reads "\u003c" back as "<").
    data = json.dumps({"frames": _frames_json(run), "docs": docs}).replace("<", "\\u003c")
    info = html.escape(
        json.dumps({k: run.info.get(k) for k in ("seed", "hosts", "nemesis", "workload")})
    )
    switches = "".join(
        f'<label><input type="checkbox" data-family="{name}"{" checked" * (name in SHOWN)}> '
        f"{name}</label> "
        for name in ["task", *FAMILIES]
    )
    return _PAGE.format(
        info=info,
        verdict=_verdict_html(run.verdict),
        switches=switches,
        lamport=f'<div class="names">{header_svg(run)}</div>{lamport_svg(run)}',
        timeline=_timeline(run),
        latency=_latencies(run),
        data=data,
        style=_static("report.css") + _static("lamport.css"),
        script=_static("report.js"),
    )


def _static(name: str) -> str:
    """A file shipped beside this module (the report's style sheet and script)."""
    return resources.files("vistrit.chaos").joinpath("static", name).read_text("utf-8")


def write_report(directory: Path, docs: str = PROTOCOL_PAGE) -> Path:
    """Write ``report.html`` for the run in *directory*; returns its path."""
    path = directory / files.REPORT
    path.write_text(render(Run.load(directory), docs), "utf-8")
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Vistrit chaos report</title>
<style>{style}</style></head>
<body>
<h1>Chaos report</h1>
<p class="run">{info}</p>
<h2>Verdict</h2>
{verdict}
<h2>Lamport diagram</h2>
<p>Time runs down; a line per node; an arrow per frame, from when its relay read it to when
it sent it on. Click an arrow for the frame, decoded. Show: {switches}</p>
<div id="diagram"><div id="lamport-box">{lamport}</div>
<div id="detail"><p>No frame chosen.</p></div></div>
<h2>Faults</h2>
{timeline}
<h2>Latency</h2>
<p>Each task: when it was submitted (across), how long until its outcome (up); red: failed
or unknown.</p>
{latency}
<script type="application/json" id="run-data">{data}</script>
<script>{script}</script>
</body></html>
"""
