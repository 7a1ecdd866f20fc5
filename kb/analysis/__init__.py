"""Questions asked of many graphs at once: shared features, where a feature is used, languages.

Every function takes a :class:`kb.core.Core` and a Selection and returns data frames (in small result types with
``as_dict`` for JSON); the stores do the grouping and counting.
"""

from kb.analysis.languages import LanguageOverlap, language_overlap
from kb.analysis.qk import QKDrivers, qk_drivers
from kb.analysis.shared import FamilyCore, SharedFeatures, family_core, shared_features
from kb.analysis.usage import FeatureUsage, used_by

__all__ = [
    "FamilyCore",
    "FeatureUsage",
    "LanguageOverlap",
    "QKDrivers",
    "SharedFeatures",
    "family_core",
    "language_overlap",
    "qk_drivers",
    "shared_features",
    "used_by",
]
