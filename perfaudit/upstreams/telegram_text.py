"""Telegram's entity parsing for sendMessage, closely following TDLib's parse_html and
(legacy) parse_markdown, so the service's Markdown -> HTML -> plain fallback really fires.

Each parser returns the plain text left after removing markup, or raises EntityError
with Telegram's wording. Byte offsets are UTF-8 offsets into the original text, as in
Telegram's messages.
"""

from __future__ import annotations

import re

MAX_MESSAGE_LENGTH = 4096

ALLOWED_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)

_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAME_TOKEN_RE = re.compile(r"[A-Za-z0-9.\-]*")


class EntityError(ValueError):
    """Text rejected by entity parsing; str() is the part after "can't parse entities: "."""


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode an HTML entity at text[i] == '&'; returns (char, index after ';') or None."""
    m = _ENTITY_RE.match(text, i)
    if m is None:
        return None
    if m.group(1):
        return _NAMED_ENTITIES[m.group(1)], m.end()
    code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


def parse_html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []  # open tag names
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded is None:
                # TDLib keeps a bare '&' literally; Telegram's docs require escaping it,
                # and we enforce the documented (strict) rule.
                raise EntityError(f"Unsupported HTML entity at byte offset {_byte_offset(text, i)}")
            out.append(decoded[0])
            i = decoded[1]
            continue
        if c != "<":
            out.append(c)
            i += 1
            continue
        begin = i
        if i + 1 < n and text[i + 1] == "/":
            i = _end_tag(text, begin, stack)
        else:
            i = _start_tag(text, begin, stack)
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _start_tag(text: str, begin: int, stack: list[str]) -> int:
    n = len(text)
    i = begin + 1
    while i < n and not text[i].isspace() and text[i] != ">":
        i += 1
    if i >= n:
        raise EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
    tag = text[begin + 1 : i].lower()
    if tag not in ALLOWED_HTML_TAGS:
        raise EntityError(
            f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
        )
    span_class = ""
    while text[i] != ">":
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if text[i] == ">":
            break
        name_start = i
        while i < n and not text[i].isspace() and text[i] not in "=>":
            i += 1
        attr = text[name_start:i].lower()
        if not attr:
            raise EntityError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, begin)}'
            )
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            raise EntityError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if text[i] in "'\"":
            quote = text[i]
            end = text.find(quote, i + 1)
            value = text[i + 1 : end if end != -1 else n]
            i = n if end == -1 else end + 1
        else:
            m = _NAME_TOKEN_RE.match(text, i)
            assert m is not None
            value = m.group(0).lower()
            i = m.end()
            if i < n and not text[i].isspace() and text[i] != ">":
                raise EntityError(
                    f"Unexpected end of name token at byte offset {_byte_offset(text, m.start())}"
                )
        if i >= n:
            raise EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if tag == "span" and attr == "class":
            span_class = value
    if tag == "span" and span_class != "tg-spoiler":
        raise EntityError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}'
        )
    stack.append(tag)
    return i + 1


def _end_tag(text: str, begin: int, stack: list[str]) -> int:
    n = len(text)
    if not stack:
        raise EntityError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
    i = begin + 2
    while i < n and not text[i].isspace() and text[i] != ">":
        i += 1
    name = text[begin + 2 : i].lower()
    while i < n and text[i].isspace():
        i += 1
    if i >= n or text[i] != ">":
        raise EntityError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
    expected = stack.pop()
    if name and name != expected:
        raise EntityError(
            f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
            f'expected "</{expected}>", found "</{name}>"'
        )
    return i + 1


def parse_markdown(text: str) -> str:
    """Legacy Markdown (parse_mode "Markdown"): *bold* _italic_ `code` ```pre``` [text](url).

    No nesting and no HTML awareness: ``<pre><code>`` is literal text here.
    """
    out: list[str] = []
    n = len(text)

    def at(j: int) -> str:
        return text[j] if j < n else ""

    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and at(i + 1) in ("_", "*", "`", "["):
            out.append(text[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        i += 1
        if c == "`" and at(i) == "`" and at(i + 1) == "`":
            i += 2
            is_pre = True
            lang_end = i
            while lang_end < n and not text[lang_end].isspace() and text[lang_end] != "`":
                lang_end += 1
            if i != lang_end and lang_end < n and text[lang_end] != "`":
                i = lang_end  # skip the language name
            if at(i) in ("\n", "\r"):
                i += 2 if at(i + 1) in ("\n", "\r") and at(i) != at(i + 1) else 1
        content_start = len(out)
        while i < n and (
            text[i] != end_char or (is_pre and not (at(i + 1) == "`" and at(i + 2) == "`"))
        ):
            out.append(text[i])
            i += 1
        if i >= n:
            raise EntityError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        if c == "[" and len(out) > content_start and at(i + 1) == "(":
            close = text.find(")", i + 2)
            i = n - 1 if close == -1 else close  # the URL is not part of the text
        if is_pre:
            i += 2
        i += 1
    return "".join(out)


def plain_text(text: str, parse_mode: str | None) -> str:
    """Text after entity parsing for the given parse_mode (case-insensitive, like Telegram)."""
    mode = (parse_mode or "").strip().lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode in ("", "markdownv2"):
        # MarkdownV2 is not validated (the reference service never uses it).
        return text
    raise ValueError("unsupported parse_mode")
