"""Cypher of feature search's vectors in Neo4j, run by :mod:`kb.stores.neo4j_vectors`.

A description text's vector of one model is a property of its ``(:SearchText {hash})`` node
(the text's SHA-256 in hex, as the search catalog keys it); each model has its own property and
its own vector index, named by :func:`vector_names`. Neo4j cannot take a property name as a parameter in
an index definition, so names are made from a digest of the model's name and checked against
a strict pattern before they are written into a statement: no user text reaches the query.
Everything else travels as parameters, the property name included (``t[$prop]``,
``db.create.setNodeVectorProperty``).

Scores: Neo4j's cosine similarity is ``(1 + cos) / 2``, over the normalised vectors.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

from kb.stores.cypher import Query

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
# the texts among $hashes that have a vector in $prop
_WITH_VECTOR = "UNWIND $hashes AS h MATCH (t:SearchText {hash: h}) WHERE t[$prop] IS NOT NULL "


def vector_names(model: str) -> tuple[str, str]:
    """(index name, property name) of ``model``'s vectors: ``search_<digest>``, ``v_<digest>``."""
    digest = hashlib.blake2b(model.encode("utf-8"), digest_size=10).hexdigest()
    return checked_name(f"search_{digest}"), checked_name(f"v_{digest}")


def checked_name(name: str) -> str:
    """``name`` if it is a plain identifier (lower-case letters, digits, underscores), else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a name circuitkb writes into Cypher")
    return name


def create_vector_index(index: str, prop: str, dim: int) -> Query:
    """The vector index of one model, exact scores (no quantisation), idempotent."""
    return (
        f"CREATE VECTOR INDEX {checked_name(index)} IF NOT EXISTS FOR (t:SearchText) ON (t.{checked_name(prop)}) "
        "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine', "
        "`vector.quantization.enabled`: false}}",
        {"dim": int(dim)},
    )


def index_options(index: str) -> Query:
    return "SHOW INDEXES YIELD name, type, options WHERE name = $name AND type = 'VECTOR' RETURN options", {"name": index}


def await_index(index: str, seconds: int) -> Query:
    return "CALL db.awaitIndex($name, $seconds)", {"name": index, "seconds": int(seconds)}


def server_version() -> Query:
    return "CALL dbms.components() YIELD name, versions WHERE name = 'Neo4j Kernel' RETURN versions[0] AS version", {}


def with_vectors(hashes: Sequence[str], prop: str) -> Query:
    """Which of ``hashes`` have a vector in ``prop``."""
    return (
        _WITH_VECTOR + "RETURN h AS hash",
        {"hashes": list(hashes), "prop": prop},
    )


def write_vectors(rows: Sequence[dict[str, Any]], prop: str) -> Query:
    """Rows ``{hash, vector}``: each text's node (made if new) gets its vector, stored as float32."""
    return (
        "UNWIND $rows AS row MERGE (t:SearchText {hash: row.hash}) "
        "WITH t, row CALL db.create.setNodeVectorProperty(t, $prop, row.vector)",
        {"rows": list(rows), "prop": prop},
    )


def nearest(index: str, k: int, vector: Sequence[float]) -> Query:
    """The ``k`` texts nearest to ``vector`` by the model's vector index."""
    return (
        "CALL db.index.vector.queryNodes($index, $k, $vector) YIELD node, score RETURN node.hash AS hash, score",
        {"index": index, "k": int(k), "vector": list(vector)},
    )


def similarities(hashes: Sequence[str], prop: str, vector: Sequence[float], limit: int | None) -> Query:
    """Exact similarity of ``vector`` with the texts ``hashes`` (the best ``limit``, or all)."""
    return (
        _WITH_VECTOR + "WITH h, vector.similarity.cosine(t[$prop], $vector) AS score "
        "ORDER BY score DESC, h LIMIT $limit RETURN h AS hash, score",
        {"hashes": list(hashes), "prop": prop, "vector": list(vector), "limit": int(limit if limit is not None else 2**31 - 1)},
    )


def vectors_of(hashes: Sequence[str], prop: str) -> Query:
    return (
        _WITH_VECTOR + "RETURN h AS hash, t[$prop] AS vector",
        {"hashes": list(hashes), "prop": prop},
    )
