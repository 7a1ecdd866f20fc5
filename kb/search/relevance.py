"""The relevance set of feature search (``tests/relevance.yaml``), measured per language.

The file lists concepts a researcher would search for, each asked in English (``query``) and,
under ``asked``, as a speaker of another language would type it, with the features expected
in the first ten hits. :func:`measure` gives recall@10 and MRR per language; the tests hold
floors on them and ``bench/search.py --stage relevance`` reports them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from ingest.records import FeatureKey
from kb.errors import CircuitKBError

ENGLISH = "en"


@dataclass(frozen=True)
class Case:
    """One query in one language, and the features a person asking it wants to see."""

    language: str
    query: str
    expect: frozenset[FeatureKey]
    concept: str  # the English query, shared by every language's case of the concept


@dataclass(frozen=True)
class RelevanceSet:
    cases: tuple[Case, ...]
    labels: tuple[tuple[FeatureKey, str, str], ...]  # (feature, text, author) to add before measuring

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(c.language for c in self.cases))

    def in_language(self, language: str) -> list[Case]:
        return [c for c in self.cases if c.language == language]

    def halves(self) -> tuple["RelevanceSet", "RelevanceSet"]:
        """The concepts in file order split alternately (1st, 3rd, ... and 2nd, 4th, ...), each with
        all its languages: tune on one half, check that the gain holds on the other."""
        concepts = list(dict.fromkeys(c.concept for c in self.cases))
        parity = {concept: i % 2 for i, concept in enumerate(concepts)}
        first, second = (tuple(c for c in self.cases if parity[c.concept] == half) for half in (0, 1))
        return RelevanceSet(first, self.labels), RelevanceSet(second, self.labels)


@dataclass(frozen=True)
class Score:
    recall_at_10: float
    mrr: float
    per_case: tuple[tuple[Case, float, float], ...]  # (case, recall@10, reciprocal rank)


def load(path: Path) -> RelevanceSet:
    """Read a relevance file (see tests/relevance.yaml for the format)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        sets: dict[str, str] = data["sets"]

        def feature(name: str) -> FeatureKey:
            alias, layer, index = name.split("/")
            return FeatureKey(sets[alias], int(layer.lstrip("L")), int(index))

        cases: list[Case] = []
        for item in data["queries"]:
            expect = frozenset(feature(n) for n in item["expect"])
            cases.append(Case(ENGLISH, item["query"], expect, item["query"]))
            for language, query in (item.get("asked") or {}).items():
                cases.append(Case(str(language), str(query), expect, item["query"]))
        labels = tuple((feature(i["feature"]), str(i["text"]), str(i["author"])) for i in data.get("labels") or ())
    except (OSError, yaml.YAMLError, KeyError, ValueError, TypeError) as exc:
        raise CircuitKBError(f"{path}: not a readable relevance set ({exc.__class__.__name__}: {exc})") from exc
    return RelevanceSet(tuple(cases), labels)


def score(cases: Sequence[Case], ranked: Callable[[str], Sequence[FeatureKey]]) -> Score:
    """recall@10 and MRR of ``ranked(query)`` (features best first) over ``cases``."""
    rows = []
    for case in cases:
        found = list(ranked(case.query))[:10]
        recall = len(case.expect & set(found)) / min(len(case.expect), 10)
        rank = next((i for i, key in enumerate(found, 1) if key in case.expect), None)
        rows.append((case, recall, 1.0 / rank if rank else 0.0))
    if not rows:
        return Score(0.0, 0.0, ())
    return Score(statistics.mean(r for _, r, _ in rows), statistics.mean(m for _, _, m in rows), tuple(rows))


def measure(rel: RelevanceSet, ranked: Callable[[str], Sequence[FeatureKey]]) -> dict[str, Score]:
    """:func:`score` for each language of the set, English first."""
    return {language: score(rel.in_language(language), ranked) for language in rel.languages}


def as_report(scores: dict[str, Score]) -> dict[str, Any]:
    """Per-language recall@10 and MRR, rounded, for a JSON report."""
    return {
        language: {"queries": len(s.per_case), "recall_at_10": round(s.recall_at_10, 3), "mrr": round(s.mrr, 3)}
        for language, s in scores.items()
    }
