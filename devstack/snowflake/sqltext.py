"""A small tokenizer and parser for the statements the stand-in handles itself.

fakesnow's sqlglot dialect cannot parse integrations, pipes or stage DDL, so these are read here:
identifiers (docs/snowflake-facts.md §9: unquoted ones are stored uppercase, quoted ones kept as written),
string literals (doubled quotes and backslash escapes), and ``KEY = value`` option lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*|//[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^'\\]|\\.|'')*')
    |(?P<arrow>=>)
    |(?P<punct>[(),=;])
    |(?P<word>(?:"(?:[^"]|"")*"|[^\s'"(),=;])+)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "string", "word", "punct", "arrow"
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.upper in words


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(sql):
        match = _TOKEN_RE.match(sql, position)
        if match is None:
            raise ValueError(f"unexpected character {sql[position]!r} at {position}")
        kind = match.lastgroup or "ws"
        if kind != "ws":
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        position = match.end()
    while tokens and tokens[-1].text == ";":
        tokens.pop()
    return tokens


def unquote_string(literal: str) -> str:
    """The value of a single-quoted literal: '' and backslash escapes (docs/snowflake-facts.md §9)."""
    body = literal[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'"}
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(escapes.get(body[index + 1], body[index + 1]))
            index += 2
        elif char == "'" and body[index + 1 : index + 2] == "'":
            out.append("'")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def split_name(text: str) -> list[str]:
    """``db."My Schema".obj`` -> ["DB", "My Schema", "OBJ"] (docs/snowflake-facts.md §9)."""
    parts: list[str] = []
    for match in re.finditer(r'"((?:[^"]|"")*)"|([^."]+)|(\.)', text):
        if match.group(1) is not None:
            parts.append(match.group(1).replace('""', '"'))
        elif match.group(2) is not None:
            parts.append(match.group(2).upper())
    return parts


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


OptionValue: TypeAlias = str | bool | int | list["OptionValue"] | dict[str, "OptionValue"]


class Parser:
    """A cursor over tokens with the few grammar helpers the handlers need."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.tokens = tokenize(sql)
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end of statement")
        self.pos += 1
        return token

    def accept(self, *words: str) -> bool:
        """Consume the given sequence of keywords if it comes next."""
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token is None or token.upper != word:
                return False
        self.pos += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            found = self.peek()
            raise ValueError(f"expected {' '.join(words)}, found {found.text if found else 'end'}")

    def name(self) -> list[str]:
        token = self.next()
        if token.kind != "word":
            raise ValueError(f"expected a name, found {token.text}")
        return split_name(token.text)

    def rest(self) -> str:
        token = self.peek()
        return self.sql[token.start :].strip().rstrip(";").strip() if token else ""

    def value(self) -> OptionValue:
        token = self.next()
        if token.kind == "string":
            return unquote_string(token.text)
        if token.text == "(":
            return self._parenthesised()
        if token.upper in ("TRUE", "FALSE"):
            return token.upper == "TRUE"
        if re.fullmatch(r"-?\d+", token.text):
            return int(token.text)
        return token.text

    def _parenthesised(self) -> OptionValue:
        """``( 'a', 'b' )`` -> list; ``( TYPE = JSON … )`` -> dict."""
        token = self.peek()
        after = self.peek(1)
        if token is not None and token.kind == "word" and after is not None and after.text == "=":
            options = self.options(stop=")")
            self.expect(")")
            return options
        items: list[OptionValue] = []
        while (token := self.peek()) is not None and token.text != ")":
            if token.text == ",":
                self.pos += 1
                continue
            items.append(self.value())
        self.expect(")")
        return items

    def options(self, stop: str | None = None) -> dict[str, OptionValue]:
        """``KEY = value KEY2 = value …`` until the end, ``stop`` or a token that is not an option."""
        options: dict[str, OptionValue] = {}
        while (token := self.peek()) is not None and token.text != stop:
            after = self.peek(1)
            if token.text == ",":
                self.pos += 1
                continue
            if token.kind != "word" or after is None or after.text != "=":
                break
            self.pos += 2
            options[token.upper] = self.value()
        return options


def find_matching_paren(sql: str, open_index: int) -> int:
    """Index of the ``)`` closing the ``(`` at open_index, skipping strings and quoted names."""
    depth = 0
    for token in tokenize(sql[open_index:]):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
            if depth == 0:
                return open_index + token.start
    raise ValueError("unbalanced parentheses")


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on separators outside parentheses and strings."""
    parts: list[str] = []
    depth = 0
    start = 0
    for token in tokenize(text):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif token.text == separator and depth == 0:
            parts.append(text[start : token.start].strip())
            start = token.end
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """SHOW … LIKE '<pattern>': case-insensitive, % and _ wildcards."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL)
