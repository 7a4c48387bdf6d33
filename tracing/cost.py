"""LLM call cost from token usage, priced by the `genai-prices` database.

Runs per LLM span at ingest, so price lookups are cached per (provider, model) —
including misses, because an unknown model would otherwise re-scan every model's match
rules on every span. Prices come from the snapshot bundled with the package (the app
runs offline); if auto-updating snapshots are ever enabled, clear the caches on update.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal

from genai_prices import Usage
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import ModelInfo, Provider

__all__ = ["pricing_provider_id", "span_cost"]

# Provider names as the dialects spell them -> genai-prices provider ids.
# OTel GenAI (gen_ai.provider.name / deprecated gen_ai.system), OpenLLMetry, OpenInference
# (llm.provider / llm.system) all use different spellings for the same vendor.
_PROVIDER_ALIASES = {
    "openai": "openai",
    "azure": "azure",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "aws": "aws",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon": "aws",
    "google": "google",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google_genai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "cerebras": "cerebras",
    "openrouter": "openrouter",
    "zai": "zai",
    "minimax": "minimax",
    "meta": "meta",
    "litellm": "litellm",  # genai-prices reads the real provider from "provider/model"
}
# Frameworks that instrumentations report in the provider slot: they say nothing about
# who served the model, so the model name alone decides.
_NOT_PROVIDERS = frozenset(
    {"langchain", "llamaindex", "llama_index", "crewai", "haystack", "dspy"}
)
# Sentinel: a provider we know nothing about. Pricing it by model name alone could bill
# a self-hosted "llama-3" at a cloud price, so such spans stay unpriced.
_UNKNOWN = "\x00unknown"


def pricing_provider_id(provider: str | None) -> str | None:
    """The genai-prices provider id for a dialect's provider name; None when the model
    name alone should decide. Unknown providers map to a sentinel that never prices."""
    if not provider:
        return None
    return _provider_id(provider.strip().lower())


@functools.lru_cache(maxsize=1024)
def _provider_id(name: str) -> str | None:
    if not name or name in _NOT_PROVIDERS:
        return None
    alias = _PROVIDER_ALIASES.get(name)
    if alias:
        return alias
    found = find_provider_by_id(get_snapshot().providers, name)
    return found.id if found else _UNKNOWN


@functools.lru_cache(maxsize=8192)
def _price_entry(
    provider_id: str | None, model: str
) -> tuple[Provider, ModelInfo] | None:
    """(provider, model info) for a model, or None when genai-prices does not know it."""
    if provider_id == _UNKNOWN:
        return None
    try:
        return get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None


def span_cost(
    *,
    provider: str | None,
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
    cache_creation_tokens: int | None,
    at: datetime,
) -> Decimal | None:
    """USD cost of one LLM call, or None when the model or provider is not priced.

    ``input_tokens`` includes cached and cache-creation tokens (the OTel GenAI
    convention the mapping layer normalises to); genai-prices bills the cached part at
    the cache-read price and the rest at the input price. ``at`` selects the price in
    force at the time of the call (timezone-aware).
    """
    if not model or (not input_tokens and not output_tokens):
        return None
    entry = _price_entry(pricing_provider_id(provider), model.strip().lower())
    if entry is None:
        return None
    price_provider, info = entry
    usage = Usage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=cached_tokens or None,
        cache_write_tokens=cache_creation_tokens or None,
    )
    try:
        calculation = info.calc_price(usage, price_provider, genai_request_timestamp=at)
    except ValueError:
        # Inconsistent usage (e.g. more cached tokens than input tokens): the span's
        # counts cannot be trusted, and a wrong cost is worse than none.
        return None
    return calculation.total_price
