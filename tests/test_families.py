"""Families found in the prompts, then accepted or edited by a person.

On the real graphs: the English and French "opposite of small" graphs are proposed as one family,
graph 01 (another transcoder set) is kept apart, and after accepting, the languages question gives
their per-layer overlap. On small built graphs: what is proposed and why, accepting (twice changes
nothing), editing, roles, and a family declared in a manifest kept unless the person says so.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from kb.analysis import language_overlap
from kb.api import KB
from kb.cli import main
from kb.errors import CircuitKBError, FamilyConflict, NotFoundError, PermissionDenied
from kb.families import (
    accept_proposal,
    add_to_family,
    clear_family,
    list_families,
    propose_families,
    remove_from_family,
    rename_family,
)
from kb.families.proposals import PROMPT_SIMILARITY, SHARED_FEATURES, suggest_name
from kb.labels import accounts
from kb.labels.admin import read_audit_log
from kb.overview import kb_version
from kb.search.embedder import MULTILINGUAL_MODEL, shared_embedder
from kb.selection import Selection
from schema.sql import audit_log
from tests import feature_reference as ref
from tests.builders import prompt_graph, write
from tests.conftest import GRAPHS, real_graph

SQLS = ["sqlite", "postgres"]

# --- small built graphs --------------------------------------------------------------------------

OPPOSITE = {"en": 'The opposite of "small" is "', "fr": 'Le contraire de "petit" est "', "de": 'Das Gegenteil von "klein" ist "'}
COMMON = [(layer, 1000 + layer) for layer in range(10)]


def _own(base: int) -> list[tuple[int, int]]:
    return [(5, base + i) for i in range(5)]


def built_graphs() -> dict[str, dict[str, Any]]:
    """Slug -> graph. The opposite prompt in three languages shares 10 of 15 features per graph
    (Jaccard 0.5); the sport prompt in two languages asks the same but shares no feature; the
    capital prompt has the English opposite graph's very features but asks something else; the
    last graph asks the English opposite question with another transcoder set."""
    return {
        "opposite-en": prompt_graph("opposite-en", "<bos>" + OPPOSITE["en"], COMMON + _own(2000), [(2910, 0.6), (11, 0.1)]),
        "opposite-fr": prompt_graph("opposite-fr", "<bos>" + OPPOSITE["fr"], COMMON + _own(3000), [(12, 0.7), (2910, 0.1)]),
        "opposite-de": prompt_graph("opposite-de", "<bos>" + OPPOSITE["de"], COMMON + _own(4000), [(13, 0.5), (2910, 0.2)]),
        "sport-en": prompt_graph("sport-en", "<bos>Michael Jordan plays the sport of", [(layer, 5000 + layer) for layer in range(10)]),
        "sport-fr": prompt_graph("sport-fr", "<bos>Michael Jordan pratique le sport du", [(layer, 6000 + layer) for layer in range(10)]),
        "capital-en": prompt_graph("capital-en", "<bos>The capital of France is", COMMON + _own(2000)),
        "opposite-other-set": prompt_graph("opposite-other-set", "<bos>" + OPPOSITE["en"], COMMON + _own(2000), transcoder_set="someone/other-clt"),
    }


def ingest_built(kb: KB, folder: Path, slugs: list[str] | None = None, manifest: dict[str, str] | None = None) -> None:
    """Ingest the built graphs (``slugs``, default all), with families from a manifest if given."""
    folder.mkdir(parents=True, exist_ok=True)
    graphs = built_graphs()
    paths = [write(folder / f"{slug}.json", graphs[slug]) for slug in (slugs or list(graphs))]
    manifest_path = None
    if manifest:
        manifest_path = folder / "manifest.csv"
        manifest_path.write_text("slug,family\n" + "".join(f"{slug},{family}\n" for slug, family in manifest.items()), encoding="utf-8")
    report = kb.ingest(paths, manifest=manifest_path)
    assert not report.failed, report.failed


def audit_count(kb: KB) -> int:
    with kb.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_log).where(audit_log.c.action.like("family.%"))).scalar_one()


def test_the_same_question_in_three_languages_is_proposed_and_the_rest_kept_apart(kb: KB, tmp_path: Path) -> None:
    ingest_built(kb, tmp_path / "built")
    found = propose_families(kb)
    assert found.n_graphs == 7
    assert [p.slugs for p in found.proposals] == [("opposite-de", "opposite-en", "opposite-fr")]
    (p,) = found.proposals
    assert (p.name, p.status, p.languages, p.transcoder_set, p.model) == ("opposite-small", "new", ("de", "en", "fr"), "gemma-2-2b/clt-hp", "gemma-2-2b")
    assert p.language_of == {"opposite-de": "de", "opposite-en": "en", "opposite-fr": "fr"}
    assert p.current == {"opposite-de": None, "opposite-en": None, "opposite-fr": None}
    assert p.common_features == 10 and p.shared_features == pytest.approx(0.5)
    assert [(e.slug_a, e.slug_b, e.common_features) for e in p.pairs] == [
        ("opposite-de", "opposite-en", 10), ("opposite-de", "opposite-fr", 10), ("opposite-en", "opposite-fr", 10)
    ]
    assert all(e.prompt_similarity >= PROMPT_SIMILARITY and e.shared_features >= SHARED_FEATURES for e in p.pairs)
    assert p.prompt_similarity == min(e.prompt_similarity for e in p.pairs)
    assert p.outputs == {"opposite-en": ("t2910", "t11"), "opposite-fr": ("t12", "t2910"), "opposite-de": ("t13", "t2910")}
    assert p.shared_outputs == ("t2910",)
    # the same question with features of another transcoder set: named, never grouped
    apart = {(k.slug_a, k.slug_b): k for k in found.kept_apart}
    assert set(apart) == {("opposite-en", "opposite-other-set"), ("opposite-de", "opposite-other-set"), ("opposite-fr", "opposite-other-set")}
    assert apart[("opposite-en", "opposite-other-set")].prompt_similarity == pytest.approx(1.0)
    assert "someone/other-clt" in apart[("opposite-en", "opposite-other-set")].reason
    as_json = json.loads(json.dumps(found.as_dict()))
    assert as_json["proposals"][0]["slugs"] == list(p.slugs) and as_json["thresholds"] == {"prompt_similarity": PROMPT_SIMILARITY, "shared_features": SHARED_FEATURES}
    # a selection limits the graphs looked at
    assert propose_families(kb, Selection(languages=("en", "fr"))).proposals[0].slugs == ("opposite-en", "opposite-fr")


def test_both_kinds_of_evidence_must_agree(sqlite_kb: KB, tmp_path: Path) -> None:
    ingest_built(sqlite_kb, tmp_path / "built", ["sport-en", "sport-fr", "capital-en", "opposite-en"])
    # prompts of special tokens only say nothing: not alike, whatever their features
    blank = [write(tmp_path / f"blank-{i}.json", prompt_graph(f"blank-{i}", "<bos>", COMMON)) for i in (1, 2)]
    assert len(sqlite_kb.ingest(blank).ingested) == 2
    assert propose_families(sqlite_kb).proposals == ()  # sport: same question, no shared feature; capital: same features, another question
    loose = propose_families(sqlite_kb, shared_features=0.0)
    assert [p.slugs for p in loose.proposals] == [("sport-en", "sport-fr")]
    assert loose.thresholds["shared_features"] == 0.0


class CountingEmbedder:
    """The multilingual model under a name of its own, counting the texts it embeds."""

    def __init__(self) -> None:
        self.name = f"counting-{uuid.uuid4().hex}"
        self.model = shared_embedder(MULTILINGUAL_MODEL)
        self.texts: list[str] = []

    @property
    def dim(self) -> int:
        return self.model.dim

    def embed(self, texts: Any) -> Any:
        self.texts += list(texts)
        return self.model.embed(texts)


def test_each_prompt_is_embedded_once_whatever_the_calls(sqlite_kb: KB, tmp_path: Path) -> None:
    ingest_built(sqlite_kb, tmp_path / "built")
    embedder = CountingEmbedder()
    first = propose_families(sqlite_kb, embedder=embedder)
    # two graphs ask the English opposite question: seven graphs, six prompts
    assert sorted(embedder.texts) == sorted({g["metadata"]["prompt"].removeprefix("<bos>") for g in built_graphs().values()})
    assert len(embedder.texts) == 6
    again = propose_families(sqlite_kb, embedder=embedder)
    assert len(embedder.texts) == 6 and again.as_dict() == first.as_dict() == propose_families(sqlite_kb).as_dict()


def test_a_suggested_name_comes_from_the_words_every_prompt_shares() -> None:
    assert suggest_name([("fr", '<bos>Le contraire de "petit" est "'), ("en", '<bos>The opposite of "small" is "')]) == "opposite-small"
    capitals = [("en", "<bos>Fact: The capital of the state containing Dallas is"), ("en", "<bos>The capital of the state containing Oakland is")]
    assert suggest_name(capitals) == "capital-state-containing"
    assert suggest_name([("fr", "<bos>Le contraire de petit est")]) == "contraire-petit"
    assert suggest_name([("en", "<bos>The is of")]) == ""


@pytest.mark.parametrize("sql", SQLS)
def test_accepting_writes_the_family_once_and_the_languages_question_uses_it(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    ingest_built(kb, tmp_path / "built", ["opposite-en", "opposite-fr", "opposite-de", "sport-en"])
    before = kb_version(kb)
    with pytest.raises(CircuitKBError, match="families propose"):
        language_overlap(kb)
    proposal = propose_families(kb).named("opposite-small")
    me = accounts.local_actor("ann")
    change = accept_proposal(kb, me, proposal, "opposite")
    assert change.family == "opposite" and change.changed
    assert [(m.slug, m.before, m.after) for m in change.moved] == [("opposite-de", None, "opposite"), ("opposite-en", None, "opposite"), ("opposite-fr", None, "opposite")]
    assert kb_version(kb) != before  # the app's caches see the change
    assert [(f.name, f.slugs, f.languages) for f in list_families(kb)] == [("opposite", ("opposite-de", "opposite-en", "opposite-fr"), ("de", "en", "fr"))]
    assert audit_count(kb) == 1
    # twice: nothing changes, nothing is logged, the fingerprint stays
    after = kb_version(kb)
    again = accept_proposal(kb, me, proposal, "opposite")
    assert not again.changed and again.unchanged == ("opposite-de", "opposite-en", "opposite-fr")
    assert audit_count(kb) == 1 and kb_version(kb) == after
    # the proposal now reads as accepted, under its family's name
    (now,) = propose_families(kb).proposals
    assert (now.name, now.status) == ("opposite", "accepted")
    overlap = language_overlap(kb, Selection(family="opposite"))
    assert set(zip(overlap.curves["lang_a"], overlap.curves["lang_b"])) == {("de", "en"), ("de", "fr"), ("en", "fr")}
    layer5 = overlap.curves[(overlap.curves["layer"] == 5) & (overlap.curves["lang_a"] == "en")]
    assert layer5["iou"].iloc[0] == pytest.approx(1 / 11)  # one common feature of 11 at layer 5
    with kb.engine.connect() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.action == "family.accept")).one()
    assert (row.actor, row.target) == ("ann", "opposite") and len(row.detail["moved"]) == 3


@pytest.mark.parametrize("sql", SQLS)
def test_a_family_from_a_manifest_is_kept_unless_the_person_says_so(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    ingest_built(kb, tmp_path / "built", ["opposite-en", "opposite-fr"], manifest={"opposite-en": "antonyms"})
    (p,) = propose_families(kb).proposals
    assert (p.name, p.status, p.current) == ("antonyms", "partial", {"opposite-en": "antonyms", "opposite-fr": None})
    me = accounts.local_actor()
    with pytest.raises(FamilyConflict, match="opposite-en.*antonyms.*--replace") as refused:
        accept_proposal(kb, me, p, "opposite")
    assert refused.value.taken == {"opposite-en": "antonyms"}
    assert {g.slug: g.family for g in kb.select()} == {"opposite-en": "antonyms", "opposite-fr": None}  # nothing half-written
    assert audit_count(kb) == 0
    # under the manifest's name, the French graph joins without replacing anything
    joined = accept_proposal(kb, me, p)
    assert [(m.slug, m.after) for m in joined.moved] == [("opposite-fr", "antonyms")] and joined.unchanged == ("opposite-en",)
    # the person says so: both move
    moved = add_to_family(kb, me, "opposite", ["opposite-en", "opposite-fr"], replace=True)
    assert [(m.slug, m.before, m.after) for m in moved.moved] == [("opposite-en", "antonyms", "opposite"), ("opposite-fr", "antonyms", "opposite")]
    assert [f.name for f in list_families(kb)] == ["opposite"]


def test_a_changed_file_ingested_again_keeps_its_accepted_family(kb: KB, tmp_path: Path) -> None:
    ingest_built(kb, tmp_path / "built", ["opposite-en", "opposite-fr"])
    accept_proposal(kb, accounts.local_actor(), propose_families(kb).named("opposite-small"), "opposite")
    changed = built_graphs()["opposite-en"]
    (tmp_path / "changed").mkdir()
    changed["nodes"][0]["activation"] = 123.0
    report = kb.ingest([write(tmp_path / "changed" / "opposite-en.json", changed)])
    assert [r["slug"] for r in report.ingested] == ["opposite-en"]  # a new version, not skipped
    assert {g.slug: g.family for g in kb.select()} == {"opposite-en": "opposite", "opposite-fr": "opposite"}
    # a manifest that names a family still decides
    changed["nodes"][0]["activation"] = 124.0
    manifest = tmp_path / "changed" / "manifest.csv"
    manifest.write_text("slug,family\nopposite-en,antonyms\n", encoding="utf-8")
    kb.ingest([write(tmp_path / "changed" / "opposite-en.json", changed)], manifest=manifest)
    assert {g.slug: g.family for g in kb.select()}["opposite-en"] == "antonyms"


@pytest.mark.parametrize("sql", SQLS)
def test_families_are_edited_by_name(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    ingest_built(kb, tmp_path / "built")
    me = accounts.local_actor()
    add_to_family(kb, me, "  opposite ", ["opposite-en", "opposite-fr"])
    assert add_to_family(kb, me, "opposite", ["opposite-de", "opposite-en"]).unchanged == ("opposite-en",)
    add_to_family(kb, me, "sport", ["sport-en", "sport-fr"])
    with pytest.raises(CircuitKBError, match="exists already"):
        rename_family(kb, me, "opposite", "sport")
    renamed = rename_family(kb, me, "opposite", "antonyms")
    assert [m.after for m in renamed.moved] == ["antonyms"] * 3
    assert not rename_family(kb, me, "antonyms", "antonyms").changed
    removed = remove_from_family(kb, me, ["opposite-de", "capital-en"])
    assert [(m.slug, m.before) for m in removed.moved] == [("opposite-de", "antonyms")] and removed.unchanged == ("capital-en",)
    assert not remove_from_family(kb, me, ["opposite-de"]).changed
    cleared = clear_family(kb, me, "sport")
    assert sorted(m.slug for m in cleared.moved) == ["sport-en", "sport-fr"]
    assert [(f.name, f.slugs) for f in list_families(kb)] == [("antonyms", ("opposite-en", "opposite-fr"))]
    assert [f.name for f in list_families(kb, Selection(languages=("fr",)))] == ["antonyms"]
    # what cannot be done says why, and changes nothing
    with pytest.raises(CircuitKBError, match="one model and transcoder set"):
        add_to_family(kb, me, "antonyms", ["opposite-other-set"])
    with pytest.raises(NotFoundError, match="no-such-graph"):
        add_to_family(kb, me, "antonyms", ["opposite-de", "no-such-graph"])
    with pytest.raises(NotFoundError, match="no family called"):
        rename_family(kb, me, "sport", "games")
    with pytest.raises(NotFoundError, match="no family called"):
        clear_family(kb, me, "sport")
    for bad in ("", "   ", "x" * 201, "tab\there"):
        with pytest.raises(CircuitKBError, match="family name"):
            add_to_family(kb, me, bad, ["opposite-de"])
    with pytest.raises(CircuitKBError, match="at least one graph"):
        add_to_family(kb, me, "antonyms", [])
    assert {g.slug: g.family for g in kb.select()}["opposite-de"] is None
    actions = [a["action"] for a in accounts_audit(kb)]
    assert actions == ["family.add", "family.add", "family.add", "family.rename", "family.remove", "family.clear"]


def accounts_audit(kb: KB) -> list[dict[str, Any]]:
    """The family entries of the audit log, oldest first."""
    return [e for e in reversed(read_audit_log(kb, accounts.local_actor())) if e["action"].startswith("family.")]


@pytest.mark.parametrize("sql", SQLS)
def test_with_accounts_a_viewer_cannot_change_families_and_a_labeller_can(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    ingest_built(kb, tmp_path / "built", ["opposite-en", "opposite-fr"])
    accounts.add_user(kb, accounts.local_actor(), "ada", "ada-secret-pw", "admin")
    ada = accounts.authenticate(kb, "ada", "ada-secret-pw")
    accounts.add_user(kb, ada, "lin", "lin-secret-pw", "labeller")
    accounts.add_user(kb, ada, "vic", "vic-secret-pw", "viewer")
    lin, vic = accounts.authenticate(kb, "lin", "lin-secret-pw"), accounts.authenticate(kb, "vic", "vic-secret-pw")
    (p,) = propose_families(kb).proposals  # reading needs no role
    writes = {
        "accept": lambda a: accept_proposal(kb, a, p),
        "add": lambda a: add_to_family(kb, a, "x", ["opposite-en"]),
        "remove": lambda a: remove_from_family(kb, a, ["opposite-en"]),
        "rename": lambda a: rename_family(kb, a, "opposite-small", "y"),
        "clear": lambda a: clear_family(kb, a, "opposite-small"),
    }
    for name, call in writes.items():
        with pytest.raises(PermissionDenied, match="needs the labeller role"):
            call(vic)
        with pytest.raises(PermissionDenied, match="not signed in"):
            call(accounts.Actor("lin", "labeller"))  # made by hand, not signed in
    assert all(g.family is None for g in kb.select())
    assert accept_proposal(kb, lin, p).changed
    assert {g.family for g in kb.select()} == {"opposite-small"}
    with kb.engine.connect() as conn:
        assert conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "family.accept")).scalar_one() == "lin"


def test_the_families_commands(kb_env: Callable[[str, str], dict[str, str]], tmp_path: Path) -> None:
    env = kb_env("sqlite", "embedded")

    def run(*args: str, status: int = 0) -> str:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == status, result.output
        return result.output

    folder = tmp_path / "built"
    folder.mkdir()
    graphs = built_graphs()
    paths = [str(write(folder / f"{slug}.json", doc)) for slug, doc in graphs.items()]
    run("ingest", *paths)
    shown = run("families", "propose")
    assert "1. opposite-small (new): 3 graphs in de, en, fr" in shown and "kept apart" in shown and "opposite-other-set" in shown
    assert json.loads(run("families", "propose", "--json"))["proposals"][0]["name"] == "opposite-small"
    assert "no family proposed" in run("families", "propose", "--graph", "sport-en", "--graph", "capital-en")
    assert "no families yet" in run("families", "list")
    assert "no proposed family called 'nope'" in run("families", "accept", "nope", status=2)
    accepted = json.loads(run("families", "accept", "opposite-small", "--name", "opposite", "--json"))
    assert [m["slug"] for m in accepted["moved"]] == ["opposite-de", "opposite-en", "opposite-fr"]
    assert "nothing to change" in run("families", "accept", "opposite", "--name", "opposite")
    assert json.loads(run("families", "list", "--json")) == [
        {"name": "opposite", "slugs": ["opposite-de", "opposite-en", "opposite-fr"], "languages": ["de", "en", "fr"], "transcoder_sets": ["gemma-2-2b/clt-hp"]}
    ]
    assert "--replace" in run("families", "add", "other", "opposite-en", status=2)
    assert "opposite-en" in run("families", "add", "other", "opposite-en", "--replace")
    run("families", "remove", "opposite-en")
    run("families", "rename", "opposite", "antonyms")
    assert "de,fr" in run("families", "list")
    assert "en-fr" not in run("languages", "--family", "antonyms") and "de-fr" in run("languages", "--family", "antonyms")
    run("families", "clear", "antonyms", "--json")
    assert "no families yet" in run("families", "list")


# --- the real graphs -----------------------------------------------------------------------------


def _slug(prefix: str) -> str:
    return json.loads(real_graph(prefix).read_text())["metadata"]["slug"]


def test_on_the_real_graphs_the_english_and_french_pair_is_proposed_and_graph_01_kept_apart(kb: KB) -> None:
    report = kb.ingest([GRAPHS])
    assert len(report.ingested) == 9, report.as_dict()
    found = propose_families(kb)
    groups = {p.slugs: p for p in found.proposals}
    pair = tuple(sorted((_slug("02"), _slug("03"))))
    # the two-hop capital prompts (Dallas twice, Oakland) are one template asked three times and
    # share 41-57% of their features: a family too, in English only
    two_hop = tuple(sorted((_slug("05"), _slug("06"), _slug("07"))))
    assert set(groups) == {pair, two_hop}
    assert found.proposals[0].slugs == pair  # the multilingual one first
    opposite = groups[pair]
    assert (opposite.name, opposite.languages, opposite.transcoder_set, opposite.common_features) == ("opposite-small", ("en", "fr"), "gemma-2-2b/clt-hp", 76)
    assert opposite.shared_features == pytest.approx(76 / 346)
    assert groups[two_hop].languages == ("en",)
    grouped = {s for p in found.proposals for s in p.slugs}
    assert not grouped & {_slug(p) for p in ("01", "04", "08", "10")}
    # graph 01 asks what 02 asks, with the per-layer transcoders: kept apart, and said so
    apart = {frozenset((k.slug_a, k.slug_b)): k for k in found.kept_apart}
    assert apart[frozenset((_slug("01"), _slug("02")))].prompt_similarity == pytest.approx(1.0)
    assert "gemmascope-transcoder-16k" in apart[frozenset((_slug("01"), _slug("02")))].reason
    assert all({_slug("01")} & set(pair_) for pair_ in apart)


def test_on_the_real_graphs_the_accepted_pair_gives_the_languages_overlap(kb_env: Callable[[str, str], dict[str, str]]) -> None:
    env = kb_env("sqlite", "embedded")

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    run("ingest", str(GRAPHS))
    assert "1. opposite-small (new): 2 graphs in en, fr" in run("families", "propose")
    run("families", "accept", "opposite-small", "--name", "opposite")
    curves = json.loads(run("languages", "--family", "opposite", "--json"))["curves"]
    en, fr = ref.load(real_graph("02")), ref.load(real_graph("03"))
    assert {(c["lang_a"], c["lang_b"]) for c in curves} == {("en", "fr")}
    by_layer = {c["layer"]: c["iou"] for c in curves}
    for layer in range(26):
        expected = ref.iou(en, fr, layer)
        assert (by_layer[layer] is None and math.isnan(expected)) or by_layer[layer] == pytest.approx(expected)
