"""Questions asked of many graphs at once: shared features, where a feature is used, languages.

Every function takes a :class:`kb.core.Core` and a Selection and returns data frames (in small result types with
``as_dict`` for JSON); the stores do the grouping and counting.
"""

from kb.analysis.languages import LanguageOverlap, language_overlap
from kb.analysis.shared import FamilyCore, SharedFeatures, family_core, shared_features
from kb.analysis.usage import FeatureUsage, used_by

__all__ = [
    "FamilyCore",
    "FeatureUsage",
    "LanguageOverlap",
    "SharedFeatures",
    "family_core",
    "language_overlap",
    "shared_features",
    "used_by",
]
