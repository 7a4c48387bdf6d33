"""Score notability (explorer/selectors.py score_tone, score_tier): which chips lead a
trace row. Pure functions over the score-name registry; no database."""

from __future__ import annotations

import pytest

from explorer.selectors import BAD, GOOD, PLAIN, TIER_FEEDBACK, TIER_NOTABLE, TIER_REST, score_tier, score_tone


@pytest.mark.parametrize(
    ("name", "data_type", "value", "flagged", "tone"),
    [
        # Evaluators: their stored decision (the project's threshold) wins over the registry's.
        ("prompt_injection", "numeric", 0.6, False, PLAIN),
        ("hallucination", "numeric", 0.4, True, BAD),
        ("toxicity_output", "numeric", 0.7, None, BAD),  # no decision stored: flag_threshold 0.5
        ("pii_input", "boolean", 1.0, None, BAD),  # PII found
        ("pii_input", "boolean", 0.0, None, PLAIN),
        ("judge_hallucination", "numeric", 0.9, None, BAD),
        ("judge_relevance", "numeric", 0.2, None, BAD),  # higher is better for this rubric
        ("judge_relevance", "numeric", 0.9, None, PLAIN),
        # End users and reviewers: thumbs and ratings on their 1-5 scale.
        ("user_thumbs", "boolean", 0.0, None, BAD),
        ("user_thumbs", "boolean", 1.0, None, GOOD),
        ("user_rating", "numeric", 2, None, BAD),
        ("user_rating", "numeric", 3, None, PLAIN),
        ("user_rating", "numeric", 5, None, GOOD),
        ("safety", "boolean", 0.0, None, BAD),
        # Implicit signals: a rephrase is bad news, a copy good news, a reading time neither.
        ("rephrase", "boolean", 1.0, None, BAD),
        ("escalate", "boolean", 1.0, None, BAD),
        ("copy", "boolean", 1.0, None, GOOD),
        ("dwell_ms", "numeric", 120_000, None, PLAIN),
        # A name Spyglass does not know has no direction.
        ("csat_import", "numeric", 1, None, PLAIN),
        ("user_comment", "categorical", None, None, PLAIN),
    ],
)
def test_score_tone_follows_the_registry_and_the_stored_decision(name, data_type, value, flagged, tone):
    assert score_tone(name=name, data_type=data_type, value=value, flagged=flagged) == tone


@pytest.mark.parametrize(
    ("name", "source", "tone", "tier"),
    [
        ("hallucination", "evaluator", BAD, TIER_NOTABLE),
        ("helpfulness", "annotation", BAD, TIER_NOTABLE),
        ("user_rating", "end_user", GOOD, TIER_FEEDBACK),
        ("user_comment", "end_user", PLAIN, TIER_FEEDBACK),  # an end user wrote something
        ("user_thumbs", "api", GOOD, TIER_FEEDBACK),  # end-user feedback relayed by a script
        ("copy", "implicit", GOOD, TIER_FEEDBACK),
        ("follow_up", "implicit", PLAIN, TIER_REST),
        ("helpfulness", "annotation", GOOD, TIER_REST),
        ("pii_input", "evaluator", PLAIN, TIER_REST),
    ],
)
def test_score_tier_puts_problems_first_then_end_users_feedback(name, source, tone, tier):
    assert score_tier(name=name, source=source, tone=tone) == tier
