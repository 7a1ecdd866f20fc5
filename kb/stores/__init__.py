"""Graph stores: where each graph's nodes and links live. One interface, two backends.

- ``base``, ``feature_queries``, ``circuit_queries``: the interface (:class:`GraphStore`), the
  answers' types, and what is the same on every store, written once over a few primitives
  (the abstract methods) that each backend implements;
- ``embedded``, ``embedded_*_queries``: the backend in tables of the SQL database;
- ``neo4j_store``, ``neo4j_*_queries``: the Neo4j backend, running the Cypher of ``cypher/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.errors import ConfigError
from kb.stores.base import GraphStore, StoredGraph

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from kb.config import Config

STORE_NAMES = ("embedded", "neo4j")


def open_store(name: str, config: "Config", engine: "Engine") -> GraphStore:
    """The graph store called ``name``; refuses unknown names."""
    if name == "embedded":
        from kb.stores.embedded import EmbeddedStore

        return EmbeddedStore(engine)
    if name == "neo4j":
        from kb.stores.neo4j_store import Neo4jStore

        if not config.neo4j_uri:
            raise ConfigError("the neo4j store needs CIRCUITKB_NEO4J_URI (and _USER, _PASSWORD)")
        return Neo4jStore(engine, config.neo4j_uri, config.neo4j_user, config.neo4j_password, config.neo4j_database)
    raise ConfigError(f"unknown graph store {name!r}; known: {', '.join(STORE_NAMES)}")


__all__ = ["GraphStore", "StoredGraph", "open_store", "STORE_NAMES"]
