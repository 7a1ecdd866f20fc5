"""Small questions a front end asks of the whole knowledge base: has it changed, what was
labelled lately, and where a feature lives on Neuronpedia."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ingest.records import FeatureKey
from kb.registry import FAMILIES_CHANGED
from schema.sql import READY, descriptions, feature_details, features, graph_sets, graphs, kb_meta, labels

if TYPE_CHECKING:
    from kb.core import Core

NEURONPEDIA = "https://www.neuronpedia.org"


def kb_version(kb: "Core") -> str:
    """A fingerprint that changes whenever graphs, their families, saved sets, features, descriptions or labels change,
    and differs between two knowledge bases (it starts with the KB's instance id).

    Cheap (a few indexed aggregates), so a front end can ask it on every page view and key its
    caches on it: an ingest, an import or a saved, edited or deleted label shows at once.
    """
    with kb.engine.connect() as conn:
        parts = [
            conn.execute(select(kb_meta.c.value).where(kb_meta.c.key == "instance")).one_or_none() or ("",),
            conn.execute(select(kb_meta.c.value).where(kb_meta.c.key == FAMILIES_CHANGED)).one_or_none() or ("",),
            conn.execute(select(func.count(), func.max(graphs.c.id)).where(graphs.c.status == READY)).one(),
            conn.execute(select(func.max(features.c.id))).one(),
            conn.execute(select(func.count(), func.max(descriptions.c.id))).one(),
            conn.execute(select(func.count(), func.max(labels.c.id), func.max(labels.c.updated_at))).one(),
            conn.execute(select(func.count(), func.max(feature_details.c.updated_at))).one(),
            conn.execute(select(func.count(), func.max(graph_sets.c.created_at))).one(),
        ]
    return "|".join(",".join(str(v) for v in part) for part in parts)


def recent_labels(kb: "Core", limit: int = 50) -> list[dict[str, Any]]:
    """The latest labels, newest change first: feature (a FeatureKey), author, text, graph_slug, updated_at."""
    query = (
        select(labels.c.id, labels.c.author, labels.c.text, labels.c.graph_slug, labels.c.updated_at, features.c.transcoder_set, features.c.layer, features.c["index"])
        .select_from(labels.join(features, features.c.id == labels.c.feature_id))
        .order_by(labels.c.updated_at.desc(), labels.c.id.desc())
        .limit(limit)
    )
    with kb.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "id": r.id,
            "feature": FeatureKey(r.transcoder_set, r.layer, r[7]),
            "author": r.author,
            "text": r.text,
            "graph_slug": r.graph_slug,
            "updated_at": r.updated_at.isoformat() if r.updated_at else None,
        }
        for r in rows
    ]


def neuronpedia_url(kb: "Core", key: FeatureKey) -> str | None:
    """The feature's page on Neuronpedia, when its transcoder set is one Neuronpedia hosts.

    A set is Neuronpedia's when it is named ``MODEL/SOURCE`` and either Neuronpedia explanations
    of it were imported or a stored graph of it says it came from or links to Neuronpedia.
    """
    model, sep, source = key.transcoder_set.partition("/")
    if not sep or "/" in source:
        return None
    url = f"{NEURONPEDIA}/{model}/{key.layer}-{source}/{key.index}"
    with kb.engine.connect() as conn:
        explained = conn.execute(
            select(descriptions.c.id)
            .select_from(descriptions.join(features, features.c.id == descriptions.c.feature_id))
            .where(features.c.transcoder_set == key.transcoder_set, descriptions.c.source == "neuronpedia")
            .limit(1)
        ).first()
        if explained is not None:
            return url
        metadata = conn.execute(
            select(graphs.c.metadata).where(graphs.c.transcoder_set == key.transcoder_set, graphs.c.status == READY).limit(20)
        ).scalars()
        if any("neuronpedia" in str(m).lower() for m in metadata):
            return url
    return None
