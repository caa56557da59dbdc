"""Reading the body of a public request without trusting it (issue 25, items 2 and 3).

A public endpoint is reachable by anyone, so what it reads must be bounded by us, not by
what the client declares: a chunked upload has no ``Content-Length`` to check, and
``request.get_data()`` would read all of it into memory before anything could refuse it.
The body is read from the stream in chunks and reading stops one byte past the cap.

Python's ``json`` module recurses once per nesting level, so a body of 200 KB of ``[``
raises ``RecursionError``. The nesting depth is measured first, with a flat scan of the
bounded bytes that skips string contents, and a body nested deeper than any real payload
is refused before ``json`` sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

_CHUNK_BYTES = 64 * 1024
#: String literals (escapes included), whose brackets are text, not structure.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Every byte that is not a bracket, deleted before the depth is counted.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyRefused(ValueError):
    """The body is refused before it is used; ``status`` is 400 or 413."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_bounded_body(limit: int) -> bytes:
    """The request body, or :class:`BodyRefused` (413) once it passes ``limit`` bytes.

    A declared length over the limit is refused without reading anything; otherwise the
    stream is read in chunks, never more than ``limit + 1`` bytes, whatever the encoding.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyRefused(413, f"The body is {declared} bytes; at most {limit} are accepted.")
    stream = request.stream
    chunks: list[bytes] = []
    received = 0
    while received <= limit:
        chunk = stream.read(min(_CHUNK_BYTES, limit + 1 - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if received > limit:
        raise BodyRefused(413, f"The body is larger than the {limit} bytes accepted.")
    return b"".join(chunks)


def json_nesting_depth(body: bytes) -> int:
    """How deeply ``body``'s arrays and objects nest, counted without recursion.

    Unbalanced brackets only make the count wrong for text that is not JSON anyway, and
    ``json`` refuses that afterwards.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_bounded_json(body: bytes, max_depth: int) -> Any:
    """``body`` as JSON, or :class:`BodyRefused` (400) saying what is wrong with it."""
    if not body.strip():
        raise BodyRefused(400, "The body is empty; a JSON object was expected.")
    depth = json_nesting_depth(body)
    if depth > max_depth:
        raise BodyRefused(
            400, f"The JSON nests {depth} levels deep; at most {max_depth} are accepted."
        )
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BodyRefused(400, "The body is not UTF-8 text, so it is not JSON.") from None
    except ValueError as exc:  # json.JSONDecodeError, and ints past Python's digit limit
        raise BodyRefused(400, f"The body is not valid JSON ({exc}).") from None
