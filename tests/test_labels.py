"""Collaborative labelling: accounts and roles on every write path (API and CLI), versions and
conflicts, votes and status, discussion, saved subgraphs and the viewer file, exchange files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from ingest.records import FeatureKey
from kb import labels as api
from kb.api import KB
from kb.cli import main
from kb.config import Config
from kb.errors import EditConflict, NotFoundError, PermissionDenied, SignInFailed
from kb.descriptions import descriptions_of, labels_of
from kb.featuremeta import add_label
from kb.labels import accounts
from kb.labels.accounts import Actor
from schema.sql import audit_log, label_versions, label_votes, labels, sessions, users
from tests.conftest import DATA, engine_at_revision, real_graph

SQLS = ["sqlite", "postgres"]
CLT = "gemma-2-2b/clt-hp"
TEXAS = FeatureKey(CLT, 20, 1234)
PASSWORDS = {"ada": "ada-secret-pw", "lin": "lin-secret-pw", "vic": "vic-secret-pw"}
ALL_TABLES = (labels, label_versions, label_votes)


def make_team(kb: KB) -> dict[str, Actor]:
    """An admin (ada), a labeller (lin) and a viewer (vic), signed in."""
    accounts.add_user(kb, accounts.local_actor(), "ada", PASSWORDS["ada"], "admin")
    ada = accounts.authenticate(kb, "ada", PASSWORDS["ada"])
    accounts.add_user(kb, ada, "lin", PASSWORDS["lin"], "labeller")
    accounts.add_user(kb, ada, "vic", PASSWORDS["vic"], "viewer")
    return {name: accounts.authenticate(kb, name, pw) for name, pw in PASSWORDS.items()}


def count(kb: KB, table: Any) -> int:
    with kb.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# --- single user --------------------------------------------------------------------------------------


def test_single_user_needs_no_sign_in_and_the_os_user_is_the_author(sqlite_kb: KB) -> None:
    assert not accounts.has_accounts(sqlite_kb)
    me = accounts.acting_user(sqlite_kb)
    assert me.role == "admin" and me.name
    ref = api.add(sqlite_kb, me, TEXAS, "Texas", confidence=0.8)
    assert (ref.id, ref.version) == (ref.id, 1)
    shown = api.labels_of_feature(sqlite_kb, TEXAS)
    assert [(r["text"], r["author"], r["status"], r["confidence"]) for r in shown] == [("Texas", me.name, "proposed", 0.8)]
    # the old API still reads and writes the same labels
    assert [lab["text"] for lab in labels_of(sqlite_kb, TEXAS)] == ["Texas"]
    old = add_label(sqlite_kb, TEXAS, "Lone Star", "ann")
    assert api.history(sqlite_kb, old)[0]["action"] == "create"
    assert {r["text"] for r in api.labels_of_feature(sqlite_kb, TEXAS)} == {"Texas", "Lone Star"}


def test_a_saved_label_is_searchable_at_once(sqlite_kb: KB) -> None:
    from kb.search import search
    from tests.test_search import WordHashEmbedder

    embedder = WordHashEmbedder()
    me = accounts.local_actor("ann")
    ref = api.add(sqlite_kb, me, TEXAS, "zebra crossing")
    assert [h.feature for h in search(sqlite_kb, "zebra", k=3, mode="keyword", embedder=embedder)] == [TEXAS]
    api.edit(sqlite_kb, me, ref.id, "giraffe neck", base_version=1)
    assert [h.feature for h in search(sqlite_kb, "giraffe", k=3, mode="keyword", embedder=embedder)] == [TEXAS]
    assert search(sqlite_kb, "zebra", k=3, mode="keyword", embedder=embedder) == []


# --- roles ----------------------------------------------------------------------------------------------


def _writes(kb: KB, label_id: int, slug: str, tmp_path: Path) -> dict[str, tuple[str, Callable[[Actor], Any]]]:
    """Every write path of kb.labels: name -> (role needed, call)."""
    exchange = tmp_path / "x.jsonl"
    exchange.write_text(json.dumps({"kind": "circuitkb-labels", "format": 1}) + "\n")
    return {
        "add": ("labeller", lambda a: api.add(kb, a, TEXAS, "Texas")),
        "edit": ("labeller", lambda a: api.edit(kb, a, label_id, "Texas!", api.label(kb, label_id)["version"])),
        "revert": ("labeller", lambda a: api.revert(kb, a, label_id, 1)),
        "vote": ("labeller", lambda a: api.vote(kb, a, label_id)),
        "comment": ("labeller", lambda a: api.comment(kb, a, TEXAS, "why?")),
        "save_subgraph": ("labeller", lambda a: api.save_subgraph(kb, a, slug, f"mine-{a.name}", pinned_ids=["x"])),
        "set_status": ("admin", lambda a: api.set_status(kb, a, label_id, "accepted")),
        "add_user": ("admin", lambda a: api.add_user(kb, a, f"new-{a.name}", "long-enough", "viewer")),
        "set_role": ("admin", lambda a: api.set_role(kb, a, "vic", "viewer")),
        "remove_user": ("admin", lambda a: api.remove_user(kb, a, "leaving")),
        "setting": ("admin", lambda a: api.set_setting(kb, a, "votes_to_accept", "5")),
        "import": ("admin", lambda a: api.import_jsonl(kb, a, exchange)),
        "audit": ("admin", lambda a: api.audit_log(kb, a)),
    }


@pytest.mark.parametrize("sql", SQLS)
def test_every_write_path_checks_the_role(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    kb.ingest([real_graph("02")])
    slug = kb.select()[0].slug
    team = make_team(kb)
    label_id = api.add(kb, team["lin"], TEXAS, "Texas").id
    api.add_user(kb, team["ada"], "leaving", "long-enough", "viewer")
    forged = Actor("ada", "admin")  # not signed in: made by hand, not by authenticate
    outsider = Actor("mallory", "admin", signed_in=True)  # no such account
    rank = {"viewer": 0, "labeller": 1, "admin": 2}
    for name, (needed, call) in _writes(kb, label_id, slug, tmp_path).items():
        for who in ("vic", "lin", "ada"):
            actor = team[who]
            if rank[actor.role] >= rank[needed]:
                call(actor)
            else:
                with pytest.raises(PermissionDenied, match=f"needs the {needed} role"):
                    call(actor)
        for actor in (forged, outsider):
            with pytest.raises(PermissionDenied, match="not signed in"):
                call(actor)
    # a role taken away counts at once, even for an actor signed in before
    api.set_role(kb, team["ada"], "lin", "viewer")
    with pytest.raises(PermissionDenied, match="needs the labeller role"):
        api.vote(kb, team["lin"], label_id)
    api.remove_user(kb, team["ada"], "lin")
    with pytest.raises(PermissionDenied, match="not signed in"):
        api.add(kb, team["lin"], TEXAS, "gone")
    # the old single-user API refuses once there are accounts
    with pytest.raises(PermissionDenied, match="has accounts"):
        add_label(kb, TEXAS, "sneaky", "vic")


def test_account_rules(sqlite_kb: KB) -> None:
    with pytest.raises(Exception, match="first account must be an admin"):
        accounts.add_user(sqlite_kb, accounts.local_actor(), "lin", "long-enough", "labeller")
    team = make_team(sqlite_kb)
    with pytest.raises(Exception, match="already an account"):
        accounts.add_user(sqlite_kb, team["ada"], "lin", "long-enough", "labeller")
    with pytest.raises(Exception, match="at least 8"):
        accounts.add_user(sqlite_kb, team["ada"], "max", "short", "labeller")
    with pytest.raises(Exception, match="last admin"):
        accounts.set_role(sqlite_kb, team["ada"], "ada", "labeller")
    with pytest.raises(Exception, match="last admin"):
        accounts.remove_user(sqlite_kb, team["ada"], "ada")
    with pytest.raises(NotFoundError):
        accounts.set_role(sqlite_kb, team["ada"], "nobody", "viewer")
    assert [(u["name"], u["role"]) for u in accounts.list_users(sqlite_kb)] == [("ada", "admin"), ("lin", "labeller"), ("vic", "viewer")]
    with pytest.raises(SignInFailed, match="sign in"):
        accounts.anonymous(sqlite_kb)
    api.set_setting(sqlite_kb, team["ada"], "anonymous_read", "yes")
    visitor = accounts.anonymous(sqlite_kb)
    api.labels_of_feature(sqlite_kb, TEXAS)  # reading is fine
    with pytest.raises(PermissionDenied, match="needs the labeller role"):
        api.add(sqlite_kb, visitor, TEXAS, "x")


@pytest.mark.parametrize("sql", SQLS)
def test_failed_sign_ins_are_rate_limited_per_name_and_sessions_expire(sql: str, make_kb: Callable[..., KB], kb_env: Callable[..., dict[str, str]]) -> None:
    kb = make_kb(sql)
    team = make_team(kb)
    for _ in range(accounts.FREE_FAILURES):
        with pytest.raises(SignInFailed, match="wrong user name or password"):
            accounts.authenticate(kb, "lin", "guess")
    with pytest.raises(SignInFailed, match="too many failed sign-ins"):
        accounts.authenticate(kb, "lin", PASSWORDS["lin"])  # even the right password waits
    assert accounts.authenticate(kb, "vic", PASSWORDS["vic"]).name == "vic"  # other names are not locked
    # a name that is no account's (a password typed in the wrong field) is locked out alike, and
    # kept by its digest only, in the failure table and the audit log
    for _ in range(accounts.FREE_FAILURES):
        with pytest.raises(SignInFailed, match="wrong user name or password"):
            accounts.authenticate(kb, "Hunter2-secret", "guess")
    with pytest.raises(SignInFailed, match="too many failed sign-ins"):
        accounts.authenticate(kb, "Hunter2-secret", "guess")
    with kb.engine.connect() as conn:
        kept = [*conn.execute(select(accounts.sign_in_failures.c.name)).scalars(), *conn.execute(select(audit_log.c.actor, audit_log.c.target)).all()]
    assert "Hunter2-secret" not in repr(kept) and any("unknown name" in repr(k) for k in kept)
    with kb.engine.begin() as conn:  # the lock is in SQL: lift it as time would
        conn.execute(update(accounts.sign_in_failures).values(locked_until=None))
    assert accounts.authenticate(kb, "lin", PASSWORDS["lin"]).role == "labeller"
    session = accounts.sign_in(kb, "lin", PASSWORDS["lin"])
    assert accounts.actor_for_token(kb, session.token).name == "lin"
    with kb.engine.connect() as conn:
        stored = conn.execute(select(sessions.c.token_hash)).scalars().all()
    assert session.token not in stored and len(stored) == 1
    with kb.engine.begin() as conn:
        conn.execute(update(sessions).values(expires_at=accounts.now()))
    with pytest.raises(SignInFailed, match="expired"):
        accounts.actor_for_token(kb, session.token)
    other = accounts.sign_in(kb, "vic", PASSWORDS["vic"])
    accounts.sign_out(kb, other.token)
    with pytest.raises(SignInFailed):
        accounts.actor_for_token(kb, other.token)
    assert team["ada"].signed_in


# --- versions and conflicts ------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", SQLS)
def test_history_revert_and_conflict(sql: str, make_kb: Callable[..., KB]) -> None:
    kb = make_kb(sql)
    team = make_team(kb)
    lin, ada = team["lin"], team["ada"]
    ref = api.add(kb, lin, TEXAS, "Texas", note="fires on Texas", confidence=0.6)
    assert api.edit(kb, ada, ref.id, "Texas (state)", base_version=1).version == 2
    with pytest.raises(EditConflict) as caught:
        api.edit(kb, lin, ref.id, "Texas, the state", base_version=1)
    assert caught.value.current_text == "Texas (state)" and caught.value.current_version == 2 and caught.value.edited_by == "ada"
    assert "Texas (state)" in str(caught.value)
    api.edit(kb, lin, ref.id, "Texas, the state", base_version=2, confidence=0.9)
    reverted = api.revert(kb, ada, ref.id, to_version=1)
    assert reverted.version == 4
    current = api.label(kb, ref.id)
    assert (current["text"], current["note"], current["confidence"], current["version"], current["author"]) == ("Texas", "fires on Texas", 0.6, 4, "lin")
    history = api.history(kb, ref.id)
    assert [(h["version"], h["action"], h["editor"], h["text"], h["based_on"]) for h in history] == [
        (1, "create", "lin", "Texas", None),
        (2, "edit", "ada", "Texas (state)", 1),
        (3, "edit", "lin", "Texas, the state", 2),
        (4, "revert", "ada", "Texas", 1),
    ]
    with pytest.raises(EditConflict):
        api.revert(kb, ada, ref.id, to_version=2, base_version=3)
    with pytest.raises(NotFoundError, match="no version 9"):
        api.revert(kb, ada, ref.id, to_version=9)
    with pytest.raises(NotFoundError):
        api.edit(kb, ada, 999, "x", base_version=1)
    entries = api.audit_log(kb, ada)
    assert [(e["action"], e["actor"]) for e in entries[:4]] == [("label.revert", "ada"), ("label.edit", "lin"), ("label.edit", "ada"), ("label.add", "lin")]
    assert entries[0]["detail"] == {"version": 4, "based_on": 1, "text": "Texas"}


def test_the_audit_log_cannot_be_changed_through_the_api() -> None:
    import kb.labels.admin as admin
    import kb.labels.audit as audit

    public = {f"{module.__name__}.{name}" for module in (audit, admin) for name in dir(module) if not name.startswith("_") and callable(getattr(module, name))}
    assert {"kb.labels.audit.record", "kb.labels.admin.read_audit_log"} <= public
    assert not [name for name in public if "audit" in name and any(word in name for word in ("delete", "update", "edit", "remove", "clear"))]


# --- votes and status --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", SQLS)
def test_votes_rank_labels_and_decide_status(sql: str, make_kb: Callable[..., KB]) -> None:
    kb = make_kb(sql)
    team = make_team(kb)
    ada, lin, vic = team["ada"], team["lin"], team["vic"]
    api.set_setting(kb, ada, "votes_to_accept", "2")
    first = api.add(kb, lin, TEXAS, "Texas").id
    second = api.add(kb, lin, TEXAS, "a US state").id
    assert api.vote(kb, lin, second, reason="clearer")["status"] == "proposed"
    assert api.vote(kb, lin, second)["up_votes"] == 1  # again: still one vote
    assert api.vote(kb, ada, second)["status"] == "accepted"
    assert [r["id"] for r in api.labels_of_feature(kb, TEXAS)] == [second, first]
    api.vote(kb, lin, second, up=False)  # changing one's mind replaces the vote
    assert (api.label(kb, second)["up_votes"], api.label(kb, second)["down_votes"], api.label(kb, second)["status"]) == (1, 1, "proposed")
    assert [(v["voter"], v["value"], v["reason"]) for v in api.votes_on(kb, second)][-1] == ("ada", 1, None)
    api.vote(kb, lin, first, up=False)
    assert api.vote(kb, ada, first, up=False)["status"] == "rejected"
    api.set_status(kb, ada, first, "accepted")  # an admin's decision stands
    api.vote(kb, ada, first, up=False)
    assert api.label(kb, first)["status"] == "accepted"
    with pytest.raises(PermissionDenied):
        api.vote(kb, vic, first)
    with pytest.raises(NotFoundError):
        api.vote(kb, lin, 12345)


# --- discussion, activity, descriptions --------------------------------------------------------------------


def test_show_lists_labels_discussion_and_imported_descriptions_apart(sqlite_kb: KB) -> None:
    from kb.featuremeta import import_feature_metadata

    import_feature_metadata(sqlite_kb, [DATA / "features"])
    me = accounts.local_actor("ann")
    feature = next(d for d in _some_described_feature(sqlite_kb))
    ref = api.add(sqlite_kb, me, feature, "<script>alert(1)</script>")
    api.vote(sqlite_kb, accounts.local_actor("bob"), ref.id)
    api.comment(sqlite_kb, me, feature, "is this right?")
    data = api.show(sqlite_kb, feature)
    assert [lab["text"] for lab in data["labels"]] == ["<script>alert(1)</script>"]
    assert data["labels"][0]["votes"][0]["voter"] == "bob" and data["labels"][0]["history"][0]["version"] == 1
    assert [c["text"] for c in data["comments"]] == ["is this right?"]
    assert data["descriptions"] and all(d["source"] != "label" for d in data["descriptions"])
    assert any(d["source"] == "label" for d in descriptions_of(sqlite_kb, feature))
    feed = api.activity(sqlite_kb, limit=10)
    assert [(e["kind"], e["who"]) for e in feed] == [("vote", "bob"), ("label", "ann")]


def _some_described_feature(kb: KB) -> list[FeatureKey]:
    from schema.sql import descriptions, features

    with kb.engine.connect() as conn:
        row = conn.execute(select(features.c.transcoder_set, features.c.layer, features.c["index"]).join(descriptions, descriptions.c.feature_id == features.c.id).limit(1)).one()
    return [FeatureKey(row.transcoder_set, row.layer, row.index)]


def test_label_input_is_checked(sqlite_kb: KB) -> None:
    me = accounts.local_actor()
    for kwargs, message in (
        ({"confidence": 1.5}, "0 to 1"),
        ({"node_id": "20_1234_3"}, "names its graph"),
        ({"graph_slug": "no-such-graph"}, "no graph"),
    ):
        with pytest.raises(Exception, match=message):
            api.add(sqlite_kb, me, TEXAS, "Texas", **kwargs)
    with pytest.raises(Exception, match="required"):
        api.add(sqlite_kb, me, TEXAS, "   ")
    sqlite_kb.ingest([real_graph("02")])
    with pytest.raises(NotFoundError, match="has no node 'no_such_node'"):
        api.add(sqlite_kb, me, TEXAS, "Texas", graph_slug=sqlite_kb.select()[0].slug, node_id="no_such_node")
    assert count(sqlite_kb, labels) == 0


# --- subgraphs and the viewer file ----------------------------------------------------------------------------


@pytest.mark.parametrize("sql", SQLS)
def test_qparams_become_a_subgraph_and_round_trip_through_the_viewer_file(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    source = real_graph("01")
    original = json.loads(source.read_text())
    kb.ingest([source])
    slug = original["metadata"]["slug"]
    me = accounts.local_actor("ann")
    subs = api.subgraphs_of(kb, slug)
    assert [s["name"] for s in subs] == [api.FILE_VIEW]
    assert subs[0]["pinned_ids"] == original["qParams"]["pinnedIds"] and subs[0]["supernodes"] == original["qParams"]["supernodes"]
    assert len(api.subgraphs_of(kb, slug)) == 1  # made once
    # the team's label shows as the clerp of every node of its feature; a node label wins there
    stored = kb.store.load_graph(kb.graph_row(slug).id)
    node = next(n for n in stored.nodes if n["node_id"] == "23_8683_8")
    others = [n for n in stored.nodes if n["feature_id"] == node["feature_id"] and n["node_id"] != node["node_id"]]
    from schema.sql import features

    with kb.engine.connect() as conn:
        frow = conn.execute(select(features).where(features.c.id == node["feature_id"])).one()
    feature = FeatureKey(frow.transcoder_set, frow.layer, frow.index)
    api.add(kb, me, feature, "say big")
    api.add(kb, me, feature, "say large (here)", graph_slug=slug, node_id="23_8683_8")
    rejected = api.add(kb, me, feature, "nonsense", graph_slug=slug, node_id="23_8683_8").id
    api.vote(kb, me, rejected)  # most votes, but rejected by an admin: never a clerp
    api.set_status(kb, me, rejected, "rejected")
    schema = json.loads((DATA / "neuronpedia-graph-schema.json").read_text())
    doc = api.viewer_json(kb, slug)
    jsonschema.validate(doc, schema)
    assert {k: doc["qParams"][k] for k in original["qParams"]} == original["qParams"]
    clerps = {n["node_id"]: n["clerp"] for n in doc["nodes"]}
    assert clerps["23_8683_8"] == "say large (here)"
    assert all(clerps[n["node_id"]] == "say big" for n in others)
    # a saved subgraph with custom clerps and thresholds, written out and ingested again
    saved = api.save_subgraph(
        kb, me, slug, "texas story", pinned_ids=["23_8683_8", "E_10498_5"], supernodes=[["big", "23_8683_8", "21_10062_8"]],
        clerps=[["21_10062_8", "my clerp"]], thresholds={"pruningThreshold": 0.6, "densityThreshold": 0.9}, view={"clickedId": "23_8683_8"},
    )
    assert saved["version"] == 1
    with pytest.raises(EditConflict):
        api.save_subgraph(kb, me, slug, "texas story", pinned_ids=[], base_version=2)
    doc = api.viewer_json(kb, slug, "texas story")
    jsonschema.validate(doc, schema)
    assert doc["qParams"]["pinnedIds"] == ["23_8683_8", "E_10498_5"] and doc["qParams"]["clickedId"] == "23_8683_8"
    assert doc["metadata"]["node_threshold"] == 0.6
    assert {n["node_id"]: n["clerp"] for n in doc["nodes"]}["21_10062_8"] == "my clerp"
    doc["metadata"] = {**doc["metadata"], "slug": "round-trip"}
    (tmp_path / "rt.json").write_text(json.dumps(doc))
    kb.ingest([tmp_path / "rt.json"])
    back = api.subgraph(kb, "round-trip", api.FILE_VIEW)
    for key in ("pinned_ids", "supernodes", "clerps", "thresholds"):
        assert back[key] == saved[key], key
    assert back["view"]["clickedId"] == "23_8683_8"


# --- exchange -------------------------------------------------------------------------------------------------


@pytest.fixture
def other_pg_database(pg_database: str) -> Iterator[str]:
    """A second fresh PostgreSQL database next to ``pg_database``; dropped afterwards."""
    import uuid

    import psycopg

    base, _, first = pg_database.rpartition("/")
    name = f"ck_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _snapshot(kb: KB) -> dict[str, Any]:
    from kb.labels.exchange import export_records

    out: dict[str, Any] = {}
    for r in export_records(kb, accounts.local_actor() if not accounts.has_accounts(kb) else accounts.authenticate(kb, "ada", PASSWORDS["ada"])):
        out.setdefault(r["kind"], []).append(r)
    return out


@pytest.mark.parametrize("sql", SQLS)
def test_export_then_import_into_an_empty_kb_gives_the_same_work_and_twice_changes_nothing(
    sql: str, make_kb: Callable[..., KB], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    kb = make_kb(sql)
    kb.ingest([real_graph("02")])
    slug = kb.select()[0].slug
    ann, bob = accounts.local_actor("ann"), accounts.local_actor("bob")
    node = next(n["node_id"] for n in json.loads(real_graph("02").read_text())["nodes"] if n["feature_type"] == "cross layer transcoder")
    ref = api.add(kb, ann, TEXAS, "Texas", note="n", confidence=0.5, graph_slug=slug, node_id=node)
    api.edit(kb, bob, ref.id, "Texas state", base_version=1)
    other = api.add(kb, bob, FeatureKey(CLT, 3, 7), "commas")
    api.vote(kb, ann, other.id, reason="yes")
    api.vote(kb, bob, other.id, up=False)
    api.set_status(kb, ann, ref.id, "accepted")
    api.comment(kb, bob, TEXAS, "agree")
    api.save_subgraph(kb, ann, slug, "mine", pinned_ids=["a"], supernodes=[["s", "a", "b"]])
    api.subgraphs_of(kb, slug)
    path = tmp_path / "work.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        api.export_jsonl(kb, ann, fh)
    before = _snapshot(kb)
    other_env = {"CIRCUITKB_HOME": str(tmp_path / "other")}
    if sql == "postgres":
        other_env["CIRCUITKB_SQL_URL"] = request.getfixturevalue("other_pg_database")
    empty = make_kb(sql, env=other_env)
    report = api.import_jsonl(empty, accounts.local_actor("carl"), path)
    assert (report.labels_added, report.versions_added, report.votes_added, report.comments_added, report.subgraphs_added) == (2, 3, 2, 1, 2)
    assert _snapshot(empty) == before
    again = api.import_jsonl(empty, accounts.local_actor("carl"), path)
    assert not again.changed and again.diverged == []
    assert _snapshot(empty) == before
    imported = api.labels_of_feature(empty, FeatureKey(CLT, 3, 7))[0]
    assert (imported["up_votes"], imported["down_votes"], imported["author"]) == (1, 1, "bob")


def test_import_reports_bad_lines_and_diverged_labels(sqlite_kb: KB, tmp_path: Path) -> None:
    me = accounts.local_actor("ann")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "circuitkb-labels", "format": 1}) + "\n" + json.dumps({"kind": "vote", "label": "x", "voter": "a", "value": 3}) + "\n")
    with pytest.raises(Exception, match="line 2.*1 or -1"):
        api.import_jsonl(sqlite_kb, me, bad)
    bad.write_text("{}\n")
    with pytest.raises(Exception, match="line 1"):
        api.import_jsonl(sqlite_kb, me, bad)
    ref = api.add(sqlite_kb, me, TEXAS, "Texas")
    path = tmp_path / "a.jsonl"
    with open(path, "w") as fh:
        api.export_jsonl(sqlite_kb, me, fh)
    api.edit(sqlite_kb, me, ref.id, "local text", base_version=1)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[1]["versions"].append({"version": 2, "action": "edit", "text": "their text", "editor": "zed", "created_at": None})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = api.import_jsonl(sqlite_kb, me, path)
    assert report.diverged == [ref.uuid]
    assert api.label(sqlite_kb, ref.id)["text"] == "local text"


# --- the CLI ---------------------------------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, password: str | None = None, stdin: str | None = None) -> Any:
    full = {**env, "CIRCUITKB_PASSWORD": password} if password else dict(env)
    return CliRunner().invoke(main, list(args), env=full, input=stdin, catch_exceptions=False)


@pytest.fixture
def cli_env(kb_env: Callable[..., dict[str, str]]) -> dict[str, str]:
    env = kb_env("sqlite", "embedded")
    env.pop("CIRCUITKB_PASSWORD", None)
    return env


@pytest.mark.slow
def test_cli_users_and_roles_on_every_write_command(cli_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = _cli(cli_env, "labels", "add", "gemma-2-2b/clt-hp/20/1234", "Texas", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 1
    for name, role in (("ada", "admin"), ("lin", "labeller"), ("vic", "viewer")):
        result = _cli(cli_env, "users", "add", name, "--role", role, "--password-stdin", "--as", "ada", password=PASSWORDS["ada"], stdin=PASSWORDS[name] + "\n")
        assert result.exit_code == 0, result.output
    listed = json.loads(_cli(cli_env, "users", "list", "--json", "--as", "vic", password=PASSWORDS["vic"]).stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("ada", "admin"), ("lin", "labeller"), ("vic", "viewer")]
    writes = {
        "labeller": [
            ["labels", "add", "gemma-2-2b/clt-hp/20/1234", "Texas again"],
            ["labels", "edit", "1", "Texas!", "--base-version", "{version}"],
            ["labels", "revert", "1", "--to-version", "1"],
            ["labels", "vote", "1"],
            ["labels", "comment", "gemma-2-2b/clt-hp/20/1234", "hm"],
        ],
        "admin": [
            ["labels", "status", "1", "accepted"],
            ["labels", "settings", "votes_to_accept", "4"],
            ["users", "set-role", "vic", "viewer"],
            ["users", "add", "zed", "--role", "viewer", "--password-stdin"],
            ["users", "remove", "zed"],
            ["labels", "audit"],
        ],
    }
    rank = {"viewer": 0, "labeller": 1, "admin": 2}
    kb = KB.open(Config.load(env=cli_env))
    for needed, commands in writes.items():
        for args in commands:
            for who in ("vic", "lin", "ada"):
                version = str(api.label(kb, 1)["version"])
                result = _cli(cli_env, *[a.replace("{version}", version) for a in args], "--as", who, password=PASSWORDS[who], stdin="zed-secret-pw\n")
                role = {"vic": "viewer", "lin": "labeller", "ada": "admin"}[who]
                if rank[role] >= rank[needed]:
                    assert result.exit_code == 0, (args, who, result.output)
                else:
                    assert result.exit_code == 2, (args, who, result.output)
                    assert f"needs the {needed} role" in result.stderr
    # without --as there is no writing once accounts exist
    result = _cli(cli_env, "labels", "vote", "1")
    assert result.exit_code == 2 and "--as NAME" in result.stderr
    result = _cli(cli_env, "labels", "vote", "1", "--as", "lin", password="wrong-password")
    assert result.exit_code == 2 and "wrong user name or password" in result.stderr
    # an edit on an old base version: status 3 and the other text
    result = _cli(cli_env, "labels", "edit", "1", "mine", "--base-version", "1", "--as", "lin", password=PASSWORDS["lin"])
    assert result.exit_code == 3 and result.stdout.strip() == "Texas" and "conflict" in result.stderr
    shown = json.loads(_cli(cli_env, "labels", "show", "gemma-2-2b/clt-hp/20/1234", "--json", "--as", "vic", password=PASSWORDS["vic"]).stdout)
    assert shown["labels"][0]["status"] == "accepted" and len(shown["labels"][0]["history"]) == 5  # two edits, two reverts
    kb.close()
    # passwords never in output, logs, the audit log or the database (but their argon2 hash)
    result = _cli({**cli_env, "CIRCUITKB_PASSWORD": "pw-in-env-123"}, "config")
    everything = result.output + caplog.text
    with KB.open(Config.load(env=cli_env)) as kb:
        with kb.engine.connect() as conn:
            everything += json.dumps([list(map(str, r)) for r in conn.execute(select(audit_log)).all()])
            hashes = conn.execute(select(users.c.password_hash)).scalars().all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    for secret in [*PASSWORDS.values(), "zed-secret-pw", "pw-in-env-123"]:
        assert secret not in everything
        assert all(secret not in h for h in hashes)


@pytest.mark.slow
def test_cli_export_import_and_viewer(cli_env: dict[str, str], tmp_path: Path, kb_env: Callable[..., dict[str, str]]) -> None:
    assert _cli(cli_env, "ingest", str(real_graph("01"))).exit_code == 0
    assert _cli(cli_env, "labels", "add", "gemma-2-2b/gemmascope-transcoder-16k/23/8683", "say big", "--confidence", "0.7").exit_code == 0
    out = tmp_path / "l.jsonl"
    result = _cli(cli_env, "labels", "export", "-o", str(out), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["records"] == 2  # the header and the label (the file's view is made on first read)
    other = {**cli_env, "CIRCUITKB_HOME": str(tmp_path / "other")}
    first = json.loads(_cli(other, "labels", "import", str(out), "--json").stdout)
    second = json.loads(_cli(other, "labels", "import", str(out), "--json").stdout)
    assert first["labels_added"] == 1 and second["labels_added"] == 0 and second["versions_added"] == 0
    result = _cli(cli_env, "labels", "viewer", "gemma-small-big-en", "-o", str(tmp_path / "v.json"))
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "v.json").read_text())
    assert {n["node_id"]: n["clerp"] for n in doc["nodes"]}["23_8683_8"] == "say big"
    listed = json.loads(_cli(cli_env, "labels", "subgraphs", "gemma-small-big-en", "--json").stdout)
    assert [s["name"] for s in listed] == [api.FILE_VIEW]


@pytest.mark.parametrize("sql", SQLS)
def test_migration_gives_existing_labels_a_uuid_and_a_first_version(sql: str, kb_env: Callable[..., dict[str, str]]) -> None:
    from sqlalchemy import text

    from kb.sqldb import migrate

    engine = engine_at_revision(kb_env(sql, "embedded"), "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO features (id, transcoder_set, layer, \"index\") VALUES (1, 'x/y', 2, 3)"))
        for i, words in enumerate(("Texas", "Lone Star"), 1):
            conn.execute(
                text("INSERT INTO labels (id, feature_id, author, text, created_at, updated_at) VALUES (:i, 1, 'ann', :t, :now, :now)"),
                {"i": i, "t": words, "now": accounts.now()},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(labels.c.id, labels.c.uuid, labels.c.version, labels.c.status).order_by(labels.c.id)).all()
        versions = conn.execute(select(label_versions.c.label_id, label_versions.c.version, label_versions.c.text, label_versions.c.editor)).all()
    engine.dispose()
    assert [(r.version, r.status) for r in rows] == [(1, "proposed"), (1, "proposed")]
    assert len({r.uuid for r in rows}) == 2 and all(len(r.uuid) == 36 for r in rows)
    assert sorted(versions) == [(1, 1, "Texas", "ann"), (2, 1, "Lone Star", "ann")]
