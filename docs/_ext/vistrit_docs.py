"""Sphinx directives that put the code's own output into the docs at build time.

* ``.. vistrit-frame:: NAME`` - the example of message NAME (vistrit.protocol.examples),
  encoded by the real encoder, as a byte table made by the real annotator.
* ``.. vistrit-decode::`` with hex as content - the byte table of those frame bytes.
* ``.. vistrit-fields:: NAME`` - the declared fields of a message or type, in wire order.
* ``.. vistrit-help:: COMMAND`` - the ``--help`` text of a CLI command.
* ``.. vistrit-value:: EXPRESSION`` - a Python value (a literal), in the value encoding of
  a Call's arguments and result, as a byte table made by its annotator.
* ``.. vistrit-value-tags::`` - the encoding's tags, from ``vistrit.protocol.values.Tag``.
* ``.. vistrit-chaos-scene:: NAME`` - a chaos scene (``vistrit.chaos.scenes``), run on
  real processes, drawn as a Lamport diagram in SVG.

Nothing is pasted by hand, so the docs cannot drift from the code.
"""

from __future__ import annotations

import ast
import contextlib
import io
import textwrap
from contextlib import redirect_stdout

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.application import Sphinx

from vistrit import cli
from vistrit.protocol import annotate_frame, encode_frame
from vistrit.protocol import types as shared_types
from vistrit.protocol.catalogue import CATALOGUES, NEWEST_VERSION, first_version
from vistrit.protocol.examples import all_examples, v2_examples, v3_examples, v4_examples
from vistrit.protocol.schema import wire_type_for
from vistrit.protocol.spans import Span
from vistrit.protocol.values import Tag, annotate_value, encode_value
from vistrit.tracer import TracedFrame, TraceRelay


def _table(spans: list[Span], frame: bytes) -> list[nodes.Node]:
    header = ["offset", "len", "bytes", "field", "wire type", "value"]
    rows = []
    for span in spans:
        chunk = frame[span.offset : span.offset + min(span.length, 8)]
        shown = chunk.hex(" ") + (" …" if span.length > 8 else "")
        rows.append(
            [str(span.offset), str(span.length), shown, span.field, span.wire_type, span.value]
        )
    return [_build_table(header, rows, widths=[6, 4, 22, 30, 12, 30])]


def _build_table(header: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["vistrit-bytes"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += _row(header)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row, literal_columns={2})
    return table


def _row(cells: list[str], literal_columns: set[int] = frozenset()) -> nodes.row:  # type: ignore[assignment]
    row = nodes.row()
    for index, text in enumerate(cells):
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += nodes.literal(text, text) if index in literal_columns else nodes.Text(text)
        entry += paragraph
        row += entry
    return row


class FrameDirective(Directive):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        message = {**all_examples(), **v2_examples(), **v3_examples(), **v4_examples()}[name]
        frame = encode_frame(message, version=first_version(message))
        intro = nodes.paragraph(
            text=f"Example: {len(frame)} bytes on the wire "
            f"(header 10, payload {len(frame) - 14}, checksum 4)."
        )
        hex_block = nodes.literal_block(text="\n".join(textwrap.wrap(frame.hex(" "), 48)))
        return [intro, hex_block, *_table(annotate_frame(frame), frame)]


class DecodeDirective(Directive):
    has_content = True

    def run(self) -> list[nodes.Node]:
        frame = bytes.fromhex("".join(self.content))
        return _table(annotate_frame(frame), frame)


class ValueDirective(Directive):
    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        value = ast.literal_eval(self.arguments[0])
        data = encode_value(value)
        intro = nodes.paragraph(text=f"{self.arguments[0]} is {len(data)} bytes:")
        hex_block = nodes.literal_block(text="\n".join(textwrap.wrap(data.hex(" "), 48)))
        return [intro, hex_block, *_table(annotate_value(data), data)]


class ValueTagsDirective(Directive):
    def run(self) -> list[nodes.Node]:
        rows = [[f"0x{tag:02x}", tag.name] for tag in Tag]
        return [_build_table(["tag", "name"], rows, widths=[8, 20])]


class FieldsDirective(Directive):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        by_name = {cls.WIRE_NAME: cls for cls in CATALOGUES[NEWEST_VERSION].messages}
        cls = by_name.get(name) or getattr(shared_types, name)
        codec = wire_type_for(cls) if name not in by_name else cls.__wire__
        rows = [[field, wt.name] for field, wt in codec.fields]
        if not rows:
            return [nodes.paragraph(text="No fields.")]
        return [_build_table(["field", "wire type"], rows, widths=[30, 30])]


def _state_machine(
    transitions: dict[tuple[str, str], str], final: frozenset[str] | set[str], kind: str
) -> list[nodes.Node]:
    """A state machine drawn from its table: each state's moves, then the table itself."""
    states: list[str] = []
    for (state, _), target in transitions.items():
        for name in (state, target):
            if name not in states:
                states.append(name)
    states.sort(key=lambda name: name in final)  # the final states last, order kept
    width = max(len(s) for s in states)
    event_width = max(len(event) for _, event in transitions)
    lines = []
    for state in states:
        moves = [
            (event, target) for (source, event), target in transitions.items() if source == state
        ]
        label = state + (" (final)" if state in final else "")
        if not moves:
            lines.append(label)
        for index, (event, target) in enumerate(moves):
            head = label if index == 0 else ""
            arrow = f"--{event}--".ljust(event_width + 4, "-") + ">"
            lines.append(f"{head:<{width + 8}} {arrow} {target}")
        lines.append("")
    rows = [[state, event, target] for (state, event), target in transitions.items()]
    return [
        nodes.literal_block(text="\n".join(lines).rstrip()),
        _build_table([kind, "event", f"next {kind}"], rows, widths=[20, 20, 20]),
    ]


class TaskStatesDirective(Directive):
    """The task state machine, drawn from ``vistrit.logic.tasks.TRANSITIONS``."""

    def run(self) -> list[nodes.Node]:
        from vistrit.logic.tasks import FINAL, TRANSITIONS

        return _state_machine(TRANSITIONS, FINAL, "state")


class ElectionStatesDirective(Directive):
    """The election state machine, drawn from ``vistrit.logic.election.TRANSITIONS``."""

    def run(self) -> list[nodes.Node]:
        from vistrit.logic.election import TRANSITIONS

        return _state_machine(TRANSITIONS, set(), "role")


class ChaosSceneDirective(Directive):
    """A chaos scene (:mod:`vistrit.chaos.scenes`), run while the docs are built, drawn as
    a Lamport diagram in SVG."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        import logging
        import tempfile
        from pathlib import Path

        from vistrit.chaos import scenes

        quiet = logging.getLogger("vistrit")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # a scene's clients reconnect, as they should: no news
        try:
            with tempfile.TemporaryDirectory() as directory:
                svg = scenes.diagram(self.arguments[0], Path(directory) / "run")
        finally:
            quiet.setLevel(level)
        return [nodes.raw("", f'<div class="lamport">{svg}</div>', format="html")]


class HandshakeRunDirective(Directive):
    """A real authenticated handshake, recorded through the wire tracer while the docs are
    built: each frame, its direction, and its byte table."""

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for frame in _record_handshake():
            arrow = "node -> coordinator" if frame.direction == "->" else "coordinator -> node"
            out.append(nodes.paragraph(text=f"{arrow}: {frame.message}, {len(frame.data)} bytes"))
            out += _table(frame.spans, frame.data)
        return out


def _record_handshake() -> list[TracedFrame]:
    """A client joins a coordinator through a tracer; the frames up to its HandshakeAck."""
    import secrets
    import threading

    from vistrit.client import VistritClient
    from vistrit.coordinator import Coordinator
    from vistrit.credentials import Credentials

    credentials = Credentials.parse(f"all {secrets.token_hex(32)}")
    seen: list[TracedFrame] = []
    done = threading.Event()

    def on_frame(frame: TracedFrame) -> None:
        if frame.connection == 1 and not done.is_set():
            seen.append(frame)
            if frame.message == "HandshakeAck":
                done.set()

    with Coordinator(("127.0.0.1", 0), credentials=credentials, name="docs") as coordinator:
        relay = TraceRelay(("127.0.0.1", 0), coordinator.address, on_frame)
        relay.start()
        try:
            with VistritClient("{}:{}".format(*relay.address), credentials=credentials):
                done.wait(10)
        finally:
            relay.stop()
    return seen


class HelpDirective(Directive):
    required_arguments = 0
    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        buffer = io.StringIO()
        args = [*self.arguments, "--help"]
        with redirect_stdout(buffer), contextlib.suppress(SystemExit):
            cli.main(args)
        return [nodes.literal_block(text=buffer.getvalue().rstrip())]


def setup(app: Sphinx) -> dict[str, object]:
    directives.register_directive("vistrit-frame", FrameDirective)
    directives.register_directive("vistrit-decode", DecodeDirective)
    directives.register_directive("vistrit-fields", FieldsDirective)
    directives.register_directive("vistrit-help", HelpDirective)
    directives.register_directive("vistrit-value", ValueDirective)
    directives.register_directive("vistrit-value-tags", ValueTagsDirective)
    directives.register_directive("vistrit-task-states", TaskStatesDirective)
    directives.register_directive("vistrit-election-states", ElectionStatesDirective)
    directives.register_directive("vistrit-handshake-run", HandshakeRunDirective)
    directives.register_directive("vistrit-chaos-scene", ChaosSceneDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
