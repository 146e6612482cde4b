"""Citations in Galactica's form: `[START_REF] title, first author[END_REF]`.

Two sources of (title, first author):
- a raw reference string (unarXive's `bib_entry_raw`: "A. Author, B. Author. Title. Venue, 2020."):
  `parse_reference` splits it conservatively and gives up (None) rather than guess;
- BibTeX entries (`parse_bibtex`), for LaTeX `\\cite{key}` commands.
"""

from __future__ import annotations

import re

from curate.tokenization.markers import REF

# A sentence end: ". " after a lower-case letter (not after an initial such as "J." or "K.-Q.",
# nor after "Jr."/"Sr."), or after ")" ; "? " before a capital.
SENTENCE_END = re.compile(r"(?<=\w[a-z\u00df-\u024f])(?<!\bJr)(?<!\bSr)\.\s+(?=\S)|(?<=\))\.\s+(?=\S)|\?\s+(?=[A-Z])")
QUOTED = re.compile(r"[“\"«]([^”\"»]{10,300})[”\"»]")
INITIAL = re.compile(r"^(?:[A-Z]\.?-?)+$|^[A-Z]\.(?:[A-Z]\.)*$")
YEAR = re.compile(r"\(?\b(1[89]\d\d|20\d\d)[a-z]?\b\)?")
NOT_TITLE = re.compile(r"^(?:in\b|proc|arxiv|doi|http|vol\b|pp\b|journal\b|ieee\b|[\d\[(])", re.IGNORECASE)
VENUE_MARKS = re.compile(r"doi:|arxiv:|https?://|\bvol\.|\bpp\.", re.IGNORECASE)
NAME_PARTICLES = {
    "and",
    "et",
    "al",
    "al.",
    "jr",
    "sr",
    "van",
    "der",
    "den",
    "de",
    "von",
    "da",
    "di",
    "du",
    "la",
    "le",
    "y",
    "&",
}


def cite(title: str, author: str) -> str:
    return f"{REF[0]} {title}, {author}{REF[1]}"


def surname(author: str) -> str | None:
    """The family name in one author string: 'T. Alazard', 'Alazard, T.', 'Alazard T' -> 'Alazard'."""
    author = re.sub(r"[{}\\]", "", author).strip().strip(",")
    if "," in author:  # "Family, Given"
        author = author.split(",")[0]
    words = [
        w for w in re.split(r"\s+", author) if w and not INITIAL.match(w) and w.lower().strip(".") not in NAME_PARTICLES
    ]
    if not words:
        return None
    name = words[-1] if len(words) <= 3 else words[0]
    name = name.strip(".,;:")
    return name if len(name) >= 2 and any(c.isalpha() for c in name) and name[0].isupper() else None


def first_author(authors: str) -> str | None:
    authors = authors.strip()
    if re.match(r"^[A-Z][^\s,]+,\s*(?:[A-Z]\.\s*)+(?:,|and|&|$)", authors):  # "Smith, J., Doe, A."
        return surname(authors.split(",")[0])
    first = re.split(r",| and | & |;", authors, maxsplit=1)[0]
    return surname(first)


def clean_title(title: str) -> str | None:
    """The title, or None if it does not look like one (too short, a venue, mostly numbers)."""
    title = YEAR.sub("", title) if title.startswith("(") else title
    title = re.sub(r",\s*(1[89]|20)\d\d[a-z]?$", "", title.strip().strip(",.;: ")).strip()
    words = [w for w in title.split() if sum(c.isalpha() for c in w) >= 3]
    digits = sum(c.isdigit() for c in title)
    if (
        len(words) < 2
        or len(title) < 10
        or len(title) > 300
        or NOT_TITLE.match(title)
        or VENUE_MARKS.search(title)
        or digits > 0.2 * len(title)
    ):
        return None
    return title


def looks_like_authors(text: str) -> bool:
    """Every word is a capitalised name, an initial or a particle ('and', 'van', 'et al.')."""
    for word in re.split(r"[\s,;]+", text):
        word = word.strip(".")
        if word and not (word[0].isupper() or word.lower() in NAME_PARTICLES or INITIAL.match(word)):
            return False
    return bool(text.strip())


def parse_reference(raw: str) -> tuple[str, str] | None:
    """(title, first author's family name) of a raw reference, or None if it cannot be told."""
    raw = re.sub(r"^\s*\[\d+\]\s*", "", " ".join(raw.replace("~", " ").split()))
    quoted = QUOTED.search(raw)
    if quoted:
        if not looks_like_authors(raw[: quoted.start()]):
            return None
        author = first_author(raw[: quoted.start()])
        title = clean_title(quoted.group(1))
        return (title, author) if title and author else None
    parts = SENTENCE_END.split(raw)
    if len(parts) < 2:
        return None
    authors, title = parts[0], parts[1]
    year = YEAR.search(authors)
    if year and year.end() >= len(authors) - 2:  # "Smith J, Doe A (2020). Title."
        authors = authors[: year.start()]
    if not looks_like_authors(authors):
        return None
    author = first_author(authors)
    title = clean_title(title)
    if not author or not title or len(authors) > 400:
        return None
    return title, author


def latex_to_text(value: str) -> str:
    """A BibTeX field as plain text: braces and simple commands removed ('{\\'e}' -> 'e')."""
    value = value.replace("\\ ", " ").replace("~", " ")
    value = re.sub(r"\\[a-zA-Z]+\s*(?=\{)", "", value)
    value = re.sub(r"\\['`^\"~=.]\s*", "", value)
    return " ".join(value.replace("{", "").replace("}", "").split())


def parse_bibtex(text: str) -> dict[str, tuple[str, str]]:
    """BibTeX entries with a title and an author (or editor): key -> (title, first author's family name).

    A small brace-aware scanner of `@type{key, field = {...} | "..." | number, ...}`; entries it
    cannot read are skipped (a citation to them stays as it is in the text)."""
    entries: dict[str, tuple[str, str]] = {}
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        if match.group(1).lower() in ("comment", "preamble", "string"):
            continue
        fields, position = {}, match.end()
        while True:
            field = re.compile(r"\s*(\w[\w-]*)\s*=\s*").match(text, position)
            if not field:
                break
            value, position = read_value(text, field.end())
            if value is None:
                break
            fields[field.group(1).lower()] = value
            comma = re.compile(r"\s*,").match(text, position)
            if not comma:
                break
            position = comma.end()
        title = clean_title(latex_to_text(fields.get("title", "")))
        people = latex_to_text(fields.get("author") or fields.get("editor") or "")
        author = surname(re.split(r"\s+and\s+", people)[0]) if people else None
        if title and author:
            entries[match.group(2)] = (title, author)
    return entries


def read_value(text: str, position: int) -> tuple[str | None, int]:
    if position >= len(text):
        return None, position
    opener = text[position]
    if opener == "{":
        depth, index = 0, position
        while index < len(text):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                return text[position + 1 : index], index + 1
            index += 1
        return None, index
    if opener == '"':
        end = text.find('"', position + 1)
        return (text[position + 1 : end], end + 1) if end > 0 else (None, len(text))
    word = re.compile(r"[\w#]+").match(text, position)
    return (word.group(), word.end()) if word else (None, position)
