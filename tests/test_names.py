"""Mapping a name Snowflake shows back to the listed key (loader.names): raw first, then URL-decoded."""

from __future__ import annotations

from loader.names import listed_key


def test_a_raw_name_that_is_listed_is_kept_even_if_it_looks_encoded() -> None:
    assert listed_key("live/acme/a%20b.json.gz", {"live/acme/a%20b.json.gz"}) == "live/acme/a%20b.json.gz"


def test_an_encoded_name_maps_to_the_listed_key_it_decodes_to() -> None:
    listed = {"live/acme/a b+c é.json.gz", "live/acme/50%.json.gz"}
    assert listed_key("live/acme/a%20b%2Bc%20%C3%A9.json.gz", listed) == "live/acme/a b+c é.json.gz"
    assert listed_key("live/acme/50%25.json.gz", listed) == "live/acme/50%.json.gz"


def test_a_name_matching_no_listed_key_is_left_as_shown() -> None:
    assert listed_key("live/acme/gone%20.json.gz", set()) == "live/acme/gone%20.json.gz"
