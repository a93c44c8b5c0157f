"""[domains.custom.NAME]: parsed from a real config file, matched by word overlap by the
rules (and so by `cascade ask` routing), and listed by AppConfig.domain_names()."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.config import parse_config
from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.routing.custom import MAX_EMBEDDED, make_domain
from cascadeflow_cli.routing.domain import DOMAINS, DomainDetector
from tests.conftest import FIXTURES

SUPPORT = """
[domains]
code = ["mini", "big"]
[domains.custom.support]
examples = ["Where is my order?", "I want a refund for my order", "The parcel arrived damaged"]
models = ["mini"]
"""


def test_a_custom_domain_gets_a_chain_and_a_name() -> None:
    config = parse_config(SUPPORT)
    assert config.domains == {"code": ("mini", "big"), "support": ("mini",)}
    assert config.domain_names() == (*DOMAINS, "support")
    assert config.custom_domains["support"].examples[0] == "Where is my order?"


def test_existing_configs_stay_valid_and_list_only_built_in_domains() -> None:
    config = parse_config('[domains]\nmath = ["big"]\n')
    assert config.domains == {"math": ("big",)} and config.domain_names() == DOMAINS


@pytest.mark.parametrize(("text", "message"), [
    ('[domains.custom.code]\nexamples = ["x"]\n', "'code' is a built-in domain"),
    ('[domains.custom.support]\nexamples = []\n', "has no examples"),
    ('[domains.custom.support]\nexamples = ["  "]\n', "has no examples"),
    ('[domains.custom.Support]\nexamples = ["x"]\n', "lowercase"),
    ('[domains.custom.support]\nexample = ["x"]\n', "unknown key"),
    ('[domains.custom.support]\nexamples = "x"\n', "list of strings"),
    ('[domains.custom.support]\nexamples_file = "nope.txt"\n', "not found"),
    ('[domains.custom.support]\nexamples = ["x"]\nmodels = ["nobody"]\n', "undefined model"),
    ('[domains]\nsupport = ["mini"]\n[domains.custom.support]\nexamples = ["x"]\nmodels = ["big"]\n',
     "already names a chain"),
])
def test_bad_custom_domains_are_one_clear_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cascadeflow.toml"
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(text, path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_examples_come_from_a_jsonl_file_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "support.jsonl").write_text((FIXTURES / "support_examples.jsonl").read_text())
    text = '[domains.custom.support]\nexamples_file = "support.jsonl"\nexamples = ["extra one"]\n'
    domain = parse_config(text, tmp_path / "cascadeflow.toml").custom_domains["support"]
    assert len(domain.examples) == 7 and domain.examples[0] == "extra one"
    assert {"order", "refund", "parcel"} <= set(domain.words)


def test_word_overlap_routes_to_the_custom_domain_without_the_extra() -> None:
    config = parse_config(SUPPORT)
    detector = DomainDetector(custom=config.custom_domains, min_confidence=0.5)
    result = detector.detect("my order never came and I want a refund")
    assert result.domain == "support" and result.method == "rules"
    assert set(result.signals["support"]) == {"word 'order'", "word 'refund'"}
    assert detector.detect("Write a Python function that sorts a list").domain == "code"
    assert detector.detect("").domain == "general"


def test_one_example_is_enough() -> None:
    domain = make_domain("sql", ("join two tables on a foreign key",))
    result = DomainDetector(custom={"sql": domain}).detect("which join for tables without a foreign key")
    assert result.domain == "sql"


def test_a_hundred_thousand_examples_keep_a_small_vocabulary_and_an_embedding_sample() -> None:
    examples = tuple(f"ticket {i} about invoice number {i % 97} and shipping" for i in range(100_000))
    domain = make_domain("billing", examples)
    assert len(domain.embedded_examples()) == MAX_EMBEDDED
    sample = domain.embedded_examples()
    assert sample[0] == examples[0] and len(set(sample)) == MAX_EMBEDDED
    assert {"ticket", "invoice", "shipping"} <= set(domain.words) and len(domain.words) <= 400
    result = DomainDetector(custom={"billing": domain}).detect("shipping of my invoice ticket")
    assert result.domain == "billing"


def test_the_cascade_routes_a_custom_domain_to_its_chain() -> None:
    from cascadeflow_cli.engine.cascade import Cascade

    cascade = Cascade(parse_config(SUPPORT), None, gate=None)
    routed = cascade.route("I want a refund: my order never came")
    assert routed is not None and routed.domain == "support"
    assert [m.name for m in cascade.resolve_chain(None, routed.domain)] == ["mini"]
    assert [m.name for m in cascade.resolve_chain(None, "general")] == ["mini", "big"]


def test_reading_the_config_counts_no_words_until_a_query_is_routed() -> None:
    """Every command reads the config; counting 100,000 examples' words cost 0.5-1.7 s CPU."""
    domain = parse_config(SUPPORT).custom_domains["support"]
    assert "words" not in vars(domain)  # not counted yet
    detector = DomainDetector(custom={"support": domain})
    assert detector.detect("my order never came, I want a refund").domain == "support"
    assert {"order", "refund"} <= set(vars(domain)["words"])


def test_a_large_domains_word_count_is_kept_by_content(tmp_path: Path) -> None:
    from cascadeflow_cli.routing.custom import CACHED_FROM, common_words, count_words

    examples = tuple(f"ticket {i} about invoice {i % 13} and {('shipping', 'billing')[i % 2]}"
                     for i in range(CACHED_FROM + 10))
    counted = count_words(examples)
    assert common_words(examples, tmp_path) == counted
    (kept,) = tmp_path.iterdir()  # one file, no temporary left
    assert common_words(examples, tmp_path) == counted  # read back
    kept.write_text("{not json")
    assert common_words(examples, tmp_path) == counted  # a damaged file: counted again, and kept again
    assert common_words(examples[:-1], tmp_path) == count_words(examples[:-1])  # other examples, another file
    assert len(list(tmp_path.iterdir())) == 2
    small = examples[: CACHED_FROM - 1]
    assert common_words(small, tmp_path / "small") == count_words(small)
    assert not (tmp_path / "small").exists()  # a small domain is counted each time: quicker than a file
