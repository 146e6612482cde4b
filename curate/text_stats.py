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
from itertools import chain, compress, count
from operator import not_
from typing import cast

import numpy as np
import regex

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


# Chunk -> tokens, for every chunk seen recently: text repeats its chunks (words, "end.", "foo(x)"),
# so most are looked up, not split. Bounded: emptied when it would pass the limit (the result
# never depends on it). ~150 bytes an entry: ~75 MB when full.
_CHUNK_CACHE: dict[str, tuple[str, ...]] = {}
_CHUNK_CACHE_LIMIT = 500_000


def split_words(text: str) -> list[str]:
    """The words and punctuation tokens of `text`, as spaCy's English tokenizer would cut them.

    The loop over chunks runs in C (`map`, `chain`): Python code runs only for chunks not cached.
    """
    chunks = text.split()
    cache = _CHUNK_CACHE
    found = list(map(cache.get, chunks))
    if None in found:
        needed = dict.fromkeys(compress(chunks, map(not_, found)))
        if len(cache) + len(needed) > _CHUNK_CACHE_LIMIT:
            cache.clear()
            needed = dict.fromkeys(chunks)
        for chunk in needed:
            cache[chunk] = chunk_tokens(chunk)
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))
    return list(chain.from_iterable(cast(list[tuple[str, ...]], found)))  # every chunk was cached


_WORDS_MEMO: dict[str, list[str]] = {}
# Characters of text whose words are remembered: a whole batch (executor.batch_mb is 32 MB), so
# the stages after the first find every document of it. ~2 bytes per character of text at most
# (the words are mostly the chunk cache's own strings: the memo holds lists of references).
_WORDS_MEMO_LIMIT = 32_000_000
_words_memo_chars = 0


def words_of(text: str) -> list[str]:
    """`split_words(text)`, remembered for the most recent texts (do not modify the result).

    Filters that run one after another on the same batch (Gopher repetition, then Gopher quality)
    split each document once. Memory is bounded: the memo is emptied past a few million characters.
    """
    global _words_memo_chars
    words = _WORDS_MEMO.get(text)
    if words is None:
        words = split_words(text)
        if _words_memo_chars + len(text) > _WORDS_MEMO_LIMIT:
            _WORDS_MEMO.clear()
            _words_memo_chars = 0
        _WORDS_MEMO[text] = words
        _words_memo_chars += len(text)
    return words


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

PARAGRAPH_BREAK = re.compile(r"\n{2,}")
LINE_BREAKS = re.compile(r"\n+")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: text separated by blank lines (two or more newlines)."""
    return PARAGRAPH_BREAK.split(text.strip())


def split_lines(text: str) -> list[str]:
    """Lines, runs of newlines counting as one break (Gopher's line statistics)."""
    return LINE_BREAKS.split(text)


def duplicates(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier item, and how many characters those repeats hold."""
    distinct = set(items)  # everything but the first occurrence of each item is a repeat
    return len(items) - len(distinct), sum(map(len, items)) - sum(map(len, distinct))


# ---------------------------------------------------------------------------------------------
# Word n-grams


class NGrams:
    """Exact n-gram identities over a word list, for Gopher's repetition statistics.

    Each n-gram gets a dense integer id (equal ids = equal n-grams, no hashing): words are
    numbered, then the ids of the (n-1)-grams are paired with the next word's id and renumbered,
    one `numpy.unique` per n.
    """

    def __init__(self, words: list[str]):
        # ids in order of first appearance; the loops run in C (dict.fromkeys, zip, map)
        vocabulary = dict(zip(dict.fromkeys(words), count()))
        self.words = words
        self.ids = np.fromiter(map(vocabulary.__getitem__, words), np.int64, len(words))
        self.lengths = np.fromiter(map(len, words), np.int64, len(words))
        self.cumulative = np.concatenate(([0], np.cumsum(self.lengths)))
        self._ids: dict[int, np.ndarray] = {1: self.ids}
        self._distinct_from: int | None = None  # the smallest n whose n-grams are all distinct

    def ids_of(self, n: int) -> np.ndarray:
        """The id of the n-gram starting at each position (len(words) - n + 1 of them)."""
        if n not in self._ids:
            previous = self.ids_of(n - 1)
            if len(previous) <= 1:
                self._ids[n] = previous[:0]
            elif self._distinct_from is not None and n - 1 >= self._distinct_from:
                # all (n-1)-grams differ, so all n-grams do (equal n-grams have equal prefixes)
                self._ids[n] = np.arange(len(previous) - 1, dtype=np.int64)
            else:
                pairs = previous[:-1] * (len(self.words) + 1) + self.ids[n - 1 :]
                unique, inverse = np.unique(pairs, return_inverse=True)
                self._ids[n] = inverse.astype(np.int64)
                if len(unique) == len(pairs):
                    self._distinct_from = n
        return self._ids[n]

    def all_distinct(self, n: int) -> bool:
        """Whether no n-gram occurs twice (known once `ids_of(n)` has run)."""
        return self._distinct_from is not None and n >= self._distinct_from

    def chars(self, n: int) -> np.ndarray:
        """Characters of each n-gram's words (without separators)."""
        return self.cumulative[n:] - self.cumulative[:-n] if len(self.words) >= n else np.zeros(0, np.int64)

    def top_chars(self, n: int) -> int:
        """Characters covered by the most frequent n-gram: its length joined with spaces x its count.

        Ties go to the n-gram seen first (as `Counter.most_common(1)` does). 0 without n-grams.
        """
        ids = self.ids_of(n)
        if len(ids) == 0:
            return 0
        if self.all_distinct(n):  # each n-gram once: the first one wins
            return int(self.chars(n)[0] + n - 1)
        counts = np.bincount(ids)
        best = counts.max()
        # the earliest-starting n-gram among the most frequent: the first position whose n-gram
        # has the top count (argmax of a boolean array is its first True)
        position = int(np.argmax(counts[ids] == best))
        return int((self.chars(n)[position] + n - 1) * best)

    def duplicate_chars(self, n: int) -> int:
        """Characters in n-grams that repeat an earlier n-gram, counting overlapping repeats once.

        Scanning left to right, an n-gram already seen adds its characters and the scan jumps past
        it; otherwise it is remembered and the scan moves one word (Gopher's definition, as in
        datatrove). Only n-grams occurring twice or more can repeat, so only those are visited.
        """
        ids = self.ids_of(n)
        if len(ids) == 0 or self.all_distinct(n):
            return 0
        counts = np.bincount(ids)
        candidates = np.flatnonzero(counts[ids] > 1)
        if len(candidates) == 0:
            return 0
        seen: set[int] = set()
        total, resume = 0, 0
        for position, key, chars in zip(
            candidates.tolist(), ids[candidates].tolist(), self.chars(n)[candidates].tolist()
        ):
            if position < resume:
                continue
            if key in seen:
                total += chars
                resume = position + n
            else:
                seen.add(key)
        return total
