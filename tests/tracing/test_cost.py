"""tracing/cost.py: span costs priced from the genai-prices database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices.data_snapshot import get_snapshot

from tracing.cost import pricing_provider_id, span_cost

AT = datetime(2025, 6, 1, tzinfo=UTC)
MTOK = Decimal(1_000_000)


def rates(provider_id: str, model: str) -> dict[str, Decimal]:
    """The $/MTok rates genai-prices holds for a model, so a data update fails loudly here."""
    _, info = get_snapshot().find_provider_model(model, None, provider_id, None)
    prices = info.get_prices(AT)
    return {
        "input": prices.input_mtok,
        "output": prices.output_mtok,
        "cache_read": prices.cache_read_mtok,
        "cache_write": prices.cache_write_mtok,
    }


def cost(**overrides) -> Decimal | None:
    args = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cached_tokens": None,
        "cache_creation_tokens": None,
        "at": AT,
    }
    args.update(overrides)
    return span_cost(**args)


def test_genai_prices_rates_used_below_are_the_published_ones():
    assert rates("openai", "gpt-4o-mini") == {
        "input": Decimal("0.15"),
        "output": Decimal("0.6"),
        "cache_read": Decimal("0.075"),
        "cache_write": None,
    }
    assert rates("anthropic", "claude-3-5-sonnet-20241022") == {
        "input": Decimal(3),
        "output": Decimal(15),
        "cache_read": Decimal("0.3"),
        "cache_write": Decimal("3.75"),
    }


def test_gpt_4o_mini_cost_without_cached_tokens():
    expected = (1000 * Decimal("0.15") + 100 * Decimal("0.6")) / MTOK  # $0.00021

    assert cost() == expected == Decimal("0.00021")


def test_gpt_4o_mini_cached_tokens_are_priced_as_cache_reads():
    # 1000 input tokens of which 400 cached: 600 at the input price, 400 at the cache price.
    expected = (
        600 * Decimal("0.15") + 400 * Decimal("0.075") + 100 * Decimal("0.6")
    ) / MTOK

    assert cost(cached_tokens=400) == expected == Decimal("0.00018")


def test_claude_cost_without_cache():
    expected = (2000 * Decimal(3) + 500 * Decimal(15)) / MTOK

    assert cost(
        provider="anthropic",
        model="claude-3-5-sonnet-20241022",
        input_tokens=2000,
        output_tokens=500,
    ) == (expected)


def test_claude_cost_with_cache_reads_and_writes():
    # 2000 input = 1000 uncached + 800 cache reads + 200 cache writes.
    expected = (
        1000 * Decimal(3)
        + 800 * Decimal("0.3")
        + 200 * Decimal("3.75")
        + 500 * Decimal(15)
    ) / MTOK

    result = cost(
        provider="anthropic",
        model="claude-3-5-sonnet-20241022",
        input_tokens=2000,
        output_tokens=500,
        cached_tokens=800,
        cache_creation_tokens=200,
    )

    assert result == expected == Decimal("0.01149")


def test_unknown_model_is_not_priced():
    assert cost(model="my-finetune-7b") is None
    assert cost(provider=None, model="definitely-not-a-model") is None


def test_unknown_provider_is_not_priced_even_for_a_known_model_name():
    # A self-hosted "gpt-4o-mini" lookalike must not be billed at OpenAI's price.
    assert cost(provider="ollama") is None


def test_missing_provider_lets_the_model_name_decide():
    assert cost(provider=None) == Decimal("0.00021")


def test_framework_names_in_the_provider_slot_let_the_model_name_decide():
    assert cost(provider="Langchain") == Decimal("0.00021")


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("azure.ai.openai", "azure"),
        ("az.ai.openai", "azure"),
        ("anthropic", "anthropic"),
        ("aws.bedrock", "aws"),
        ("gcp.vertex_ai", "google"),
        ("gcp.gemini", "google"),
        ("google", "google"),
        ("vertexai", "google"),
        ("mistral_ai", "mistral"),
        ("mistralai", "mistral"),
        ("x_ai", "x-ai"),
        (None, None),
        ("", None),
    ],
)
def test_dialect_provider_names_map_to_genai_prices_ids(provider, expected):
    assert pricing_provider_id(provider) == expected


def test_azure_openai_models_are_priced():
    assert cost(provider="azure.ai.openai") == Decimal("0.00021")


def test_bedrock_model_ids_are_priced():
    result = cost(
        provider="aws.bedrock", model="anthropic.claude-3-5-sonnet-20240620-v1:0"
    )

    assert result == (1000 * Decimal(3) + 100 * Decimal(15)) / MTOK


def test_dated_model_snapshot_is_priced_like_its_family():
    assert cost(model="gpt-4o-mini-2024-07-18") == Decimal("0.00021")


def test_no_usage_means_no_cost():
    assert cost(input_tokens=None, output_tokens=None) is None


def test_more_cached_than_input_tokens_is_not_priced():
    assert cost(input_tokens=10, cached_tokens=500) is None
