"""text.user_name: which names are refused as spoofing and which are a real spelling."""

from __future__ import annotations

import pytest

from cascadeflow_cli.errors import InputError
from cascadeflow_cli.text import shown_name, user_name


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
