"""Strict key validation: only `^[A-Z][A-Z0-9_]+-[1-9][0-9]*\\Z`, ASCII, never normalised."""

from __future__ import annotations

import pytest

from app.errors import BadRequest
from app.intake.keys import is_valid_key, validate_key

VALID = ["PROJ-1", "AB-10", "A1-99", "MY_TEAM-123456", "X2Y_Z-7"]
INVALID = [
    "PROJ-1\n",  # `$` would accept this; fullmatch does not
    "PROJ-1\r\n",
    "-PROJ-1",
    "PROJ-1;rm -rf ~",
    "PROJ-1/../../etc",
    "../PROJ-1",
    "proj-12",
    "Proj-12",
    "\u0420ROJ-1",  # Cyrillic capital ER, looks exactly like Latin P
    "PROJ-\u0661",  # Arabic-Indic digit one: \d would accept it, [0-9] does not
    "PROJ-1\u0661",  # ... and after a valid first digit, where only [0-9]/ASCII stops it
    "PROJ-1\uff11",  # fullwidth digit one
    "PROJ-１",  # fullwidth digit
    "P-1",  # project keys have at least two characters
    "PROJ-0",
    "PROJ-01",
    "PROJ1",
    "PROJ--1",
    "1PROJ-1",
    "_PROJ-1",
    "PROJ-1 ",
    " PROJ-1",
    "PROJ-1\x00",
    "",
    "A" * 120 + "-1",
]


@pytest.mark.parametrize("key", VALID)
def test_valid_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key
    assert is_valid_key(key)


@pytest.mark.parametrize("key", INVALID)
def test_invalid_keys_are_refused_with_400(key: str) -> None:
    assert not is_valid_key(key)
    with pytest.raises(BadRequest) as info:
        validate_key(key)
    assert info.value.status_code == 400
    assert info.value.code == "invalid_key"


@pytest.mark.parametrize("value", [None, 12, ["PROJ-1"], {"k": "PROJ-1"}, b"PROJ-1"])
def test_non_strings_are_invalid(value: object) -> None:
    assert not is_valid_key(value)
    with pytest.raises(BadRequest):
        validate_key(value)


def test_detail_shows_control_characters_escaped() -> None:
    with pytest.raises(BadRequest) as info:
        validate_key("PROJ-1\n")
    assert "\n" not in info.value.detail
    assert "'PROJ-1\\n'" in info.value.detail
