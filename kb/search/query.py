"""Feature search: one ranked list blending semantic similarity with exact matches.

How a query is answered (``mode="blend"``, the default):

1. Feature ids written in the query (see :func:`kb.featureref.find_feature_refs`) are looked up in SQL; those
   features come first, with score 1.
2. The rest of the text is embedded; the ANN index gives the nearest description texts, and
   the keyword index (FTS5, BM25) the texts sharing words with it. Every candidate text gets
   ``cosine + KEYWORD_WEIGHT * keyword - SPECIFICITY_WEIGHT * ln(features)`` where ``keyword``
   is the share of the query's words (stop words aside, plurals folded, each weighted by its
   rarity among all texts) that the text contains, and 1 for a text equal to the query, and
   ``features`` is how many features the text describes (up to ``SPECIFICITY_CAP``).
3. A feature scores as its best text, plus ``LABEL_BONUS`` when that text is its label (ties:
   lower feature id first). Filters on the feature (set, layers) and the description (source,
   author) apply to the candidates; a filter on graphs keeps features present in the selected
   graphs. When filters leave fewer than ``k`` features, the candidate pool widens (or, for a
   small filtered subset, the search is exact over it).

The weights were tuned on the relevance set (tests/relevance.yaml; docs/search.md has the
figures, on the whole set and on each half of it).

``mode="semantic"`` ranks by cosine alone and ``mode="keyword"`` by BM25 alone (no model is
loaded); both exist to measure what the blend adds (bench/results/search.md).
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from concurrent.futures import wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from sqlalchemy import Engine, or_, select

from ingest.featureid import canonical_transcoder_set
from ingest.records import FeatureKey
from kb import registry
from kb.core import Core
from kb.errors import CircuitKBError
from kb.featureref import BadFeatureRef, FeatureRef, find_feature_refs, read_feature_ref
from kb.search import sync
from kb.search.catalog import DF_CAP, LABEL, Catalog, Doc, DocFilter, words
from kb.search.embedder import Embedder, EmbeddingThreads, model_slug
from kb.search.index import Vectors, VectorIndex
from kb.sqlqueries import among
from kb.selection import Selection
from schema.sql import READY, features, graphs, labels

log = logging.getLogger(__name__)

MODES = ("blend", "semantic", "keyword")
KEYWORD_WEIGHT = 0.35
# a feature's label (what a person wrote) counts this much more than a description with the same text
LABEL_BONUS = 0.1
# a text shared by many features ("small" as the clerp of 17 features) says less about each than one
# written for a single feature: it loses SPECIFICITY_WEIGHT * ln(features it describes, up to the cap)
SPECIFICITY_WEIGHT = 0.07
SPECIFICITY_CAP = 16
MAX_K = 1000
MAX_QUERY_WORDS = 64
KEYWORD_POOL = 200
MAX_POOL = 65_536
EXACT_SUBSET = 100_000
TOP_GRAPHS = 3
TOP_DESCRIPTIONS = 3
_STOP = frozenset(
    "a an the of to in on at for and or is are be was were it its this that with as by from say says about "
    "le la les de des du un une et est".split()
)


class SearchError(CircuitKBError):
    """A search request that cannot be answered as asked (bad filter, bad mode)."""


@dataclass(frozen=True)
class SearchFilters:
    """What a search may return; empty fields do not filter.

    ``transcoder_set`` accepts a canonical set (``gemma-2-2b/clt-hp``), a model id
    (``gemma-2-2b``: any of its sets) or a Neuronpedia source set (``clt-hp``).
    ``graphs`` keeps only features that appear in the graphs it selects; the top graphs of each
    hit are then taken among those graphs.
    """

    transcoder_set: str | None = None
    min_layer: int | None = None
    max_layer: int | None = None
    sources: tuple[str, ...] = ()  # neuronpedia | clerp | label
    authors: tuple[str, ...] = ()
    graphs: Selection | None = None

    def doc_filter(self) -> DocFilter:
        if self.min_layer is not None and self.max_layer is not None and self.min_layer > self.max_layer:
            raise SearchError(f"layer range {self.min_layer}-{self.max_layer} is empty")
        sets: tuple[str, ...] = ()
        prefixes: tuple[str, ...] = ()
        suffixes: tuple[str, ...] = ()
        if self.transcoder_set:
            name = self.transcoder_set.strip()
            canonical = canonical_transcoder_set(name)
            sets = tuple(dict.fromkeys([name, canonical]))
            if "/" not in name:
                prefixes, suffixes = (name + "/",), ("/" + name,)
        return DocFilter(
            transcoder_sets=sets,
            set_prefixes=prefixes,
            set_suffixes=suffixes,
            min_layer=self.min_layer,
            max_layer=self.max_layer,
            sources=tuple(self.sources),
            authors=tuple(self.authors),
        )


@dataclass
class SearchHit:
    """One feature found: why it matched, what is said about it, and where it appears."""

    feature: FeatureKey
    feature_id: int
    score: float
    match: str  # "id" | "semantic" | "keyword" | "semantic+keyword"
    matched_text: str | None
    descriptions: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    n_graphs: int = 0
    top_active: list[dict[str, Any]] = field(default_factory=list)
    top_influential: list[dict[str, Any]] = field(default_factory=list)

    @property
    def neuronpedia(self) -> str | None:
        """The Neuronpedia name (``gemma-2-2b/20-clt-hp/1234``) when the set has a model prefix."""
        model, sep, source_set = self.feature.transcoder_set.partition("/")
        if not sep or "/" in source_set:
            return None
        return f"{model}/{self.feature.layer}-{source_set}/{self.feature.index}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "transcoder_set": self.feature.transcoder_set,
            "layer": self.feature.layer,
            "index": self.feature.index,
            "score": round(self.score, 4),
            "neuronpedia": self.neuronpedia,
            "match": self.match,
            "matched_text": self.matched_text,
            "descriptions": self.descriptions,
            "labels": self.labels,
            "n_graphs": self.n_graphs,
            "top_active": self.top_active,
            "top_influential": self.top_influential,
        }


@dataclass
class _Prepared:
    """What a search finds before ranking: the query's vector, its keyword candidates, and the
    texts nearest to it (ids, cosines) when they could be searched early, both for a first pool
    of ``pool`` texts."""

    vector: np.ndarray | None = None
    pool: int = 0
    keyword: list[tuple[int, float]] | None = None
    nearest: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class _Facts:
    """What searches read again and again, remembered from one sync to the next (a sync that
    finds the knowledge base changed starts afresh)."""

    # how many features each text describes, up to SPECIFICITY_CAP
    shared: dict[int, int] = field(default_factory=dict)
    labelled: frozenset[int] | None = None
    graph_ids: list[int] | None = None


@dataclass
class _Scored:
    fid: int
    key: FeatureKey
    best: float
    match: str
    text_id: int | None


def open_vectors(core: Core, catalog: Catalog, folder: Path, model: str) -> Vectors:
    """Where ``model``'s vectors live: in Neo4j when the graphs are there (unless
    ``CIRCUITKB_SEARCH_INDEX=local``, or the server is older than 5.18), else in ``folder``."""
    wanted = core.config.search_index or ("neo4j" if core.store.name == "neo4j" else "local")
    if wanted == "neo4j":
        from kb.search.neo4j_index import Neo4jIndex
        from kb.stores.neo4j_vectors import MIN_VERSION, TextVectors, VectorIndexError, supports_vectors

        if core.store.name != "neo4j":
            raise SearchError("CIRCUITKB_SEARCH_INDEX=neo4j needs the graphs in Neo4j (CIRCUITKB_NEO4J_URI)")
        if supports_vectors(core.store):  # type: ignore[arg-type]
            return Neo4jIndex(TextVectors(core.store, model), catalog)  # type: ignore[arg-type]
        needed = ".".join(map(str, MIN_VERSION))
        if core.config.search_index == "neo4j":
            raise VectorIndexError(f"search vectors in Neo4j need Neo4j {needed} or later; set CIRCUITKB_SEARCH_INDEX=local")
        log.warning("Neo4j is older than %s: search vectors stay in %s", needed, folder)
    return VectorIndex(folder, model)


class FeatureSearch:
    """Search over one knowledge base with one embedding model; reuse it across queries.

    The catalog and vectors live in ``<home>/search``; :meth:`sync` (called by :meth:`search`)
    brings them up to date with SQL, embedding only texts never embedded with this model.
    """

    def __init__(self, core: Core, embedder: Embedder) -> None:
        self.core = core
        self.embedder = embedder
        root = Path(core.config.home) / "search"
        self.root = root
        self.catalog = Catalog(root / "catalog.sqlite")
        self.vectors = open_vectors(core, self.catalog, root / model_slug(embedder.name), embedder.name)
        self._loaded = False
        self._fingerprint: tuple | None = None
        self._lock = threading.RLock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._idf_cache: dict[tuple[str, int], float] = {}
        self._facts = _Facts()

    def close(self) -> None:
        self.catalog.close()

    # --- keeping up to date --------------------------------------------------------------------

    def sync(self, force: bool = False, embed: bool = True) -> sync.SyncReport:
        """Mirror new descriptions and labels and embed their new texts; cheap when nothing changed."""
        with self._lock:
            return self._sync(force, embed)

    def _sync(self, force: bool = False, embed: bool = True) -> sync.SyncReport:
        """:meth:`sync`, for a caller that holds the lock (or runs for one that does)."""
        started = time.perf_counter()
        report = sync.SyncReport()
        current = sync.fingerprint(self.core.engine)
        need_vectors = embed and (not self._loaded or self.vectors.count < self.catalog.n_texts())
        if not force and current == self._fingerprint and not need_vectors:
            return report
        self._facts = _Facts()
        with sync.locked(self.root / "lock"):
            if not self._loaded and embed:
                self.vectors.load()
                self._loaded = True
            sync.sync_catalog(self.core.engine, self.core.config.sql_url, self.catalog, report)
            if embed:
                sync.embed_missing(self.catalog, self.vectors, self.embedder, report)
        self._fingerprint = current
        report.seconds = time.perf_counter() - started
        if report.changed:
            log.info("search index synced: %s", report)
        return report

    # --- searching -----------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 20, filters: SearchFilters | None = None, mode: str = "blend"
    ) -> list[SearchHit]:
        """The ``k`` features that best match ``query``, best first (see the module doc)."""
        if mode not in MODES:
            raise SearchError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if not isinstance(k, int) or k < 1 or k > MAX_K:
            raise SearchError(f"k must be between 1 and {MAX_K}, got {k!r}")
        filters = filters or SearchFilters()
        where = filters.doc_filter()
        query = (query or "").strip()
        refs, rest = find_feature_refs(query)
        if not query:
            return []
        with self._lock:  # one search at a time: the catalog's connection is not shared across threads
            if rest and mode != "keyword":
                prepared = self._prepare(rest, k, mode, nearest=where.is_empty())
            else:
                self._sync(embed=mode != "keyword")
                prepared = _Prepared()
            gids = self._graph_scope(filters)
            if gids is not None and not gids:
                return []
            exact = self._resolve_refs(refs, where, gids)
            ranked = self._rank(rest, k + len(exact), where, gids, mode, prepared) if rest else []
            seen = {s.fid for s in exact}
            merged = exact + [s for s in ranked if s.fid not in seen]
            return self._hits(merged[:k], rest, gids, mode)

    def like(
        self, feature: FeatureKey | str, k: int = 20, filters: SearchFilters | None = None, cooccurring: bool = False
    ) -> list[SearchHit]:
        """The ``k`` features whose descriptions and labels are nearest to ``feature``'s, best first.

        The example is the mean of its texts' vectors; each other feature scores as its nearest
        text's cosine to it. ``cooccurring`` keeps only features present in a graph where the
        example is (within the graphs ``filters`` select, if any).
        """
        if not isinstance(k, int) or k < 1 or k > MAX_K:
            raise SearchError(f"k must be between 1 and {MAX_K}, got {k!r}")
        filters = filters or SearchFilters()
        where = filters.doc_filter()
        with self._lock:
            self.sync()
            fid, feature = self._example(feature)
            text_ids = sorted({d.text_id for d in self.catalog.docs_of_features([fid])})
            rows = self.vectors.rows(text_ids)
            if not len(rows):
                raise SearchError(f"feature {feature} has no description or label to compare with; add a label first")
            example = rows.mean(axis=0)
            example /= max(float(np.linalg.norm(example)), 1e-12)
            gids = self._graph_scope(filters)
            if cooccurring:
                scope = gids if gids is not None else self._graph_ids()
                present = self.core.store.feature_presence([fid], scope) if scope else []
                gids = sorted({p.gid for p in present})
            if gids is not None and not gids:
                return []
            ranked = self._nearest(example, k + 1, where, gids)
            return self._hits([s for s in ranked if s.fid != fid][:k], "", gids, "semantic")

    def _example(self, feature: FeatureKey | str) -> tuple[int, FeatureKey]:
        """The id and key of a feature given as a key or written as in a query (``L20/1234``, a URL...)."""
        if isinstance(feature, str):
            try:  # every written form of one feature (gemma-2-2b/clt-hp/20/1234, ...), else as in a query
                refs, rest = [read_feature_ref(feature)], ""
            except BadFeatureRef:
                refs, rest = find_feature_refs(feature.strip())
            if len(refs) != 1 or rest:
                raise SearchError(f"--like takes one feature, like gemma-2-2b/20-clt-hp/1234 or L20/1234; got {feature!r}")
            found = self._resolve_refs(refs, DocFilter(), None)
            if len(found) != 1:
                names = ", ".join(str(s.key) for s in found[:5])
                raise SearchError(f"{feature!r} names {len(found)} features{': ' + names if names else ''}; name its transcoder set")
            return found[0].fid, found[0].key
        with self.core.engine.connect() as conn:
            fid = registry.lookup_features(conn, [feature]).get(feature)
        if fid is None:
            raise SearchError(f"no feature {feature} in this knowledge base")
        return int(fid), feature

    def _nearest(self, vector: np.ndarray, k: int, where: DocFilter, gids: list[int] | None) -> list[_Scored]:
        """Features of the texts nearest to ``vector``, widening the pool until ``k`` pass the filters."""
        subset = None if where.is_empty() else self.catalog.filtered_text_ids(where, EXACT_SUBSET)
        pool, limit, total = _first_pool(k), k if gids is None else 4 * k, max(self.vectors.count, 1)
        while True:
            if subset is not None:
                ids, cos = self.vectors.search_within(vector, subset, pool)
            else:
                ids, cos = self.vectors.search(vector, pool)
            scored, truncated = self._by_feature({t: (c, "semantic") for t, c in zip(ids.tolist(), cos.tolist())}, where, limit)
            if gids is not None and scored:
                present = {p.fid for p in self.core.store.feature_presence([s.fid for s in scored], gids)}
                scored = [s for s in scored if s.fid in present]
            if len(scored) >= k:
                return scored[:k]
            if truncated:
                limit *= 4
            elif subset is not None or pool >= total or pool >= MAX_POOL:
                return scored
            else:
                pool *= 4

    def _graph_scope(self, filters: SearchFilters) -> list[int] | None:
        if filters.graphs is None or filters.graphs.is_empty():
            return None
        return [g.gid for g in self.core.select(filters.graphs)]

    def _resolve_refs(self, refs: Sequence[FeatureRef], where: DocFilter, gids: list[int] | None) -> list[_Scored]:
        if not refs:
            return []
        f = features.c
        found: dict[int, FeatureKey] = {}
        with self.core.engine.connect() as conn:
            for ref in refs:
                query = select(f.id, f.transcoder_set, f.layer, f["index"]).where(f.layer == ref.layer, f["index"] == ref.index)
                if ref.transcoder_set:
                    query = query.where(f.transcoder_set == ref.transcoder_set)
                elif ref.set_name:
                    query = query.where(or_(f.transcoder_set == ref.set_name, f.transcoder_set.endswith("/" + ref.set_name, autoescape=True)))
                for fid, tset, layer, index in conn.execute(query.order_by(f.id)):
                    key = FeatureKey(tset, layer, int(index))
                    if _key_passes(key, where):
                        found.setdefault(fid, key)
        if gids is not None and found:
            present = {p.fid for p in self.core.store.feature_presence(list(found), gids)}
            found = {fid: key for fid, key in found.items() if fid in present}
        return [_Scored(fid, key, 1.0, "id", None) for fid, key in found.items()]

    def _prepare(self, text: str, k: int, mode: str, nearest: bool) -> "_Prepared":
        """The query's vector, embedded on this thread while another checks the index for news
        and looks up the keyword candidates (their SQLite calls let go of the interpreter lock);
        with ``nearest``, the texts nearest to it too, searched while the keywords may still be
        on their way.

        The embedding stays on the calling thread because a thread that has just been running
        embeds faster than one woken for it: measured at 1M descriptions, the English model's
        pass took 3.0 ms on a running thread and 4.3-5.8 ms on one that had waited 10 ms.
        """
        synced = threading.Event()
        pool = _first_pool(k)
        lookup = _query_thread.submit(self._sync_and_keywords, text, pool, mode, synced)
        found = None
        try:
            vector = self._embed_query(text)
            synced.wait()
            if nearest and not (lookup.done() and lookup.exception() is not None):
                found = self.vectors.search(vector, pool)
        finally:
            wait([lookup])  # it reads the catalog: it ends before the lock is let go
        return _Prepared(vector, pool, lookup.result(), found)

    def _sync_and_keywords(self, text: str, pool: int, mode: str, synced: threading.Event) -> list[tuple[int, float]]:
        try:
            self._sync(embed=True)
        finally:
            synced.set()  # the index may be searched from here on
        terms = _terms(text)
        return self._keyword_candidates(text, terms, self._idf(terms), pool, mode)

    def _rank(
        self,
        text: str,
        k: int,
        where: DocFilter,
        gids: list[int] | None,
        mode: str,
        prepared: "_Prepared",
    ) -> list[_Scored]:
        """The best features for ``text``, from what :meth:`_prepare` found (nothing in keyword mode)."""
        terms = _terms(text)
        weights = self._idf(terms)
        pool = _first_pool(k)
        # what was found early serves only the pool it was found for (references to features in
        # the query make the search ask for more)
        early = prepared.pool == pool
        keyword = prepared.keyword if early and prepared.keyword is not None else self._keyword_candidates(text, terms, weights, pool, mode)
        qvec = prepared.vector
        subset = None if where.is_empty() else self.catalog.filtered_text_ids(where, EXACT_SUBSET)
        nearest = prepared.nearest if early and subset is None else None
        present: dict[int, bool] = {}
        limit = k if gids is None else 4 * k
        total = max(self.vectors.count, 1)
        while True:
            text_scores = self._candidates(text, terms, weights, keyword, qvec, pool, subset, mode, nearest)
            nearest = None  # a wider pool is searched again
            scored, truncated = self._by_feature(text_scores, where, limit, LABEL_BONUS if mode == "blend" else 0.0)
            if gids is not None:
                unknown = [s.fid for s in scored if s.fid not in present]
                if unknown:
                    hits = {p.fid for p in self.core.store.feature_presence(unknown, gids)}
                    present.update({fid: fid in hits for fid in unknown})
                scored = [s for s in scored if present[s.fid]]
            if len(scored) >= k:
                return scored[:k]
            if truncated:
                limit *= 4
            elif subset is not None or pool >= total or pool >= MAX_POOL or mode == "keyword":
                return scored
            else:
                pool *= 4

    def _keyword_candidates(self, text: str, terms: list[str], weights: list[float], pool: int, mode: str) -> list[tuple[int, float]]:
        """(text id, BM25) of the texts holding the query's rarer words, best first."""
        limit = KEYWORD_POOL if mode != "keyword" else max(pool, 10 * KEYWORD_POOL)
        # words in more than DF_CAP texts add little to BM25 and cost a scan of their postings
        # (the semantic candidates still get keyword credit for them)
        common = _rarity(self.catalog.n_texts(), DF_CAP)
        rare = [t for t, w in zip(terms, weights) if w > common]
        if not rare and mode == "keyword":
            rare = [max(zip(weights, terms))[1]] if terms else words(text)[:MAX_QUERY_WORDS]
        return self.catalog.keyword_search(rare, limit) if rare else []

    def _candidates(
        self,
        text: str,
        terms: list[str],
        weights: list[float],
        keyword: list[tuple[int, float]],
        qvec: np.ndarray | None,
        pool: int,
        subset: list[int] | None,
        mode: str,
        nearest: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[int, tuple[float, str]]:
        """Candidate texts -> (rank score, how matched); ``nearest``: the ``pool`` texts nearest to
        ``qvec``, if already searched."""
        if mode == "keyword":
            # BM25 order; ties keep FTS order
            return {tid: (bm25, "keyword") for tid, bm25 in keyword}
        assert qvec is not None
        if nearest is not None:
            ids, cos = nearest
        elif subset is not None:
            ids, cos = self.vectors.search_within(qvec, subset, pool)
        else:
            ids, cos = self.vectors.search(qvec, pool)
        cosine = dict(zip(ids.tolist(), cos.tolist()))
        if mode == "semantic":
            return {tid: (c, "semantic") for tid, c in cosine.items()}
        missing = [tid for tid, _ in keyword if tid not in cosine]
        cosine.update(self.vectors.scores(qvec, missing))
        texts = self.catalog.texts_of(cosine)
        shared = self._feature_counts(cosine)
        keyword_score = keyword_scorer(terms, weights, " ".join(words(text)))
        out: dict[int, tuple[float, str]] = {}
        for tid, c in cosine.items():
            kw = keyword_score(texts.get(tid, ""))
            how = "semantic+keyword" if kw > 0 else "semantic"
            out[tid] = (c + KEYWORD_WEIGHT * kw - SPECIFICITY_WEIGHT * math.log(max(shared.get(tid, 1), 1)), how)
        return out

    def _feature_counts(self, text_ids: Iterable[int]) -> dict[int, int]:
        """How many features each text describes, up to :data:`SPECIFICITY_CAP`; remembered until
        the catalog changes (a query's candidates are a few hundred texts, many seen before)."""
        shared = self._facts.shared
        unknown = [tid for tid in text_ids if tid not in shared]
        if unknown:
            if len(shared) > 1_000_000:
                shared.clear()
            shared.update(self.catalog.feature_counts(unknown, SPECIFICITY_CAP))
        return shared

    def _labelled(self) -> frozenset[int]:
        """The texts that are some feature's label, as of the last sync."""
        if self._facts.labelled is None:
            self._facts.labelled = self.catalog.labelled_texts()
        return self._facts.labelled

    def _graph_ids(self) -> list[int]:
        """Every visible graph's id, as of the last sync (whose fingerprint covers the graphs)."""
        if self._facts.graph_ids is None:
            self._facts.graph_ids = self.core.graph_ids()
        return self._facts.graph_ids

    def _by_feature(
        self, text_scores: dict[int, tuple[float, str]], where: DocFilter, limit: int, label_bonus: float = 0.0
    ) -> tuple[list[_Scored], bool]:
        """Features of the best texts, best first (ties: lower feature id), at least ``limit`` of
        them if there are; and whether more were left.

        A feature scores as its best text, plus ``label_bonus`` when that text is its label. Texts
        are visited best first (counting the bonus for texts that are some feature's label), and
        the visit stops once ``limit`` features score more than any text left could give: a text
        that describes many features (a clerp like "Texas" in thousands of graphs) is read only as
        far as needed.
        """
        labelled = self._labelled() if label_bonus else frozenset()

        def ceiling(tid: int) -> float:
            return text_scores[tid][0] + (label_bonus if tid in labelled else 0.0)

        found: dict[int, _Scored] = {}
        truncated = False
        for tid in sorted(text_scores, key=lambda t: (-ceiling(t), t)):
            if len(found) >= limit and heapq.nlargest(limit, (s.best for s in found.values()))[-1] > ceiling(tid):
                truncated = True
                break
            score, how = text_scores[tid]
            described = self.catalog.features_of_text(tid, where, limit + len(found))
            truncated = truncated or len(described) == limit + len(found)  # the text may describe more
            for fid, tset, layer, index, is_label in described:
                best = score + (label_bonus if is_label else 0.0)
                if fid not in found or best > found[fid].best:
                    found[fid] = _Scored(fid, FeatureKey(tset, layer, index), best, how, tid)
        return sorted(found.values(), key=lambda s: (-s.best, s.fid)), truncated

    def _idf(self, terms: Sequence[str]) -> list[float]:
        """Rarity of each term among the catalog's texts: rare words count more."""
        n = self.catalog.n_texts()
        out = []
        for term in terms:
            key = (term, n)
            if key not in self._idf_cache:
                if len(self._idf_cache) > 4096:
                    self._idf_cache.clear()
                self._idf_cache[key] = _rarity(n, self.catalog.doc_freq(term))
            out.append(self._idf_cache[key])
        return out

    def _embed_query(self, text: str) -> np.ndarray:
        cached = self._query_cache.get(text)
        if cached is not None:
            self._query_cache.move_to_end(text)
            return cached
        # a fused embedder weighs its models on the query side (kb.search.embedder.FusedEmbedder)
        embed_query = getattr(self.embedder, "embed_query", None)
        vector = embed_query(text) if embed_query is not None else self.embedder.embed([text])[0]
        self._query_cache[text] = vector
        if len(self._query_cache) > 256:
            self._query_cache.popitem(last=False)
        return vector

    # --- what a hit shows --------------------------------------------------------------------

    def _hits(self, ranked: list[_Scored], text: str, gids: list[int] | None, mode: str) -> list[SearchHit]:
        if not ranked:
            return []
        fids = [s.fid for s in ranked]
        docs_by_feature: dict[int, list[Doc]] = {}
        for doc in self.catalog.docs_of_features(fids):
            docs_by_feature.setdefault(doc.feature_id, []).append(doc)
        text_ids = {d.text_id for docs in docs_by_feature.values() for d in docs}
        texts = self.catalog.texts_of(text_ids)
        relevance = self._relevance(text, text_ids, texts, mode)
        scope = gids if gids is not None else self._graph_ids()
        presence = self.core.store.feature_presence(fids, scope) if scope else []
        slugs = _slugs(self.core.engine, {p.gid for p in presence} | {d.graph_id for ds in docs_by_feature.values() for d in ds if d.graph_id})
        by_feature: dict[int, list] = {}
        for p in presence:
            by_feature.setdefault(p.fid, []).append(p)
        labels_by_feature = _labels(self.core.engine, fids)
        hits = []
        # scores in [0, 1]: an id match scores 1, a blend is scaled by its maximum, BM25 by the best hit's
        scale = {"blend": 1.0 + KEYWORD_WEIGHT + LABEL_BONUS, "semantic": 1.0}.get(mode)
        if scale is None:
            scale = max((s.best for s in ranked if s.match != "id"), default=1.0) or 1.0
        for s in ranked:
            score = s.best if s.match == "id" else max(0.0, s.best / scale)
            places = by_feature.get(s.fid, [])
            hits.append(
                SearchHit(
                    feature=s.key,
                    feature_id=s.fid,
                    score=float(score),
                    match=s.match,
                    matched_text=texts.get(s.text_id) if s.text_id is not None else None,
                    descriptions=_best_descriptions(docs_by_feature.get(s.fid, []), texts, relevance, slugs),
                    labels=labels_by_feature.get(s.fid, []),
                    n_graphs=len(places),
                    top_active=[
                        {"slug": slugs.get(p.gid), "activation": p.activation, "positions": list(p.positions)}
                        for p in sorted((p for p in places if p.activation is not None), key=lambda p: -p.activation)[:TOP_GRAPHS]
                    ],
                    top_influential=[
                        {"slug": slugs.get(p.gid), "influence": p.influence, "positions": list(p.positions)}
                        for p in sorted((p for p in places if p.influence is not None), key=lambda p: p.influence)[:TOP_GRAPHS]
                    ],
                )
            )
        return hits

    def _relevance(self, text: str, text_ids: Iterable[int], texts: dict[int, str], mode: str) -> dict[int, float]:
        if not text:
            return {}
        terms = _terms(text)
        keyword_score = keyword_scorer(terms, self._idf(terms), " ".join(words(text)))
        kw = {tid: keyword_score(texts.get(tid, "")) for tid in text_ids}
        if mode == "keyword":
            return kw
        cosine = self.vectors.scores(self._embed_query(text), list(text_ids))
        return {tid: cosine.get(tid, 0.0) + KEYWORD_WEIGHT * kw[tid] for tid in text_ids}


# the thread that embeds a query while its search looks up the keyword candidates
_query_thread = EmbeddingThreads(1, "circuitkb-embed")


def _first_pool(k: int) -> int:
    """How many nearest texts a search for ``k`` features reads first (it widens when too few pass)."""
    return max(4 * k, 100)


def _key_passes(key: FeatureKey, where: DocFilter) -> bool:
    if where.min_layer is not None and key.layer < where.min_layer:
        return False
    if where.max_layer is not None and key.layer > where.max_layer:
        return False
    if where.transcoder_sets or where.set_prefixes or where.set_suffixes:
        tset = key.transcoder_set
        return (
            tset in where.transcoder_sets
            or any(tset.startswith(p) for p in where.set_prefixes)
            or any(tset.endswith(s) for s in where.set_suffixes)
        )
    return True


def _best_descriptions(docs: list[Doc], texts: dict[int, str], relevance: dict[int, float], slugs: dict[int, str]) -> list[dict[str, Any]]:
    """The feature's most relevant distinct texts (labels excluded: they are listed apart)."""
    grouped: dict[int, dict[str, Any]] = {}
    for doc in docs:
        if doc.kind == LABEL:
            continue
        item = grouped.setdefault(
            doc.text_id,
            {"text": texts.get(doc.text_id, ""), "source": doc.source, "author": doc.author or None, "graphs": [], "score": None},
        )
        if doc.graph_id is not None and doc.graph_id in slugs and slugs[doc.graph_id] not in item["graphs"]:
            item["graphs"].append(slugs[doc.graph_id])
        if doc.text_id in relevance:
            item["score"] = round(relevance[doc.text_id], 4)
    ordered = sorted(grouped.values(), key=lambda d: (-(d["score"] or 0.0), d["source"] != "neuronpedia", d["text"]))
    return ordered[:TOP_DESCRIPTIONS]


def _slugs(engine: Engine, gids: set[int]) -> dict[int, str]:
    wanted = sorted(g for g in gids if g is not None)
    if not wanted:
        return {}
    with engine.connect() as conn:
        return dict(conn.execute(select(graphs.c.id, graphs.c.slug).where(among(conn, graphs.c.id, wanted), graphs.c.status == READY)).all())


def _labels(engine: Engine, fids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    c = labels.c
    out: dict[int, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.feature_id, c.author, c.text, c.graph_slug).where(c.feature_id.in_(list(fids))).order_by(c.created_at, c.id)
        )
        for fid, author, text, slug in rows:
            out.setdefault(fid, []).append({"author": author, "text": text, "graph_slug": slug})
    return out


# --- keyword matching ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def _fold(word: str) -> str:
    """Lower case, accents removed, a plural folded: how two words are compared."""
    word = unicodedata.normalize("NFKD", word.lower())
    word = "".join(ch for ch in word if not unicodedata.combining(ch))
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and re.search(r"(ch|sh|x|ss)es$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _terms(text: str) -> list[str]:
    """The query's words for keyword matching: stop words dropped unless nothing else is left."""
    all_words = words(text)[:MAX_QUERY_WORDS]
    content = [w for w in all_words if w not in _STOP]
    return list(dict.fromkeys(content or all_words))


@functools.lru_cache(maxsize=65_536)
def _text_words(text: str) -> tuple[str, frozenset[str]]:
    """A text's words joined by spaces, and the set of its folded words (what a query's are compared with)."""
    text_words = words(text)
    return " ".join(text_words), frozenset(_fold(w) for w in text_words)


def keyword_scorer(terms: Sequence[str], weights: Sequence[float], phrase: str) -> Callable[[str], float]:
    """The keyword score of texts for one query: the weighted share of the query's words found in
    a text (plurals folded), 1 when the text is the query. The query's words are folded once."""
    wanted = [(_fold(t), w) for t, w in zip(terms, weights)]
    total = sum(weights) or 1.0

    def score(text: str) -> float:
        if not wanted or not text:
            return 0.0
        joined, folded = _text_words(text)
        if phrase and joined == phrase:
            return 1.0
        return 0.9 * sum(w for t, w in wanted if t in folded) / total

    return score


def _rarity(n_texts: int, doc_freq: int) -> float:
    """Rarity of a word found in ``doc_freq`` of ``n_texts`` texts."""
    return math.log(1.0 + n_texts / (1.0 + doc_freq))
