"""The feature vocabulary of a corpus seed: named concepts, features bound to a token's text, and a
Zipf-distributed background per layer. The same seed gives the same features in every process."""

from __future__ import annotations

from functools import lru_cache

from synth.fileformat import D_TRANSCODER, MIN_FEATURE_INDEX
from synth.sampling import seeded

# concept kind -> (first layer, last layer, features per layer, fires at "anchor" or "last")
CONCEPT_KINDS: dict[str, tuple[int, int, int, str]] = {
    "flag": (3, 10, 1, "anchor"),      # known entity, unknown name, harmful request
    "entity": (4, 11, 1, "anchor"),    # Dallas, Michael Jordan
    "word": (5, 15, 1, "anchor"),      # the meaning of a content word, any language
    "topic": (4, 14, 1, "anchor"),     # opposite, capital, sport, addition
    "region": (12, 17, 1, "last"),     # the intermediate step of a two-hop answer
    "task": (13, 21, 1, "last"),       # say a capital, say an antonym
    "add": (9, 16, 1, "last"),         # addition lookup and sum features
    "refuse": (14, 22, 1, "last"),     # can't answer, refusal
    "say": (18, 24, 1, "last"),        # say "Austin"
    "language": (1, 24, 1, "any"),     # French text, Chinese text
}
_BACKGROUND_POOL = 5000
_BACKGROUND_ZIPF = 1.4
# Layer -> how many features a token's text binds at that layer, and the share of the layer's
# features drawn from token features rather than the background.
_TOKEN_FEATURES = {0: 12, 1: 5, 2: 3, 3: 2}
TOKEN_SHARE = {0: 0.5, 1: 0.3, 2: 0.3, 3: 0.2}
_GENERIC_LABELS = (
    "comma", "code and math symbols", "Formal writing", "species", "programming code",
    "Technical/Scientific writing", "numbers", "dates and years", "quotation marks",
    "list items", "capitalized words", "legal text", "geography", "chemistry", "HTML tags",
    "plural nouns", "past tense verbs", "proper names", "end of sentence", "questions",
    "measurements", "food", "music", "emotions", "time expressions", "negation", "comparatives",
    "prepositions", "Code/licensing snippets", "to be", "England locations", "sports",
    "countries", "articles", "first token of a document", "citations", "medicine", "finance",
)


def concept_label(name: str) -> str:
    """A human label for a concept name: 'say:Austin' -> 'say "Austin"', 'entity:Dallas' -> 'Dallas'."""
    kind, _, value = name.partition(":")
    if kind == "say":
        return f'say "{value}"'
    if kind == "language":
        return f"{value} text"
    if kind == "add":
        return f"addition {value}"
    return value


class Universe:
    """The features of one corpus seed: deterministic, cached, the same in every process."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._concepts: dict[str, tuple[tuple[int, int], ...]] = {}
        self._tokens: dict[str, dict[int, tuple[int, ...]]] = {}
        self._background: dict[int, tuple[list[int], list[float]]] = {}

    def concept(self, name: str) -> tuple[tuple[int, int], ...]:
        """The (layer, index) features of a concept: a few per layer across its band."""
        found = self._concepts.get(name)
        if found is None:
            lo, hi, per_layer, _ = CONCEPT_KINDS[name.partition(":")[0]]
            rng = seeded(self.seed, "concept", name)
            layers = [l for l in range(lo, hi + 1) if rng.random() < 0.75] or [rng.randint(lo, hi)]
            found = tuple((l, rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER))
                          for l in layers for _ in range(per_layer))
            self._concepts[name] = found
        return found

    def token_features(self, token: str) -> dict[int, tuple[int, ...]]:
        found = self._tokens.get(token)
        if found is None:
            rng = seeded(self.seed, "token", token)
            found = {l: tuple(rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER) for _ in range(n))
                     for l, n in _TOKEN_FEATURES.items()}
            self._tokens[token] = found
        return found

    def background(self, layer: int) -> tuple[list[int], list[float]]:
        """A Zipf-weighted pool of a layer's features: (indices, cumulative weights)."""
        found = self._background.get(layer)
        if found is None:
            rng = seeded(self.seed, "background", layer)
            pool = [rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER) for _ in range(_BACKGROUND_POOL)]
            cum, total = [], 0.0
            for rank in range(1, _BACKGROUND_POOL + 1):
                total += rank ** -_BACKGROUND_ZIPF
                cum.append(total)
            found = (pool, cum)
            self._background[layer] = found
        return found

    @staticmethod
    def generic_label(layer: int, index: int) -> str:
        return _GENERIC_LABELS[(index * 2654435761 + layer) % len(_GENERIC_LABELS)]


@lru_cache(maxsize=8)
def universe_for(seed: int) -> Universe:
    """The feature vocabulary of a corpus seed, cached per process."""
    return Universe(seed)
