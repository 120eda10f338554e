"""The writer's file layout under an organisation's live prefix: one home for its default, its regular
expression (the pipe's PATTERN and the loader's listing both use it) and REFRESH's fixed prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

DEFAULT_LAYOUT = "events/env_key={env_key}/year={year}/month={month}/day={day}/hour={hour}/{name}.json.gz"


def layout_regex(layout: str) -> str:
    """The writer's layout as one regular expression over a file's path, for both the pipe's PATTERN and
    the loader's listing, so Snowpipe loads exactly the files the loader tracks. Each placeholder is one
    path segment; the optional lead lets the pattern match whether Snowflake applies it to the path
    relative to the stage or to the whole path (the docs differ by load kind)."""
    parts = re.split(r"\{\w+\}", layout)
    return "(?:.*/)?" + "[^/]+".join(part.replace(".", "[.]") for part in parts)


@dataclass(frozen=True)
class Layout:
    """Which keys under an organisation's live prefix are event files (the writer's layout)."""

    template: str

    @property
    def fixed_head(self) -> str:
        """The folders before the first placeholder: REFRESH's PREFIX."""
        head = self.template.split("{", 1)[0]
        return head[: head.rfind("/") + 1]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(layout_regex(self.template))

    def matches(self, relative_key: str) -> bool:
        return self.pattern.fullmatch(relative_key) is not None
