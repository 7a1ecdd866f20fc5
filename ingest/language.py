"""Offline language detection of prompts (lingua, restricted to common languages)."""

from __future__ import annotations

import re
from functools import lru_cache

# special tokens that open prompts (<bos>, <|begin_of_text|>, ...) say nothing of the language
_SPECIAL = re.compile(r"<\|?[^<>\s]{1,40}\|?>")

_LANGUAGES = (
    "ENGLISH", "FRENCH", "GERMAN", "SPANISH", "ITALIAN", "PORTUGUESE", "DUTCH", "RUSSIAN",
    "CHINESE", "JAPANESE", "KOREAN", "ARABIC", "HINDI", "TURKISH", "POLISH", "SWEDISH",
    "VIETNAMESE", "INDONESIAN", "UKRAINIAN", "GREEK", "HEBREW", "THAI", "PERSIAN", "CZECH",
)


@lru_cache(maxsize=1)
def _detector():  # noqa: ANN202
    from lingua import Language, LanguageDetectorBuilder

    langs = [getattr(Language, name) for name in _LANGUAGES]
    # low-accuracy mode loads in a fraction of a second and tells these languages apart on prompts
    return LanguageDetectorBuilder.from_languages(*langs).with_low_accuracy_mode().build()


def strip_special(prompt: str) -> str:
    return _SPECIAL.sub(" ", prompt).strip()


def detect_language(prompt: str) -> str | None:
    """ISO 639-1 code of the prompt's language, or None when the text says too little."""
    text = strip_special(prompt)
    if sum(ch.isalpha() for ch in text) < 2:
        return None
    lang = _detector().detect_language_of(text)
    if lang is None:
        return None
    return lang.iso_code_639_1.name.lower()
