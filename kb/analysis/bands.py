"""The spread of the cross-language baseline, layer by layer, to draw as a band around its mean."""

from __future__ import annotations

import pandas as pd

from kb.analysis.languages import LanguageOverlap
from kb.errors import CircuitKBError

BAND_COLUMNS = ("family", "lang_a", "lang_b", "layer", "low", "high", "n_pairs")


def baseline_band(overlap: LanguageOverlap, low: float = 0.1, high: float = 0.9) -> pd.DataFrame:
    """Per (family, language pair, layer): the ``low`` and ``high`` quantiles of the IoU of the
    baseline's pairs of unrelated prompts (BAND_COLUMNS); NaN where no pair had features."""
    if not 0.0 <= low <= high <= 1.0:
        raise CircuitKBError(f"quantiles must satisfy 0 <= low <= high <= 1, got {low}, {high}")
    pairs = overlap.pairs
    base = pairs[pairs["kind"] == "baseline"] if len(pairs) else pairs
    if base.empty:
        return pd.DataFrame(columns=list(BAND_COLUMNS))
    grouped = base.groupby(["family", "lang_a", "lang_b", "layer"])["iou"]
    band = pd.DataFrame({"low": grouped.quantile(low), "high": grouped.quantile(high), "n_pairs": grouped.count()}).reset_index()
    return band[list(BAND_COLUMNS)]
