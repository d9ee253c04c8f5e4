"""A safe evaluator for ``Compute`` tasks: arithmetic on numbers, nothing else.

The grammar, parsed by recursive descent (no ``eval``, no ``ast`` of Python code)::

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/" | "//" | "%") unary)*
    unary      := ("-" | "+") unary | power
    power      := atom ("**" unary)?
    atom       := NUMBER | "(" expression ")"

So ``**`` binds tighter than a sign on its left (``-2**2`` is -4) and groups to the right
(``2**3**2`` is 512), as in mathematics and in Python.

Numbers are integers or decimals (``3``, ``2.5``, ``1e3``). Integers stay exact; ``/``
gives a decimal. A result that is a whole decimal is shown without ``.0`` (``6/3`` is
``2``), as the reference worker shows it. Work is bounded: an expression of at most 10,000
characters, exponents of at most 10,000, and integers of at most 10,000 digits, so no
input can make a worker compute for minutes.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.worker.functions`.
"""

from __future__ import annotations

import re

MAX_LENGTH = 10_000
MAX_EXPONENT = 10_000
MAX_DIGITS = 10_000

_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|(\*\*|//|[-+*/%()]))"
)

Number = int | float


class ArithmeticError_(ValueError):
    """The expression is not arithmetic, or cannot be computed (division by zero...)."""


def evaluate(expression: str) -> Number:
    """The value of *expression*; raises :class:`ArithmeticError_` with the reason."""
    if len(expression) > MAX_LENGTH:
        raise ArithmeticError_(f"expression longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokenize(expression), expression)
    value = parser.expression()
    if parser.peek() is not None:
        raise ArithmeticError_(f"unexpected {parser.peek()!r} in {expression!r}")
    return value


def format_number(value: Number) -> str:
    """A result as text: an integral float without its ``.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _tokenize(expression: str) -> list[str]:
    tokens, position = [], 0
    stripped = expression.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            bad = stripped[position:].lstrip()[:1]
            raise ArithmeticError_(f"Cannot evaluate expression: {expression} (unexpected {bad!r})")
        tokens.append(match.group(1) or match.group(2))
        position = match.end()
    if not tokens:
        raise ArithmeticError_("empty expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ArithmeticError_(f"expression ends too early: {self.text!r}")
        self.position += 1
        return token

    def expression(self) -> Number:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = _checked(value + self.term() if self.take() == "+" else value - self.term())
        return value

    def term(self) -> Number:
        value = self.unary()
        while self.peek() in ("*", "/", "//", "%"):
            operator, right = self.take(), self.unary()
            if operator != "*" and right == 0:
                raise ArithmeticError_("division by zero")
            if operator == "*":
                value = _checked(value * right)
            elif operator == "/":
                value = value / right
            elif operator == "//":
                value = value // right
            else:
                value = value % right
        return value

    def power(self) -> Number:
        base = self.atom()
        if self.peek() != "**":
            return base
        self.take()
        exponent = self.unary()
        if abs(exponent) > MAX_EXPONENT:
            raise ArithmeticError_(f"exponent {exponent} is larger than {MAX_EXPONENT}")
        try:
            return _checked(base**exponent)
        except (OverflowError, ZeroDivisionError) as exc:
            raise ArithmeticError_(str(exc)) from None

    def unary(self) -> Number:
        if self.peek() in ("-", "+"):
            sign = self.take()
            value = self.unary()
            return -value if sign == "-" else value
        return self.power()

    def atom(self) -> Number:
        token = self.take()
        if token == "(":
            value = self.expression()
            if self.peek() != ")":
                raise ArithmeticError_(f"missing ')' in {self.text!r}")
            self.take()
            return value
        if token[0].isdigit() or token[0] == ".":
            return float(token) if any(c in token for c in ".eE") else int(token)
        raise ArithmeticError_(f"unexpected {token!r} in {self.text!r}")


def _checked(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise ArithmeticError_(f"result has more than {MAX_DIGITS} digits")
    return value
