"""litellm's bundled model map (prices, providers), read as JSON straight from the
installed package files, and the one rule naming a model's provider.

A base module (it imports only ``errors``), so the engine (pricing) and the ledger (the
importer) share it without the ledger importing the engine. Reading the map never pays
the seconds it takes to import litellm, and never fetches a remote map.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from cascadeflow_cli.errors import PricingError

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"

# Model name prefixes of the big providers, for names litellm's price map does not know.
_FAMILIES = (("gpt-", "openai"), ("chatgpt", "openai"), ("o1", "openai"), ("o3", "openai"),
             ("o4", "openai"), ("text-embedding", "openai"), ("claude", "anthropic"),
             ("gemini", "gemini"), ("mistral", "mistral"), ("mixtral", "mistral"),
             ("codestral", "mistral"), ("command", "cohere"), ("deepseek", "deepseek"),
             ("grok", "xai"))


def price_map_path() -> Path:
    """The price map shipped inside the installed litellm package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise PricingError("litellm is not installed, so its price map is unavailable")
    return Path(next(iter(spec.submodule_search_locations))) / PRICE_MAP_FILE


_map_lock = threading.Lock()


def load_price_map() -> dict[str, dict[str, Any]]:
    """litellm's bundled price map, parsed once per process (threads wait for the first)."""
    with _map_lock:
        return _load_price_map()


@lru_cache(maxsize=1)
def _load_price_map() -> dict[str, dict[str, Any]]:
    path = price_map_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PricingError(f"cannot read litellm's price map at {path}: {exc}") from None
    data.pop("sample_spec", None)
    return data


def find_map_entry(
    model_id: str, price_map: dict[str, dict[str, Any]] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The map entry for a litellm model id: exact key, else the name without its
    provider prefix when the entry belongs to that provider (``openai/gpt-4o`` is keyed
    ``gpt-4o``)."""
    prices = load_price_map() if price_map is None else price_map
    if model_id in prices:
        return model_id, prices[model_id]
    if "/" in model_id:
        prefix, bare = model_id.split("/", 1)
        entry = prices.get(bare)
        if entry is not None and entry.get("litellm_provider") == prefix:
            return bare, entry
    return None


@lru_cache(maxsize=1024)
def infer_provider(model_id: str, api_base: str | None = None) -> str:
    """The provider recorded in the ledger for a litellm model id, by one rule:
    the id's prefix (``openai/gpt-4o`` -> openai); else litellm's map; else the family
    the name belongs to (``claude-...`` -> anthropic, known to the map or not); else
    "openai" for a model behind its own ``api_base`` (an OpenAI-compatible server);
    else "unknown"."""
    if "/" in model_id:
        return model_id.split("/", 1)[0]
    try:
        found = find_map_entry(model_id)
    except PricingError:  # no litellm installed: the families still say something
        found = None
    provider = found[1].get("litellm_provider") if found else None
    if isinstance(provider, str) and provider:
        return provider
    name = model_id.lower()
    family = next((p for prefix, p in _FAMILIES if name.startswith(prefix)), None)
    return family or ("openai" if api_base else "unknown")
