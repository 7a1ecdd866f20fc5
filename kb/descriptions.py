"""Reading what is said about a feature: people's labels, graph clerps and imported explanations.

Writers live elsewhere (:mod:`kb.featuremeta` imports files, :mod:`kb.labels` keeps people's
labels with their versions); both read through here.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import func, or_, select

from ingest.records import FeatureKey
from kb import registry
from kb.core import Core
from kb.parallel_reads import chunks
from schema.sql import ACCEPTED, READY, REJECTED, descriptions, graphs, labels

NEURONPEDIA_SOURCE = "neuronpedia"
LABEL_SOURCE = "label"
# descriptions_of lists what people wrote first, then graph clerps, then machine explanations
_SOURCE_ORDER = {LABEL_SOURCE: 0, "clerp": 1, NEURONPEDIA_SOURCE: 2}


def labels_of(core: Core, feature: FeatureKey) -> list[dict[str, Any]]:
    """Every label of a feature, oldest first: id, author, text, graph_slug, created_at,
    updated_at, and node_id, note, confidence, status, version (see :mod:`kb.labels` for votes
    and history)."""
    with core.engine.connect() as conn:
        fid = registry.lookup_features(conn, [feature]).get(feature)
        if fid is None:
            return []
        rows = conn.execute(select(labels).where(labels.c.feature_id == fid).order_by(labels.c.created_at, labels.c.id))
        return [_label_dict(row) for row in rows]


def _label_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "author": row.author,
        "text": row.text,
        "graph_slug": row.graph_slug,
        "created_at": registry.iso(row.created_at),
        "updated_at": registry.iso(row.updated_at),
        "node_id": row.node_id,
        "note": row.note,
        "confidence": row.confidence,
        "status": row.status,
        "version": row.version,
    }


def descriptions_of(core: Core, feature: FeatureKey) -> list[dict[str, Any]]:
    """Everything said about a feature: labels, clerps of visible graphs, Neuronpedia explanations.

    Each item has id, source (``label`` | ``clerp`` | ``neuronpedia`` | ...), kind, author, text,
    graph_id and graph_slug (the graph a clerp or label is about, else None), scores, origin and
    created_at; labels come first, then clerps, then explanations, each oldest first.
    """
    with core.engine.connect() as conn:
        fid = registry.lookup_features(conn, [feature]).get(feature)
        if fid is None:
            return []
        items = [_description_dict(row) for row in conn.execute(_descriptions_query(fid))]
        rows = conn.execute(select(labels).where(labels.c.feature_id == fid))
        items.extend(_label_as_description(row) for row in rows)
    items.sort(key=lambda d: (_SOURCE_ORDER.get(d["source"], len(_SOURCE_ORDER)), d["created_at"] or "", d["id"]))
    return items


def _descriptions_query(fid: int) -> Any:
    d = descriptions.c
    return (
        select(descriptions, graphs.c.slug.label("graph_slug"))
        .select_from(descriptions.outerjoin(graphs, graphs.c.id == d.graph_id))
        .where(d.feature_id == fid, or_(d.graph_id.is_(None), graphs.c.status == READY))
    )


def _description_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "kind": row.kind,
        "author": row.author,
        "text": row.text,
        "graph_id": row.graph_id,
        "graph_slug": row.graph_slug,
        "scores": row.scores,
        "origin": row.origin,
        "created_at": registry.iso(row.created_at),
    }


def _label_as_description(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": LABEL_SOURCE,
        "kind": "",
        "author": row.author,
        "text": row.text,
        "graph_id": None,
        "graph_slug": row.graph_slug,
        "scores": None,
        "origin": None,
        "created_at": registry.iso(row.created_at),
    }

def imported_descriptions(core: Core, feature: FeatureKey) -> list[dict[str, Any]]:
    """What tools said about the feature (Neuronpedia explanations, graph clerps), apart from labels."""
    return [d for d in descriptions_of(core, feature) if d["source"] != LABEL_SOURCE]


def one_line_descriptions(core: Core, features: Sequence[FeatureKey]) -> dict[FeatureKey, str]:
    """What a table says a feature is, for each of ``features`` that has anything said about it:
    its newest accepted label, else its newest label that is not rejected, else its first clerp
    (of a visible graph), else its first imported explanation."""
    with core.engine.connect() as conn:
        fids = registry.lookup_features(conn, list(dict.fromkeys(features)))
        key_of = {fid: key for key, fid in fids.items()}
        chosen: dict[int, tuple[tuple[Any, ...], str]] = {}
        for part in chunks(list(key_of), 500):
            for fid, text, status, updated in conn.execute(
                select(labels.c.feature_id, labels.c.text, labels.c.status, labels.c.updated_at).where(labels.c.feature_id.in_(part), labels.c.status != REJECTED)
            ):
                rank = (0, status != ACCEPTED, -registry.aware(updated).timestamp())
                if fid not in chosen or rank < chosen[fid][0]:
                    chosen[fid] = (rank, text)
            d = descriptions.c
            # one row per distinct text (the index groups a clerp repeated in every graph)
            first = (
                select(d.feature_id, d.source, func.min(d.id).label("first"))
                .select_from(descriptions.outerjoin(graphs, graphs.c.id == d.graph_id))
                .where(d.feature_id.in_(part), d.source != LABEL_SOURCE, or_(d.graph_id.is_(None), graphs.c.status == READY))
                .group_by(d.feature_id, d.source, d.text_hash)
                .subquery()
            )
            for fid, source, first_id, text in conn.execute(select(first.c.feature_id, first.c.source, first.c.first, d.text).join(descriptions, d.id == first.c.first)):
                rank = (1, _SOURCE_ORDER.get(source, len(_SOURCE_ORDER)), first_id)
                if fid not in chosen or rank < chosen[fid][0]:
                    chosen[fid] = (rank, text)
    return {key_of[fid]: text for fid, (_, text) in chosen.items()}
