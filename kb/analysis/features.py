"""Feature identities for analyses: SQL ids to (transcoder set, layer, index) and back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from sqlalchemy import select

from ingest.records import FeatureKey
from kb.errors import CircuitKBError, NotFoundError
from kb.featureref import parse_feature_ref
from kb.registry import lookup_features
from kb.selection import GraphInfo, Selection
from kb.stores.embedded_feature_queries import among
from schema.sql import READY, features, graphs

if TYPE_CHECKING:
    from kb.api import KB

FEATURE_COLUMNS = ("transcoder_set", "layer", "index")


def feature_keys(kb: "KB", fids: Iterable[int]) -> dict[int, FeatureKey]:
    """The identity of each SQL feature id."""
    wanted = sorted(set(fids))
    if not wanted:
        return {}
    f = features.c
    with kb.engine.connect() as conn:
        rows = conn.execute(select(f.id, f.transcoder_set, f.layer, f["index"]).where(among(conn, f.id, wanted)))
        return {fid: FeatureKey(tset, layer, index) for fid, tset, layer, index in rows}


def resolve_features(
    kb: "KB", refs: Sequence[str | FeatureKey], *, transcoder_set: str | None = None, model: str | None = None
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


def chosen_graphs(kb: "KB", selection: Selection | None, at_least: int = 1) -> list[GraphInfo]:
    """The graphs a selection matches; an error when fewer than ``at_least``."""
    graphs = kb.select(selection)
    if len(graphs) < at_least:
        needed = "any graph" if at_least == 1 else f"at least {at_least} graphs"
        raise CircuitKBError(f"the selection matches {len(graphs)} graph(s); this needs {needed} (`circuitkb stats` says what is stored)")
    return graphs


def chosen_graph_ids(kb: "KB", selection: Selection | None) -> list[int]:
    """The ids of the graphs a selection matches, without loading their rows when it is empty."""
    if selection is None or selection.is_empty():
        return kb.graph_ids()
    return [g.gid for g in kb.select(selection)]


def graphs_by_id(kb: "KB", gids: Iterable[int]) -> dict[int, GraphInfo]:
    """The visible graphs among ``gids``, by id (for the few graphs a result lists)."""
    wanted = sorted(set(gids))
    if not wanted:
        return {}
    g = graphs.c
    with kb.engine.connect() as conn:
        slugs = list(conn.execute(select(g.slug).where(among(conn, g.id, wanted), g.status == READY)).scalars())
    return {info.gid: info for info in kb.select(Selection(slugs=tuple(slugs)))}
