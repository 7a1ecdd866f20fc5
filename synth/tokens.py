"""gemma-like tokens: how a prompt is split, and a stable vocabulary id for each token."""

from __future__ import annotations

import re
import zlib

VOCAB_SIZE = 256_000
BOS = "<bos>"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
_TOKEN_RE = re.compile(
    rf"[{_CJK}]{{1,2}}"             # kana / kanji, one or two to a token
    rf"| ?(?:(?![{_CJK}])[^\W\d_])+"  # a word with its leading space
    r"| ?\d"                        # gemma splits numbers into digits
    r"| ?[^\w\s]"                   # punctuation with its leading space
    r"|\s+")

# Real gemma-2-2b ids read from the embedding and logit nodes of the real files.
_KNOWN_TOKEN_IDS = {
    BOS: 2, "The": 651, " opposite": 13388, " of": 576, ' "': 664, "small": 10498, '"': 235281,
    " is": 603, "large": 13210, "big": 7773, "great": 18878, "huge": 85546, "not": 1665,
    "little": 20850, "Big": 8267, "Le": 2025, " contraire": 63265, " de": 581, "petit": 64986,
    " est": 1455, "grand": 21996, "gros": 80667, "Grand": 23563, "grande": 73273,
    " saying": 6508, " goes": 6128, ":": 235292, " Big": 7517, " to": 577, " small": 2301,
    " as": 685, " tall": 13754, " short": 3309, " low": 3178, " wide": 5396, " ": 235248,
    " deep": 5271, " high": 1536, "Fact": 18143, " The": 714, " capital": 6037, " the": 573,
    " state": 2329, " containing": 10751, " Dallas": 26865, " Austin": 22605, " not": 780,
    " Texas": 9447, " Fort": 9778, " Houston": 22898, " Oklahoma": 28239, " San": 3250,
    " a": 476, " Oakland": 49024, " Sacramento": 43939, " California": 6092, " Berkeley": 28789,
    " Albany": 48794, " Richmond": 32941, " Michael": 7939, " Jordan": 18853, " plays": 12258,
    " sport": 7888, " basketball": 21474, " golf": 13162, " baseball": 23052, " his": 926,
    "Nobel": 193944, " comes": 4549, " from": 774, " country": 3170, " Sweden": 24318,
    " Norway": 31130, " Denmark": 32923, " Finland": 35441, " France": 6081, " Italy": 11474,
    " Germany": 9066,
}


def tokenize(text: str) -> list[str]:
    """Split a prompt into gemma-like tokens (leading spaces kept, digits split, CJK pairs)."""
    return _TOKEN_RE.findall(text)


def token_id(token: str) -> int:
    """A stable vocabulary id: the real gemma id for tokens seen in the real files, else a hash."""
    known = _KNOWN_TOKEN_IDS.get(token)
    if known is not None:
        return known
    return 1000 + zlib.crc32(token.encode("utf-8")) % (VOCAB_SIZE - 1000)
