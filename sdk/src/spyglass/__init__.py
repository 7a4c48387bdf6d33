"""Spyglass SDK: LLM observability on OpenTelemetry.

import spyglass
spyglass.init()                      # reads SPYGLASS_HOST / SPYGLASS_SECRET_KEY ...
spyglass.instrument_openai()

@spyglass.observe
def answer(question: str) -> str: ...

prompt = spyglass.get_prompt("support-answer", label="production")
with spyglass.context(prompt=prompt):  # links the trace to that prompt version
    messages = prompt.compile(question=question)

spyglass.datasets.add("support-golden", filter={"metadata.plan": "pro"})   # see spyglass.datasets
"""

from . import datasets
from ._context import bind_context, context
from ._feedback import current_trace_id, event, feedback
from ._llm import LLMSpan, llm_span
from ._observe import observe
from ._openai import instrument_openai, uninstrument_openai
from ._prompts import (
    Prompt,
    PromptCompileError,
    PromptError,
    PromptUnavailableError,
    clear_prompt_cache,
    get_prompt,
)
from ._setup import flush, init, shutdown
from ._version import __version__
from .experiments import ExperimentError, ExperimentRun, run_experiment

__all__ = [
    "ExperimentError",
    "ExperimentRun",
    "LLMSpan",
    "Prompt",
    "PromptCompileError",
    "PromptError",
    "PromptUnavailableError",
    "__version__",
    "bind_context",
    "clear_prompt_cache",
    "context",
    "current_trace_id",
    "datasets",
    "event",
    "feedback",
    "flush",
    "get_prompt",
    "init",
    "instrument_openai",
    "llm_span",
    "observe",
    "run_experiment",
    "shutdown",
    "uninstrument_openai",
]
