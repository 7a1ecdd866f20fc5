"""Prompt tokens and feature names: which positions a token names, and what a feature is called.

Token positions count from 0 (``<bos>``); a negative position counts from the end (-1 is the
last token). A token names positions by its text, compared without surrounding spaces and case.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

from kb import sqlqueries
from kb.core import Core
from kb.errors import CircuitKBError
from kb.selection import GraphInfo


def token_positions(graph: GraphInfo, *, token: str | None = None, position: int | None = None) -> tuple[int, ...]:
    """The positions a token text or a position (negative: from the end) names in ``graph``."""
    if (token is None) == (position is None):
        raise CircuitKBError("name the prompt token either by its text (token) or by its position")
    n = len(graph.prompt_tokens)
    if position is not None:
        at = position + n if position < 0 else position
        if not 0 <= at < n:
            raise CircuitKBError(f"position {position} is outside the {n} tokens of {graph.slug}")
        return (at,)
    wanted = _normal_token(token or "")
    if not wanted:
        raise CircuitKBError("the token text is empty")
    return tuple(i for i, t in enumerate(graph.prompt_tokens) if _normal_token(t) == wanted)


def _normal_token(text: str) -> str:
    return text.strip().lower()


_WORD = re.compile(r"\w+", re.UNICODE)


@functools.lru_cache(maxsize=1 << 16)
def words(text: str) -> frozenset[str]:
    """The lower-case words of a label or token (letters and digits, at least two characters).

    Remembered: a two-hop question over thousands of graphs asks again for the same tokens and
    names, graph after graph."""
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) >= 2)


def feature_names(kb: Core, fids: Iterable[int]) -> dict[int, list[str]]:
    """What people and tools call each feature: labels, then clerps, then explanations.

    Labels come from the labels table, clerps from every graph that labelled the feature,
    explanations from Neuronpedia files; duplicates are dropped, order kept.
    """
    wanted = sorted(set(fids))
    names: dict[int, list[str]] = {fid: [] for fid in wanted}
    if not wanted:
        return names
    source_rank = {"label": 0, "clerp": 1}
    with kb.engine.connect() as conn:
        found = [(0, fid, text) for fid, text, _slug in sqlqueries.feature_labels(conn, wanted)]
        found += [(source_rank.get(source, 2), fid, text) for fid, source, text in sqlqueries.feature_descriptions(conn, wanted)]
    for _, fid, text in sorted(found, key=lambda r: r[0]):
        text = (text or "").strip()
        if text and text not in names[fid]:
            names[fid].append(text)
    return names
