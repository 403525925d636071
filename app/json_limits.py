"""Bounds on a JSON body, checked on the raw bytes before any parser builds the structure.

What is refused, and why: nesting deeper than a bound (a parser or encoder
that recurses fails on 100,000 levels), number literals longer than a bound
(Python's int parse is quadratic and stops at 4,300 digits), NaN and
Infinity (not JSON, and not a measurement), and U+0000 in any string or key
(PostgreSQL cannot store it). Each refusal names the field by its path.

The common case must stay cheap, since every ingest batch passes here: a few
scans at C speed (``bytes.replace``, ``translate``, ``re``) show whether
anything could be wrong, and only then a tokenizer in Python walks the body
to name the field. A body that is not valid JSON is left to the parser.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

_NOT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'[]{}"')
_DIGITS_AS_ZERO: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_STRING = re.compile(rb'"[^"]*"')
_LEAF_PAIR = re.compile(rb"\[\]|\{\}")
_TOKEN = re.compile(
    rb'"[^"\\]*(?:\\.[^"\\]*)*"'  # a string
    rb"|[\[\]{},:]"  # structure
    rb"|[^\s\[\]{},:\"]+"  # a number or a literal (true, false, null, NaN, Infinity, -Infinity)
)
_NON_FINITE: Final = (b"NaN", b"Infinity")


@dataclass(frozen=True, slots=True)
class Violation:
    """One refused spot: its path inside the body (``readings[3].value``, or "" for the top) and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_depth: int
    max_number_chars: int

    def check(self, raw: bytes, *, values: bool = True) -> Violation | None:
        """The first spot past a bound, or None; invalid JSON passes here and fails in the parser.

        ``values=False`` checks only what keeps a parser safe (depth, number length), for a
        body whose reader judges its values itself, item by item.
        """
        if not self._suspect(raw, values):
            return None
        return self._locate(raw, values)

    def _suspect(self, raw: bytes, values: bool) -> bool:
        """True if a bound may be broken (false alarms allowed, no misses); C-speed scans only."""
        if values and b"\\u0000" in raw:
            return True
        if values and ((b"N" in raw and b"NaN" in raw) or (b"I" in raw and b"Infinity" in raw)):
            return True
        # A longer number literal holds a run of digits at least this long (at most 4 other characters).
        run = max(1, -(-(self.max_number_chars - 3) // 3))
        if b"0" * run in raw.translate(_DIGITS_AS_ZERO):
            return True
        return self._too_deep(raw)

    def _too_deep(self, raw: bytes) -> bool:
        if b"\\" in raw:
            # Drop escaped backslashes, then escaped quotes: every quote left opens or closes a string.
            # (Outside strings valid JSON has no backslash, so this pairs them as a parser would.)
            raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
        shape = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
        if b'"' in shape:  # strings holding brackets
            shape = _STRING.sub(b"", shape)
        # Each pass removes every innermost container, so depth d empties in exactly d passes.
        for _ in range(self.max_depth):
            if not shape:
                return False
            shape = _LEAF_PAIR.sub(b"", shape)
        return bool(shape)

    def _locate(self, raw: bytes, values: bool) -> Violation | None:
        # Per open container: [is_object, key or index, expecting a key].
        stack: list[list[object]] = []
        for match in _TOKEN.finditer(raw):
            token = match.group()
            first = token[:1]
            top = stack[-1] if stack else None
            if first in (b"{", b"["):
                stack.append([first == b"{", None if first == b"{" else 0, True])
                if len(stack) > self.max_depth:
                    return Violation(_path(stack[:-1]), f"nested deeper than {self.max_depth} levels")
            elif first in (b"}", b"]"):
                if stack:
                    stack.pop()
            elif first == b",":
                if top is not None:
                    if top[0]:
                        top[2] = True
                    else:
                        top[1] = int(top[1]) + 1  # type: ignore[call-overload]
            elif first == b":":
                if top is not None:
                    top[2] = False
            elif first == b'"':
                text = _decoded(token)
                is_key = top is not None and top[0] and top[2]
                if is_key:
                    top[1] = text  # type: ignore[index]
                if values and text is not None and "\x00" in text:
                    where, what = (_path(stack[:-1]), "a key") if is_key else (_path(stack), "the string")
                    return Violation(where, f"{what} holds U+0000, which cannot be stored")
            elif values and token.lstrip(b"-") in _NON_FINITE:
                return Violation(_path(stack), f"{token.decode()} is not a JSON number; send a finite value")
            elif (token[:1].isdigit() or first == b"-") and len(token) > self.max_number_chars:
                return Violation(
                    _path(stack),
                    f"number literal of {len(token)} characters; at most {self.max_number_chars}",
                )
        return None


def _decoded(token: bytes) -> str | None:
    try:
        text = json.loads(token)
    except ValueError:
        return None
    return text if isinstance(text, str) else None


def _path(stack: list[list[object]]) -> str:
    out = ""
    for is_object, key, _ in stack:
        if key is None:
            continue
        out += f".{key}" if is_object else f"[{key}]"
    return out.lstrip(".")
