"""Writes to the prompt registry. Each service owns its transaction.

Every write to one prompt (a new version, a label move) first takes a row lock on the
Prompt. That one lock is what makes two things safe under concurrency:
- the stale-edit check: "latest is still the version you based your edit on" and the
  insert of latest+1 happen with no other writer in between, so two people editing v3
  cannot both become v4 (one gets Conflict);
- label moves: the label history's from_version is read and written under the lock, so
  concurrent moves form one chain (v1 -> v2 -> v3), never two moves both "from v1".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from config.errors import Conflict, NotFound, ValidationFailed
from projects.auth import ProjectAccess
from projects.models import Project
from prompts.models import LATEST, Prompt, PromptLabel, PromptLabelEvent, PromptType, PromptVersion
from prompts.templating import template_validate

PROMPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")
LABEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}\Z")
MAX_CONFIG_BYTES = 100_000
# Page URLs use /prompts/new/ for the create form, so no prompt may be called that.
RESERVED_NAMES = frozenset({"new"})


@dataclass(frozen=True)
class Actor:
    """Who is writing: a user (pages, session API) or an API key (name only)."""

    user: AbstractBaseUser | None
    name: str

    @classmethod
    def from_access(cls, access: ProjectAccess) -> Actor:
        if access.api_key is not None:
            return cls(user=None, name=f"api-key:{access.api_key.public_key}")
        user = access.user
        return cls(user=user, name=user.get_username() if user is not None else "")


def prompt_name_validate(name: str) -> str:
    if not isinstance(name, str) or not PROMPT_NAME.match(name) or name in RESERVED_NAMES:
        raise ValidationFailed(
            f"Invalid prompt name {name!r}: use 1-128 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit); 'new' is reserved.",
            code="bad_name",
        )
    return name


def label_name_validate(label: str) -> str:
    if not isinstance(label, str) or not LABEL_NAME.match(label):
        raise ValidationFailed(
            f"Invalid label {label!r}: use 1-64 lowercase letters, digits, '_', '.', '-'.", code="bad_label"
        )
    if label == LATEST:
        raise ValidationFailed("'latest' always means the newest version; it cannot be moved.", code="bad_label")
    return label


def _config_validate(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValidationFailed("config must be a JSON object (e.g. {\"model\": \"gpt-4o\"}).", code="bad_config")
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        raise ValidationFailed(f"config is larger than {MAX_CONFIG_BYTES} bytes.", code="bad_config")
    return config


def _prompt_lock_or_create(
    *, project: Project, name: str, prompt_type: str, actor: Actor, description: str, tags: list[str]
) -> tuple[Prompt, bool]:
    """Return the prompt row locked FOR UPDATE, inserting it first if it is new.

    INSERT ... ON CONFLICT DO NOTHING then SELECT ... FOR UPDATE: two clients creating
    the same new prompt at once both end up locking the one row instead of one of them
    failing on the unique constraint.
    """
    Prompt.objects.bulk_create(
        [
            Prompt(
                project=project,
                name=name,
                type=prompt_type,
                description=description,
                tags=tags,
                created_by=actor.user,
            )
        ],
        ignore_conflicts=True,
    )
    prompt = Prompt.objects.select_for_update().get(project=project, name=name)
    # bulk_create with ignore_conflicts cannot say whether it inserted; a row with no
    # versions yet is "new" either way, which is all callers need to know.
    return prompt, prompt.latest_version == 0


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


@transaction.atomic
def prompt_version_create(
    *,
    project: Project,
    name: str,
    template: Any,
    actor: Actor,
    prompt_type: str | None = None,
    config: dict[str, Any] | None = None,
    commit_message: str = "",
    base_version: int | None = None,
    labels: list[str] | tuple[str, ...] = (),
    description: str | None = None,
    tags: list[str] | None = None,
) -> PromptVersion:
    """Append a new immutable version (creating the prompt on its first version).

    base_version: the version the edit started from (0 for "a new prompt"). When given
    and the prompt's latest version is not it, the edit is stale and Conflict is raised
    instead of silently overwriting someone else's newer version. None skips the check
    (scripts that always want "append").
    """
    prompt_name_validate(name)
    for field_name, value in (("template", template), ("config", config), ("commit_message", commit_message),
                              ("description", description), ("tags", tags)):
        if _has_nul(value):
            # PostgreSQL text and jsonb cannot hold NUL: refuse it by name instead of a 500.
            raise ValidationFailed(f"{field_name}: must not contain NUL characters (\\u0000).",
                                   detail={field_name: "nul_character"})
    if prompt_type is None:
        prompt_type = PromptType.TEXT if isinstance(template, str) else PromptType.CHAT
    if prompt_type not in PromptType.values:
        raise ValidationFailed(f"Unknown prompt type {prompt_type!r}; use 'text' or 'chat'.", code="bad_type")
    variables = template_validate(template, prompt_type)
    config = _config_validate(config)
    labels = [label_name_validate(label) for label in dict.fromkeys(labels or ())]
    clean_tags = [str(t)[:100] for t in dict.fromkeys(tags or ())]

    prompt, is_new = _prompt_lock_or_create(
        project=project,
        name=name,
        prompt_type=prompt_type,
        actor=actor,
        description=description or "",
        tags=clean_tags,
    )
    if prompt.type != prompt_type:
        raise ValidationFailed(
            f"Prompt {name!r} is a {prompt.type} prompt; a {prompt_type} template cannot be added to it.",
            code="bad_type",
        )
    if base_version is not None and base_version != prompt.latest_version:
        if base_version == 0:
            message = f"A prompt named {name!r} already exists (latest is v{prompt.latest_version})."
        else:
            message = (
                f"Your edit is based on v{base_version}, but {name!r} is now at v{prompt.latest_version} "
                "(someone saved a newer version). Review the latest version and apply your change to it."
            )
        raise Conflict(
            message,
            code="stale_version",
            detail={"base_version": base_version, "latest_version": prompt.latest_version},
        )

    version = PromptVersion.objects.create(
        project=project,
        prompt=prompt,
        version=prompt.latest_version + 1,
        template=template,
        config=config,
        variables=variables,
        commit_message=commit_message or "",
        author=actor.user,
        author_name=actor.name,
    )
    prompt.latest_version = version.version
    update_fields = ["latest_version", "updated_at"]
    if not is_new:
        if description is not None:
            prompt.description = description
            update_fields.append("description")
        if tags is not None:
            prompt.tags = clean_tags
            update_fields.append("tags")
    prompt.save(update_fields=update_fields)
    for label in labels:
        _label_set(prompt=prompt, label=label, version=version, actor=actor)
    return version


def _label_set(*, prompt: Prompt, label: str, version: PromptVersion, actor: Actor) -> PromptLabelEvent | None:
    """Point `label` at `version`; the caller holds the prompt's row lock."""
    current = PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
    if current is not None and current.version_id == version.pk:
        return None  # already there: no history entry for a move that moved nothing
    from_version = current.version.version if current is not None else None
    if current is None:
        PromptLabel.objects.create(project_id=prompt.project_id, prompt=prompt, name=label, version=version)
    else:
        current.version = version
        current.save(update_fields=["version", "updated_at"])
    return PromptLabelEvent.objects.create(
        project_id=prompt.project_id,
        prompt=prompt,
        label=label,
        from_version=from_version,
        to_version=version.version,
        actor=actor.user,
        actor_name=actor.name,
    )


@transaction.atomic
def prompt_label_move(
    *, project: Project, name: str, label: str, version: int, actor: Actor
) -> PromptLabelEvent | None:
    """Move (or create) `label` to point at `version`. Rolling back is moving it back.

    Returns the history entry, or None when the label already pointed there.
    """
    label_name_validate(label)
    prompt = Prompt.objects.select_for_update().filter(project=project, name=name).first()
    if prompt is None:
        raise NotFound(f"No prompt named {name!r}.")
    target = PromptVersion.objects.filter(prompt=prompt, version=version).first()
    if target is None:
        raise NotFound(f"Prompt {name!r} has no version {version} (latest is v{prompt.latest_version}).")
    return _label_set(prompt=prompt, label=label, version=target, actor=actor)
