"""/ingest : add graph files (.json, .json.gz) and feature metadata from the browser.

Adding data is an admin's act once the knowledge base has accounts: others see why the forms
are not there, and the kb checks the actor again on every import.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.labelling import current_user
from app.widgets import md
from kb.ingestion import IngestProgress
from kb.labels.accounts import Actor

PAGE = "ingest"


def render() -> None:
    st.header("Ingest")
    st.caption("Graph files from circuit-tracer or Neuronpedia, and feature metadata (Neuronpedia explanations, circuit-tracer feature files, label CSVs).")
    actor = current_user(state.kb())
    if actor is None or not actor.can("admin"):
        who = f"You are signed in as {md(actor.name)}, a {actor.role}" if actor is not None and actor.signed_in else "You are not signed in"
        st.info(f"Adding data to this knowledge base needs an admin's account. {who}: an admin can add the files, or grant you the admin role.")
        return
    graphs_tab, features_tab = st.tabs(["Graph files", "Feature metadata"])
    with graphs_tab:
        _graphs(actor)
    with features_tab:
        _features(actor)


def _save(folder: Path, uploads: list[Any]) -> list[Path]:
    paths = []
    for n, upload in enumerate(uploads):
        # a number in front keeps two uploads of the same name apart; the JSON path errors name the file
        path = folder / f"{n:04d}-{Path(upload.name).name}"
        path.write_bytes(upload.getbuffer())
        paths.append(path)
    return paths


def _graphs(actor: Actor) -> None:
    with st.form("ingest-graphs", clear_on_submit=True):
        uploads = st.file_uploader("Graph files", type=["json", "gz"], accept_multiple_files=True, key="ingest-files")
        manifest = st.file_uploader("Manifest (optional: family, language and tags per slug; .csv or .yaml)", type=["csv", "yaml", "yml"], key="ingest-manifest")
        on_change = st.radio("When a stored graph has the same slug and other content", ["replace", "skip", "fail"], horizontal=True, key="ingest-on-change")
        submitted = st.form_submit_button("Ingest")
    if not submitted:
        return
    if not uploads:
        st.warning("Choose one graph file or more first.")
        return
    with tempfile.TemporaryDirectory(prefix="circuitkb-upload-") as tmp:
        folder = Path(tmp)
        paths = _save(folder, uploads)
        names = {str(p): u.name for p, u in zip(paths, uploads)}
        manifest_path = None
        if manifest is not None:
            manifest_path = folder / Path(manifest.name).name
            manifest_path.write_bytes(manifest.getbuffer())
        bar = st.progress(0.0, text=f"0 of {len(paths)} files")
        done = [0]

        def on_graph(path: str, outcome: str) -> None:
            done[0] += 1
            bar.progress(done[0] / len(paths), text=f"{done[0]} of {len(paths)} files · {md(names.get(path, Path(path).name))}: {outcome}")

        report = state.kb().ingest(paths, manifest=manifest_path, on_change=on_change, progress=IngestProgress(on_graph=on_graph), actor=actor)
        _report(report, names)


def _report(report: Any, names: dict[str, str]) -> None:
    def name(path: str) -> str:
        return names.get(path, Path(path).name)

    def local(text: str) -> str:
        for path, original in names.items():
            text = text.replace(path, original)
        return text

    cols = st.columns(3)
    cols[0].metric("ingested", len(report.ingested))
    cols[1].metric("skipped", len(report.skipped))
    cols[2].metric("failed", len(report.failed))
    rows = (
        [{"file": name(i["path"]), "outcome": "ingested", "slug": i.get("slug"), "detail": f"{i.get('nodes', 0):,} nodes, {i.get('links', 0):,} links"} for i in report.ingested]
        + [{"file": name(i["path"]), "outcome": "skipped", "slug": i.get("slug"), "detail": local(str(i.get("reason", "")))} for i in report.skipped]
        + [{"file": name(i["path"]), "outcome": "failed", "slug": None, "detail": local(i["error"])} for i in report.failed]
    )
    st.dataframe(pd.DataFrame(rows, columns=["file", "outcome", "slug", "detail"]), width="stretch", hide_index=True, key="ingest-report")
    for failure in report.failed:
        st.text(local(failure["error"]))
    for warning in report.warnings:
        st.text(local(warning))
    if report.ingested:
        st.success(f"Added {len(report.ingested)} graphs; every page shows them now.")


def _features(actor: Actor) -> None:
    from kb.featuremeta import import_feature_metadata

    with st.form("ingest-features", clear_on_submit=True):
        uploads = st.file_uploader("Feature metadata files (.json, .jsonl, .csv)", type=["json", "jsonl", "csv", "gz"], accept_multiple_files=True, key="ingest-feature-files")
        model = st.text_input("Model, for explanation files whose name does not say it (e.g. gemma-2-2b)", key="ingest-model")
        submitted = st.form_submit_button("Import")
    if not submitted:
        return
    if not uploads:
        st.warning("Choose one metadata file or more first.")
        return
    with tempfile.TemporaryDirectory(prefix="circuitkb-upload-") as tmp:
        folder = Path(tmp)
        paths = []
        for upload in uploads:  # explanation files are named after their model and source: keep the name
            path = folder / Path(upload.name).name
            path.write_bytes(upload.getbuffer())
            paths.append(path)
        with st.spinner("Importing"):
            report = import_feature_metadata(state.kb(), paths, model=model.strip() or None, actor=actor)
        names = {str(p): p.name for p in paths}
        rows = [{"file": Path(f["path"]).name, "outcome": "imported", "detail": f"{f['format']}: {f['records']} records, {f['added']} added, {f['updated']} updated"} for f in report.files]
        rows += [{"file": Path(f["path"]).name, "outcome": "failed", "detail": _strip(f["error"], names)} for f in report.failed]
        st.dataframe(pd.DataFrame(rows, columns=["file", "outcome", "detail"]), width="stretch", hide_index=True, key="ingest-feature-report")


def _strip(text: str, names: dict[str, str]) -> str:
    for path, name in names.items():
        text = text.replace(path, name)
    return text
