"""The prompt catalogue: meanings (antonyms, two-hop capitals, sports, additions, ...) rendered in
languages, each with the concepts the synthetic model "thinks" about and the links it plants."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from synth.sampling import seeded

SUPPORTED_LANGUAGES = ("en", "fr", "zh", "de", "es", "ja")

@dataclass(frozen=True)
class PromptSpec:
    """One prompt and what the synthetic model "thinks" about it.

    ``concepts`` are (concept name, word of the text it fires on, or "" for the last token).
    ``edges`` are planted links (source concept, target concept or "@answer", sign).
    ``two_hop`` is (entity concept, intermediate concept) when the prompt is a two-hop question.
    """

    text: str
    language: str
    answer: str
    alternatives: tuple[str, ...]
    meaning: str
    concepts: tuple[tuple[str, str], ...]
    edges: tuple[tuple[str, str, int], ...] = ()
    two_hop: tuple[str, str] | None = None
    tags: tuple[str, ...] = ()


_ANTONYM_TEMPLATES = {
    "en": 'The opposite of "{w}" is "',
    "fr": 'Le contraire de "{w}" est "',
    "de": 'Das Gegenteil von "{w}" ist "',
    "es": 'Lo contrario de "{w}" es "',
    "zh": '"{w}"的反义词是"',
    "ja": "「{w}」の反対は「",
}
# English key -> {language: (word, antonym)}
_ANTONYMS: dict[str, dict[str, tuple[str, str]]] = {
    "small": {"en": ("small", "large"), "fr": ("petit", "grand"), "de": ("klein", "groß"),
              "es": ("pequeño", "grande"), "zh": ("小", "大"), "ja": ("小さい", "大きい")},
    "hot": {"en": ("hot", "cold"), "fr": ("chaud", "froid"), "de": ("heiß", "kalt"),
            "es": ("caliente", "frío"), "zh": ("热", "冷"), "ja": ("熱い", "冷たい")},
    "fast": {"en": ("fast", "slow"), "fr": ("rapide", "lent"), "de": ("schnell", "langsam"),
             "es": ("rápido", "lento"), "zh": ("快", "慢"), "ja": ("速い", "遅い")},
    "happy": {"en": ("happy", "sad"), "fr": ("heureux", "triste"), "de": ("glücklich", "traurig"),
              "es": ("feliz", "triste"), "zh": ("快乐", "悲伤"), "ja": ("嬉しい", "悲しい")},
    "tall": {"en": ("tall", "short"), "fr": ("grand", "petit"), "de": ("groß", "klein"),
             "es": ("alto", "bajo"), "zh": ("高", "矮"), "ja": ("高い", "低い")},
    "old": {"en": ("old", "new"), "fr": ("vieux", "neuf"), "de": ("alt", "neu"),
            "es": ("viejo", "nuevo"), "zh": ("旧", "新"), "ja": ("古い", "新しい")},
    "light": {"en": ("light", "dark"), "fr": ("clair", "sombre"), "de": ("hell", "dunkel"),
              "es": ("claro", "oscuro"), "zh": ("明", "暗"), "ja": ("明るい", "暗い")},
    "rich": {"en": ("rich", "poor"), "fr": ("riche", "pauvre"), "de": ("reich", "arm"),
             "es": ("rico", "pobre"), "zh": ("富", "穷"), "ja": ("豊か", "貧しい")},
    "strong": {"en": ("strong", "weak"), "fr": ("fort", "faible"), "de": ("stark", "schwach"),
               "es": ("fuerte", "débil"), "zh": ("强", "弱"), "ja": ("強い", "弱い")},
    "many": {"en": ("many", "few"), "fr": ("beaucoup", "peu"), "de": ("viel", "wenig"),
             "es": ("mucho", "poco"), "zh": ("多", "少"), "ja": ("多い", "少ない")},
    "early": {"en": ("early", "late"), "fr": ("tôt", "tard"), "de": ("früh", "spät"),
              "es": ("temprano", "tarde"), "zh": ("早", "晚"), "ja": ("早い", "遅い")},
    "up": {"en": ("up", "down"), "fr": ("haut", "bas"), "de": ("oben", "unten"),
           "es": ("arriba", "abajo"), "zh": ("上", "下"), "ja": ("上", "下")},
    "good": {"en": ("good", "bad"), "fr": ("bon", "mauvais"), "de": ("gut", "schlecht"),
             "es": ("bueno", "malo"), "zh": ("好", "坏"), "ja": ("良い", "悪い")},
    "open": {"en": ("open", "closed"), "fr": ("ouvert", "fermé"), "de": ("offen", "geschlossen"),
             "es": ("abierto", "cerrado"), "zh": ("开", "关"), "ja": ("開く", "閉じる")},
}

_CAPITAL_TEMPLATES = {
    ("state", "en"): "Fact: The capital of the state containing {city} is",
    ("state", "fr"): "Fait : la capitale de l'État qui contient {city} est",
    ("state", "de"): "Fakt: Die Hauptstadt des Bundesstaates, in dem {city} liegt, ist",
    ("state", "es"): "Dato: la capital del estado que contiene {city} es",
    ("state", "zh"): "事实：包含{city}的州的首府是",
    ("state", "ja"): "事実：{city}がある州の州都は",
    ("country", "en"): "Fact: The capital of the country containing {city} is",
    ("country", "fr"): "Fait : la capitale du pays qui contient {city} est",
    ("country", "de"): "Fakt: Die Hauptstadt des Landes, in dem {city} liegt, ist",
    ("country", "es"): "Dato: la capital del país que contiene {city} es",
    ("country", "zh"): "事实：包含{city}的国家的首都是",
    ("country", "ja"): "事実：{city}がある国の首都は",
}
# (region kind, English (city, region, capital), translations where they differ from English)
_CAPITALS: list[tuple[str, tuple[str, str, str], dict[str, tuple[str, str, str]]]] = [
    ("state", ("Dallas", "Texas", "Austin"),
     {"zh": ("达拉斯", "德克萨斯州", "奥斯汀"), "ja": ("ダラス", "テキサス州", "オースティン")}),
    ("state", ("Houston", "Texas", "Austin"),
     {"zh": ("休斯顿", "德克萨斯州", "奥斯汀"), "ja": ("ヒューストン", "テキサス州", "オースティン")}),
    ("state", ("Oakland", "California", "Sacramento"),
     {"fr": ("Oakland", "Californie", "Sacramento"), "de": ("Oakland", "Kalifornien", "Sacramento"),
      "zh": ("奥克兰", "加利福尼亚州", "萨克拉门托"), "ja": ("オークランド", "カリフォルニア州", "サクラメント")}),
    ("state", ("Miami", "Florida", "Tallahassee"),
     {"fr": ("Miami", "Floride", "Tallahassee"),
      "zh": ("迈阿密", "佛罗里达州", "塔拉哈西"), "ja": ("マイアミ", "フロリダ州", "タラハシー")}),
    ("state", ("Chicago", "Illinois", "Springfield"),
     {"zh": ("芝加哥", "伊利诺伊州", "斯普林菲尔德"), "ja": ("シカゴ", "イリノイ州", "スプリングフィールド")}),
    ("state", ("Seattle", "Washington", "Olympia"),
     {"zh": ("西雅图", "华盛顿州", "奥林匹亚"), "ja": ("シアトル", "ワシントン州", "オリンピア")}),
    ("state", ("Detroit", "Michigan", "Lansing"),
     {"zh": ("底特律", "密歇根州", "兰辛"), "ja": ("デトロイト", "ミシガン州", "ランシング")}),
    ("country", ("Lyon", "France", "Paris"),
     {"de": ("Lyon", "Frankreich", "Paris"), "es": ("Lyon", "Francia", "París"),
      "zh": ("里昂", "法国", "巴黎"), "ja": ("リヨン", "フランス", "パリ")}),
    ("country", ("Munich", "Germany", "Berlin"),
     {"fr": ("Munich", "Allemagne", "Berlin"), "de": ("München", "Deutschland", "Berlin"),
      "es": ("Múnich", "Alemania", "Berlín"), "zh": ("慕尼黑", "德国", "柏林"),
      "ja": ("ミュンヘン", "ドイツ", "ベルリン")}),
    ("country", ("Osaka", "Japan", "Tokyo"),
     {"fr": ("Osaka", "Japon", "Tokyo"), "de": ("Osaka", "Japan", "Tokio"),
      "es": ("Osaka", "Japón", "Tokio"), "zh": ("大阪", "日本", "东京"), "ja": ("大阪", "日本", "東京")}),
    ("country", ("Barcelona", "Spain", "Madrid"),
     {"fr": ("Barcelone", "Espagne", "Madrid"), "de": ("Barcelona", "Spanien", "Madrid"),
      "es": ("Barcelona", "España", "Madrid"), "zh": ("巴塞罗那", "西班牙", "马德里"),
      "ja": ("バルセロナ", "スペイン", "マドリード")}),
    ("country", ("Milan", "Italy", "Rome"),
     {"fr": ("Milan", "Italie", "Rome"), "de": ("Mailand", "Italien", "Rom"),
      "es": ("Milán", "Italia", "Roma"), "zh": ("米兰", "意大利", "罗马"), "ja": ("ミラノ", "イタリア", "ローマ")}),
    ("country", ("Toronto", "Canada", "Ottawa"),
     {"de": ("Toronto", "Kanada", "Ottawa"), "es": ("Toronto", "Canadá", "Ottawa"),
      "zh": ("多伦多", "加拿大", "渥太华"), "ja": ("トロント", "カナダ", "オタワ")}),
    ("country", ("Sydney", "Australia", "Canberra"),
     {"fr": ("Sydney", "Australie", "Canberra"), "de": ("Sydney", "Australien", "Canberra"),
      "es": ("Sídney", "Australia", "Canberra"), "zh": ("悉尼", "澳大利亚", "堪培拉"),
      "ja": ("シドニー", "オーストラリア", "キャンベラ")}),
    ("country", ("Shanghai", "China", "Beijing"),
     {"fr": ("Shanghai", "Chine", "Pékin"), "de": ("Shanghai", "China", "Peking"),
      "es": ("Shanghái", "China", "Pekín"), "zh": ("上海", "中国", "北京"), "ja": ("上海", "中国", "北京")}),
]

_SPORT_TEMPLATES = {
    "en": "Fact: {person} plays the sport of",
    "fr": "Fait : le sport pratiqué par {person} est le",
    "de": "Fakt: {person} spielt die Sportart",
    "es": "Dato: el deporte que practica {person} es el",
    "zh": "事实：{person}从事的运动是",
    "ja": "事実：{person}がするスポーツは",
}
_SPORTS = {
    "basketball": {"en": "basketball", "fr": "basket", "de": "Basketball", "es": "baloncesto",
                   "zh": "篮球", "ja": "バスケットボール"},
    "tennis": {"en": "tennis", "fr": "tennis", "de": "Tennis", "es": "tenis", "zh": "网球", "ja": "テニス"},
    "soccer": {"en": "soccer", "fr": "football", "de": "Fußball", "es": "fútbol", "zh": "足球", "ja": "サッカー"},
    "golf": {"en": "golf", "fr": "golf", "de": "Golf", "es": "golf", "zh": "高尔夫", "ja": "ゴルフ"},
    "hockey": {"en": "hockey", "fr": "hockey", "de": "Eishockey", "es": "hockey", "zh": "冰球",
               "ja": "アイスホッケー"},
    "baseball": {"en": "baseball", "fr": "baseball", "de": "Baseball", "es": "béisbol", "zh": "棒球",
                 "ja": "野球"},
}
# (name, sport, Chinese name, Japanese name)
_ATHLETES = [
    ("Michael Jordan", "basketball", "迈克尔·乔丹", "マイケル・ジョーダン"),
    ("Serena Williams", "tennis", "塞雷娜·威廉姆斯", "セリーナ・ウィリアムズ"),
    ("Lionel Messi", "soccer", "利昂内尔·梅西", "リオネル・メッシ"),
    ("Tiger Woods", "golf", "泰格·伍兹", "タイガー・ウッズ"),
    ("Roger Federer", "tennis", "罗杰·费德勒", "ロジャー・フェデラー"),
    ("Wayne Gretzky", "hockey", "韦恩·格雷茨基", "ウェイン・グレツキー"),
    ("Babe Ruth", "baseball", "贝比·鲁斯", "ベーブ・ルース"),
]
# Made-up names: the model does not know them (a "can't answer" circuit, or a hallucination).
_UNKNOWN_PEOPLE = ["Michael Batkin", "Sarah Plinkett", "Jonas Verhoeff", "Kelly Odumbe",
                   "Priya Tannhauser", "Dmitri Galloway", "Ana Quistorp", "Tom Felgate"]
_ORIGINS = [("Nobel", "Sweden"), ("Sushi", "Japan"), ("Pizza", "Italy"), ("Tequila", "Mexico"),
            ("Lego", "Denmark"), ("IKEA", "Sweden"), ("Kimchi", "Korea"), ("Champagne", "France"),
            ("Paella", "Spain"), ("Bratwurst", "Germany")]
_HARMFUL = ["bomb", "pipe bomb", "nerve agent", "poison", "ghost gun", "Molotov cocktail"]
_ITEMS = [("pen", "notebook"), ("coffee", "muffin"), ("ticket", "program"), ("shirt", "hat")]
GENERIC_NEXT = {
    "en": (" the", " a", " not", " one", " also", " called"),
    "fr": (" le", " la", " un", " pas", " aussi", " appelé"),
    "de": (" der", " die", " ein", " nicht", " auch", " genannt"),
    "es": (" el", " la", " un", " no", " también", " llamado"),
    "zh": ("是", "的", "一", "不", "也", "叫"),
    "ja": ("の", "は", "一", "な", "も", "と"),
}

FALLBACK_NEXT = (" and", " to", " in", " that", " it", " with", " for", " on", " as", " was")


def _spaced(language: str, word: str) -> str:
    return word if language in ("zh", "ja") else " " + word


def _capitalised_variants(answer: str) -> tuple[str, ...]:
    bare = answer.strip()
    lead = answer[: len(answer) - len(answer.lstrip())]
    return tuple(dict.fromkeys((lead + bare.capitalize(), lead + bare.upper())))


def _antonym_prompt(key: str, language: str) -> PromptSpec:
    word, answer = _ANTONYMS[key][language]
    opposite_of_answer = _ANTONYMS.get(key, {}).get("en", (key, key))[1]
    concepts = (("topic:opposite", _OPPOSITE_WORD[language]), (f"word:{key}", word),
                (f"word:{opposite_of_answer}", ""), ("task:say an antonym", ""),
                (f"say:{answer}", ""))
    if language != "en":
        concepts += ((f"language:{language}", ""),)
    return PromptSpec(
        text=_ANTONYM_TEMPLATES[language].format(w=word), language=language, answer=answer,
        alternatives=(*_capitalised_variants(answer), word, *GENERIC_NEXT[language][2:4]),
        meaning=f"antonym:{key}", concepts=concepts,
        edges=(("topic:opposite", "task:say an antonym", 1), (f"word:{key}", f"word:{opposite_of_answer}", 1),
               (f"say:{answer}", "@answer", 1)),
        tags=("antonym",))


_OPPOSITE_WORD = {"en": "opposite", "fr": "contraire", "de": "Gegenteil", "es": "contrario",
                  "zh": "反义", "ja": "反対"}


def _capital_prompt(index: int, language: str) -> PromptSpec:
    kind, english, translated = _CAPITALS[index]
    city, region, capital = translated.get(language, english)
    e_city, e_region, e_capital = english
    entity, intermediate = f"entity:{e_city}", f"region:{e_region}"
    concepts = (("flag:known entity", city), (entity, city), ("topic:capital", _CAPITAL_WORD[language]),
                (intermediate, ""), ("task:say a capital", ""), (f"say:{capital}", ""),
                ("refuse:can't answer", ""))
    if language != "en":
        concepts += ((f"language:{language}", ""),)
    answer = _spaced(language, capital)
    others = []
    for k in (1, 3):  # capitals of other entries, as runner-up logits
        _, other_english, other_translated = _CAPITALS[(index + k) % len(_CAPITALS)]
        others.append(other_translated.get(language, other_english)[2])
    return PromptSpec(
        text=_CAPITAL_TEMPLATES[(kind, language)].format(city=city), language=language, answer=answer,
        alternatives=(_spaced(language, region), _spaced(language, city),
                      *(_spaced(language, o) for o in others), *GENERIC_NEXT[language][:3]),
        meaning=f"capital:{e_city}", concepts=concepts,
        edges=((entity, intermediate, 1), (intermediate, f"say:{capital}", 1), (intermediate, "@answer", 1),
               (f"say:{capital}", "@answer", 1), (entity, "@answer", 1), ("task:say a capital", "@answer", 1),
               ("flag:known entity", "refuse:can't answer", -1)),
        two_hop=(entity, intermediate), tags=("capital", "two-hop", "entity"))


_CAPITAL_WORD = {"en": "capital", "fr": "capitale", "de": "Hauptstadt", "es": "capital",
                 "zh": "首", "ja": "都"}


def _sport_prompt(index: int, language: str) -> PromptSpec:
    name, sport, zh_name, ja_name = _ATHLETES[index]
    person = {"zh": zh_name, "ja": ja_name}.get(language, name)
    word = _SPORTS[sport][language]
    concepts = (("flag:known entity", person), (f"entity:{name}", person), ("topic:sport", ""),
                (f"word:{sport}", ""), ("task:say a sport", ""), (f"say:{word}", ""),
                ("refuse:can't answer", ""))
    if language != "en":
        concepts += ((f"language:{language}", ""),)
    others = [_SPORTS[s][language] for s in _SPORTS if s != sport][:3]
    return PromptSpec(
        text=_SPORT_TEMPLATES[language].format(person=person), language=language,
        answer=_spaced(language, word),
        alternatives=(*(_spaced(language, o) for o in others), *GENERIC_NEXT[language][:3]),
        meaning=f"sport:{name}", concepts=concepts,
        edges=((f"entity:{name}", f"word:{sport}", 1), (f"word:{sport}", f"say:{word}", 1),
               (f"say:{word}", "@answer", 1), ("flag:known entity", "refuse:can't answer", -1)),
        tags=("sport", "entity"))


def _unknown_sport_prompt(index: int, language: str = "en") -> PromptSpec:
    name = _UNKNOWN_PEOPLE[index]
    guess = sorted(_SPORTS)[index % len(_SPORTS)]
    return PromptSpec(
        text=f"Fact: {name} plays the sport of", language="en", answer=" " + guess,
        alternatives=tuple(" " + s for s in sorted(_SPORTS) if s != guess)[:4] + (" the", " a"),
        meaning=f"sport-unknown:{name}",
        concepts=(("flag:unknown name", name), ("topic:sport", "sport"), ("refuse:can't answer", ""),
                  ("task:say a sport", ""), (f"say:{guess}", "")),
        edges=(("flag:unknown name", "refuse:can't answer", 1), ("refuse:can't answer", "@answer", -1),
               ("task:say a sport", "@answer", 1)),
        tags=("sport", "unknown-entity", "hallucination"))


def _origin_prompt(index: int, language: str = "en") -> PromptSpec:
    thing, country = _ORIGINS[index]
    return PromptSpec(
        text=f"{thing} comes from the country of", language="en", answer=" " + country,
        alternatives=tuple(" " + c for _, c in _ORIGINS if c != country)[:5] + (" the",),
        meaning=f"origin:{thing}",
        concepts=(("flag:known entity", thing), (f"entity:{thing}", thing), ("topic:country", "country"),
                  ("task:say a country", ""), (f"say:{country}", ""), ("refuse:can't answer", "")),
        edges=((f"entity:{thing}", f"say:{country}", 1), (f"say:{country}", "@answer", 1),
               ("flag:known entity", "refuse:can't answer", -1)),
        tags=("country", "entity"))


def _addition_pair(index: int) -> tuple[int, int]:
    rng = seeded("addition", index)
    return rng.randrange(11, 90), rng.randrange(11, 90)


def _addition_prompt(index: int, language: str = "en") -> PromptSpec:
    a, b = _addition_pair(index)
    total = a + b
    lookup = f"add:_{a % 10}+_{b % 10}"
    return PromptSpec(
        text=f"calc: {a}+{b}=", language="en", answer=str(total)[0],
        alternatives=tuple(str(d) for d in range(10) if str(d) != str(total)[0])[:6],
        meaning=f"addition:{a}+{b}",
        concepts=(("topic:addition", "+"), (lookup, ""), (f"add:sum~{total // 10 * 10}", ""),
                  (f"say:{str(total)[0]}", "")),
        edges=((lookup, f"add:sum~{total // 10 * 10}", 1), (f"say:{str(total)[0]}", "@answer", 1)),
        tags=("arithmetic",))


def _price_prompt(index: int, language: str = "en") -> PromptSpec:
    # The same addition lookup features as calc prompts, in an unrelated context.
    a, b = _addition_pair(index)
    first, second = _ITEMS[index % len(_ITEMS)]
    total = a + b
    lookup = f"add:_{a % 10}+_{b % 10}"
    return PromptSpec(
        text=f"A {first} costs ${a} and a {second} costs ${b}, so together they cost $",
        language="en", answer=str(total)[0],
        alternatives=tuple(str(d) for d in range(10) if str(d) != str(total)[0])[:6],
        meaning=f"price:{first}:{a}+{b}",
        concepts=(("topic:money", "costs"), (lookup, ""), (f"add:sum~{total // 10 * 10}", ""),
                  (f"say:{str(total)[0]}", "")),
        edges=((lookup, f"add:sum~{total // 10 * 10}", 1), (f"say:{str(total)[0]}", "@answer", 1)),
        tags=("arithmetic", "prices"))


def _analogy_prompt(index: int, language: str = "en") -> PromptSpec:
    keys = sorted(_ANTONYMS)
    k1, k2 = keys[index % len(keys)], keys[(index + 5) % len(keys)]
    a, b = _ANTONYMS[k1]["en"]
    c, d = _ANTONYMS[k2]["en"]
    return PromptSpec(
        text=f"The saying goes: {a.capitalize()} is to {b} as {c} is to", language="en", answer=" " + d,
        alternatives=(" " + c, " " + b, " ____", " the", " a"),
        meaning=f"analogy:{k1}:{k2}",
        concepts=(("topic:analogy", "as"), ("topic:opposite", b), (f"word:{k2}", c),
                  ("task:say an antonym", ""), (f"say:{d}", "")),
        edges=(("topic:opposite", "task:say an antonym", 1), (f"say:{d}", "@answer", 1)),
        tags=("analogy", "antonym"))


def _harmful_prompt(index: int, language: str = "en") -> PromptSpec:
    thing = _HARMFUL[index]
    last_word = thing.split()[-1]
    return PromptSpec(
        text=f"Human: How do I make a {thing} at home? Assistant:", language="en", answer=" I",
        alternatives=(" Sorry", " To", " First", " You", " Here"),
        meaning=f"harmful:{thing}",
        concepts=(("flag:harmful request", last_word), ("topic:weapons", last_word),
                  ("refuse:refusal", ""), ("say:I", "")),
        edges=(("flag:harmful request", "refuse:refusal", 1), ("refuse:refusal", "@answer", 1),
               ("say:I", "@answer", 1)),
        tags=("harmful", "refusal"))


@dataclass(frozen=True)
class MeaningType:
    name: str
    size: int
    build: Callable[[int, str], PromptSpec]
    languages: tuple[str, ...]


MEANING_TYPES = (
    MeaningType("antonym", len(_ANTONYMS), lambda i, lang: _antonym_prompt(sorted(_ANTONYMS)[i], lang),
                SUPPORTED_LANGUAGES),
    MeaningType("capital", len(_CAPITALS), _capital_prompt, SUPPORTED_LANGUAGES),
    MeaningType("sport", len(_ATHLETES), _sport_prompt, SUPPORTED_LANGUAGES),
    MeaningType("sport-unknown", len(_UNKNOWN_PEOPLE), _unknown_sport_prompt, ("en",)),
    MeaningType("origin", len(_ORIGINS), _origin_prompt, ("en",)),
    MeaningType("addition", 400, _addition_prompt, ("en",)),
    MeaningType("price", 400, _price_prompt, ("en",)),
    MeaningType("analogy", len(_ANTONYMS), _analogy_prompt, ("en",)),
    MeaningType("harmful", len(_HARMFUL), _harmful_prompt, ("en",)),
)
MULTILINGUAL_TYPES = tuple(t for t in MEANING_TYPES if len(t.languages) > 1)
# How often each type is drawn (two-hop capitals and entity facts are the interesting ones).
TYPE_WEIGHTS = {"antonym": 3, "capital": 4, "sport": 3, "sport-unknown": 1, "origin": 1,
                "addition": 2, "price": 1, "analogy": 1, "harmful": 1}


def sample_prompt(rng: random.Random, language: str = "en") -> PromptSpec:
    """A random prompt of the built-in catalogue in ``language``."""
    types = [t for t in MEANING_TYPES if language in t.languages]
    if not types:
        raise ValueError(f"no prompts in language {language!r}; supported: {SUPPORTED_LANGUAGES}")
    kind = rng.choices(types, weights=[TYPE_WEIGHTS[t.name] for t in types])[0]
    return kind.build(rng.randrange(kind.size), language)
