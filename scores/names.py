"""The one registry of score names Spyglass itself writes.

Evaluators, implicit signals, end-user feedback and the default annotation configs write
scores under these names, and every page and API that reads a score by name takes it
from here. Names typed in two places drift: the prompt comparison once read `toxicity`
while the evaluator wrote `toxicity_input` / `toxicity_output`, and showed "no data" on
every version. tests/scores/test_names.py checks that writers and readers agree.

Users may write scores under any other name through the API; those are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

# Values of scores.models.Source and DataType, as plain strings: this module is imported
# by pure modules (feedback/implicit.py) that must not need Django set up.
# tests/scores/test_names.py checks they are valid choices.
EVALUATOR, IMPLICIT, END_USER, ANNOTATION = "evaluator", "implicit", "end_user", "annotation"
NUMERIC, BOOLEAN, CATEGORICAL = "numeric", "boolean", "categorical"


@dataclass(frozen=True)
class ScoreName:
    name: str
    source: str
    data_type: str
    label: str
    # True: a higher value is better (thumbs up, rating); False: worse (hallucination,
    # toxicity, a rephrase); None: neither (a count, a reading time).
    higher_is_better: bool | None
    description: str
    # For numeric probabilities: the value at or above which a trace counts as flagged
    # when no project threshold applies (evaluators store the decision per score).
    flag_threshold: float | None = None
    # True for implicit signals: written only when the thing happens (there is no
    # "rephrase = 0" row), so a rate is a share of traces, not of scores
    # (dashboards/metrics.py, prompts/selectors.py).
    sparse: bool = False
    # What a value is measured in, for chart axes ("" = a plain score).
    unit: str = ""

    def __str__(self) -> str:
        return self.name


def _evaluator(name: str, label: str, description: str, data_type: str = NUMERIC,
               flag_threshold: float | None = 0.5) -> ScoreName:
    return ScoreName(name, EVALUATOR, data_type, label, False, description, flag_threshold)


def _implicit(name: str, label: str, description: str, higher_is_better: bool | None = False,
              data_type: str = BOOLEAN, unit: str = "") -> ScoreName:
    return ScoreName(name, IMPLICIT, data_type, label, higher_is_better, description, sparse=True, unit=unit)


# --- background evaluators (evaluation/runner.py) --------------------------------------------
HALLUCINATION = _evaluator("hallucination", "Hallucination",
                           "1 = the answer is not supported by its context (groundedness evaluator)")
TOXICITY_INPUT = _evaluator("toxicity_input", "Toxicity (user)", "toxicity of the user's input, 0-1")
TOXICITY_OUTPUT = _evaluator("toxicity_output", "Toxicity (answer)", "toxicity of the model's answer, 0-1")
PII_INPUT = _evaluator("pii_input", "PII (user)", "personal data or secrets in the user's input",
                       BOOLEAN, None)
PII_OUTPUT = _evaluator("pii_output", "PII (answer)", "personal data or secrets in the answer", BOOLEAN, None)
PROMPT_INJECTION = _evaluator("prompt_injection", "Prompt injection",
                              "prompt-injection / jailbreak attempt in the user's input, 0-1")
# The LLM judge writes one score per rubric: judge_hallucination, judge_relevance, ...
JUDGE_PREFIX = "judge_"

# --- implicit signals (feedback/implicit.py) -------------------------------------------------
REPHRASE = _implicit("rephrase", "Rephrased", "the user asked the same thing again")
FOLLOW_UP = _implicit("follow_up", "Follow-up", "the user asked a related question", None)
REGENERATE = _implicit("regenerate", "Regenerated", "the user asked for another answer")
COPY = _implicit("copy", "Copied", "the user copied the answer", True)
EDIT = _implicit("edit", "Edited", "edit distance between the answer and the user's edited text", False,
                 NUMERIC, "characters")
ABANDON = _implicit("abandon", "Abandoned", "the session ended on this answer with no sign it helped")
ESCALATE = _implicit("escalate", "Escalated", "the user asked for a human")
DWELL_MS = _implicit("dwell_ms", "Reading time", "longest reading time of the answer (ms)", None, NUMERIC, "ms")
THANKS = _implicit("thanks", "Thanked", "the user thanked the assistant", True)
FRUSTRATION = _implicit("frustration", "Frustration", "the user's next message expresses frustration")
SIGNALS = (REPHRASE, FOLLOW_UP, REGENERATE, COPY, EDIT, ABANDON, ESCALATE, DWELL_MS, THANKS, FRUSTRATION)

# --- end users' explicit feedback (feedback/services.py) ------------------------------------
USER_THUMBS = ScoreName("user_thumbs", END_USER, BOOLEAN, "Thumbs up", True,
                        "end user's thumbs: yes = up, no = down")
USER_RATING = ScoreName("user_rating", END_USER, NUMERIC, "Rating", True, "end user's star rating 1-5",
                        unit="stars")

# --- default annotation configs (scores/services.py DEFAULT_CONFIGS) -------------------------
HELPFULNESS = ScoreName("helpfulness", ANNOTATION, NUMERIC, "Helpfulness", True,
                        "1 = useless, 5 = fully solves the user's request")
FACTUAL_ACCURACY = ScoreName("factual_accuracy", ANNOTATION, NUMERIC, "Factual accuracy", True,
                             "1 = mostly wrong or invented, 5 = every claim is correct")
RELEVANCE = ScoreName("relevance", ANNOTATION, NUMERIC, "Relevance", True,
                      "1 = off-topic, 5 = answers exactly what was asked")
SAFETY = ScoreName("safety", ANNOTATION, BOOLEAN, "Safe", True,
                   "yes = safe to show a user (no harmful, toxic or leaked content)")
PREFERRED = ScoreName("preferred", ANNOTATION, CATEGORICAL, "Preferred", None,
                      "which of two answers to the same input is better (pairwise comparison)")

EVALUATOR_NAMES = (HALLUCINATION, TOXICITY_INPUT, TOXICITY_OUTPUT, PII_INPUT, PII_OUTPUT, PROMPT_INJECTION)
END_USER_NAMES = (USER_THUMBS, USER_RATING)
ANNOTATION_DEFAULTS = (HELPFULNESS, FACTUAL_ACCURACY, RELEVANCE, SAFETY, PREFERRED)

REGISTRY: dict[str, ScoreName] = {s.name: s for s in (*EVALUATOR_NAMES, *SIGNALS, *END_USER_NAMES,
                                                      *ANNOTATION_DEFAULTS)}


def known(name: str) -> ScoreName | None:
    """The registered score of this name; judge rubrics are known by their prefix."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(JUDGE_PREFIX) and len(name) > len(JUDGE_PREFIX):
        rubric = name[len(JUDGE_PREFIX):]
        better = rubric in ("relevance", "helpfulness")
        return ScoreName(name, EVALUATOR, NUMERIC, f"Judge: {rubric}", better,
                         f"LLM judge, rubric {rubric}, 0-1", 0.5)
    return None
