"""JSON from people, bounded before it is parsed: nesting depth and size.

Python's json decoder (and every recursive walk after it: the NUL check, json.dumps, Postgres' jsonb) recurses once
per nesting level. A body of `[[[[...` a thousand deep is a RecursionError, a 500 and seconds of CPU per request;
so the text is scanned first, in one linear pass that never recurses, and refused with the field it belongs to.
No configuration alweb reads needs more than a few levels; the limits leave room for any honest document.
"""

from __future__ import annotations

import re
from typing import Any

# Default limits: a model_config or strategy option is two or three levels deep; an item's metadata a few more.
MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024

# A string (with an optional ':' after it: a key) or a bracket. Strings are skipped whole, so brackets inside them
# do not count; everything else (numbers, literals, commas) does not matter for depth.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"\s*(:?)|[\[\]{}]', re.S)


class JSONLimitError(ValueError):
    """JSON over a limit. `key` is the top-level object key the excess sits under, when there is one."""

    def __init__(self, reason: str, key: str | None = None) -> None:
        self.reason, self.key = reason, key
        super().__init__(reason)


def check_json_text(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> None:
    """Raise JSONLimitError if `text` is longer than `max_bytes` or nests deeper than `max_depth`. Malformed text
    passes: the parser that runs next says what is wrong with it, with line and column."""
    if len(text) > max_bytes:
        raise JSONLimitError(f"must be at most {max_bytes} bytes of JSON")
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    depth, key = 0, None
    for match in _TOKENS.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise JSONLimitError(f"must not nest deeper than {max_depth} levels", key)
        elif token in "]}":
            depth = max(0, depth - 1)
        elif depth == 1 and match.group(1):  # a key of the top-level object: what a deeper excess belongs to
            key = token[1 : token.rindex('"')]


def json_depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest
