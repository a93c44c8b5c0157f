"""The shapes of what real users paste and ask, beyond exam-style questions.

A developer pastes a stack trace, a shell command, a config snippet or a few lines of code
without fences; asks to "write a script"; names a framework. A mathematician writes LaTeX
and asks for a proof. Money comes with amounts. Each shape is a general property of
such text (how a Python traceback or a YAML file looks), not the wording of any data set.

Also: software vocabulary (tools, frameworks, file formats) that tells code from prose,
merged into the code terms of ``routing.domain``.
"""

from __future__ import annotations

import re

_LANGS = (
    r"python|java(?:script)?|typescript|c\+\+|c#|golang|rust|kotlin|swift|ruby|php|perl|"
    r"scala|haskell|lua|luau|matlab|julia|dart|elixir|clojure|fortran|cobol|sql|mysql|postgres(?:ql)?|"
    r"sqlite|bash|shell|powershell|zsh|vba|html|css|react|vue|angular|node(?:\.js)?|django|flask|"
    r"pandas|numpy|pytorch|tensorflow|gdscript|solidity|verilog|vhdl|assembly|x86|arm64|excel|latex"
)

_ARTIFACT = (
    r"function|functions|script|program|code|class|method|query|queries|regex|app|application|"
    r"plugin|extension|api|endpoint|bot|module|snippet|component|shader|macro|cli|library|"
    r"package|server|website|webpage|web page|dashboard|tool|unit tests?|test cases?|algorithm|"
    r"implementation|parser|scraper|crawler|pipeline|dockerfile|makefile|schema|migration|syntax|"
    r"commands?|one-liner|fuzzer"
)

# (name shown to the user, regex, weight, flags)
CODE_SHAPES: list[tuple[str, str, float, int]] = [
    (
        "a request for code",
        r"\b(write|create|make|build|generate|implement|code|develop|give me|show me|"
        r"need|want|help me (?:write|with)|fix|debug|refactor|optimi[sz]e|convert|translate|port)\b"
        r"[^.?!\n]{0,60}?(?<!animation )(?<!video )(?<!movie )(?<!film )(?<!sales )(?<!podcast )"
        r"(?<!youtube )(?<!tiktok )(?<!character )\b(" + _ARTIFACT + r")\b"
        r"(?! (?:features|levels?|for (?:my|a|the) (?:video|film|movie|play|podcast)))",
        5.0,
        re.I,
    ),
    (
        "a language named",
        r"\b(in|using|with|into|to|for)\s+(" + _LANGS + r")\b(?!\s+(?:language|notation))",
        3.0,
        re.I,
    ),
    (
        "a script of a language",
        r"\b(?:" + _LANGS + r")\s+(?:script|code|program|function|snippet|class)\b",
        4.0,
        re.I,
    ),
    (
        "stack trace",
        # [^\S\n]: blanks within the line; \s* across lines retried every run of blank lines
        # to its end at each of its line starts (cubic: 3,000 newlines took 137 s in the
        # shell pattern below); a line start is ^ (re.M) anyway
        r"Traceback \(most recent call last\)|^[^\S\n]+at [\w.$<>]+\(.*\)$|"
        r"\bException in thread\b|^[^\S\n]*File \"[^\"]+\", line \d+|\w(?:Error|Exception):\s",
        5.0,
        re.M,
    ),
    (
        "error message",
        r"\b(error|warning|exception|errno)\b\s*[:\[(]|\b(E[A-Z]{3,}|ENOENT|EACCES|SIGSEGV|"
        r"segfault|core dumped|404|500 internal)\b|\bundefined reference\b|\bcommand not found\b",
        2.0,
        0,
    ),
    (
        "shell command",
        r"(^|\n)[^\S\n]*(?:[$#>][^\S\n]*)?(sudo|pip3?|npm|npx|yarn|git|docker|kubectl|apt(-get)?|brew|"
        r"conda|cargo|cmake|gcc|g\+\+|curl|wget|ssh|chmod|chown|grep|awk|sed|systemctl)"
        r"\s+[-\w./]",
        3.0,
        0,
    ),
    (
        "file path",
        r"(?<![\w/])(~|\.{1,2})?/(?:[\w.-]+/)+[\w.-]*|\b[A-Z]:\\\\?[\w\\ .-]+|"
        r"(?<=\w)\.(?:py|js|ts|tsx|jsx|java|cpp|cc|c|h|hpp|cs|go|rs|rb|php|sh|ps1|sql|yaml|yml|toml|ini|cfg|"
        r"json|xml|html|css|scss|vue|kt|swift|lua|ipynb|dockerfile|lock|env)\b",
        2.0,
        re.I,
    ),
    (
        "config snippet",
        r"(^|\n)[^\S\n]*\[[\w.-]+\]\s*\n\s*\w+\s*=|(^|\n)[^\S\n]*[\w-]+:\s*[\w\"'{\[-][^\n]*\n\s+[\w-]+:\s|"
        r"\{\s*\"[\w-]+\"\s*:",
        3.0,
        0,
    ),
    ("inline code", r"`[^`\n]{2,80}`", 2.0, 0),
    (
        "code in prose",
        # each branch starts at a rare character or keyword: one pass, little backtracking
        r"[;{}][ \t]*\n[^\n]*[;{}][ \t]*(?:\n|$)|\w\.\w+\(|[a-z][A-Z]\w*\s*\(|\w\s*<-\s*\w|%>%|=>\s*\{|"
        r"(?<!\\)\b(?:lambda\b|null\b|self\.|print\s*\(|console\.log|(?:const|var|let)\s+\w+\s*=)|"
        r"\bSELECT\b[^;]{1,200}?\bFROM\b",
        4.0,
        0,
    ),
    ("url", r"https?://[^\s]+", 1.0, 0),
]

MATH_SHAPES: list[tuple[str, str, float, int]] = [
    (
        "LaTeX",
        r"\$[^$\n]{0,200}[\\^_{}=][^$\n]{0,200}\$|\\(frac|sqrt|sum|int|begin\{|mathbb|cdot|leq|geq|alpha|beta|lambda|pi|"
        r"infty|partial|dot|ddot)\b",
        3.0,
        0,
    ),
    ("math symbols", r"[∀∃∈∉⊂⊆∪∩√∑∏∫≤≥≠≈∞∂πθλ𝜇ϵε]|\b[a-z]\^\d", 3.0, 0),
    ("a proof", r"\b(prove|proof|show that|demonstrate that|lemma|corollary|q\.e\.d)\b", 3.0, re.I),
]

class WordEnds:
    """A shape found by how words end or begin (``search`` like a compiled regex's, on
    lowercased text): one pass over the long words, far cheaper than a regex of suffixes
    tried at every position."""

    _WORDS = re.compile(r"[a-z]{6,}")

    def __init__(self, ends: tuple[str, ...], starts: tuple[str, ...], exceptions: frozenset[str]) -> None:
        self.ends, self.starts, self.exceptions = ends, starts, exceptions

    def search(self, text: str) -> bool:
        for word in self._WORDS.findall(text):
            if word in self.exceptions:
                continue
            if word.startswith(self.starts) and len(word) > 7:
                return True
            if word.endswith(self.ends) and any(word.endswith(e) and len(word) >= len(e) + 3
                                                for e in self.ends):  # a stem before the ending
                return True
        return False


# The Greek and Latin word endings of clinical terms: appendicitis, gastrectomy, leukemia, neuropathy.
CLINICAL_TERMS = WordEnds(
    ends=("itis", "ectomy", "ectomies", "otomy", "ostomy", "oscopy", "oplasty", "emia", "aemia", "opathy",
          "algia", "kinase", "ocyte", "ocytes", "plasia", "trophy", "rrhoea", "rrhea", "osis", "genesis",
          *(f"{stem}oma{s}" for stem in ("carcin", "lymph", "melan", "glauc", "aden", "fibr", "sarc", "gli",
                                         "mening", "hemat", "haemat") for s in ("", "s"))),
    starts=("gastr", "cardio", "hepat", "nephr", "osteo", "dermat", "angio", "thromb", "endocrin", "oncolog",
            "haem", "hemoglob", "hemorrh", "hemodial"),
    exceptions=frozenset({"dichotomy", "nostalgia", "academia", "bohemia", "hypnosis", "osmosis", "symbiosis",
                          "microscopy", "microscopic", "telescopic", "kaleidoscopic", "stereoscopic",
                          "apotheosis", "metamorphosis"}),
)

FINANCE_SHAPES: list[tuple[str, str, float, int]] = [
    (  # money words next to an amount: "invest 70K", "a loan of $20,000" (an amount alone is math's too)
        "money with an amount",
        r"\b(invest\w*|loan|mortgage|salary|income|revenue|profit|savings|deposit\w*|withdraw\w*|interest|"
        r"dividend\w*|tax\w*|budget|expense\w*|portfolio|stocks?|shares?|bonds?|annuity|pension)\b"
        r"[^.?!\n]{0,30}?(?:[$€£¥]\s?\d|\b\d[\d,.]*\s?(?:k|m|bn|million|billion|%|usd|eur|dollars?|euros?))",
        2.0,
        re.I,
    ),
]

# Software vocabulary users name when they want code: tools, frameworks, formats, platforms.
CODE_VOCABULARY = """
    lua, julia, dart, elixir, swift, zsh, assembly, latex table, react, vue, angular, svelte, node,
    nodejs, npm, yarn, vite, express, spring, rails, wordpress, unreal, roblox, transformers, llm, gpt,
    openai api, csv, xml, yaml, toml, svg, shader*, opengl, vulkan, cuda, gpu, linux, ubuntu, debian,
    windows server, macos, apache, helm, aws, azure, gcp, lambda, s3, ec2, spark, frontend, backend,
    full-stack, repo, repository, github, gitlab, ci, cd, pipeline*, cli, terminal, command line,
    browser, chrome, firefox, plugin*, gui, button*, dropdown, css grid, tailwind, bootstrap, dom,
    virtual machine, vm, ssh, vpn, dns, nas, samba, cron, systemd, bash script, unix, posix, async,
    await, callback*, lint*, formatter, compiler, debugger, ide, vim, emacs, colab, excel     formula,
    spreadsheet macro, google sheets, airtable, zapier, webhook*, scrape, scraping, scraper*, crawl*,
    parser*, serializ*, deserializ*, schema*, orm, migration*, tokeniz*, embedding*, vector database,
    fine-tun*, quantiz*, batch size, learning rate, matrix multiplication, kotlin, android, ios,
    flutter, jetpack, jar, dll, exe, binary     file, byte array, utf-8, unicode, ascii, endpoint*,
    microservice*, raspberry pi, firmware, http request*, api key, sdk, npm package, pip install, xor,
    bytecode, memory allocation, column, columns, dataset*
"""

# Names of software tools, languages and formats with no everyday meaning: one is strong evidence.
CODE_NAMES = """
    luau, matlab, solidity, verilog, vhdl, gdscript, powershell, shellscript, vba, jquery, webpack,
    django, flask, fastapi, laravel, drupal, pygame, godot, pandas, numpy, scipy, matplotlib, seaborn,
    pytorch, tensorflow, keras, sklearn, scikit-learn, huggingface, langchain, faiss, dataframe*,
    nginx, kubernetes, k8s, terraform, ansible, postgres, postgresql, mysql, sqlite, mongodb, redis,
    kafka, pyspark, hadoop, graphql, oauth, jwt, websocket*, flexbox, iframe, docker-compose,
    dockerfile, regexp, syscall*, mutex*, semaphore*, coroutine*, typedef, vscode, jupyter, vlookup,
    sqlalchemy, prisma, onnx, dataloader, hyperparameter*, xcode, swiftui, gradle, maven, grpc,
    protobuf, arduino, esp32, microcontroller*, fpga, bitwise, hexadecimal, garbage collect*,
    pyqt*, pyside*, tkinter, wxpython, qt, gtk, wpf, winforms, xaml, xamarin, blazor, electron, tauri,
    react native, jetpack compose, recyclerview, textbox, combobox, listview, datagrid, toolbar, widget*,
    selenium, playwright, puppeteer, beautifulsoup, scrapy, nix, nixos, nixpkgs, homebrew, chocolatey,
    promql, prometheus, grafana, elasticsearch, kibana, logstash, splunk, datadog, ssms, t-sql, tsql, plsql,
    snowflake, databricks, bigquery, redshift, dbt, airflow, etl, octave, simulink, gams, ampl, pyomo,
    ggplot*, dplyr, tidyverse, rstudio, stata, spss, cocotb, systemverilog, testbench*, uvm, vivado, quartus,
    vbscript, vbs, autohotkey, applescript, tampermonkey, userscript*, bookmarklet, jenkins, github actions,
    circleci, wsl, iptables, wireguard, openvpn, tailscale, cloudflare, vercel, netlify, heroku, firebase,
    supabase, discord bot, telegram bot, slack bot, pine script, pinescript, mql4, mql5, web3,
    smart contract*, erc20, erc721, erc1155, hardhat, glsl, hlsl, blender python, openscad,
    ladder logic, modbus, mqtt, opencv, yolo, mediapipe, gstreamer, ffmpeg, imagemagick, markdown,
    jinja, openapi, swagger, postman, rest api, xslt, xpath, jq, cmake, bazel, llvm, gcc, clang, rustc,
    virtualenv, venv, pnpm, deno, nextjs, nuxt, sveltekit, redux, rxjs,
    typeorm, sequelize, mongoose, hibernate, spring boot, dotnet, entity framework, linq, objective-c,
    webgl, plotly, streamlit, gradio, jupyter notebook, kaggle, gguf, ollama, vllm, lora, peft,
    jax, xgboost, lightgbm, mlflow, sagemaker, llamaindex, chromadb, pinecone, qdrant, vectordb, tokenizer*,
    openmp, mpi, pthread*, simd, avx, risc-v, nasm, tcl, ocaml, f#, erlang, zig, fortran,
    cobol, delphi, lisp, racket, prolog, abap, soql, dax, power query, power bi, apps script,
    xlsx, openpyxl, cron job, crontab, daemon, localhost, port forwarding, reverse proxy,
    load balancer, ssl certificate, tls, dns record*, subnet*, vlan*, cisco,
    wordpress plugin, shopify, woocommerce, magento, chrome extension, vs code, intellij, pycharm,
    stack overflow, deadlock, race condition, memory safety, borrow checker,
    struct, structs, enum, enums, namespace*, constructor*, destructor*,
    decorator*, iterator*, getter*, setter*, boilerplate, codebase, pull request,
    merge conflict, rebase, monorepo, nuget, pypi,
    refactoring, unit testing, integration test*, pytest, jest, mocha, junit, cypress
"""

# Code shapes that show code itself (not talk about it): where they fire, "=" and "*" are code.
CODE_EVIDENCE = frozenset({"code fence", "function definition", "doctest", "import", "code in prose",
                           "stack trace", "config snippet", "a request for code", "a script of a language"})
SYMBOLS_OF_CODE = frozenset({"equation", "arithmetic", "power", "percentage", "word problem"})

_PROSE = (  # what a writing or planning task produces (not code)
    r"poem|story|stories|essay|letter|email|e-mail|blog|article|song|lyrics|speech|haiku|"
    r"limerick|sonnet|dialog|dialogue|review|summary|cover letter|description|slogan|tagline|tweet|post|"
    r"joke|riddle|outline|plan|agenda|itinerary|recipe|screenplay|scene|chapter|bio|biography|toast|"
    r"proposal|pitch|report|newsletter|ad|advert|caption|title|titles|names|list of ideas|ideas|"
    r"curriculum|syllabus|course|lesson|lessons|roadmap|guide|strategy|workshop|workshops|agenda|"
    r"section|paragraph|introduction|conclusion|abstract|memo|minutes|press release|announcement|"
    r"questionnaire|survey|quiz|questions|interview questions|job description|contract summary|"
    r"workout|routine|schedule|timeline|character|characters|deck|campaign|debate|argument|"
    r"user stories|requirements|scope of work|case study|presentation|slides?|talk|lecture|podcast|"
    r"analysis|critique|feedback|comparison|table of contents|prompt|topics|tips|steps|examples|"
    r"categories|tags|list of|checklist|faq|glossary"
)

WRITING = 2.0  # a writing task is general only when its subject is not a domain's (one strong word is)
GENERAL_SHAPES: list[tuple[str, str, float, int]] = [
    ("a writing task", r"\b(write|draft|compose|create|give me|generate|craft|design|prepare|suggest|"
     r"brainstorm|propose|outline|develop|provide|plan|make)\s+(me\s+|us\s+)?(a|an|some|\d+|the|my|our|"
     r"several|few|list of)?\s*([\w-]+\s+){0,4}(" + _PROSE + r")\b", WRITING, re.I),
    ("editing text", r"\b(rephrase|reword|rewrite|paraphrase|proofread|summari[sz]e|translate|"
     r"improve the (wording|writing|text|style)|make (it|this) (sound|more)|formulera|umformulieren|"
     r"reformuler\w*)\b", 2.0, re.I),
    ("a role to play", r"\b(act as|acting as|you are an? (expert|professional|senior|world|master|helpful)|"
     r"pretend (to be|you are)|role[- ]?play|imagine you are)\b", 1.0, re.I),
]

# What everyday and general-knowledge questions are about: writing, culture, travel, work.
GENERAL_TERMS = {
    2.5: """
        poem*, poetry, haiku, limerick, sonnet, lyrics, song, songs, short story, novel, novels,
        fiction, screenplay, recipe*, cooking, cuisine, itinerary, vacation, holiday*, tourist*,
        movie*, film*, tv show*, chord*, melody, melodies, music*, musician*, band, album*,
        artist*, sculpture*, history of, philosoph*, religio*,
        mytholog*, literary, grammar, synonym*, antonym*, vocabulary, idiom*, marketing,
        brand*, slogan*, advertis*, weather, capital of, geography, astronomy, planet*, galaxy,
        physics, chemistry, chemical*, quantum, thermodynamic*, sport*, football, soccer, basketball,
        tennis, chess, board game*, video game*, gaming, career*, resume, job interview, leadership,
        productivity, motivation*, dating, wedding*, parenting, gardening, travel*
    """,
    1.5: """
        essay*, blog, article*, speech*, story, stories, joke*, riddle*, translate,
        translation, workshop*, strateg*, startup*, pitch*, manager*, hiring, habit*,
        spanish, french, german, chinese, japanese, physicist*,
        climate, environment*, ecology, hotel*, flight*, author*, writer*, writing,
        slide*, party ideas, gift*, birthday*, fun, funny, creative, explain like,
        summarize, summarise, summary, opinion*, advice
    """,
}
