"""``spyglass.context(...)``: user/session/tags/metadata/prompt for everything inside.

Values live in the OpenTelemetry context (itself a ContextVar), so they follow the code
exactly as span parentage does: into nested calls and asyncio tasks automatically, into
threads via :func:`bind_context`. A SpanProcessor (see ``_setup``) copies them onto every
span that starts inside, including spans created by other instrumentations that never
heard of Spyglass. ``user.id`` and ``session.id`` are also put in W3C baggage so that a
configured baggage propagator carries them to downstream services.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from . import _attributes as A
from ._serialize import dumps, to_jsonable

_KEY = otel_context.create_key("spyglass-context")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ContextValues:
    user_id: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    prompt_name: str | None = None
    prompt_version: str | None = None
    prompt_template: str | None = None

    def merged(
        self,
        *,
        user_id: str | None,
        session_id: str | None,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        prompt: Any,
    ) -> ContextValues:
        """Inner values win; tags are a union in first-seen order; metadata is merged."""
        name, version, template = _prompt_parts(prompt)
        new_tags = self.tags + tuple(
            t for t in dict.fromkeys(str(t) for t in tags or ()) if t not in self.tags
        )
        return ContextValues(
            user_id=str(user_id) if user_id is not None else self.user_id,
            session_id=str(session_id) if session_id is not None else self.session_id,
            tags=new_tags,
            metadata={**self.metadata, **(metadata or {})},
            prompt_name=name if prompt is not None else self.prompt_name,
            prompt_version=version if prompt is not None else self.prompt_version,
            prompt_template=template if prompt is not None else self.prompt_template,
        )

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.user_id is not None:
            attrs[A.USER_ID] = self.user_id
        if self.session_id is not None:
            attrs[A.SESSION_ID] = self.session_id
            attrs[A.GEN_AI_CONVERSATION_ID] = self.session_id
        if self.tags:
            attrs[A.TAGS] = list(self.tags)
        if self.metadata:
            attrs[A.METADATA] = dumps(to_jsonable(self.metadata))
        if self.prompt_name is not None:
            attrs[A.SPYGLASS_PROMPT_NAME] = self.prompt_name
            attrs[A.GEN_AI_PROMPT_NAME] = self.prompt_name
        if self.prompt_version is not None:
            attrs[A.SPYGLASS_PROMPT_VERSION] = self.prompt_version
            attrs[A.LLM_PROMPT_TEMPLATE_VERSION] = self.prompt_version
        if self.prompt_template is not None:
            attrs[A.LLM_PROMPT_TEMPLATE] = self.prompt_template
        return attrs


_EMPTY = ContextValues()


def _prompt_parts(prompt: Any) -> tuple[str | None, str | None, str | None]:
    """Accept a name, a (name, version) pair, a mapping, or an object with name/version."""
    if prompt is None:
        return None, None, None
    if isinstance(prompt, str):
        return prompt, None, None
    if isinstance(prompt, tuple) and len(prompt) == 2:
        return str(prompt[0]), str(prompt[1]), None
    if isinstance(prompt, Mapping):
        get = prompt.get
    else:

        def get(key: str, _obj: Any = prompt) -> Any:
            return getattr(_obj, key, None)

    name, version, template = get("name"), get("version"), get("template")
    return (
        str(name) if name is not None else None,
        str(version) if version is not None else None,
        str(template) if isinstance(template, str) else None,
    )


def prompt_attributes(prompt: Any) -> dict[str, Any]:
    """The span attributes that link a span to ``prompt`` (see ``context(prompt=...)``)."""
    name, version, template = _prompt_parts(prompt)
    return ContextValues(prompt_name=name, prompt_version=version, prompt_template=template).attributes()


def current_values(ctx: otel_context.Context | None = None) -> ContextValues:
    value = otel_context.get_value(_KEY, ctx)
    return value if isinstance(value, ContextValues) else _EMPTY


@contextmanager
def context(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    prompt: Any = None,
) -> Iterator[ContextValues]:
    """Attach user/session/tags/metadata/prompt to every span started inside the block.

    Also applied to the span that is current when the block is entered, so
    ``with context(user_id=...)`` inside an ``@observe`` function labels that span too.
    ``prompt`` may be a name, ``(name, version)``, ``{"name", "version", "template"}`` or
    any object with ``name``/``version`` attributes.
    """
    values = current_values().merged(
        user_id=user_id, session_id=session_id, tags=tags, metadata=metadata, prompt=prompt
    )
    ctx = otel_context.set_value(_KEY, values)
    if values.user_id is not None:
        ctx = baggage.set_baggage(A.USER_ID, values.user_id, ctx)
    if values.session_id is not None:
        ctx = baggage.set_baggage(A.SESSION_ID, values.session_id, ctx)
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(values.attributes())
    token = otel_context.attach(ctx)
    try:
        yield values
    finally:
        otel_context.detach(token)


def bind_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Return ``fn`` bound to the caller's current context, for use in another thread.

    Threads start with an empty context, so work submitted to a ThreadPoolExecutor would
    lose both span parentage and ``context()`` values; this captures them now. Each call
    runs in a fresh copy because one ``contextvars.Context`` cannot be entered by two
    threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return run
