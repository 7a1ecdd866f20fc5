"""What every analysis needs of features and graphs: SQL ids to (transcoder set, layer, index)
and back, the graphs a selection chooses (and whether the aggregates over all graphs answer for
it), and features as rows and JSON show them."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from ingest.records import FeatureKey
from kb import sqlqueries
from kb.aggregates import reads as aggregates
from kb.core import Core
from kb.errors import CircuitKBError, NotFoundError
from kb.featureref import parse_feature_ref
from kb.parallel_reads import started
from kb.registry import lookup_features
from kb.selection import GraphInfo, Selection

T = TypeVar("T")

log = logging.getLogger(__name__)

FEATURE_COLUMNS = ("transcoder_set", "layer", "index")


def feature_keys(kb: Core, fids: Iterable[int]) -> dict[int, FeatureKey]:
    """The identity of each SQL feature id."""
    wanted = sorted(set(fids))
    if not wanted:
        return {}
    with kb.engine.connect() as conn:
        return sqlqueries.feature_keys(conn, wanted)


def resolve_features(
    kb: Core, refs: Sequence[str | FeatureKey], *, transcoder_set: str | None = None, model: str | None = None
) -> dict[FeatureKey, int]:
    """The SQL id of each feature reference (see :mod:`kb.featureref`), in the order given.

    Raises BadFeatureRef for an unreadable reference and NotFoundError for a feature that no
    stored graph or metadata file has mentioned.
    """
    keys = [ref if isinstance(ref, FeatureKey) else parse_feature_ref(ref, transcoder_set=transcoder_set, model=model) for ref in refs]
    if not keys:
        raise CircuitKBError("name at least one feature")
    with kb.engine.connect() as conn:
        found = lookup_features(conn, keys)
    missing = [str(k) for k in keys if k not in found]
    if missing:
        raise NotFoundError(f"unknown feature {', '.join(missing)}: no stored graph or metadata has it (check the transcoder set and layer)")
    return {k: found[k] for k in keys}


def feature_dict(key: FeatureKey) -> dict[str, object]:
    """A feature as JSON shows it."""
    return {"transcoder_set": key.transcoder_set, "layer": key.layer, "index": key.index}


def key_tuple(key: FeatureKey) -> tuple[str, int, int]:
    """A feature as the values of FEATURE_COLUMNS."""
    return (key.transcoder_set, key.layer, key.index)


def feature_json(row: Any, prefix: str) -> dict[str, Any]:
    """The feature held in a row's ``{prefix}transcoder_set``, ``_layer`` and ``_index`` (a mapping
    or a named tuple), as JSON shows it."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    return {"transcoder_set": get(f"{prefix}transcoder_set"), "layer": int(get(f"{prefix}layer")), "index": int(get(f"{prefix}index"))}


def chosen_graphs(kb: Core, selection: Selection | None, at_least: int = 1) -> list[GraphInfo]:
    """The graphs a selection matches; an error when fewer than ``at_least``."""
    graphs = kb.select(selection)
    _enough(len(graphs), at_least)
    return graphs


def chosen_graphs_while(kb: Core, selection: Selection | None, work: Callable[[list[int]], T]) -> tuple[list[GraphInfo], T]:
    """The graphs a selection matches (an error as :func:`chosen_graphs` gives it, when none), and
    ``work`` done for their ids. For all graphs, whose descriptions are ten thousand rows to
    read, ``work`` runs while they are read; the caller leaves out of its answer a graph that was
    removed in between (one added in between is in the list, but not in ``work``)."""
    if selection is not None and not selection.is_empty():
        graphs = chosen_graphs(kb, selection)
        return graphs, work([g.gid for g in graphs])
    gids = kb.graph_ids()
    described = started(chosen_graphs, kb, selection)
    done = work(gids)
    return described.result(), done


def _enough(n: int, at_least: int) -> None:
    if n < at_least:
        needed = "any graph" if at_least == 1 else f"at least {at_least} graphs"
        raise CircuitKBError(f"the selection matches {n} graph(s); this needs {needed} (`circuitkb stats` says what is stored)")


def over_all_graphs(kb: Core, selection: Selection | None, at_least: int = 1) -> int | None:
    """How many graphs are visible, when ``selection`` chooses all of them and the aggregates
    (:mod:`kb.aggregates`) count every one; None when the question must read the graphs.

    An error, as :func:`chosen_graphs` gives it, when fewer than ``at_least`` are visible.
    """
    if selection is not None and not selection.is_empty():
        return None
    with kb.engine.connect() as conn:
        stale = aggregates.stale_reason(conn)
        n = sqlqueries.ready_graph_count(conn)
    if stale is not None:
        log.warning("the aggregates over all graphs are stale (%s); reading the graphs instead (`circuitkb aggregates rebuild`)", stale)
        return None
    _enough(n, at_least)
    return n


def one_graph(kb: Core, slug: str) -> GraphInfo:
    """The visible graph ``slug``; NotFoundError when there is none."""
    found = kb.select(Selection(slugs=(slug,)))
    if not found:
        raise NotFoundError(f"no graph with slug {slug!r}")
    return found[0]


def chosen_graph_ids(kb: Core, selection: Selection | None) -> list[int]:
    """The ids of the graphs a selection matches, without loading their rows when it is empty."""
    if selection is None or selection.is_empty():
        return kb.graph_ids()
    return [g.gid for g in kb.select(selection)]


def graphs_by_id(kb: Core, gids: Iterable[int]) -> dict[int, GraphInfo]:
    """The visible graphs among ``gids``, by id (for the few graphs a result lists)."""
    wanted = sorted(set(gids))
    if not wanted:
        return {}
    with kb.engine.connect() as conn:
        slugs = sqlqueries.ready_slugs(conn, wanted)
    return {info.gid: info for info in kb.select(Selection(slugs=tuple(slugs)))}
