"""The scenes the app draws (app.drawing): what each item shows, what a click on it picks, and
that every scene is JSON the browser can read (no NaN), whatever the data lacks."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.drawing import MIN_WIDTH, POSITIVE, SELECTED_LINK, SLOT, _viridis, counts_scene, nice_ticks, graph_scene, overlap_scene, similarity_scene

HOSTILE = "<img src=x onerror=alert(1)>"


def strict(scene: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(scene, allow_nan=False))


def small_view() -> Any:
    nodes = pd.DataFrame({
        "idx": [0, 1, 2, 3],
        "node_id": ["E_1_0", "3_7_1", "5_9_1", "L_42_1"],
        "kind": ["embedding", "feature", "feature", "logit"],
        "layer": ["E", "3", "5", "L"],
        "layer_num": [-1, 3, 5, 7],
        "ctx_idx": [0, 1, 1, 1],
        "influence": [0.9, 0.5, 0.4, np.nan],
        "activation": [np.nan, 2.5, 1.0, np.nan],
        "token_prob": [np.nan, np.nan, np.nan, 0.7],
        "pinned": [False, True, False, False],
        "supernode": [None, "capital", "capital", None],
        "feature": [None, "set/3/7", "set/5/9", None],
        "clerp": [None, HOSTILE, "", None],
        "labels": [None, "", "says capital", None],
    })  # fmt: skip
    links = pd.DataFrame({"src": [0, 1, 2, 1], "tgt": [1, 2, 3, 3], "weight": [1.5, -0.4, 2.0, 0.01], "share": [0.6, -0.3, 0.9, 0.004]})
    graph = SimpleNamespace(prompt_tokens=["<bos>", "Paris"])
    return SimpleNamespace(nodes=nodes, links=links, supernodes=[("capital", ["3_7_1", "5_9_1"])], graph=graph, n_layers=6)


def test_a_graph_scene_draws_every_node_and_link_with_its_pick_and_tip() -> None:
    scene = strict(graph_scene(small_view(), selected="3_7_1"))
    markers = [layer for layer in scene["layers"] if layer["kind"] == "markers"]
    assert {n for layer in markers for n in layer["names"]} == {"E_1_0", "3_7_1", "5_9_1", "L_42_1"}
    assert [p["node"] for layer in markers for p in layer["picks"]] == [n for layer in markers for n in layer["names"]]
    feature = next(layer for layer in markers if layer["name"] == "nodes: feature")
    assert feature["size"][feature["names"].index("3_7_1")] == 18  # the selected node is drawn large
    tip = feature["tips"][feature["names"].index("3_7_1")]
    assert HOSTILE in tip and "activation 2.5" in tip  # as written: the browser sets it as text
    lines = [layer for layer in scene["layers"] if layer["kind"] == "lines"]
    picked = sorted(tuple(p["link"]) for layer in lines for p in layer["picks"])
    assert picked == sorted([("E_1_0", "3_7_1"), ("3_7_1", "5_9_1"), ("5_9_1", "L_42_1"), ("3_7_1", "L_42_1")])
    # links of the selected node come last, drawn over the rest, and the sign is the colour
    assert all(layer["opacity"] == 0.9 for layer in lines[-2:]) and {layer["colour"] for layer in lines} >= {POSITIVE}
    boxes = next(layer for layer in scene["layers"] if layer["kind"] == "boxes")
    assert boxes["labels"] == ["capital"] and len(boxes["boxes"]) == 1
    assert [label for _, label in scene["x"]["ticks"]] == ["<bos>", "Paris"]
    assert scene["y"]["ticks"][0][1] == "Emb" and scene["y"]["ticks"][-1][1] == "Logit"


def crowded_view() -> Any:
    """Three positions: one node at each of the first two, twelve features in one layer at the last
    (as a prompt's last token usually holds most of its circuit), and a logit with no feature (NaN)."""
    n = 12
    nodes = pd.DataFrame({
        "idx": list(range(n + 3)),
        "node_id": ["E_1_0", "E_2_1", *[f"4_{i}_2" for i in range(n)], "L_9_2"],
        "kind": ["embedding", "embedding", *["feature"] * n, "logit"],
        "layer": ["E", "E", *["4"] * n, "L"],
        "layer_num": [-1, -1, *[4] * n, 7],
        "ctx_idx": [0, 1, *[2] * n, 2],
        "influence": [0.9, 0.8, *np.linspace(0.1, 0.6, n), np.nan],
        "activation": [np.nan, np.nan, *[1.0] * n, np.nan],
        "token_prob": [np.nan] * (n + 2) + [0.5],
        "pinned": [False] * (n + 3),
        "supernode": [None] * (n + 3),
        "feature": [np.nan, np.nan, *[f"set/4/{i}" for i in range(n)], np.nan],
        "clerp": [np.nan] * (n + 3),
        "labels": [np.nan] * (n + 3),
    })  # fmt: skip
    links = pd.DataFrame({"src": [0], "tgt": [2], "weight": [1.0], "share": [1.0]})
    return SimpleNamespace(nodes=nodes, links=links, supernodes=[], graph=SimpleNamespace(prompt_tokens=["<bos>", "a", "b"]), n_layers=6)


def test_a_crowded_position_is_widened_so_its_nodes_do_not_overlap_and_tips_say_nothing_missing() -> None:
    scene = strict(graph_scene(crowded_view()))
    x_of = {name: x for layer in scene["layers"] if layer["kind"] == "markers" for name, x in zip(layer["names"], layer["x"])}
    crowded = sorted(x_of[f"4_{i}_2"] for i in range(12))
    assert np.allclose(np.diff(crowded), SLOT)  # evenly spaced, one slot apart
    ticks = [x for x, _ in scene["x"]["ticks"]]
    assert ticks[1] - ticks[0] == pytest.approx(MIN_WIDTH)  # the quiet positions keep the least width
    # the crowded column is 12 slots wide and its nodes stay inside it, centred on its tick
    assert crowded[0] > ticks[1] + MIN_WIDTH / 2 and abs((crowded[0] + crowded[-1]) / 2 - ticks[2]) < 1e-9
    assert scene["x"]["range"][0] < x_of["E_1_0"] and crowded[-1] < scene["x"]["range"][1]
    assert x_of["4_0_2"] == ticks[2] or abs(x_of["4_0_2"] - ticks[2]) <= SLOT  # the most influential in the middle
    tips = [t for layer in scene["layers"] if layer["kind"] == "markers" for t in layer["tips"]]
    assert not any("nan" in tip.lower() for tip in tips), tips


def test_the_selected_link_is_drawn_over_everything_and_the_saved_view_keeps_pinned_nodes() -> None:
    scene = strict(graph_scene(small_view(), selected_link=("5_9_1", "L_42_1")))
    top = [layer for layer in scene["layers"] if layer["kind"] == "lines"][-1]
    assert top["colour"] == SELECTED_LINK and [p["link"] for p in top["picks"]] == [["5_9_1", "L_42_1"]]
    saved = strict(graph_scene(small_view(), only_saved=True))
    drawn = {n for layer in saved["layers"] if layer["kind"] == "markers" for n in layer["names"]}
    assert drawn == {"3_7_1", "5_9_1", "L_42_1"}  # pinned, supernode members and logits


def test_compare_marks_colour_the_features_and_say_so_in_the_legend() -> None:
    scene = strict(graph_scene(small_view(), marks={"set/3/7": "shared", "set/5/9": "only here"}))
    feature = next(layer for layer in scene["layers"] if layer["name"] == "nodes: feature")
    assert len(set(feature["colour"])) == 2
    names = {entry["name"] for entry in scene["legend"]}
    assert {"feature, shared", "feature, only here"} <= names and "feature" not in names  # no grey feature is drawn


def test_a_similarity_scene_is_a_cell_per_pair_that_opens_it() -> None:
    slugs = ["a", "b", "c"]
    matrix = pd.DataFrame([[1.0, 0.2, np.nan], [0.2, 1.0, 0.5], [np.nan, 0.5, 1.0]], index=slugs, columns=slugs)
    scene = strict(similarity_scene(matrix, ["c", "a", "b"]))
    cells = scene["layers"][0]
    assert len(cells["picks"]) == 9 and cells["picks"][1] == {"pair": ["c", "a"]}
    assert cells["colours"][0] == _viridis(1.0) == "#fde725" and _viridis(0.0) == "#440154"
    assert _viridis(float("nan")) == "#440154" and _viridis(7) == "#fde725"


def test_an_overlap_scene_without_a_baseline_draws_the_curve_alone() -> None:
    curves = pd.DataFrame({"family": "f", "lang_a": "en", "lang_b": "fr", "layer": [0, 1, 2], "iou": [0.2, np.nan, 0.4], "baseline_iou": [np.nan] * 3})
    band = pd.DataFrame(columns=["family", "lang_a", "lang_b", "layer", "low", "high"])
    scene = strict(overlap_scene(curves, band))
    assert [layer["name"] for layer in scene["layers"]] == ["f: en-fr same prompt"]
    assert scene["layers"][0]["x"] == [0, 2]  # a layer without a value is left out, not drawn as NaN
    assert [entry["name"] for entry in scene["legend"]] == ["f: en-fr same prompt"]
    with_baseline = curves.assign(baseline_iou=[0.1, 0.1, 0.1])
    band = pd.DataFrame({"family": "f", "lang_a": "en", "lang_b": "fr", "layer": [0, 1, 2], "low": [0.05] * 3, "high": [0.2] * 3})
    kinds = [layer["kind"] for layer in strict(overlap_scene(with_baseline, band))["layers"]]
    assert kinds == ["band", "polyline", "polyline"]
    counted = strict(overlap_scene(curves.assign(features_a=[1.0, 0.0, 2.5], features_b=[1.0, 0.0, 2.0], common=[1.0, 0.0, 1.5]), band))
    tips = counted["layers"][-1]["tips"]
    assert tips[0].endswith("features: 1 en, 1 fr, 1 in both") and tips[1].endswith("features: 2.5 en, 2 fr, 1.5 in both")


def test_a_counts_scene_stacks_its_parts_per_layer() -> None:
    counts = pd.DataFrame({"n_shared": [3, 0, 5], "n_specific": [1, 2, np.nan]}, index=[0, 1, 2])
    scene = strict(counts_scene(counts, {"n_shared": ("shared", "#111111"), "n_specific": ("specific", "#222222")}))
    shared, specific = scene["layers"]
    assert shared["low"] == [0, 0, 0] and shared["high"] == [3, 0, 5]
    assert specific["low"] == [3, 0, 5] and specific["high"] == [4, 2, 5]
    assert specific["tips"][1] == "layer 1: 2 specific" and [e["name"] for e in scene["legend"]] == ["shared", "specific"]


def test_ticks_are_round_numbers() -> None:
    assert nice_ticks(135, whole=True) == [0, 50, 100]
    assert nice_ticks(1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.43) == [0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(3, whole=True) == [0, 1, 2, 3] and nice_ticks(0) == [0.0]
