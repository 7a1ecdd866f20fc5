"""One function per page of the app; each reads widgets, calls ``kb`` and shows the answer."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from kb.api import KB
from kb.errors import CircuitKBError
from kb.selection import Selection


def _graph_filter(kb: KB, key: str) -> Selection:
    """Widgets that choose graphs, shared by every cross-graph page."""
    graphs = kb.select()
    cols = st.columns(4)
    languages = sorted({g.language for g in graphs if g.language})
    families = sorted({g.family for g in graphs if g.family})
    tags = sorted({t for g in graphs for t in g.tags})
    chosen_languages = cols[0].multiselect("Languages", languages, key=f"{key}-languages")
    family = cols[1].selectbox("Family", ["(any)", *families], key=f"{key}-family")
    chosen_tags = cols[2].multiselect("Tags (all of)", tags, key=f"{key}-tags")
    prompt = cols[3].text_input("Prompt contains", key=f"{key}-prompt")
    return Selection(
        languages=tuple(chosen_languages),
        family=None if family == "(any)" else family,
        tags=tuple(chosen_tags),
        prompt_contains=prompt or None,
    )


def _show_error(exc: CircuitKBError) -> None:
    st.error(str(exc))


def graphs_page(kb: KB) -> None:
    st.header("Graphs")
    stats = kb.stats()
    cols = st.columns(5)
    for col, name in zip(cols, ("graphs", "nodes", "links", "features", "descriptions")):
        col.metric(name, f"{stats[name]:,}")
    selection = _graph_filter(kb, "graphs")
    rows = [g.as_dict() for g in kb.select(selection)]
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)
    slugs = [r["slug"] for r in rows]
    if slugs:
        slug = st.selectbox("Download a graph as JSON (loads in the circuit-tracer and Neuronpedia viewers)", slugs, key="graphs-export")
        import json

        st.download_button("Download", json.dumps(kb.export(slug)), file_name=f"{slug}.json", mime="application/json", key="graphs-download")


def search_page(kb: KB) -> None:
    from kb.search import search

    st.header("Search features by concept")
    query = st.text_input("Concept, words, or a feature id (L20/1234, 20-clt-hp/1234)", key="search-query")
    k = st.slider("Results", 5, 100, 20, key="search-k")
    if not query:
        return
    try:
        hits = search(kb, query, k=k)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    table = [
        {
            "feature": f"{h.feature.transcoder_set} L{h.feature.layer}/{h.feature.index}",
            "score": round(h.score, 3),
            "match": h.match,
            "description": (h.descriptions[0]["text"] if h.descriptions else ""),
            "labels": "; ".join(label["text"] for label in h.labels),
            "graphs": h.n_graphs,
        }
        for h in hits
    ]
    st.dataframe(pd.DataFrame(table), width="stretch", hide_index=True)


def shared_page(kb: KB) -> None:
    from kb.analysis.shared import family_core, shared_features

    st.header("Features shared across graphs")
    selection = _graph_filter(kb, "shared")
    min_graphs = st.number_input("Present in at least this many graphs", min_value=1, value=2, key="shared-k")
    try:
        shared = shared_features(kb, selection, min_graphs=int(min_graphs))
    except CircuitKBError as exc:
        _show_error(exc)
        return
    st.caption(f"{len(shared.graphs)} graphs chosen")
    st.dataframe(shared.features, width="stretch", hide_index=True)
    if selection.family and st.checkbox("Show the family's common core and what each member adds", key="shared-core"):
        core = family_core(kb, selection)
        st.subheader("Common core")
        st.dataframe(core.core, width="stretch", hide_index=True)
        st.subheader("Added by each member")
        st.dataframe(core.additions, width="stretch", hide_index=True)


def used_by_page(kb: KB) -> None:
    from kb.analysis.qk import qk_drivers
    from kb.analysis.usage import used_by

    st.header("Where a feature is used")
    ref = st.text_input("Feature (gemma-2-2b/clt-hp/20/1234, or 20-clt-hp/1234 with a model)", key="usedby-ref")
    model = st.text_input("Model for short references", value="gemma-2-2b", key="usedby-model")
    rank_by = st.radio("Rank by", ["activation", "influence"], horizontal=True, key="usedby-rank")
    if not ref:
        return
    try:
        usage = used_by(kb, [ref], model=model or None, rank_by=rank_by)
        qk = qk_drivers(kb, usage.features)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    st.caption(f"in {usage.n_graphs} graphs")
    st.dataframe(usage.graphs, width="stretch", hide_index=True)
    st.subheader("Usual neighbours over all graphs")
    st.dataframe(usage.summary, width="stretch", hide_index=True)
    if qk.n_graphs:
        st.subheader("What drives its queries and keys (QK tracing)")
        st.caption(f"in {qk.n_graphs} graphs; pruned: the contributor is only in the file's qk_only_nodes")
        st.dataframe(qk.summary, width="stretch", hide_index=True)
        st.dataframe(qk.rows, width="stretch", hide_index=True)


def languages_page(kb: KB) -> None:
    from kb.analysis.languages import language_overlap

    st.header("How much of the circuit is language-independent")
    selection = _graph_filter(kb, "languages")
    try:
        overlap = language_overlap(kb, selection)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    if overlap.curves.empty:
        st.info("No family among the chosen graphs has prompts in two languages or more.")
        return
    st.dataframe(overlap.curves, width="stretch", hide_index=True)
    by_layer = overlap.curves.groupby("layer")[["iou", "baseline_iou"]].mean()
    st.line_chart(by_layer)


def circuits_page(kb: KB) -> None:
    from kb.analysis.edges import recurring_edges
    from kb.analysis.paths import strongest_paths
    from kb.analysis.twohop import two_hop_paths

    st.header("Circuits across graphs")
    selection = _graph_filter(kb, "circuits")
    k = st.number_input("Feature edges present in at least this many of the chosen graphs", min_value=1, value=2, key="circuits-k")
    try:
        edges = recurring_edges(kb, selection, min_graphs=int(k), limit=200)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    st.caption(f"{edges.n_found:,} feature edges in at least {int(k)} of {len(edges.graphs)} graphs (the 200 most widely shared shown)")
    st.dataframe(edges.edges.drop(columns=["src_fid", "tgt_fid"], errors="ignore"), width="stretch", hide_index=True)  # fids are internal ids

    st.subheader("Strongest paths from a prompt token to the answer")
    slugs = [g.slug for g in edges.graphs]
    cols = st.columns(3)
    slug = cols[0].selectbox("Graph", slugs, key="circuits-slug")
    token = cols[1].text_input("Prompt token (e.g. Dallas)", key="circuits-token")
    position = cols[2].number_input("or position (-1: the last token)", value=-1, key="circuits-position")
    try:
        paths = strongest_paths(kb, slug, token=token or None, position=None if token else int(position))
        st.dataframe(paths.frame(), width="stretch", hide_index=True)
    except CircuitKBError as exc:
        _show_error(exc)

    st.subheader("Two-hop paths through a feature the prompt does not name")
    via = st.text_input("Intermediate feature named by this word (e.g. Texas; optional)", key="circuits-via")
    if token:
        try:
            hops = two_hop_paths(kb, selection, token=token, via=via or None, top=10)
            st.caption(f"{len(hops.paths)} paths in {hops.paths['slug'].nunique() if len(hops.paths) else 0} graphs")
            columns = ["slug", "score", "n0_token", "n1_layer", "n1_index", "mid_name", "t_clerp", "shortcut_share"]
            st.dataframe(hops.paths[columns] if len(hops.paths) else hops.paths, width="stretch", hide_index=True)
        except CircuitKBError as exc:
            _show_error(exc)
    else:
        st.caption("Give a prompt token above to look for two-hop paths from it.")


def one_graph_page(kb: KB) -> None:
    import json

    from kb.analysis.pieces import top_piece
    from kb.analysis.scores import graph_scores

    st.header("One graph: scores and a piece to view")
    slugs = [g.slug for g in kb.select()]
    if not slugs:
        st.info("Ingest a graph first.")
        return
    slug = st.selectbox("Graph", slugs, key="one-slug")
    try:
        scores = graph_scores(kb, slug)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    cols = st.columns(2)
    for col, name, value in zip(cols, ("replacement score", "completeness score"), (scores.replacement, scores.completeness)):
        col.metric(name, "n/a" if value is None else f"{value:.4f}")
    n = st.slider("The most influential nodes", 10, 500, 100, key="one-top")
    piece = top_piece(kb, slug, n)
    st.caption(f"{len(piece.doc['nodes'])} nodes and {len(piece.doc['links'])} links among them")
    columns = ["node_id", "feature_type", "layer", "ctx_idx", "influence", "activation", "clerp"]
    nodes = pd.DataFrame(piece.doc["nodes"]).reindex(columns=columns).sort_values("influence", na_position="last")  # most influential first
    st.dataframe(nodes, width="stretch", hide_index=True)
    st.download_button(
        "Download the piece as graph JSON (loads in the viewers)",
        json.dumps(piece.doc),
        file_name=f"{slug}-top{n}.json",
        mime="application/json",
        key="one-download",
    )


def compare_page(kb: KB) -> None:
    from kb.analysis.compare import compare_graphs

    st.header("Compare two graphs")
    slugs = [g.slug for g in kb.select()]
    if len(slugs) < 2:
        st.info("Ingest two graphs or more to compare them.")
        return
    cols = st.columns(2)
    a = cols[0].selectbox("Graph A", slugs, key="compare-a")
    b = cols[1].selectbox("Graph B", slugs, index=1, key="compare-b")
    try:
        comparison = compare_graphs(kb, a, b)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    st.dataframe(pd.DataFrame([_flat(comparison.summary)]), width="stretch", hide_index=True)
    st.subheader("Nodes")
    st.dataframe(comparison.nodes, width="stretch", hide_index=True)
    st.subheader("Labels side by side")
    st.dataframe(comparison.labels, width="stretch", hide_index=True)

    from kb.analysis.compare import graph_similarity

    st.header("Similarity of many graphs")
    selection = _graph_filter(kb, "similarity")
    measure = st.radio("Jaccard of their", ["features", "edges"], horizontal=True, key="similarity-measure")
    try:
        similarity = graph_similarity(kb, selection, measure=measure)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    st.dataframe(similarity.matrix, width="stretch")
    st.subheader("Clusters")
    st.dataframe(similarity.clusters, width="stretch", hide_index=True)


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, (dict, list)) else str(v)) for k, v in summary.items()}


def labels_page(kb: KB) -> None:
    from kb.descriptions import descriptions_of
    from kb.featuremeta import add_label
    from kb.featureref import parse_feature_ref

    st.header("Label a feature")
    ref = st.text_input("Feature (gemma-2-2b/clt-hp/20/1234, or 20-clt-hp/1234 with a model)", key="labels-ref")
    model = st.text_input("Model for short references", value="gemma-2-2b", key="labels-model")
    if not ref:
        return
    try:
        feature = parse_feature_ref(ref, model=model or None)
    except CircuitKBError as exc:
        _show_error(exc)
        return
    with st.form("labels-form"):
        author = st.text_input("Your name", key="labels-author")
        text = st.text_input("Label", key="labels-text")
        if st.form_submit_button("Save label"):
            try:
                add_label(kb, feature, text, author)
                st.success("saved")
            except CircuitKBError as exc:
                _show_error(exc)
    rows = descriptions_of(kb, feature)
    st.subheader("Every label and description of this feature")
    st.dataframe(pd.DataFrame(rows, columns=["source", "kind", "author", "text", "graph_slug"]), width="stretch", hide_index=True)
