"""Which domain a query belongs to: code, math, medical, legal, finance or general.

Rule-based and fast (tens of microseconds): each domain has weighted signals -- terms
matched as whole words (so "api" does not fire inside "capital", nor "law" inside
"flaw"), and a few shapes (a code fence, ``def f(``, an equation, a question full of
numbers). A domain's score is the sum of the weights of the distinct signals it matched;
the domain is the highest-scoring one, and the confidence is its share of a softmax over
the scores in which "general" has a constant prior (a query that matched nothing is
general with that prior's confidence). Each result names the signals it matched, so a
routing decision can be explained.

The terms are general knowledge of each field, not the wording of any data set.

Pure Python; no I/O. The opt-in semantic detector lives in ``routing.semantic``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cascadeflow_cli.routing import shapes
from cascadeflow_cli.routing.complexity import complexity_of
from cascadeflow_cli.routing.custom import WORD_WEIGHT, CustomDomain, content_words
from cascadeflow_cli.routing.scripts import rule_text

DOMAINS = ("code", "math", "medical", "legal", "finance", "general")
LONG_TEXT = 40_000  # characters; see _ends
GENERAL_PRIOR = 1.5  # the score "general" starts with: one weak signal does not outvote it
MAX_CONFIDENCE = 0.99  # rules are never certain: at >= 0.9 they are right ~90% of the time
MIN_CONFIDENCE = 0.5  # below this, a detected domain is treated as general when routing


STRONG, MEDIUM, WEAK = 3.0, 2.0, 1.0


@dataclass(frozen=True)
class _Shape:
    name: str  # what the user sees ("code fence")
    pattern: re.Pattern[str] | shapes.WordEnds
    weight: float
    lowered: bool = False  # searched in the lowercased text (faster than re.IGNORECASE)


def _terms(tiers: dict[float, str]) -> list[tuple[str, float]]:
    """One domain's (term, weight) pairs from its weight tiers: comma-separated words or
    phrases; a trailing ``*`` allows any word ending ("diagnos*": diagnosis, diagnostic)."""
    return [
        (term, weight)
        for weight, words in tiers.items()
        for term in (w.strip() for w in words.split(","))
        if term
    ]


class _Index:
    """Every domain's terms, matched against a query's words in one pass. Words are runs
    of letters, digits, ``+`` and ``#`` joined by hyphens ("c++", "big-o", "age-related"),
    so "api" never fires inside "capital", nor "law" inside "flaw"."""

    def __init__(self, terms: dict[str, list[tuple[str, float]]]) -> None:
        self.exact: dict[tuple[str, ...], list[tuple[str, str, float]]] = {}
        self.stems: dict[tuple[str, ...], list[tuple[str, str, float]]] = {}  # last word a stem
        self.leads: set[tuple[str, ...]] = set()  # the words a phrase starts with
        self.stem_sizes: list[int] = []  # the lengths of the stems' last words
        self.longest = 1
        for domain, entry in terms.items():
            for term, weight in entry:
                name = term.rstrip("*")
                words = tuple(name.lower().split())
                self.longest = max(self.longest, len(words))
                self.leads.update(words[:k] for k in range(1, len(words)))
                table = self.stems if term.endswith("*") else self.exact
                table.setdefault(words, []).append((domain, name, weight))
        self.stem_sizes = sorted({len(words[-1]) for words in self.stems})

    def find(self, text: str) -> dict[str, dict[str, float]]:
        """Per domain, each distinct term matched in ``text`` and its weight."""
        tokens = _TOKEN.findall(text.lower())  # (lower() of a lowercase text is cheap)
        found: dict[str, dict[str, float]] = {}
        for i in range(len(tokens)):
            words: tuple[str, ...] = ()
            for token in tokens[i : i + self.longest]:
                lead, words = words, (*words, token)
                if lead and lead not in self.leads:
                    break
                hits = list(self.exact.get(words, ()))
                for size in self.stem_sizes:  # each prefix of the last word as long as a stem
                    if size > len(token):
                        break
                    hits.extend(self.stems.get((*lead, token[:size]), ()))
                for domain, name, weight in hits:
                    found.setdefault(domain, {}).setdefault(name, weight)
        return found


# a word right after a backslash is a LaTeX command (\lambda, \sum, \int), not a field word
_TOKEN = re.compile(r"(?<![\\\w+#])[\w+#]+(?:-[\w+#]+)*")


def _shape(name: str, regex: str, weight: float, flags: int = 0) -> _Shape:
    """A shape; a case-insensitive one (its literals lowercase) runs on the lowercased text."""
    if flags & re.I:
        return _Shape(name, re.compile(regex, flags & ~re.I), weight, lowered=True)
    return _Shape(name, re.compile(regex, flags), weight)


SHAPES: dict[str, list[_Shape]] = {
    "code": [
        _shape("code fence", r"```", 4.0),
        _shape("function definition", r"\bdef\s+\w+\s*\(|\bfunction\s+\w+\s*\(|\bfn\s+\w+\s*\(", 4.0),
        # [^\S\n]*, not \s*: a line's own blanks (\s* retried a run of blank lines to its end
        # at each of its line starts: 20,000 newlines took 1.7 s, a megabyte hours)
        _shape("doctest", r"^[^\S\n]*>>>", STRONG, re.M),
        _shape("import", r"^[^\S\n]*(#include\s*<|import\s+[\w.]+\s*$|from\s+[\w.]+\s+import\b)",
               STRONG, re.M),
        _shape("operator", r"==|!=|=>|\+\+|&&|\|\||::|\+=", WEAK),
        _shape("snake_case name", r"\b[a-z]+_[a-z_]+\b", WEAK),
    ],
    "math": [
        _shape("arithmetic", r"\d\s*[-+*/×÷^]\s*\(?\d", STRONG),
        _shape("equation", r"[a-z0-9)]\s*=\s*[-a-z0-9(]", MEDIUM, re.I),
        _shape("power", r"[a-z0-9)]\^\d|\b[a-z]²|\bx\s*\^", MEDIUM, re.I),
        _shape("percentage", r"\d\s*%", MEDIUM),
        _shape(
            "word problem",
            r"(?s)\A(?=.{0,600}\Z)(?=.*\d.*\d)(?=.*\b(how (many|much|long|far|old)|in total|altogether|"
            r"each|per|left|remain\w*)\b)(?=.*(\?|\b(calculate|find|compute|determine|work out)\b))",
            STRONG,
            re.I,
        ),
    ],
}

TERMS: dict[str, list[tuple[str, float]]] = {
    "code": _terms(
        {
            STRONG: """
            python, javascript, typescript, java, c++, c#, rust, golang, kotlin, ruby, php, perl,
            haskell, scala, sql, html, css, bash, regex, regular expression, stack trace, segfault,
            segmentation fault, null pointer, compiler*, compile, compiled, source code, programming,
            programmer*, debug*, refactor*, recursion, recursive function, linked list, hash table,
            hashmap, binary tree, binary search, big-o, time complexity, unit test*, git, docker, api,
            apis, json, boolean, subroutine*, pointer*, array*, bytecode, interpreter, runtime, syntax
            error, variable*, for loop, while loop, integer overflow, data structure*, operating
            system*, cpu, processor*, instruction set, microarchitecture, cache*, tcp, ip address,
            ethernet, packet*, network protocol*, firewall*, encryption, encrypt*, decrypt*,
            cryptograph*, malware, cross-validation, overfitting, classifier*, neural network*, machine
            learning, training set, gradient descent, deep learning, computer science,
            algorithm*, function that, write a function, implement*, code
        """,
            MEDIUM: """
            function, coding, script*, library, libraries, framework*, bug*, database*, query, queries,
            string*, list comprehension, dictionary, class, object-oriented, inheritance, software,
            program, programs, stack, queue, sorting, sort the, parameter*, input list,
            server*, http, endpoint*, thread*, concurren*, memory leak, binary, bits, bytes, byte,
            memory, internet, network*, protocol*, kernel*, circuit*, logic gate*, web, website,
            password*, hash*, login, file*, computer*, attack*, security
        """,
            WEAK: """
            return, argument*, compute*, data, model, training, test*, error*, list, tree, node*, graph*,
            method*, output, input
        """,
        }
    ),
    "math": _terms(
        {
            STRONG: """
            equation*, solve for, integral*, integrate, derivative*, differentiate, polynomial*,
            quadratic, logarithm*, square root, sqrt, factorial, prime number*, divisible, divisor*,
            greatest common, least common multiple, arithmetic, algebra*, calculus, geometry,
            trigonometr*, theorem*, matrix, matrices, eigenvalue*, vector space, probability,
            probabilities, permutation*, perimeter, hypotenuse, circumference, radius, diameter,
            remainder, modulo, fraction*, decimal*, percent*, percentage*, statistic*, standard
            deviation, variance, correlation, regression, random variable*, distribution, mean of,
            arithmetic mean, median of, mode of, sample size, hypothesis test*, confidence interval,
            p-value, axis of symmetry, symmetry, coordinate*, parabola, slope, intercept, inequalit*,
            exponent*, sequence*, series, coin flip*, coin toss*
        """,
            MEDIUM: """
            calculate, solve, average, ratio*, area, volume, triangle*, circle*, rectangle*, square*,
            angle*, integer*, real number*, rational, irrational, multiply, multiplied, divide, divided,
            subtract*, twice, half, numbers, digits, expected value, how many, how much, sum, product,
            function of, graph of, group theory, ring, field, vector*, estimate*, measure*, dice
        """,
            WEAK: """
            total, each, per, minutes, hours, score*, value*
        """,
        }
    ),
    "medical": _terms(
        {
            STRONG: """
            patient*, diagnos*, symptom*, treatment*, therap*, disease*, syndrome*, infection*,
            infected, cancer*, tumor*, tumour*, carcinoma, lymphoma, leukemia, diabet*, hypertension,
            cardiac, cardiovascular, myocardial, clinical, clinically, surgery, surgical, postoperative,
            medication*, drug*, dosage, dose, hospital*, physician*, nurse, nurses, nursing, medical,
            medicine, prognosis, mortality, morbidity, vaccine*, antibiotic*, viral, virus*, bacteria*,
            bacterial, pregnan*, chronic, acute, pathogen*, inflammat*, insulin, asthma, stroke,
            dementia, alzheimer*, anatomy, anatomical, physiolog*, nerve*, artery, arteries, vein*,
            blood pressure, heart rate, kidney*, renal, liver, hepatic, lung*, pulmonary, neuron*,
            muscle*, placebo, randomized, randomised, cohort, epidemiolog*, gene expression, allele*,
            chromosome*, genotype*, phenotype*, heredit*, mutation*, genetic*, enzyme*, hormone*,
            receptor*, biopsy, mri, ct scan, icu, pediatric, paediatric, injection*, thyroid, nodule*,
            lesion*, benign, malignant, implant*, fetal, fetus, birth, childbirth, vitamin*, nutrient*,
            nutrition*, obesity, cognitive decline, depression, mental health, psychiatric, immune,
            immunity, antibod*, metabolism, metabolic, cholesterol, glucose, surgeon*, clinic*, health
            care, healthcare, outpatient, inpatient
        """,
            MEDIUM: """
            health, pain, doctor*, blood, outcome*, risk factor*, trial*, dna, protein*, cell, cells,
            tissue*, organ, organs, biology, biological, diet*, smoking, brain, bone*, skin,
            age-related, elderly, infant*, children's health, exercise
        """,
            WEAK: """
            care, treat*, risk*, effect*, consumption
        """,
        }
    ),
    "legal": _terms(
        {
            STRONG: """
            contract*, clause*, statute*, statutory, court*, plaintiff*, defendant*, lawsuit*,
            litigation, sued, sue, liable, liability, tort*, negligen*, breach*, jurisdiction*,
            attorney*, lawyer*, counsel, legal, legally, illegal, unlawful, constitution*, amendment*,
            precedent*, verdict*, appellate, warrant*, indemnif*, copyright*, patent*, trademark*,
            hereby, herein, hereof, thereof, whereas, hearsay, testimony, witness*, criminal, felony,
            misdemeanor, prosecut*, arbitration, injunction, damages, jury, juror*, law, laws,
            legislat*, privacy policy, terms of service, license agreement, licensee, licensor,
            confidentiality, non-disclosure, governing law, fiduciary, easement, tenant*, landlord*,
            lease*, mens rea, due process, supreme court, treaty, treaties, tribunal*, international
            law, human rights, sovereign*, burglary, robbery, larceny, homicide, murder, manslaughter,
            theft, fraud*, cause of action, judge*, trial court, conviction, convicted, acquit*,
            sentenc*, probation, parole
        """,
            MEDIUM: """
            agreement*, party, parties, shall, rights, evidence, crime*, police, offense, offence,
            guilty, consent, obligation*, enforceable, binding, provision*, ruling*, appeal*,
            regulation*, regulatory, property, estate, victim*, claim*, entitled, state responsibility,
            convention*, ownership, buyer, seller, termination, dispute*
        """,
            WEAK: """
            government, federal, policy, policies, act, rule*, state, states
        """,
        }
    ),
    "finance": _terms(
        {
            STRONG: """
            bank*, credit card*, debit card*, loan*, mortgage*, interest rate*, apr, account balance,
            transaction*, deposit*, withdraw*, invest*, stock*, shares, bond*, dividend*, portfolio*,
            etf, mutual fund*, tax, taxes, taxable, tax return, savings, checking account, routing
            number, credit score, credit limit, inflation, gdp, monetary, fiscal, revenue*, profit*,
            earnings, accounting, asset*, equity, liabilities, currency, currencies, exchange rate*,
            bitcoin, crypto*, financ*, salary, paycheck, direct deposit, 401k, ira, pension*,
            retirement, insurance, annuity, capital gain*, venture capital, working capital,
            depreciation, amortization, cash flow, balance sheet, income statement, audit*, budget*,
            overdraft, atm, pin number, economy, economic*, economist*, macroeconomic*, microeconomic*,
            supply and demand, demand curve, supply curve, aggregate demand, aggregate supply,
            elasticity, marginal cost, marginal revenue, monopol*, oligopol*, recession, unemployment,
            interest, irs, deduction*, filing status, payroll, invoice*, expense*, fraudulent charge,
            trading, trader*, hodl, forex, hedging, valuation, ipo, broker*, brokerage,
            bull market, bear market, day trading, options trading, short selling, cagr, roi, net worth,
            compound interest, yield curve, treasury, treasuries, fintech, accountant*, bookkeeping,
            call option*, put option*, options position*, strike price, put spread*, call spread*
        """,
            MEDIUM: """
            balance, transfer*, payment*, pay my, bill*, refund*, card, cards, market*, price*, cost*,
            money, fee*, fund*, spend*, spending, debt*, owe, credit, cash, dollar*, income, wage*,
            firm*, business*, demand, supply, consumer*, producer*, equilibrium, trade, tariff*,
            charge*, purchase*, buy, sell, sold, rent
        """,
            WEAK: """
            rate*, pay, paid, loss*, value, cheap*, expensive
        """,
        }
    ),
}

# What real users paste and ask (routing.shapes): added to the exam-style signals above.
for _domain, _extra in (
    ("code", shapes.CODE_SHAPES),
    ("math", shapes.MATH_SHAPES),
    ("finance", shapes.FINANCE_SHAPES),
    ("general", shapes.GENERAL_SHAPES),
):
    SHAPES.setdefault(_domain, []).extend(_shape(*entry) for entry in _extra)
SHAPES.setdefault("medical", []).append(_Shape("clinical term", shapes.CLINICAL_TERMS, STRONG, lowered=True))
TERMS["code"] += [
    (t, w)
    for t, w in _terms({STRONG: shapes.CODE_NAMES, MEDIUM: shapes.CODE_VOCABULARY})
    if t not in {term for term, _ in TERMS["code"]}
]

TERMS["general"] = _terms(shapes.GENERAL_TERMS)

INDEX = _Index(TERMS)


@dataclass(frozen=True)
class DomainResult:
    """A detected domain. ``confidence`` in [0, 1]; ``signals``: what was matched, by
    domain; ``method``: "rules", "semantic" or "given" (the caller named it)."""

    domain: str
    confidence: float
    method: str = "rules"
    complexity: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    signals: dict[str, tuple[str, ...]] = field(default_factory=dict)
    explain: dict[str, Any] = field(default_factory=dict)  # the semantic detector's workings

    def to_json(self) -> dict[str, Any]:
        """The `cascade domain --json` row of CLI.md (without ``id``), plus the signals."""
        return {
            "domain": self.domain,
            "confidence": round(self.confidence, 4),
            "method": self.method,
            "complexity": self.complexity,
            "signals": {d: list(s) for d, s in self.signals.items() if s},
        }


class DomainDetector:
    """Detect a query's domain with weighted rules (see the module docstring).

    ``domains``: the domains to choose among ("general" is always one of them);
    ``min_confidence``: below this the result is "general" (the rules' own pick and
    scores stay in ``scores``/``signals``)."""

    def __init__(
        self,
        domains: Iterable[str] = DOMAINS,
        *,
        min_confidence: float = 0.0,
        custom: Mapping[str, CustomDomain] | None = None,
    ) -> None:
        self.custom = dict(custom or {})
        chosen = tuple(dict.fromkeys([*domains, *self.custom, "general"]))
        unknown = [d for d in chosen if d not in DOMAINS and d not in self.custom]
        if unknown:
            raise ValueError(f"unknown domain(s): {', '.join(unknown)}; known: {', '.join(DOMAINS)}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("min_confidence must be within [0, 1]")
        self.domains = chosen
        self.min_confidence = float(min_confidence)

    def detect(self, query: str) -> DomainResult:
        """The domain of ``query``, with confidence, complexity and the signals matched."""
        text = rule_text(query or "")  # NFC; "写一个Python函数" holds the word "python"
        lower = text.lower()
        terms = INDEX.find(_ends(lower))
        signals = {
            d: _matches(text, lower, d, terms.get(d, {}))
            for d in self.domains
            if d not in self.custom
        }
        if self.custom:  # word overlap with the user's examples (routing.custom)
            words = content_words(text)
            for name, domain in self.custom.items():
                signals[name] = [(f"word '{w}'", WORD_WEIGHT) for w in domain.overlap(words)]
        _code_explains_symbols(signals)
        scores = {d: sum(weight for _, weight in matched) for d, matched in signals.items()}
        scores["general"] += GENERAL_PRIOR  # general's own signals plus its prior
        chances = probabilities(scores)
        best = max(chances, key=lambda d: (chances[d], d == "general"))
        confidence = min(chances[best], MAX_CONFIDENCE)
        if best != "general" and confidence < self.min_confidence:
            best, confidence = "general", chances["general"]
        return DomainResult(
            domain=best,
            confidence=confidence,
            method="rules",
            complexity=complexity_of(_ends(text), best),
            scores={d: round(v, 2) for d, v in scores.items()},
            signals={d: tuple(name for name, _ in matched) for d, matched in signals.items()},
        )


def _ends(text: str) -> str:
    """All of a text up to LONG_TEXT characters, else its beginning and end: the shapes
    (a stack trace, a proof) are searched in all of it, but field words are counted once
    each and show up early, and reading every word of a megabyte in Python takes seconds."""
    if len(text) <= LONG_TEXT:
        return text
    return text[: LONG_TEXT // 2] + "\n" + text[-LONG_TEXT // 2 :]


def _matches(text: str, lower: str, domain: str, terms: dict[str, float]) -> list[tuple[str, float]]:
    """The distinct signals of ``domain`` in ``text``: its shapes, then its ``terms``."""
    shapes = [(s.name, s.weight) for s in SHAPES.get(domain, ())
              if s.pattern.search(lower if s.lowered else text)]
    return shapes + list(terms.items())


def _code_explains_symbols(signals: dict[str, list[tuple[str, float]]]) -> None:
    """Code is full of ``=``, ``*`` and ``%``: where the text shows code, those are not
    math's equations or arithmetic (math keeps its words, LaTeX and proofs)."""
    if "math" in signals and any(name in shapes.CODE_EVIDENCE for name, _ in signals.get("code", ())):
        signals["math"] = [(n, w) for n, w in signals["math"] if n not in shapes.SYMBOLS_OF_CODE]


def probabilities(scores: dict[str, float]) -> dict[str, float]:
    """A softmax over the domains' scores."""
    top = max(scores.values())
    weights = {d: math.exp(v - top) for d, v in scores.items()}
    total = sum(weights.values())
    return {d: w / total for d, w in weights.items()}
