"""The demo's story: a support bot for "Acme Cloud", its users, knowledge base and turns.

Everything here is deterministic given a random.Random, so a seeded demo is the same on
every machine. The content is written to exercise each part of Spyglass: segments that
fare differently (so the bias slices have something to find), answers that drift from
their documents (hallucinations), rude inputs (toxicity), errors, and unpriced models.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

PLANS = ("free", "pro", "enterprise")
LOCALES = ("en-US", "de-DE", "fr-FR", "ja-JP", "es-ES")
# Extra chance that a ja-JP answer drifts from its documents (see make_turn).
JA_JP_EXTRA_DRIFT = 0.30

# (provider, model, share of traffic). The self-hosted model has no public price, so its
# spans stay unpriced and show up as such instead of getting an invented cost.
MODELS = (
    ("openai", "gpt-4o-mini", 0.45),
    ("anthropic", "claude-3-5-haiku-latest", 0.25),
    ("google", "gemini-2.0-flash", 0.2),
    ("vllm", "acme-support-7b", 0.1),
)

PROMPT_NAME = "support-answer"
# Version -> (system prompt, share of traffic). v3 is the current production version.
PROMPT_VERSIONS = {
    1: "You are Acme Cloud's support assistant. Answer the question.",
    2: "You are Acme Cloud's support assistant. Answer using only the documents provided.",
    3: (
        "You are Acme Cloud's support assistant. Answer using only the documents provided. "
        "If they do not contain the answer, say so and offer to connect the user with a human."
    ),
}

KNOWLEDGE_BASE = (
    ("kb-101", "Resetting your password",
     "To reset your password, open Settings > Security and click 'Reset password'. "
     "A reset link is emailed to you and stays valid for 30 minutes."),
    ("kb-102", "Billing cycles",
     "Acme Cloud bills monthly on the day you signed up. Pro costs 29 USD per month and "
     "Enterprise is priced per contract. Invoices are available under Billing > Invoices."),
    ("kb-103", "Refund policy",
     "Refunds are available within 14 days of a charge for annual plans. Monthly plans "
     "are not refundable, but you can cancel at any time before the next cycle."),
    ("kb-104", "Exporting data",
     "You can export all project data as CSV or JSON from Settings > Data > Export. "
     "Exports larger than 2 GB are delivered as a download link by email."),
    ("kb-105", "API rate limits",
     "The API allows 600 requests per minute on Pro and 6,000 on Enterprise. Free plans "
     "are limited to 60 requests per minute. Exceeding the limit returns HTTP 429."),
    ("kb-106", "Two-factor authentication",
     "Enable two-factor authentication under Settings > Security. Acme Cloud supports "
     "authenticator apps and hardware keys (WebAuthn). SMS codes are not supported."),
    ("kb-107", "Deleting an account",
     "Account owners can delete an account under Settings > Account. Deletion is final "
     "after 7 days; during that time it can be undone by contacting support."),
    ("kb-108", "Team seats",
     "Pro includes 5 seats; each additional seat costs 8 USD per month. Enterprise "
     "includes unlimited seats."),
)

# (question, kb ids that answer it, a grounded answer, an answer that is NOT supported
# by the documents — numbers or claims that appear nowhere in them).
QUESTIONS = (
    ("How do I reset my password?", ("kb-101",),
     "Open Settings > Security and click 'Reset password'. You'll get an email with a link "
     "that is valid for 30 minutes.",
     "Open Settings > Security and click 'Reset password'. The link stays valid for 24 hours "
     "and you can also reset it by SMS."),
    ("When am I billed and how much is Pro?", ("kb-102",),
     "You're billed monthly on your sign-up day. Pro is 29 USD per month.",
     "You're billed on the first of every month. Pro is 19 USD per month with a free "
     "second month."),
    ("Can I get a refund for my monthly plan?", ("kb-103",),
     "Monthly plans aren't refundable, but you can cancel any time before the next cycle.",
     "Yes, all plans can be refunded within 30 days, no questions asked."),
    ("How can I export my data?", ("kb-104",),
     "Go to Settings > Data > Export and choose CSV or JSON. Exports over 2 GB arrive as an "
     "emailed download link.",
     "Exports are only available on Enterprise and take up to 5 business days."),
    ("What are the API rate limits on the free plan?", ("kb-105",),
     "The free plan allows 60 requests per minute; going over returns HTTP 429.",
     "The free plan allows 1,000 requests per minute with bursts up to 5,000."),
    ("Do you support SMS for two-factor authentication?", ("kb-106",),
     "No. Acme Cloud supports authenticator apps and hardware keys, but not SMS codes.",
     "Yes, SMS codes are supported in 40 countries alongside authenticator apps."),
    ("How do I delete my account?", ("kb-107",),
     "The account owner can delete it under Settings > Account. It becomes final after 7 "
     "days; until then support can undo it.",
     "Email privacy@acme.example and your account is deleted within 1 hour."),
    ("How much does an extra seat cost on Pro?", ("kb-108",),
     "Pro includes 5 seats; each additional seat is 8 USD per month.",
     "Extra seats are 15 USD per month, and Pro includes 3 seats."),
)

# Localised questions: the same intents, so non-English traffic is realistic and
# full-text search has non-English text to find.
# Keyed by the index of the QUESTIONS entry they translate.
LOCALISED = {
    "de-DE": {0: "Wie setze ich mein Passwort zurück?", 3: "Wie kann ich meine Daten exportieren?"},
    "fr-FR": {
        0: "Comment réinitialiser mon mot de passe ?",
        2: "Puis-je être remboursé pour mon forfait mensuel ?",
    },
    "ja-JP": {
        0: "パスワードをリセットするにはどうすればいいですか？",
        3: "データをエクスポートする方法を教えてください。",
    },
    "es-ES": {0: "¿Cómo restablezco mi contraseña?", 7: "¿Cuánto cuesta un asiento adicional en Pro?"},
}

# Follow-up turns, shaped like QUESTIONS (question, kb ids, grounded, unsupported).
FOLLOW_UPS = (
    ("Thanks! And where do I find my invoices?", ("kb-102",),
     "Invoices are under Billing > Invoices.",
     "Invoices are sent by post at the end of each quarter."),
    ("ok but that didn't work, the link expired", ("kb-101",),
     "Reset links are valid for 30 minutes. Request a new one from Settings > Security.",
     "Links never expire; please clear your browser cache and try again."),
    ("I already tried that. Can I talk to a human?", ("kb-107",),
     "Of course. I'm handing you over to a support agent now.",
     "Human support is only available on Enterprise plans."),
    ("thanks, that helped", ("kb-101",),
     "Glad to help! Anything else?",
     "Glad to help! As a thank-you, your next month is free."),
)
# A topic that only appears in the last NEW_TOPIC_DAYS days (Acme just launched GPU
# instances): the drift page should list it as a new topic. Shaped like QUESTIONS.
NEW_TOPIC_DAYS = 4
NEW_TOPIC_SHARE = 0.3
GPU_DOC = ("kb-201", "GPU instances",
           "GPU instances (NVIDIA L4 and A100) are available in us-east and eu-west. CUDA 12 drivers are "
           "preinstalled. New accounts have a GPU quota of 0 until support raises it.")
GPU_QUESTIONS = (
    ("Which GPU instances do you offer?", "L4 and A100 GPU instances, in us-east and eu-west.",
     "H100 and A100 GPU instances in every region."),
    ("Are CUDA drivers preinstalled on GPU instances?", "Yes, CUDA 12 drivers are preinstalled.",
     "No, you need to install CUDA yourself."),
    ("Why is my GPU quota zero?", "New accounts start with a GPU quota of 0; support can raise it.",
     "GPU quotas are only available on Enterprise."),
    ("Can I get an A100 GPU in eu-west?", "Yes, A100 GPU instances are available in eu-west.",
     "A100 GPUs are only in us-east."),
    ("How do I request more GPU quota for CUDA training jobs?",
     "Ask support to raise your GPU quota; new accounts start at 0.",
     "GPU quota is raised automatically after 30 days."),
)


def new_topic_turn(rng: random.Random, turn: Turn) -> Turn:
    """Now and then, a GPU question instead of `turn` (same groundedness). `rng` is the
    caller's own, so the rest of the demo draws the same numbers with or without it."""
    if turn.rude or rng.random() >= NEW_TOPIC_SHARE:
        return turn
    question, good, bad = rng.choice(GPU_QUESTIONS)
    documents = [GPU_DOC, *rng.sample(KNOWLEDGE_BASE, 2)]
    return Turn(question=question, documents=documents, answer=good if turn.grounded else bad,
                grounded=turn.grounded)


# Rude inputs for the toxicity scorer; kept mild.
RUDE = (
    "this stupid bot is useless, just answer the damn question",
    "are you an idiot? I asked about billing",
    "what a garbage product, nothing works",
)


@dataclass
class DemoUser:
    user_id: str
    plan: str
    locale: str


@dataclass
class Turn:
    question: str
    documents: list[tuple[str, str, str]]
    answer: str
    grounded: bool
    rude: bool = False


@dataclass
class Session:
    session_id: str
    user: DemoUser
    turns: list[Turn] = field(default_factory=list)


def make_users(rng: random.Random, count: int = 60) -> list[DemoUser]:
    users = []
    for i in range(count):
        plan = rng.choices(PLANS, weights=(0.55, 0.35, 0.10))[0]
        locale = rng.choices(LOCALES, weights=(0.5, 0.15, 0.12, 0.13, 0.10))[0]
        users.append(DemoUser(user_id=f"user-{i + 1:03d}", plan=plan, locale=locale))
    return users


def pick_model(rng: random.Random) -> tuple[str, str]:
    provider, model, _ = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
    return provider, model


def pick_prompt_version(rng: random.Random, age_fraction: float) -> int:
    """Older traffic ran older versions: v1 early, v2 in the middle, v3 recently."""
    if age_fraction > 0.66:
        return rng.choices((1, 2), weights=(0.8, 0.2))[0]
    if age_fraction > 0.33:
        return rng.choices((2, 3), weights=(0.7, 0.3))[0]
    return rng.choices((2, 3), weights=(0.15, 0.85))[0]


def make_turn(rng: random.Random, user: DemoUser, *, prompt_version: int, first: bool) -> Turn:
    if not first and rng.random() < 0.4:
        question, kb_ids, good, bad = rng.choice(FOLLOW_UPS)
    else:
        translated = LOCALISED.get(user.locale, {})
        if translated and rng.random() < 0.6:
            index = rng.choice(sorted(translated))
            question = translated[index]  # answered in English, as many support bots do
            _, kb_ids, good, bad = QUESTIONS[index]
        else:
            question, kb_ids, good, bad = rng.choice(QUESTIONS)
    rude = rng.random() < 0.06
    if rude:
        question = rng.choice(RUDE)
    relevant = [doc for doc in KNOWLEDGE_BASE if doc[0] in kb_ids]
    others = [doc for doc in KNOWLEDGE_BASE if doc[0] not in kb_ids]
    documents = relevant + rng.sample(others, 3 - len(relevant))
    # Older prompt versions (and the free plan's cheaper routing) drift more often:
    # that is what the prompt comparison and bias slices should surface.
    drift = {1: 0.35, 2: 0.18, 3: 0.08}[prompt_version] + (0.07 if user.plan == "free" else 0.0)
    # Non-English questions get retrieval misses more often — the kind of gap a
    # per-segment dashboard exists to reveal. ja-JP is the planted disparity the bias
    # slices page must flag on a fresh `make run` (tests/slices/test_demo.py): large
    # enough to survive the page's multiple-testing correction at the demo's size.
    drift += JA_JP_EXTRA_DRIFT if user.locale == "ja-JP" else 0.05 if user.locale != "en-US" else 0.0
    grounded = rng.random() >= drift
    return Turn(question=question, documents=documents, answer=good if grounded else bad, grounded=grounded, rude=rude)


def feedback_for(rng: random.Random, turn: Turn, *, last_in_session: bool) -> list[tuple[str, str, object]]:
    """What this user does after the answer: (kind, name, value) actions.

    Unsupported answers draw more thumbs-down, regenerations and abandonment; good ones
    more thumbs-up and copies. Most turns get no explicit feedback, as in real apps.
    """
    actions: list[tuple[str, str, object]] = []
    good = turn.grounded and not turn.rude
    thumbs = rng.random()
    if good and thumbs < 0.22:
        actions.append(("feedback", "user_thumbs", True))
    elif not good and thumbs < 0.30:
        actions.append(("feedback", "user_thumbs", False))
    elif thumbs > 0.97:
        actions.append(("feedback", "user_thumbs", good))
    if rng.random() < 0.05:
        rating = rng.choice((4, 5)) if good else rng.choice((1, 2, 3))
        actions.append(("feedback", "user_rating", rating))
    if good and rng.random() < 0.2:
        actions.append(("event", "copy", None))
    if not good and rng.random() < 0.25:
        actions.append(("event", "regenerate", None))
    if last_in_session and not good and rng.random() < 0.35:
        actions.append(("event", "abandon", None))
    if "human" in turn.question:
        actions.append(("event", "escalate", None))
    actions.append(("event", "dwell_ms", rng.randint(1500, 40000)))
    return actions
