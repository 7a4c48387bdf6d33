"""Evaluating alert rules: the beat task's work.

    alerts_evaluate(now=)          every enabled rule, least recently evaluated first
    rule_evaluate(rule, now=)      one rule: one metrics query, then states and events
    rule_query(rule, now=)         the rule as a MetricsQuery over [now - window, now)
    state_for(rule, value=, n=)    the state one value means

Cost is bounded per rule: one metrics query (a group_by rule asks for all its groups in
that one query, the metrics layer's top TOP_MAX by observations; the rest fold into
`other`, counted in rule.unwatched_n and never alerted on), one locked read of the
rule's states and a few writes. A tick stops starting rules at its time budget; the
rules it did not reach go first next minute (ordered by evaluated_at).

Notifications (README, "Alerts"): a state change is recorded as an AlertEvent; receivers
are told when the state differs from what they were last told and one side is firing
(warning / alert), at most once per cooldown per group. A change inside the cooldown is
held back and sent when the cooldown ends if the state still differs from the last one
sent, so a flapping metric sends at most one message per cooldown and receivers always
end up with the true state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.http import QueryDict
from django.utils import timezone

from alerts.channels import notification_body
from alerts.models import FIRING, AlertDelivery, AlertEvent, AlertRule, AlertState, NoData, State
from config.errors import DomainError
from dashboards.metrics import OTHER, TOP_MAX, MetricsQuery, metrics_query
from explorer.filters import TraceFilter

log = logging.getLogger(__name__)

LOCK_KEY = 0x616C_6572_7473  # pg advisory lock: one tick at a time
# Filter parameters a rule may not carry: its window is its own.
WINDOW_PARAMS = ("from", "to", "range")
GROUP_KEY_MAX = 500

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Observation:
    group_key: str
    group: dict
    value: float | None
    n: int


@dataclass
class TickResult:
    evaluated: int = 0
    failed: int = 0
    skipped: bool = False  # another tick held the lock
    left: int = 0  # rules not reached within the budget
    deliveries: list[int] = field(default_factory=list)


# ------------------------------------------------------------------------ the query


def rule_filter(filters: str) -> TraceFilter:
    """A rule's filter string ("environment=production&tag=beta") as a TraceFilter;
    raises FilterError naming the parameter (the window is the rule's own)."""
    from explorer.filters import FilterError

    params = QueryDict(filters or "")
    window = [key for key in WINDOW_PARAMS if key in params]
    if window:
        raise FilterError({key: ["the rule's window sets the time; leave it out of the filters"] for key in window})
    parsed = TraceFilter.parse(params)
    if parsed.search_mode == "semantic":
        raise FilterError({"mode": ["semantic search ranks traces and is not a filter"]})
    return parsed


def rule_query(rule: AlertRule, *, now: datetime) -> MetricsQuery:
    """The rule as a metrics query: one value per group over [now - window, now)."""
    return MetricsQuery(
        measure=rule.measure,
        agg=rule.agg,
        start=now - timedelta(seconds=rule.window_seconds),
        end=now,
        group_by=(rule.group_by,) if rule.group_by else (),
        top=TOP_MAX,
        filter=rule_filter(rule.filters),
    )


def group_key(group: dict) -> str:
    key = json.dumps(group, sort_keys=True, ensure_ascii=False) if group else ""
    if len(key) > GROUP_KEY_MAX:  # long metadata values: still one key per group
        key = key[:GROUP_KEY_MAX - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()
    return key


def rule_observe(rule: AlertRule, *, now: datetime) -> tuple[list[Observation], int]:
    """One metrics query: the observations per group, and the observations folded into
    `other` (groups beyond the watched top ones)."""
    query = rule_query(rule, now=now)
    result = metrics_query(project=rule.project, query=query)
    points = result.data
    unwatched = 0
    if rule.group_by and len(points) > query.top:
        # The metrics layer puts the folded group last, labelled "other" (a kept group
        # may be called "other" too: only a point beyond the top ones is the fold).
        folded = points[-1]
        points = points[:-1]
        assert folded.group.get(rule.group_by) == OTHER
        unwatched = folded.n
    return [Observation(group_key(p.group), p.group, p.value, p.n) for p in points], unwatched


# ------------------------------------------------------------------------ states


def state_for(rule: AlertRule, *, value: float | None, n: int) -> State:
    """What one value means for the rule. Fewer observations than the minimum (or no
    value at all) is "no data", read as the rule says (ok / no data / alert)."""
    if value is None or n < rule.min_observations:
        return {NoData.OK: State.OK, NoData.ALERT: State.ALERT}.get(rule.no_data, State.NO_DATA)
    compare = _COMPARE[rule.operator]
    if compare(value, rule.alert_threshold):
        return State.ALERT
    if rule.warning_threshold is not None and compare(value, rule.warning_threshold):
        return State.WARNING
    return State.OK


def threshold_for(rule: AlertRule, state: str) -> float | None:
    if state == State.WARNING:
        return rule.warning_threshold
    return rule.alert_threshold


def is_news(told: str, now_state: str) -> bool:
    """Whether receivers who last heard `told` should hear `now_state`: a change into,
    out of or between firing states; ok <-> no data is not news."""
    return told != now_state and (told in FIRING or now_state in FIRING)


# ------------------------------------------------------------------------ evaluation


def alerts_evaluate(*, now: datetime | None = None, budget_seconds: float | None = None) -> TickResult:
    """Evaluate every enabled rule once (the beat task, every minute). One tick at a time:
    a tick still running when the next is due makes the next one a no-op."""
    budget = settings.SPYGLASS_ALERTS_TICK_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    result = TickResult()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            result.skipped = True
            return result
    try:
        t0 = time.monotonic()
        rules = list(
            AlertRule.objects.filter(enabled=True).select_related("project")
            .order_by(_nulls_first("evaluated_at"), "id")
        )
        for i, rule in enumerate(rules):
            if i and time.monotonic() - t0 > budget:  # at least one rule per tick, whatever the budget
                result.left = len(rules) - i
                log.warning("alerts tick: %d rules left for the next tick (budget %.0f s)", result.left, budget)
                break
            tick_now = now or timezone.now()
            try:
                result.deliveries += rule_evaluate(rule, now=tick_now)
                result.evaluated += 1
            except DomainError as exc:  # a bad or timed-out metrics query: shown on the rule
                result.failed += 1
                AlertRule.objects.filter(pk=rule.pk).update(evaluated_at=tick_now, last_error=exc.message)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    return result


def _nulls_first(name: str):
    from django.db.models import F

    return F(name).asc(nulls_first=True)


def rule_evaluate(rule: AlertRule, *, now: datetime) -> list[int]:
    """Evaluate one rule at `now`; returns the ids of the deliveries it queued (sent by
    alerts.tasks.alert_deliver after commit, one task per channel)."""
    observations, unwatched = rule_observe(rule, now=now)
    deliveries: list[int] = []
    with transaction.atomic():
        states = {s.group_key: s for s in AlertState.objects.select_for_update().filter(rule=rule)}
        channels = list(rule.channels.all())
        seen: set[str] = set()
        changed: list[AlertState] = []
        gone: list[int] = []
        for obs in observations:
            seen.add(obs.group_key)
            deliveries += _apply(rule, states.get(obs.group_key), obs, now=now, channels=channels, out=changed)
        empty = 0.0 if rule.agg == "count" else None
        for key, state in states.items():
            if key in seen:
                continue
            # A group with no observations in the window any more (a user who went quiet).
            obs = Observation(key, state.group, empty, 0)
            new = state_for(rule, value=obs.value, n=0)
            if rule.group_by and new not in FIRING and state.state not in FIRING and state.notified_state not in FIRING:
                gone.append(state.pk)  # nothing to tell: forget it, so states stay bounded by the watched groups
                continue
            deliveries += _apply(rule, state, obs, now=now, channels=channels, out=changed)
        # One statement per kind of write, not one per group (a per-user rule has 100 groups).
        if gone:
            AlertState.objects.filter(pk__in=gone).delete()
        AlertState.objects.bulk_create([s for s in changed if s.pk is None])
        AlertState.objects.bulk_update([s for s in changed if s.pk is not None], _STATE_FIELDS)
        AlertRule.objects.filter(pk=rule.pk).update(evaluated_at=now, last_error="", unwatched_n=unwatched)
    if deliveries:
        from alerts.tasks import deliveries_enqueue

        ids = list(deliveries)
        transaction.on_commit(lambda: deliveries_enqueue(ids))
    return deliveries


_STATE_FIELDS = ["state", "since", "value", "n", "evaluated_at", "notified_state", "notified_at"]


def _apply(rule: AlertRule, state: AlertState | None, obs: Observation, *, now: datetime,
           channels: list, out: list[AlertState]) -> list[int]:
    """Decide one group's state (appended to `out`, written by the caller in bulk),
    record a change and queue its notification; returns the deliveries made."""
    new = state_for(rule, value=obs.value, n=obs.n)
    if state is None:
        if rule.group_by and new == State.NO_DATA:
            return []  # a group too small to judge: not worth a row until it is
        # A new group (or a new rule) starts where it is when that is not news: only a
        # firing start is recorded as a change from OK.
        start = State.OK if new in FIRING else new
        state = AlertState(rule=rule, group_key=obs.group_key, group=obs.group, state=start, since=now,
                           evaluated_at=now, notified_state=State.OK)
    event = None
    if new != state.state:
        # ok <-> no data of one group among many is churn, not history.
        if not (rule.group_by and not is_news(state.state, new)):
            event = AlertEvent.objects.create(
                project_id=rule.project_id, rule=rule, group_key=obs.group_key, group=obs.group,
                previous_state=state.state, state=new, value=obs.value, n=obs.n, threshold=threshold_for(rule, new),
                window_seconds=rule.window_seconds, created_at=now,
            )
        state.state, state.since = new, now
    state.value, state.n, state.evaluated_at = obs.value, obs.n, now
    deliveries: list[int] = []
    cooled = state.notified_at is None or now - state.notified_at >= timedelta(seconds=rule.cooldown_seconds)
    if is_news(state.notified_state, state.state) and cooled:
        if event is None:
            # Catching up after the cooldown: the change that led to the current state.
            event = AlertEvent.objects.filter(rule=rule, group_key=obs.group_key, state=state.state).first()
        if event is None:  # pragma: no cover - a state differs from the told one only through an event
            event = AlertEvent.objects.create(
                project_id=rule.project_id, rule=rule, group_key=obs.group_key, group=obs.group,
                previous_state=state.notified_state, state=state.state, value=obs.value, n=obs.n,
                threshold=threshold_for(rule, state.state), window_seconds=rule.window_seconds, created_at=now)
        body = notification_body(rule=rule, group=obs.group, state=state.state, previous_state=state.notified_state,
                                 value=obs.value, n=obs.n, now=now, event_id=event.pk)
        AlertEvent.objects.filter(pk=event.pk).update(notified_at=now)
        made = AlertDelivery.objects.bulk_create([AlertDelivery(channel=c, event=event, body=body) for c in channels])
        deliveries = [d.pk for d in made]
        state.notified_state, state.notified_at = state.state, now
    out.append(state)
    return deliveries
