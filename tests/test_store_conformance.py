"""One conformance suite for every store operation: the same data in gives the same answers out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from sqlalchemy import select

from ingest.graphfile import read_graph
from kb import registry
from kb.api import KB
from kb.errors import NotFoundError
from kb.stores.base import NODE_COLUMNS
from kb.stores.circuit_queries import fold_parsed_graph
from kb.stores.cypher import graphs as graph_cypher
from schema import graph_schema
from schema.sql import features
from tests.builders import small_graph, write
from tests.conftest import real_graph


def test_write_load_purge_and_counts(kb: KB, tmp_path: Path) -> None:
    path = write(tmp_path / "g.json", small_graph("conf"))
    graph = read_graph(path)
    with kb.engine.begin() as conn:
        fids = registry.ensure_features(conn, graph.features())
    finalized: list[int] = []
    edges = fold_parsed_graph(4242, graph, fids)
    kb.store.write_graph(4242, graph, fids, edges, lambda conn: finalized.append(1))
    assert finalized == [1]
    stored = kb.store.load_graph(4242)
    assert [n["node_id"] for n in stored.nodes] == [n.node_id for n in graph.nodes]
    assert [n["feature_id"] for n in stored.nodes] == [fids.get(n.feature_key) if n.feature_key else None for n in graph.nodes]
    np.testing.assert_array_equal(stored.link_src, graph.link_src)
    np.testing.assert_array_equal(stored.link_tgt, graph.link_tgt)
    np.testing.assert_array_equal(stored.link_weight, graph.link_weight)
    assert kb.store.counts([4242]) == {"nodes": 9, "links": 8, "features": 4}
    # writing the same graph id again replaces what was there (a half-written earlier try)
    kb.store.write_graph(4242, graph, fids, edges, lambda conn: None)
    assert kb.store.counts([4242]) == {"nodes": 9, "links": 8, "features": 4}
    kb.store.purge(4242)
    kb.store.purge(4242)
    assert kb.store.counts([4242]) == {"nodes": 0, "links": 0, "features": 0}
    with pytest.raises(NotFoundError):
        kb.store.load_graph(4242)


def test_feature_presence_matches_the_files(kb: KB) -> None:
    paths = [real_graph("02"), real_graph("03")]
    kb.ingest(paths)
    by_slug = {g.slug: g.gid for g in kb.select()}
    expected: dict[tuple[int, int, str], dict] = {}
    for path in paths:
        doc = json.loads(path.read_text())
        for n in doc["nodes"]:
            if n["feature_type"] != "cross layer transcoder":
                continue
            layer, index, _ = n["node_id"].split("_")
            slot = expected.setdefault((int(layer), int(index), doc["metadata"]["slug"]), {"act": None, "infl": None, "pos": set()})
            slot["act"] = n["activation"] if slot["act"] is None else max(slot["act"], n["activation"])
            slot["infl"] = n["influence"] if slot["infl"] is None else min(slot["infl"], n["influence"])
            slot["pos"].add(n["ctx_idx"])
    with kb.engine.connect() as conn:
        fid_of = {(r.layer, r.index): r.id for r in conn.execute(select(features))}
    slug_of = {gid: slug for slug, gid in by_slug.items()}
    got = kb.store.feature_presence(list(fid_of.values()))
    assert len(got) == len(expected)
    key_of = {fid: key for key, fid in fid_of.items()}
    for p in got:
        e = expected[(*key_of[p.fid], slug_of[p.gid])]
        assert p.activation == pytest.approx(e["act"]) and p.influence == pytest.approx(e["infl"])
        assert p.positions == tuple(sorted(e["pos"]))
    only_fr = kb.store.feature_presence(list(fid_of.values()), [by_slug["le-contraire-de-20251027-140230"]])
    assert {p.gid for p in only_fr} == {by_slug["le-contraire-de-20251027-140230"]}


@pytest.mark.neo4j
@pytest.mark.postgres
def test_neo4j_and_embedded_give_the_same_answers(make_kb: Callable[..., KB]) -> None:
    embedded, neo = make_kb("sqlite", "embedded"), make_kb("postgres", "neo4j")
    paths = [real_graph(n) for n in ("05", "06", "07")]
    for kb in (embedded, neo):
        report = kb.ingest(paths)
        assert report.failed == [] and len(report.ingested) == 3
    assert embedded.stats() == {**neo.stats(), "store": "embedded"}

    def by_key(kb: KB) -> dict:
        with kb.engine.connect() as conn:
            key = {r.id: (r.transcoder_set, r.layer, r.index) for r in conn.execute(select(features))}
        slug = {g.gid: g.slug for g in kb.select()}
        return {(key[p.fid], slug[p.gid]): (p.activation, p.influence, p.positions) for p in kb.store.feature_presence(list(key))}

    assert by_key(embedded) == by_key(neo)
    for path in paths:
        slug = json.loads(path.read_text())["metadata"]["slug"]
        assert embedded.export(slug) == neo.export(slug)


@pytest.mark.neo4j
def test_a_neo4j_database_belongs_to_one_sql_database(make_kb: Callable[..., KB], tmp_path: Path) -> None:
    from kb.config import Config
    from kb.errors import ConfigError

    first = make_kb("sqlite", "neo4j")
    first.ingest([real_graph("02")])
    c = first.config
    other_sql = {
        "CIRCUITKB_HOME": str(tmp_path / "other"),
        "CIRCUITKB_NEO4J_URI": c.neo4j_uri or "",
        "CIRCUITKB_NEO4J_USER": c.neo4j_user,
        "CIRCUITKB_NEO4J_PASSWORD": c.neo4j_password or "",
    }
    with pytest.raises(ConfigError, match="another circuitkb knowledge base"):
        KB.open(Config.load(env=other_sql))
    assert first.stats()["graphs"] == 1


# --- the Cypher of the Neo4j store, by its text ------------------------------------------------


def test_graph_cypher_builders_carry_values_only_as_parameters() -> None:
    hostile = "x' }) DETACH DELETE n //"
    for query, params in (graph_cypher.claim_instance(hostile), graph_cypher.adopt_instance(hostile), graph_cypher.create_graph(7, hostile)):
        assert hostile not in query and hostile in params.values()
    query, params = graph_cypher.create_links(7, [0, 1], [1, 2], [0.5, -0.25], 10)
    assert "$src" in query and "$w" in query and "0.5" not in query and params["first"] == 10
    for gids in (None, [1, 2]):
        query, params = graph_cypher.count_nodes(gids)
        assert ("$gids" in query) == (gids is not None) and params.get("gids") == gids


def test_a_node_row_travels_to_neo4j_properties_and_back() -> None:
    row = [f"v{i}" for i in range(len(NODE_COLUMNS))]
    row[NODE_COLUMNS.index("clerp")] = None
    props = graph_cypher.node_properties(3, row)
    assert props["gid"] == 3 and props["fid"] == row[NODE_COLUMNS.index("feature_id")]
    assert "feature_id" not in props and "clerp" not in props  # nulls are left out
    assert graph_cypher.stored_node_row(props) == dict(zip(NODE_COLUMNS, row))


def test_every_cypher_statement_lives_in_the_cypher_package_and_names_only_schema_labels() -> None:
    root = Path(__file__).resolve().parents[1]
    cypher_dir = root / "kb" / "stores" / "cypher"
    clause = re.compile(r"\b(MATCH|MERGE|UNWIND)\b\s*[\(\$]")
    outside = [
        str(path.relative_to(root))
        for folder in ("kb", "ingest", "app")
        for path in sorted((root / folder).rglob("*.py"))
        if cypher_dir not in path.parents and clause.search(path.read_text())
    ]
    assert outside == []
    texts = "\n".join(path.read_text() for path in sorted(cypher_dir.glob("*.py")))
    labels = set(re.findall(r"\(\w*:(\w+)", texts)) | set(re.findall(r"USING INDEX \w+:(\w+)", texts))
    types = set(re.findall(r"\[\w*:(\w+)", texts))
    assert labels and labels <= set(graph_schema.LABELS)
    assert types == set(graph_schema.RELATIONSHIP_TYPES)
