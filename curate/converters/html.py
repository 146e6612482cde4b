"""HTML → Markdown text for Q&A bodies (Stack Exchange posts), with markdownify.

Kept: paragraphs, headings, lists, block quotes, emphasis, inline code and fenced code blocks —
the structure LIMA kept. Dropped: images, and link targets (a link becomes its text), as LIMA
did. Markdown special characters in the text are not escaped: SFT targets are read by models,
not re-rendered, and escaped underscores would corrupt code identifiers.
"""

from __future__ import annotations

import re

from markdownify import MarkdownConverter

BLANK_RUNS = re.compile(r"\n{3,}")
TRAILING_SPACES = re.compile(r"[ \t]+$", re.MULTILINE)


class QAConverter(MarkdownConverter):
    def convert_a(self, el, text, parent_tags):  # the link text only
        return text

    def convert_img(self, el, text, parent_tags):  # no images in text data
        return ""


_CONVERTER = QAConverter(
    heading_style="ATX",
    bullets="-",
    escape_underscores=False,
    escape_asterisks=False,
    escape_misc=False,
    code_language="",
)


def html_to_text(html: str) -> str:
    """Markdown text of an HTML fragment (never executes or fetches anything)."""
    text = _CONVERTER.convert(html)
    text = TRAILING_SPACES.sub("", text)
    return BLANK_RUNS.sub("\n\n", text).strip()
