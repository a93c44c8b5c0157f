"""text.user_name: which names are refused as spoofing and which are a real spelling."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascadeflow_cli.errors import InputError
from cascadeflow_cli.text import equivalent_name, shown_name, spelled_name, user_name


@pytest.mark.parametrize("name", [
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian "I want": ZWNJ between Arabic letters
    "\u0915\u094d\u200d\u0937",  # Devanagari conjunct with ZWJ
    "\u0928\u094d\u200c\u0928",  # Devanagari with ZWNJ after a virama (a mark)
    "zoë", "李",
])
def test_a_joiner_inside_a_word_of_a_joining_script_is_a_name(name: str) -> None:
    assert user_name(name) == name


@pytest.mark.parametrize("name", [
    "al\u200cice", "al\u200dice",  # Latin: the joiner only hides
    "\u200c\u0645\u06cc",  # at the start: nothing to join
    "\u0645\u06cc\u200c",  # at the end
    "\u0645\u200cx",  # one side Latin
    "\u0645\u200b\u06cc",  # a zero-width space is no joiner in any script
])
def test_a_joiner_that_only_hides_is_refused(name: str) -> None:
    with pytest.raises(InputError, match="invisible format character"):
        user_name(name)


@pytest.mark.parametrize("name", [" alice", "alice ", "alice\u00a0", "\u2003alice"])
def test_a_space_at_either_end_is_refused(name: str) -> None:
    # " alice " is shown as alice in every table, and charged apart from her
    with pytest.raises(InputError, match="starts or ends with a space"):
        user_name(name)


def test_a_space_inside_a_name_is_part_of_it() -> None:
    assert user_name("alice smith") == "alice smith"


@pytest.mark.parametrize("name", ["alice", "Zoë", "رضا", "क्ष", "👨\u200d👩\u200d👧", "a\\x0d"])
def test_a_name_todays_check_takes_is_shown_as_it_is(name: str) -> None:
    assert user_name(name) == name and shown_name(name) == name


@pytest.mark.parametrize("name, shown", [("alice\r", "alice\\x0d"), ("\x1b[31mroot", "\\x1b[31mroot"),
                                         ("al\u200bice", "al\\u200bice"), ("x\u202ey", "x\\u202ey"),
                                         ("a\x85", "a\\x85"), (" alice", "\\x20alice"),
                                         ("bob\u00a0", "bob\\xa0")])
def test_a_name_it_refuses_is_shown_as_what_it_holds(name: str, shown: str) -> None:
    with pytest.raises(InputError):
        user_name(name)
    assert shown_name(name) == shown


def test_a_legacy_name_is_found_by_its_spelling_and_only_then() -> None:
    names = {"alice\r", " eve", "bob", "a\\x0d", "a\r"}
    assert spelled_name("alice\\x0d", names) == "alice\r"
    assert spelled_name("\\x20eve", names) == " eve"
    assert spelled_name("bob", names) is None  # a stored name is itself, not a spelling
    assert spelled_name("a\\x0d", names) is None  # a stored name, though "a\r" spells so too
    assert spelled_name("carol\\x0d", names) is None


# valid names (the house's user-name strategy): no control characters, no spaces at the ends
VALID = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1).map(str.strip).filter(bool)


@given(st.sets(VALID, max_size=5), st.text(min_size=1, max_size=6))
def test_every_legacy_name_is_found_again_by_how_it_is_shown(names: set[str], legacy: str) -> None:
    stored = names | {legacy}
    shown = shown_name(legacy)
    nfc = unicodedata.normalize("NFC", shown)
    if shown not in stored and any(unicodedata.normalize("NFC", n) == nfc for n in stored):
        return  # the name it is canonically equivalent to is found first (tested below)
    others = [n for n in stored if n != legacy and shown_name(n) == shown]
    if shown != legacy and shown not in stored and not others:
        assert spelled_name(shown, stored) == legacy
    else:  # shown as it is, or its spelling is another's name too: nothing to find
        assert spelled_name(shown, stored) is None


COMPOSED, DECOMPOSED = "Jos\u00e9", "Jose\u0301"  # "José" two ways: they look alike


def test_a_user_name_is_kept_composed_however_it_is_typed() -> None:
    """NFC vs NFD "José" were two users with two budgets (hostile-13)."""
    assert user_name(DECOMPOSED) == COMPOSED and user_name(COMPOSED) == COMPOSED
    assert user_name("\u212b") == "\u00c5"  # the Angstrom sign is the letter Å


def test_a_legacy_decomposed_name_is_found_by_either_spelling() -> None:
    assert equivalent_name(COMPOSED, {DECOMPOSED, "bob"}) == DECOMPOSED
    assert equivalent_name(DECOMPOSED, {COMPOSED}) == COMPOSED
    assert equivalent_name(COMPOSED, {COMPOSED, DECOMPOSED}) is None  # stored as it is: itself
    assert equivalent_name("bob", {"bob2"}) is None and equivalent_name(COMPOSED, {"bob"}) is None
    assert spelled_name(COMPOSED, {DECOMPOSED}) == DECOMPOSED  # the read commands' --user rule


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_number_past_python_s_digit_cap_is_bad_json_that_says_where(as_bytes: bool) -> None:
    import json

    from cascadeflow_cli.text import json_loads

    text = '{"user": "é", "cost": ' + "9" * 5000 + "}"
    with pytest.raises(json.JSONDecodeError) as caught:
        json_loads(text.encode() if as_bytes else text)
    # it said "use sys.set_int_max_str_digits() to increase the limit", to a user of import
    assert caught.value.msg == "a number of 5000 digits (at most 4300 are read)"
    assert caught.value.colno == text.index("9") + 1
