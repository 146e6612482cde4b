"""Text statistics shared by the heuristic quality filters (Gopher, C4, FineWeb).

One place for how text is cut into words, lines, paragraphs and sentences, and for the
repetition statistics over them, so every rule set counts the same way.

Words. The published rule sets were tuned with a word tokenizer, not with `str.split`: datatrove
(the reference implementation of Gopher, C4 and FineWeb filters) uses spaCy's rule-based English
tokenizer, which splits punctuation off words ("end." -> "end", "."), splits contractions
("don't" -> "do", "n't"), hyphenated words ("e-mail" -> "e", "-", "mail") and units ("5km" ->
"5", "km"), and keeps URLs, numbers ("1,000", "3.5") and common abbreviations ("Mr.", "e.g.")
whole. `split_words` follows the same conventions with a whitespace split and a small amount of
work on the chunks that are not plain words: 7x faster than spaCy on unseen text and ~35x once
its chunk cache is warm (spaCy's cost dominates datatrove's filters); docs/benchmarks/quality.md
measures how often the two disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, compress
from operator import not_
from typing import TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Character classes

# Sentence-ending characters of every script: Unicode's Sentence_Terminal property (the same set
# spaCy's sentencizer and datatrove use), computed from the Unicode database at import time.
TERMINAL_PUNCTUATION: frozenset[str] = frozenset(
    regex.findall(r"\p{Sentence_Terminal}", "".join(map(chr, range(0x110000))))
)

# Characters that make up "symbol" tokens: ASCII and common Unicode punctuation, control
# characters and the sentence terminals. A word made only of these is not counted as a word by
# Gopher's length rules.
PUNCTUATION_CHARS: str = "".join(
    sorted(
        set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
        | set("—”“‘’«»„‚…–・、。，；：！？（）〈〉《》「」【】％＆＃＄＠～｜＋＝－．／＼＿►´")
        | {chr(c) for c in (*range(0, 9), *range(11, 32), *range(127, 160))}
        | TERMINAL_PUNCTUATION
    )
)

# Punctuation split off the start of a chunk ("(word" -> "(", "word"); the currency symbols.
_PREFIX = set("!\"#%&'()*,:;<=>?[]_`{}¡¦§©«®°´·»¿–—‘’‚“”„…™") | set("。？！，、；：～（）「」『』【】《》〈〉〔〕")
_CURRENCY = set("$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿")
# Punctuation split off the end of a chunk ("word)" -> "word", ")"). A "." is split after a
# digit, a lower-case letter or punctuation, or after two capitals ("USA."), but not after a
# single capital ("F. Scott") or inside an abbreviation ("e.g.", "Mr.").
_SUFFIX = set("!\"#&'()*,:;<>?[]_`{}¡¦©«®°´·»¿–—‘’‚“”„…™") | set("。？！，、；：～（）「」『』【】《》〈〉〔〕")
_UNITS = (
    "km km² km³ m m² m³ dm cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh "
    "mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K %"
).split()
_UNIT_ALTERNATIVES = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_UNIT_SUFFIX = re.compile(rf"(?<=[0-9])(?:{_UNIT_ALTERNATIVES})$")
_ELLIPSIS_START = re.compile(r"^(?:\.\.+|…)")
_ELLIPSIS_END = re.compile(r"(?:\.\.+|……|…)$")
_POSSESSIVE = ("'s", "'S", "’s", "’S")

# Splits inside a chunk: ellipses and symbols; arithmetic between digits ("1-2"); a full stop
# between a lower-case and an upper-case letter ("end.Next"); commas between letters ("a,b");
# hyphens and dashes after a letter or digit and before a letter ("e-mail"); ":<>=/" after a
# letter or digit and before a letter ("a/b"). URLs, e-mail addresses and domains are kept whole.
_INFIX = regex.compile(
    r"\.\.+|…|\p{So}"
    r"|(?<=[0-9])[+\-*^](?=[0-9-])"
    r"|(?<=[\p{Ll}\p{Lo}'\"”“`‘´’])\.(?=[\p{Lu}\p{Lo}'\"”“`‘´’])"
    r"|(?<=\p{L}),(?=\p{L})"
    r"|(?<=[\p{L}0-9])(?:---|--|——|-|–|—|~)(?=\p{L})"
    r"|(?<=[\p{L}0-9])[:<>=/](?=\p{L})"
)
# URLs, e-mail addresses and host names ("example.com/path"): optional scheme and user, dotted
# host labels (any non-ASCII character counts as a letter), a lower-case top-level domain, port
# and path.
_URL = regex.compile(
    r"^(?:[\w+\-.]{2,}://)?(?:\S+@)?"
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    r"\p{Ll}{2,63}(?::\d{2,5})?(?:[/?#]\S*)?$"
)

# Tokens kept whole although they contain punctuation: abbreviations with their full stop (so
# "Mr. Smith" is one sentence) - titles, months, company suffixes, Latin and time abbreviations,
# US states, single letters ("a." .. "z.") - and emoticons.
_ABBREVIATIONS = set(
    "Mr. Mrs. Ms. Messrs. Dr. Prof. Rev. Gen. Adm. Gov. Sen. Rep. Jr. St. Mt. Bros. Co. co. Corp. "
    "Inc. Ltd. Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. vs. v.s. e.g. E.g. E.G. "
    "i.e. I.e. I.E. a.m. p.m. Ph.D. D.C. N.Y. N.J. N.C. N.D. N.H. N.M. S.C. Ak. Ala. Ariz. Ark. "
    "Calif. Colo. Conn. Del. Fla. Ga. Ia. Id. Ill. Ind. Kan. Kans. Ky. La. Mass. Md. Mich. Minn. "
    "Miss. Mo. Mont. Neb. Nebr. Nev. Okla. Ore. Pa. Tenn. Va. Wash. Wis. ä. ö. ü. °C. °F. °K. "
    "°c. °f. °k. and/or w/o C++ 's 'S ’s ’S ' '' ’ ’’".split()
) | {f"{c}." for c in "abcdefghijklmnopqrstuvwxyz"}
_EMOTICONS = set(
    ":) :-) :)) :))) :-)) :( :-( :(( :-(( ;) ;-) (; (-; :D :P :p :o :O :/ :-/ :| :-| :'( :') "
    ":'-( :'-) :’( :’) =) =( =/ =| =] =[ ]= [= (= (: (-: ): )-: [: [-: :] :-] :[ :} :-} :> :-> "
    ":* :-* 8) 8-) (-8 :3 :o) (o: :1 <3 </3 ^_^ ^__^ -_- -__- ._. (._.) (^_^) (-_-) (*_*) (>_<) >.< <.< >.> @_@ >:( ;_; "
    '\\")'.split()
)
_KEPT_WHOLE = _ABBREVIATIONS | _EMOTICONS
# Contractions: "n't" after any word ("don't", "isn't"); "'m 're 've 'll 'd" after the pronouns,
# question words and modals they follow in English.
_CLITIC_BASES = set(
    "i you he she it we they there that this who what where when why how here these those "
    "could would should might must".split()
)
_CLITICS = ("'m", "'re", "'ve", "'ll", "'d", "’m", "’re", "’ve", "’ll", "’d")


def _bare_contractions() -> dict[str, tuple[str, ...]]:
    """Contractions written without their apostrophe ("dont", "youre"), split like the others."""
    pairs = {
        "nt": "do does did is was are were have has had could would should might must need ought dare may sha ca wo ai",
        "d": "he how i it that there these they this those we what when where who why you",
        "ll": "how it that there these they this those what when where who why you",
        "re": "how there these they those what when where why you",
        "ve": "how i there these they those we what when where who why you could should would might must",
        "s": "he she how that there this what when where who why",
        "m": "i",
    }
    table: dict[str, tuple[str, ...]] = {
        f"{base}{clitic}": (base, clitic) for clitic, bases in pairs.items() for base in bases.split()
    }
    table.update(cannot=("can", "not"), gonna=("gon", "na"), gotta=("got", "ta"))
    # times: "5pm" -> "5", "pm"
    table.update({f"{h}{x}": (str(h), x) for h in range(1, 13) for x in ("am", "pm", "a.m.", "p.m.")})
    table.update({k.capitalize(): (v[0].capitalize(), *v[1:]) for k, v in list(table.items()) if k.isalpha()})
    return table


_BARE_CONTRACTIONS = _bare_contractions()


def _special(chunk: str) -> list[str] | None:
    """Chunks kept whole or split by a fixed rule, before any punctuation is split off."""
    if chunk in _KEPT_WHOLE:
        return [chunk]
    bare = _BARE_CONTRACTIONS.get(chunk)
    if bare is not None:
        return list(bare)
    if "'" not in chunk and "’" not in chunk:  # every contraction below has an apostrophe
        return None
    lower = chunk.lower()
    if lower.endswith(("n't", "n’t")) and len(chunk) > 3 and chunk[:-3].isalpha() and not chunk.isupper():
        return [chunk[:-3], chunk[-3:]]
    for clitic in _CLITICS:
        if lower.endswith(clitic) and lower[: -len(clitic)] in _CLITIC_BASES:
            return [chunk[: -len(clitic)], chunk[-len(clitic) :]]
    return None


def _prefix_length(s: str) -> int:
    first = s[0]
    if first == "." or first == "…":
        match = _ELLIPSIS_START.match(s)
        if match:
            return match.end()
    if first in _PREFIX or first in _CURRENCY or (first == "+" and not s[1:2].isdigit()):
        return 1
    if s.startswith(("US$", "C$", "A$")):
        return s.index("$") + 1
    if unicodedata.category(first) == "So":  # icons, emoji, dingbats
        return 1
    return 0


def _suffix_length(s: str) -> int:
    last = s[-1]
    if last == "." or last == "…":
        match = _ELLIPSIS_END.search(s)
        if match:
            return len(s) - match.start()
    if (last == "s" or last == "S") and s.endswith(_POSSESSIVE) and len(s) > 2:
        return 2
    before = s[-2] if len(s) > 1 else ""
    if last in _SUFFIX:
        return 1
    if last.isalpha() or last in "%²³":  # every unit ends so
        unit = _UNIT_SUFFIX.search(s)
        if unit:
            return len(s) - unit.start()
    if last == "." and before:
        if before.isdigit() or before.islower() or before in "%²-+" or before in _SUFFIX or before in _PREFIX:
            return 1
        if before.isupper() and len(s) > 2 and s[-3].isupper():
            return 1
        if not before.isupper() and before.isalpha():  # letters without case (CJK, Arabic ...)
            return 1
        return 0
    if before.isdigit() and (last == "+" or last in _CURRENCY):
        return 1
    if unicodedata.category(last) == "So":
        return 1
    return 0


def _split_infixes(s: str) -> list[str]:
    if s.isalnum():  # every infix is punctuation or a symbol, and a URL has a dot
        return [s]
    if _URL.match(s):
        return [s]
    tokens, start = [], 0
    for match in _INFIX.finditer(s):
        if match.start() == match.end() or match.start() == 0:
            continue
        tokens.append(s[start : match.start()])
        tokens.append(match.group())
        start = match.end()
    tokens.append(s[start:])
    return [t for t in tokens if t]


def _strip_affixes(s: str, prefixes: list[str], suffixes: list[str]) -> str:
    """Take punctuation off both ends of `s` until a token kept whole or nothing more comes off."""
    while s and s not in _KEPT_WHOLE:
        pre = _prefix_length(s)
        suf = _suffix_length(s[pre:]) if len(s) > pre else 0
        if pre and _special(s[pre:]) is not None:
            prefixes.append(s[:pre])
            return s[pre:]
        if suf and _special(s[:-suf]) is not None:
            suffixes.append(s[-suf:])
            return s[:-suf]
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
        else:
            break
    return s


def _merge_kept_whole(tokens: list[str]) -> list[str]:
    """Join adjacent tokens that together form a token kept whole ("d" "." -> "d.", ")" ":" -> "):")."""
    merged: list[str] = []
    for token in tokens:
        if merged and merged[-1] + token in _KEPT_WHOLE:
            merged[-1] += token
        else:
            merged.append(token)
    return merged


def split_chunk(chunk: str) -> list[str]:
    """Split one whitespace-free chunk into words and punctuation tokens."""
    special = _special(chunk)
    if special is not None:
        return special
    prefixes: list[str] = []
    suffixes: list[str] = []
    s = _strip_affixes(chunk, prefixes, suffixes)
    middle: list[str] = []
    if s:
        special = _special(s)
        middle = special if special is not None else _split_infixes(s)
    tokens = prefixes + middle + suffixes[::-1]
    return _merge_kept_whole(tokens) if len(tokens) > 1 else tokens


def chunk_tokens(chunk: str) -> tuple[str, ...]:
    """The tokens of one whitespace-free chunk (plain words and numbers are one token)."""
    if chunk.isalpha():
        return _BARE_CONTRACTIONS.get(chunk) or (chunk,)
    if chunk.isdigit():
        return (chunk,)
    return tuple(split_chunk(chunk))


class Vocabulary(dict[str, int]):
    """Token -> id, numbered in order of first sight, with what the rules ask of each token kept in
    arrays indexed by id: its length, whether it is a word (has a character that is not
    punctuation) and whether it has a letter. The rules then read a document as an array of ids
    (`word_ids`) and count with numpy instead of looking its words up one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []
        self.length = np.zeros(4096, np.int64)
        self.is_word = np.zeros(4096, bool)
        self.has_letter = np.zeros(4096, bool)

    def __missing__(self, token: str) -> int:
        index = len(self.tokens)
        if index == len(self.length):
            self.length, self.is_word, self.has_letter = (
                np.resize(array, 2 * index) for array in (self.length, self.is_word, self.has_letter)
            )
        self.length[index] = len(token)
        self.is_word[index] = bool(token.strip(PUNCTUATION_CHARS))
        self.has_letter[index] = token.isalpha() or any(map(str.isalpha, token))
        self.tokens.append(token)
        self[token] = index
        return index


# Chunk -> the ids of its tokens, for every chunk seen recently: text repeats its chunks (words,
# "end.", "foo(x)"), so most are looked up, not split. Bounded: the chunks, the vocabulary and the
# remembered documents are emptied together when the chunks have passed the limit, between
# batches, so that the ids of one batch come from one vocabulary (results never depend on it: only
# the equality of ids within a document and the properties of each id are read). A batch adds at
# most its distinct chunks past the limit. ~200 bytes a chunk: ~100 MB when full.
_CHUNK_CACHE: dict[str, tuple[int, ...]] = {}
_CHUNK_CACHE_LIMIT = 500_000
VOCABULARY = Vocabulary()


def _new_batch() -> Vocabulary:
    """The vocabulary a batch's ids come from: a new one if the chunk cache is full."""
    global VOCABULARY
    if len(_CHUNK_CACHE) > _CHUNK_CACHE_LIMIT:
        _CHUNK_CACHE.clear()
        _forget_documents()
        VOCABULARY = Vocabulary()
    return VOCABULARY


def _chunk_ids(chunks: list[str], vocabulary: Vocabulary) -> list[tuple[int, ...]]:
    """The token ids in `vocabulary` (the current one) of each chunk. The loop over chunks runs in
    C (`map`): Python code runs only for chunks not cached."""
    cache = _CHUNK_CACHE
    found = list(map(cache.get, chunks))
    if None not in found:
        return cast(list[tuple[int, ...]], found)  # every chunk was cached
    for chunk in dict.fromkeys(compress(chunks, map(not_, found))):
        cache[chunk] = tuple(map(vocabulary.__getitem__, chunk_tokens(chunk)))
    return list(map(cache.__getitem__, chunks))


def split_words(text: str) -> list[str]:
    """The words and punctuation tokens of `text`, as spaCy's English tokenizer would cut them."""
    vocabulary = _new_batch()
    return list(map(vocabulary.tokens.__getitem__, chain.from_iterable(_chunk_ids(text.split(), vocabulary))))


@dataclass
class Words:
    """The words of a batch of texts as ids in `vocabulary`: text i's are `ids[offsets[i]:offsets[i + 1]]`."""

    ids: np.ndarray
    offsets: np.ndarray
    vocabulary: Vocabulary

    def per_text(self, values: np.ndarray) -> np.ndarray:
        """The sum of `values` (one per word) over each text's words."""
        total = np.concatenate(([0], np.cumsum(values)))
        return total[self.offsets[1:]] - total[self.offsets[:-1]]

    def counts(self) -> np.ndarray:
        """Words per text."""
        return np.diff(self.offsets)


_IDS_MEMO: dict[str, np.ndarray] = {}
# Characters of text whose word ids are remembered: a whole batch (executor.batch_mb is 32 MB), so
# the stages after the first find every document of it. 4 bytes a word (~1 per character of text).
_IDS_MEMO_LIMIT = 32_000_000
_ids_memo_chars = 0
# Characters of text split and counted together: the batch's work in C and numpy calls, in bounded
# memory (~200k words at a time: ~30 MB of arrays; larger groups measured no faster).
_SPLIT_CHARS = 1_000_000


def _forget_documents() -> None:
    global _ids_memo_chars
    _IDS_MEMO.clear()
    _ids_memo_chars = 0


def word_ids(texts: Sequence[str]) -> Words:
    """The words of each text (`split_words`) as ids: one call per batch.

    Texts seen in the last few million characters are remembered, so filters that run one after
    another on the same batch (Gopher repetition, Gopher quality, FineWeb) split each text once.
    The others are split in groups: whitespace split and distinct chunks by Arrow (C++), the
    chunks' token ids from the cache, spread back over the texts with numpy.
    """
    global _ids_memo_chars
    vocabulary = _new_batch()
    found = list(map(_IDS_MEMO.get, texts))
    missing = [i for i, ids in enumerate(found) if ids is None]
    for group in text_groups(missing, [len(texts[i]) for i in missing]):
        for i, ids in zip(group, _split_ids([texts[i] for i in group], vocabulary)):
            found[i] = ids
            if _ids_memo_chars + len(texts[i]) > _IDS_MEMO_LIMIT:
                _forget_documents()
            _IDS_MEMO[texts[i]] = ids
            _ids_memo_chars += len(texts[i])
    arrays = cast(list[np.ndarray], found)
    counts = np.fromiter(map(len, arrays), np.int64, len(arrays))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    ids = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
    return Words(ids, offsets, vocabulary)


def text_groups(items: Sequence[T], sizes: Sequence[int] | None = None, limit: int = _SPLIT_CHARS) -> Iterator[list[T]]:
    """`items` in consecutive groups of about `limit` characters (texts, or any items with their `sizes`)."""
    group: list[T] = []
    total = 0
    for item, size in zip(items, sizes if sizes is not None else map(len, cast(Sequence[str], items))):
        group.append(item)
        total += size
        if total >= limit:
            yield group
            group, total = [], 0
    if group:
        yield group


def _split_ids(texts: list[str], vocabulary: Vocabulary) -> list[np.ndarray]:
    """The word ids of each text, computed together."""
    split = pc.utf8_split_whitespace(pa.array(texts, pa.string()))  # str.split(), runs give ""
    chunk_counts = pc.list_value_length(split).to_numpy()
    encoded = pc.dictionary_encode(split.flatten())
    distinct = _chunk_ids(encoded.dictionary.to_pylist(), vocabulary)  # "" has no tokens
    token_counts = np.fromiter(map(len, distinct), np.int64, len(distinct))
    distinct_ids = np.fromiter(chain.from_iterable(distinct), np.int32, int(token_counts.sum()))
    distinct_starts = np.cumsum(token_counts) - token_counts
    # each chunk's ids, in order: chunk k's come from distinct_ids[starts[k] : starts[k] + counts[k]]
    chunks = encoded.indices.to_numpy()
    counts = token_counts[chunks]
    ends = np.cumsum(counts)
    gather = np.repeat(distinct_starts[chunks] - (ends - counts), counts) + np.arange(ends[-1] if len(ends) else 0)
    ids = distinct_ids[gather]
    bounds = np.concatenate(([0], ends))[np.concatenate(([0], np.cumsum(chunk_counts)))]
    return [ids[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


# ---------------------------------------------------------------------------------------------
# Sentences


def _is_punct_token(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


def count_sentences(line: str) -> int:
    """Sentences in `line`: a new sentence starts at the first word after a sentence terminal.

    The rule of spaCy's sentencizer (what datatrove's C4 filter counts with): a token that is a
    single sentence-terminal character ends a sentence once a token that is not punctuation
    follows it, so "Mr. Smith" (one token "Mr.") and "3.5" do not end one.
    """
    if not line.strip():
        return 0
    # Fast path: no terminal character before the closing punctuation means one sentence.
    body = line.rstrip()
    end = len(body)
    while end and (body[end - 1] in TERMINAL_PUNCTUATION or _is_punct_token(body[end - 1])):
        end -= 1
    if not any(c in TERMINAL_PUNCTUATION for c in body[:end]):
        return 1
    sentences, seen_terminal, started = 0, False, False
    for token in split_words(line):
        terminal = len(token) == 1 and token in TERMINAL_PUNCTUATION
        if not started:
            sentences, started = 1, True
        if seen_terminal and not terminal and not _is_punct_token(token):
            sentences += 1
            seen_terminal = False
        elif terminal:
            seen_terminal = True
    return sentences


# ---------------------------------------------------------------------------------------------
# Lines, paragraphs and duplicates


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: text separated by blank lines (runs of two or more newlines), as
    `re.split(r"\n{2,}", text.strip())` cuts it, with string methods (the regex engine reads
    every character in Python's `re`, ~10x slower)."""
    text = text.strip()
    if "\n\n" not in text:
        return [text]
    # a run of k newlines leaves k // 2 - 1 empty pieces and, if k is odd, one newline at the
    # start of the next paragraph; no paragraph starts with a newline of its own
    return [piece.lstrip("\n") for piece in text.split("\n\n") if piece]


def split_lines(text: str) -> list[str]:
    """Lines, runs of newlines counting as one break (Gopher's line statistics), as
    `re.split(r"\n+", text)` cuts it: empty lines only at the start and the end."""
    lines = text.split("\n")
    if len(lines) > 2 and "\n\n" in text:
        return [lines[0], *filter(None, lines[1:-1]), lines[-1]]
    return lines


def duplicates(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier item, and how many characters those repeats hold."""
    distinct = set(items)  # everything but the first occurrence of each item is a repeat
    return len(items) - len(distinct), sum(map(len, items)) - sum(map(len, distinct))


# ---------------------------------------------------------------------------------------------
# Word n-grams


class NGrams:
    """Exact n-gram statistics over the words of a batch of texts, for Gopher's repetition rules.

    Both statistics only look at n-grams that occur more than once in their text (the most
    frequent n-gram when one repeats; the repeats themselves), and an n-gram can only repeat where
    the (n-1)-grams at its first and at its second word both repeat. So each n keeps the positions
    of its repeating n-grams with an id for each (equal ids = equal n-grams of the same text; no
    hashing): the n-grams at the positions of two consecutive repeating (n-1)-grams are their ids
    paired, renumbered with one `numpy.unique` over those candidates only, soon a small part of
    the batch. Every text of the batch is done in the same numpy calls.
    """

    def __init__(self, words: Words):
        self.ids = words.ids
        self.offsets = words.offsets
        self.sizes = words.counts()
        self.text = np.repeat(np.arange(len(self.sizes)), self.sizes)  # the text of each word
        self.cumulative = np.concatenate(([0], np.cumsum(words.vocabulary.length[words.ids])))
        self._level: tuple[int, tuple[np.ndarray, np.ndarray, int]] | None = None  # the last n computed

    @classmethod
    def of_words(cls, *texts: list[str]) -> NGrams:
        """The n-grams of texts given as word lists."""
        vocabulary = Vocabulary()
        ids = [np.fromiter(map(vocabulary.__getitem__, words), np.int64, len(words)) for words in texts]
        offsets = np.concatenate(([0], np.cumsum([len(words) for words in texts], dtype=np.int64)))
        return cls(Words(np.concatenate(ids) if ids else np.zeros(0, np.int64), offsets, vocabulary))

    def repeating(self, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The positions (ascending) of the n-grams that occur more than once in their text, an id
        for each, and a number above every id. Each n is computed from n - 1: ask in increasing n."""
        if self._level is not None and self._level[0] == n:
            return self._level[1]
        if n == 1:
            keys = self.text * (int(self.ids.max(initial=0)) + 1) + self.ids
            level = _repeats(np.arange(len(self.ids)), keys)
        else:
            positions, ids, bound = self.repeating(n - 1)
            # (n-1)-grams repeating at p and p + 1: the n-gram at p may repeat (for n > 2 both
            # lie in the same text: they overlap)
            consecutive = positions[1:] == positions[:-1] + 1
            if n == 2:
                consecutive &= self.text[positions[1:]] == self.text[positions[:-1]]
            pairs = np.flatnonzero(consecutive)
            level = _repeats(positions[pairs], ids[pairs] * bound + ids[pairs + 1])
        self._level = (n, level)
        return level

    def chars(self, positions: np.ndarray, n: int) -> np.ndarray:
        """Characters of the words of the n-grams at `positions` (without separators)."""
        return self.cumulative[positions + n] - self.cumulative[positions]

    def top_chars(self, n: int) -> np.ndarray:
        """Per text, the characters covered by its most frequent n-gram: the n-gram's length joined
        with spaces x its count. Ties go to the n-gram seen first (as `Counter.most_common(1)`
        does); 0 without n-grams."""
        result = np.zeros(len(self.sizes), np.int64)
        some = np.flatnonzero(self.sizes >= n)
        result[some] = self.chars(self.offsets[some], n) + n - 1  # each n-gram once: the first
        positions, ids, _ = self.repeating(n)
        if len(positions):
            counts = np.bincount(ids)[ids]
            text = self.text[positions]
            segments = np.flatnonzero(np.concatenate(([True], text[1:] != text[:-1])))  # one per text
            best = np.maximum.reduceat(counts, segments)
            # the earliest-starting n-gram among the most frequent: the first repeating position
            # of its text whose n-gram has the top count
            top = np.flatnonzero(counts == np.repeat(best, np.diff(np.append(segments, len(positions)))))
            first = top[np.concatenate(([True], text[top[1:]] != text[top[:-1]]))]
            result[text[segments]] = (self.chars(positions[first], n) + n - 1) * best
        return result

    def duplicate_chars(self, n: int) -> np.ndarray:
        """Per text, the characters in n-grams that repeat an earlier n-gram, overlaps counted once.

        Scanning left to right, an n-gram already seen adds its characters and the scan jumps past
        it; otherwise it is remembered and the scan moves one word (Gopher's definition, as in
        datatrove). Only n-grams occurring twice or more can repeat, so only those are visited; ids
        differ between texts and a jump never passes the end of its text, so one scan does all.
        """
        positions, ids, _ = self.repeating(n)
        chars = self.chars(positions, n)
        seen: set[int] = set()
        repeats: list[int] = []
        resume = 0
        for index, (position, key) in enumerate(zip(positions.tolist(), ids.tolist())):
            if position < resume:
                continue
            if key in seen:
                repeats.append(index)
                resume = position + n
            else:
                seen.add(key)
        hits = np.array(repeats, np.int64)
        totals = np.bincount(self.text[positions[hits]], weights=chars[hits], minlength=len(self.sizes))
        return totals.astype(np.int64)


def _repeats(positions: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The positions whose key occurs more than once, a dense id for each key, a bound on the ids."""
    if len(keys) < 2:
        return positions[:0], keys[:0], 1
    _, ids, counts = np.unique(keys, return_inverse=True, return_counts=True)
    repeated = counts[ids] > 1
    return positions[repeated], ids[repeated], len(counts)
