"""Widgets and helpers every page shares: the address bar as the page's state, links between
pages, the graph filter, and text shown inert.

Address bar: a page lists its parameters as :class:`Param` (widget key, parser, default). Before
its widgets it calls :func:`read_url`, which sets the widgets from the address when the address
changed from outside (a fresh tab, a shared link, a link from another page); after them it calls
:func:`write_url` with what the widgets say, so the address always reopens the view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from app import state
from app.nav import page
from app.state import BadParameter
from ingest.records import FeatureKey
from kb.featureref import BadFeatureRef, format_feature_ref, parse_feature_ref
from kb.selection import GraphInfo, Selection

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
# what Markdown turns into a link even when escaped (GitHub's autolinks: a scheme's "://", "www.",
# an e-mail's "@"); a zero-width space inside each keeps the text as written, and not a link
_AUTOLINKED = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)")
_ZERO_WIDTH_SPACE = "\u200b"


@dataclass(frozen=True)
class Param:
    """One parameter of a page's address: the widget it sets, how to read it, the default."""

    key: str
    parse: Callable[[str], Any]
    default: Any = None


def read_url(page_name: str, params: Mapping[str, Param]) -> None:
    """Set the page's widgets from the address when the address changed from outside.

    A value the page cannot read is reported in the page's own words and replaced by its default.
    """
    current = st.query_params.to_dict()
    if st.session_state.get(_written(page_name)) == current:
        return
    for name, param in params.items():
        raw = current.get(name)
        value = param.default
        if raw is not None:
            try:
                value = param.parse(raw)
            except (BadParameter, BadFeatureRef, ValueError) as exc:
                st.warning(md(f"The address has {name}={raw!r}, which this page cannot use: {exc}"))
        st.session_state[param.key] = value
    st.session_state[_written(page_name)] = current


def write_url(page_name: str, values: Mapping[str, Any]) -> None:
    """Make the address say ``values`` (None, empty and False values left out)."""
    wanted = {k: _text(v) for k, v in values.items() if v is not None and v != "" and v is not False and v != ()}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[_written(page_name)] = wanted


def _written(page_name: str) -> str:
    return f"_url-{page_name}"


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"-?\d+", raw.strip()):
            raise BadParameter(f"it should be a whole number between {low} and {high}")
        value = int(raw)
        if not low <= value <= high:
            raise BadParameter(f"it should be between {low} and {high}")
        return value

    return parse


def float_in(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise BadParameter(f"it should be a number between {low:g} and {high:g}") from None
        if not low <= value <= high:
            raise BadParameter(f"it should be between {low:g} and {high:g}")
        return value

    return parse


def one_of(choices: Sequence[str], what: str, where: str = "in the list below") -> Callable[[str], str]:
    """A parser of one of ``choices``; its error says ``where`` on the page they are offered."""

    def parse(raw: str) -> str:
        if raw not in choices:
            raise BadParameter(f"no {what} is called that; choose one {where}")
        return raw

    return parse


def text(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Tabs:
    """Tabs of which only the open one is computed and sent, the open one named in the address.

    ``labels`` maps each tab's address value to its label; the first is open by default and left
    out of the address. ``key`` is the tabs' widget key; ``what`` names the value in a warning.
    """

    key: str
    labels: Mapping[str, str]
    what: str = "view"

    def param(self) -> Param:
        """The address parameter that opens a tab."""
        names = tuple(self.labels)
        return Param(self.key, lambda raw: self.labels[one_of(names, self.what, "among the tabs")(raw)], self.labels[names[0]])

    def show(self) -> dict[str, Any]:
        """The tabs, by address value; a tab's ``open`` says whether to fill it."""
        return dict(zip(self.labels, st.tabs(list(self.labels.values()), key=self.key, on_change="rerun")))

    def opened(self) -> str | None:
        """The open tab's address value; None for the first (call after :meth:`show`)."""
        names = tuple(self.labels)
        label = st.session_state.get(self.key, self.labels[names[0]])
        name = next(n for n, shown in self.labels.items() if shown == label)
        return None if name == names[0] else name


def kept(key: str, default: str, allowed: Sequence[str] | None = None) -> str:
    """The value of the widget ``key``, kept in the session while the widget is not drawn
    (Streamlit forgets a widget's value otherwise); ``default`` when it has none, or one not
    ``allowed``. Call before the widget is made."""
    value = st.session_state.get(key)
    if value is None or (allowed is not None and value not in allowed):
        value = default
    st.session_state[key] = value
    return value


def feature_param(raw: str) -> str:
    """A feature reference from the address, checked now so that a typo says so at once."""
    return feature_address(parse_feature_ref(raw))


# --- text shown inert -----------------------------------------------------------------------------


def md(value: Any) -> str:
    """``value`` as Markdown that shows exactly those characters, and links nowhere (for link labels
    and captions)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _AUTOLINKED.sub(_ZERO_WIDTH_SPACE, str(value)))


# --- links ------------------------------------------------------------------------------------------


def url(page_name: str, **params: Any) -> str:
    """The address of a page, relative to the app (for links inside tables)."""
    query = urlencode({k: _text(v) for k, v in params.items() if v is not None and v != ""})
    return f"./{page_name}" + (f"?{query}" if query else "")


def link(page_name: str, label: str, **params: Any) -> None:
    """A link to another view; ``label`` is shown as text, never as Markdown."""
    query = {k: _text(v) for k, v in params.items() if v is not None and v != ""}
    st.page_link(page(page_name), label=md(label), query_params=query)


def feature_address(key: FeatureKey) -> str:
    """The ``f=`` value of a feature's page: ``TRANSCODER_SET/LAYER/INDEX``."""
    return f"{key.transcoder_set}/{key.layer}/{key.index}"


def feature_link(key: FeatureKey, label: str | None = None) -> None:
    link("feature", label or format_feature_ref(key), f=feature_address(key))


def feature_url(transcoder_set: Any, layer: Any, index: Any) -> str | None:
    """The address of a feature's page from table columns; None where the row has no feature."""
    return _feature_page(_row_feature(transcoder_set, layer, index))


def with_links(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """``frame`` with first columns ``{prefix}open``, the address of the feature named by its
    ``{prefix}transcoder_set/layer/index`` columns, and ``{prefix}description``, what is said
    about it in a line (a label, a clerp, an explanation); without internal ids."""
    out = frame.drop(columns=[c for c in ("fid", "src_fid", "tgt_fid") if c in frame.columns])
    keys = [_row_feature(*row) for row in zip(out[f"{prefix}transcoder_set"], out[f"{prefix}layer"], out[f"{prefix}index"])]
    said = state.one_line_descriptions(state.version(), tuple(dict.fromkeys(k for k in keys if k is not None)))
    out.insert(0, f"{prefix}open", [_feature_page(k) for k in keys])
    out.insert(1, f"{prefix}description", [said.get(k) if k is not None else None for k in keys])
    return out


def _row_feature(transcoder_set: Any, layer: Any, index: Any) -> FeatureKey | None:
    """The feature a table row names in three columns; None where the row has none."""
    if any(v is None or _missing(v) for v in (transcoder_set, layer, index)):
        return None
    return FeatureKey(str(transcoder_set), int(layer), int(index))


def _feature_page(key: FeatureKey | None) -> str | None:
    return None if key is None else url("feature", f=feature_address(key))


def link_columns(*columns: str) -> dict[str, Any]:
    """Column settings that show the ``open`` columns of :func:`with_links` as links."""
    return {c: st.column_config.LinkColumn(c.replace("open", "feature"), display_text="open") for c in columns}


def _missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaN and pandas' NA
    except TypeError:
        return True


def graph_link(slug: str, node: str | None = None, label: str | None = None) -> None:
    link("graph", label or (f"{slug} · node {node}" if node else slug), g=slug, node=node)


# --- shared widgets ---------------------------------------------------------------------------------


def require_graphs(at_least: int = 1) -> list[GraphInfo] | None:
    """Every stored graph; when there are fewer than ``at_least``, says how to add some and returns None."""
    found = state.graphs(state.version())
    if len(found) >= at_least:
        return found
    if not found:
        st.info("The knowledge base is empty: there is no graph to show yet.")
        st.markdown("Add attribution graphs (circuit-tracer or Neuronpedia graph files, `.json` or `.json.gz`) on the Ingest page:")
    else:
        st.info(f"This page needs at least {at_least} graphs; the knowledge base has {len(found)}.")
        st.markdown("Add more graphs on the Ingest page:")
    link("ingest", "Ingest graph files")
    return None


SELECTION_PARAMS = ("family", "tag", "language", "set")


def _choices(graphs: Sequence[GraphInfo]) -> tuple[list[str], list[str], list[str]]:
    """The families, tags and languages the graphs have, sorted."""
    return (
        sorted({g.family for g in graphs if g.family}),
        sorted({t for g in graphs for t in g.tags}),
        sorted({g.language for g in graphs if g.language}),
    )


FILTER = "Choose graphs"  # the button that opens the graph filter's widgets
INFLUENCE_NOTE = (
    "Influence is the graph file's cumulative influence: the share of the output's attribution reached "
    "by the nodes up to this one, most influential first. Lower is more influential; pruning keeps the nodes under a threshold."
)


def selection_params(prefix: str, graphs: Sequence[GraphInfo]) -> dict[str, Param]:
    """Address parameters of the graph filter: family, tag, language, set."""
    families, tags, languages = _choices(graphs)
    return {
        "family": Param(f"{prefix}-family", one_of(families, "family", f'under "{FILTER}"'), ""),
        "tag": Param(f"{prefix}-tag", one_of(tags, "tag", f'under "{FILTER}"'), ""),
        "language": Param(f"{prefix}-language", one_of(languages, "language", f'under "{FILTER}"'), ""),
        "set": Param(f"{prefix}-set", one_of(state.saved_set_names(state.version()), "saved set", f'under "{FILTER}"'), ""),
    }


def graph_filter(prefix: str, graphs: Sequence[GraphInfo]) -> tuple[Selection, dict[str, str]]:
    """The graphs chosen (family, tag, language, saved set), named in a line; their widgets are
    made when "Choose graphs" is opened (a selectbox is the slowest element to draw in a new tab).
    Returns the selection and its address values."""
    families, tags, languages = _choices(graphs)
    sets = state.saved_set_names(state.version())
    for name, allowed in (("family", families), ("tag", tags), ("language", languages), ("set", sets)):
        kept(f"{prefix}-{name}", "", allowed)
    cols = st.columns([5, 1], vertical_alignment="center")
    picker = cols[1].popover(FILTER, key=f"{prefix}-filter", on_change="rerun")
    if picker.open:
        with picker:
            st.selectbox("Family", ["", *families], key=f"{prefix}-family", format_func=lambda v: v or "(any)")
            st.selectbox("Tag", ["", *tags], key=f"{prefix}-tag", format_func=lambda v: v or "(any)")
            st.selectbox("Language", ["", *languages], key=f"{prefix}-language", format_func=lambda v: v or "(any)")
            if sets:
                st.selectbox("Saved set", ["", *sets], key=f"{prefix}-set", format_func=lambda v: v or "(none)", help="Sets saved with `circuitkb sets save`")
            else:
                st.caption("No saved set of graphs yet: `circuitkb sets save NAME --family F` saves one.")
    family, tag, language = (st.session_state[f"{prefix}-{name}"] for name in ("family", "tag", "language"))
    saved = st.session_state[f"{prefix}-set"]
    said = [f"{what} **{md(value)}**" for what, value in (("family", family), ("tag", tag), ("language", language), ("saved set", saved)) if value]
    cols[0].markdown("Graphs: " + (" · ".join(said) if said else "all"))
    values = {"family": family, "tag": tag, "language": language, "set": saved}
    selection = Selection(family=family or None, tags=(tag,) if tag else (), language=language or None, saved_set=saved or None)
    return selection, values


def qk_tables(drivers: Any, key: str) -> None:
    """The QK summary over graphs and the traced contributors of each graph."""
    st.caption(f"in {drivers.n_graphs} graph{'' if drivers.n_graphs == 1 else 's'}; pruned: the contributor is only in the file's qk_only_nodes")
    if not drivers.summary.empty:
        st.dataframe(drivers.summary, width="stretch", hide_index=True, key=f"{key}-summary")
    st.dataframe(drivers.rows, width="stretch", hide_index=True, key=f"{key}-rows")
