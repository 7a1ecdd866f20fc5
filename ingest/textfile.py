"""Where bytes that are not UTF-8 sit in a text file, said the same way for every kind of file."""

from __future__ import annotations


def not_utf8(exc: UnicodeDecodeError) -> str:
    """``line N: not UTF-8 text (byte 0xNN)`` for a failed decode of a whole file's bytes."""
    data = exc.object if isinstance(exc.object, bytes) else bytes(exc.object)
    line = data[: exc.start].count(b"\n") + 1
    return f"line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})"
