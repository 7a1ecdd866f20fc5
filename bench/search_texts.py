"""Generated feature descriptions for the search benchmark: realistic vocabulary and lengths.

Real descriptions come in two shapes: short clerps a person types while labelling a graph
("Texas", "say a capital", "code snippets"; 1-4 words) and machine explanations of one sentence
("words related to legal documents or codes of conduct"; 6-20 words). The generator mixes both
half and half (the real data in ``shared/data`` has more clerps, a Neuronpedia-scale corpus more
explanations), from a vocabulary of topics, words and phrasings modelled on those real texts.
"""

from __future__ import annotations

import random
from typing import Iterator

TOPICS = (
    "Texas locations", "US states", "capital cities", "state capitals", "European countries", "Scandinavian places",
    "legal documents", "court cases", "codes of conduct", "government buildings", "political figures",
    "source code", "code snippets", "programming keywords", "HTML markup", "JSON keys", "Python functions",
    "mathematical equations", "mathematical symbols", "numbers and digits", "ordinal numbers", "dates and years",
    "measurements and sizes", "physical dimensions", "small sizes", "large quantities", "comparisons and contrasts",
    "opposites", "antonyms", "negations", "uncertainty", "possibility", "future events", "past events",
    "scientific texts", "medical terminology", "biological terms", "chemical compounds", "diseases and symptoms",
    "sports teams", "basketball players", "football clubs", "Olympic games", "awards and prizes", "Nobel laureates",
    "musical instruments", "film titles", "book titles", "famous authors", "poetry", "religious texts", "mythology",
    "French words", "German words", "Spanish phrases", "Chinese characters", "Japanese names", "foreign languages",
    "quotation marks", "parentheses", "punctuation", "commas", "colons", "hyphens and dashes", "brackets",
    "pronouns", "articles", "prepositions", "plural nouns", "verbs in the past tense", "adjectives of size",
    "adverbs of degree", "conjunctions", "the beginning of sentences", "the end of a paragraph",
    "questions", "answers to trivia questions", "facts", "definitions", "examples", "lists", "tables",
    "news headlines", "blog posts", "online reviews", "chat messages", "emails", "recipes", "cooking ingredients",
    "animals", "plants", "weather", "geography", "rivers and mountains", "cities and towns", "addresses",
    "companies and brands", "financial markets", "money and prices", "economics", "taxes", "employment",
    "family members", "emotions", "negative sentiment", "positive adjectives", "health and fitness",
    "computers and software", "operating systems", "file paths", "URLs", "web pages", "error messages",
    "car brands", "transportation", "travel", "hotels", "education", "universities", "research papers",
    "citations", "patents", "licenses", "copyright notices", "space and astronomy", "physics", "chemistry",
    "history", "wars and battles", "kings and queens", "ancient Rome", "the Middle Ages", "elections",
)

WORDS = (
    "Texas", "Austin", "Dallas", "Houston", "California", "Sacramento", "Oakland", "Sweden", "Stockholm", "Paris",
    "France", "London", "capital", "state", "country", "city", "opposite", "small", "large", "big", "tall", "short",
    "tiny", "huge", "great", "little", "not", "never", "the", "of", "is", "was", "and", "or", "if", "then", "because",
    "basketball", "football", "Jordan", "Nobel", "prize", "award", "fact", "answer", "question", "number", "two",
    "three", "first", "last", "left", "right", "up", "down", "in", "on", "at", "from", "to", "with", "without",
    "def", "return", "class", "import", "function", "array", "string", "value", "error", "true", "false", "null",
    "king", "queen", "war", "peace", "love", "hate", "good", "bad", "happy", "sad", "old", "new", "young",
    "water", "fire", "earth", "air", "sun", "moon", "star", "dog", "cat", "bird", "tree", "flower", "red", "blue",
)

CONTEXTS = (
    "legal documents", "code", "scientific papers", "news articles", "chat conversations", "lists",
    "French text", "Chinese text", "technical documentation", "product reviews", "forum posts", "recipes",
    "sports commentary", "historical texts", "math problems", "source code comments", "tables",
)

SHORT_FORMS = (
    "{topic}",
    "{word}",
    "say {word}",
    "say a {noun}",
    "\"{word}\"",
    "{word} / {word2}",
    "{topic} and {topic2}",
    "{word} in {context}",
    "{topic}/{context}",
    "{topic} ({word})",
    "{word} {noun} in {topic}",
    "{topic} near \"{word}\"",
    "{word}, {word2} or {topic}",
)

LONG_FORMS = (
    "words related to {topic}",
    "mentions of {topic}, especially in {context}",
    "the word \"{word}\" and similar words in {context}",
    "{topic} and {topic2}, often within {context}",
    "tokens that predict \"{word}\" after {topic}",
    "phrases that express {topic} or {topic2}",
    "references to {topic} in {context}, particularly near {topic2}",
    "the token \"{word}\" when it appears in {context}",
    "sequences of {topic} that sometimes form {topic2}",
    "names of {topic} and {topic2}, mostly in {context} and sometimes in {context2}",
    "This feature seems to activate on {topic} in {context}, but it has a bias towards {topic2}",
    "words indicative of {topic}",
    "substrings containing {topic} and certain {topic2}, often within {context}",
)

NOUNS = ("capital", "country", "number", "city", "name", "color", "sport", "word", "date", "state", "language")


def descriptions(n: int, seed: int = 0) -> Iterator[str]:
    """``n`` generated descriptions; half are one-sentence explanations."""
    rng = random.Random(seed)
    for _ in range(n):
        form = rng.choice(LONG_FORMS) if rng.random() < 0.5 else rng.choice(SHORT_FORMS)
        yield form.format(
            topic=rng.choice(TOPICS),
            topic2=rng.choice(TOPICS),
            word=rng.choice(WORDS),
            word2=rng.choice(WORDS),
            noun=rng.choice(NOUNS),
            context=rng.choice(CONTEXTS),
            context2=rng.choice(CONTEXTS),
        )
