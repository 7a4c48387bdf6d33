"""Rule evaluation (alerts/evaluation.py): values against hand-computed aggregates, and the
state machine: firing, recovery, cooldown, catch-up, no data, minimum observations,
per-group states."""

from __future__ import annotations

import pytest

from alerts.evaluation import rule_evaluate, rule_observe, state_for
from alerts.models import AlertDelivery, AlertEvent, AlertRule, AlertState
from tests.alerts.conftest import NOW, at, rule, trace


def states(r) -> dict[str, tuple[str, float | None, int]]:
    return {s.group_key: (s.state, s.value, s.n) for s in AlertState.objects.filter(rule=r)}


def events(r) -> list[tuple[str, str, bool]]:
    return [(e.previous_state, e.state, e.notified_at is not None)
            for e in AlertEvent.objects.filter(rule=r).order_by("created_at", "id")]


# --- values --------------------------------------------------------------------------------


def test_per_user_cost_in_24h_against_hand_computed_sums(world, hook):
    p = world.project
    trace(p, -60, cost="0.01", user="u1")
    trace(p, -30, cost="0.02", user="u1")  # u1: 0.03
    trace(p, -600, cost="0.50", user="u2")  # u2: 0.50
    trace(p, -1200, cost="1.25", user="u3")
    trace(p, -5, cost="0.75", user="u3")  # u3: 2.00
    trace(p, -25 * 60, cost="9.00", user="u1")  # 25 h ago: outside the window
    trace(world.other_project, -5, cost="50", user="u1")  # another project: never counted
    r = rule(p, measure="cost_usd", agg="sum", group_by="user_id", window_seconds=86400, warning_threshold=0.25,
             alert_threshold=1.0, min_observations=1)
    hook(r)

    delivered = rule_evaluate(r, now=NOW)

    assert states(r) == {
        '{"user_id": "u1"}': ("ok", pytest.approx(0.03), 2),
        '{"user_id": "u2"}': ("warning", pytest.approx(0.50), 1),
        '{"user_id": "u3"}': ("alert", pytest.approx(2.00), 2),
    }
    by_group = {e.group["user_id"]: (e.previous_state, e.state, e.threshold) for e in AlertEvent.objects.filter(rule=r)}
    assert by_group == {"u2": ("ok", "warning", 0.25), "u3": ("ok", "alert", 1.0)}
    assert len(delivered) == 2
    bodies = {d.body["group"]["user_id"]: d.body for d in AlertDelivery.objects.filter(pk__in=delivered)}
    assert bodies["u3"]["value"] == pytest.approx(2.0) and bodies["u3"]["n"] == 2
    assert bodies["u3"]["unit"] == "USD" and bodies["u3"]["window"] == "24h" and bodies["u3"]["threshold"] == 1.0
    assert "user_id=u3" in bodies["u3"]["explorer_url"]


def test_ungrouped_average_and_p95_latency(world):
    p = world.project
    for minutes, latency in ((-1, 100), (-2, 200), (-3, 300), (-4, 400)):
        trace(p, minutes, latency=latency)
    trace(p, -6, latency=10_000)  # outside the 5-minute window
    avg = rule(p, measure="latency_ms", agg="avg", alert_threshold=240)
    p95 = rule(p, measure="latency_ms", agg="p95", alert_threshold=390)

    observed, unwatched = rule_observe(avg, now=NOW)
    assert [(o.group_key, o.value, o.n) for o in observed] == [("", 250.0, 4)] and unwatched == 0
    # percentile_cont(0.95) of 100..400: 300 + 0.85 * 100.
    assert rule_observe(p95, now=NOW)[0][0].value == pytest.approx(385.0)

    rule_evaluate(avg, now=NOW)
    rule_evaluate(p95, now=NOW)
    assert states(avg) == {"": ("alert", 250.0, 4)}
    assert states(p95) == {"": ("ok", pytest.approx(385.0), 4)}


def test_filters_use_the_explorer_language(world):
    p = world.project
    trace(p, -1, model="gpt-4o", status="error")
    trace(p, -2, model="gpt-4o", status="ok")
    trace(p, -3, model="llama", status="error")
    r = rule(p, measure="errors", agg="rate", filters="model=gpt-4o", alert_threshold=0.4)

    rule_evaluate(r, now=NOW)

    assert states(r) == {"": ("alert", 0.5, 2)}


@pytest.mark.parametrize(("op", "value", "expected"), [
    (">", 5.0, "ok"), (">", 5.01, "warning"), (">", 10.0, "warning"), (">", 10.5, "alert"),
    (">=", 5.0, "warning"), (">=", 10.0, "alert"),
    ("<", 5.0, "warning"), ("<", 0.99, "alert"), ("<=", 1.0, "alert"), ("<", 7.0, "ok"),
])
def test_operators_and_both_thresholds(op, value, expected):
    above = op in (">", ">=")
    r = AlertRule(operator=op, warning_threshold=5.0 if above else 5.5, alert_threshold=10.0 if above else 1.0,
                  min_observations=1, no_data="no_data")
    if not above and value == 5.0:
        assert state_for(r, value=value, n=3) == "warning"  # 5.0 < 5.5
        return
    assert state_for(r, value=value, n=3) == expected


# --- the state machine -----------------------------------------------------------------------


def test_firing_then_recovery_each_notified_once(world, hook):
    p = world.project
    r = rule(p, cooldown_seconds=0)
    hook(r)
    for m in (-1, -2, -3):
        trace(p, m)

    assert len(rule_evaluate(r, now=NOW)) == 1  # 3 > 2: fires
    assert len(rule_evaluate(r, now=at(1))) == 0  # still 3: nothing new
    assert len(rule_evaluate(r, now=at(4))) == 1  # -1 only is left: recovered
    assert len(rule_evaluate(r, now=at(5))) == 0

    assert events(r) == [("ok", "alert", True), ("alert", "ok", True)]
    bodies = [d.body for d in AlertDelivery.objects.filter(channel__rule=r)]
    assert [(b["previous_state"], b["state"], b["value"]) for b in bodies] == [
        ("ok", "alert", 3.0), ("alert", "ok", 1.0)]


def test_flapping_inside_the_cooldown_sends_one_message(world, hook):
    p = world.project
    r = rule(p, cooldown_seconds=600)
    hook(r)
    for m in (-1, -1, -1):
        trace(p, m)  # in the window until NOW+4
    for m in (5.5, 5.5, 5.5):
        trace(p, m)  # in the window from NOW+5.5 to NOW+10.5

    sent = [len(rule_evaluate(r, now=at(m))) for m in (0, 5, 6, 9)]

    assert sent == [1, 0, 0, 0]  # fired; the recovery at +5 and the re-fire at +6 are held back
    assert events(r) == [("ok", "alert", True), ("alert", "ok", False), ("ok", "alert", False)]
    # After the cooldown, receivers already know "alert", the true state: nothing to catch up.
    assert rule_evaluate(r, now=at(10.1)) == []
    # The recovery at +11 is past the cooldown: sent.
    assert len(rule_evaluate(r, now=at(11))) == 1
    assert events(r)[-1] == ("alert", "ok", True)


def test_a_change_held_by_the_cooldown_is_sent_when_it_ends(world, hook):
    p = world.project
    r = rule(p, cooldown_seconds=600)
    hook(r)
    for m in (-1, -1, -1):
        trace(p, m)

    assert len(rule_evaluate(r, now=NOW)) == 1
    assert rule_evaluate(r, now=at(5)) == []  # recovered, held back
    assert rule_evaluate(r, now=at(9)) == []
    caught_up = rule_evaluate(r, now=at(10))

    assert len(caught_up) == 1
    body = AlertDelivery.objects.get(pk=caught_up[0]).body
    assert (body["previous_state"], body["state"], body["value"]) == ("alert", "ok", 0.0)
    recovery = AlertEvent.objects.get(rule=r, state="ok")
    assert recovery.created_at == at(5) and recovery.notified_at == at(10)
    assert body["event_id"] == recovery.pk


def test_warning_then_alert_is_an_escalation(world, hook):
    p = world.project
    r = rule(p, warning_threshold=1, alert_threshold=2, cooldown_seconds=0)
    hook(r)
    trace(p, -1)
    trace(p, -1)
    rule_evaluate(r, now=NOW)
    trace(p, -0.5)
    rule_evaluate(r, now=NOW)

    assert events(r) == [("ok", "warning", True), ("warning", "alert", True)]


@pytest.mark.parametrize(("no_data", "state", "notified"), [
    ("no_data", "no_data", 0), ("ok", "ok", 0), ("alert", "alert", 1),
])
def test_what_no_data_means(world, hook, no_data, state, notified):
    p = world.project
    r = rule(p, measure="latency_ms", agg="avg", alert_threshold=1000, no_data=no_data, min_observations=1)
    hook(r)

    assert len(rule_evaluate(r, now=NOW)) == notified
    assert states(r) == {"": (state, None, 0)}


def test_fewer_observations_than_the_minimum_is_no_data(world, hook):
    p = world.project
    r = rule(p, measure="latency_ms", agg="max", alert_threshold=1000, min_observations=3, no_data="no_data",
             cooldown_seconds=0)
    hook(r)
    trace(p, -1, latency=5000)
    trace(p, -2, latency=5000)

    assert rule_evaluate(r, now=NOW) == []
    assert states(r) == {"": ("no_data", 5000.0, 2)}
    trace(p, -3, latency=10)
    assert len(rule_evaluate(r, now=NOW)) == 1
    assert states(r) == {"": ("alert", 5000.0, 3)}
    # Back under the minimum: leaving a firing state for "no data" is news.
    assert len(rule_evaluate(r, now=at(2.5))) == 1  # the -3 trace left the window
    assert events(r) == [("no_data", "alert", True), ("alert", "no_data", True)]


def test_a_count_of_zero_can_alert_when_the_minimum_is_zero(world, hook):
    p = world.project
    r = rule(p, operator="<", alert_threshold=1, min_observations=0)  # traffic stopped
    hook(r)

    assert len(rule_evaluate(r, now=NOW)) == 1
    assert states(r) == {"": ("alert", 0.0, 0)}


def test_each_group_has_its_own_state_and_a_quiet_group_is_forgotten(world, hook):
    p = world.project
    r = rule(p, group_by="model", cooldown_seconds=0, min_observations=1)
    hook(r)
    for _ in range(3):
        trace(p, -1, model="gpt-4o")
    trace(p, -2, model="llama")

    assert len(rule_evaluate(r, now=NOW)) == 1
    assert {k: v[0] for k, v in states(r).items()} == {'{"model": "gpt-4o"}': "alert", '{"model": "llama"}': "ok"}

    trace(p, 3, model="llama")
    # At +4.5 only the llama trace of +3 is in the window: gpt-4o has no data (news: it
    # was firing), llama is quietly OK.
    assert len(rule_evaluate(r, now=at(4.5))) == 1
    assert {k: v[0] for k, v in states(r).items()} == {'{"model": "gpt-4o"}': "no_data", '{"model": "llama"}': "ok"}
    assert [(e.group, e.state) for e in AlertEvent.objects.filter(rule=r).order_by("id")] == [
        ({"model": "gpt-4o"}, "alert"), ({"model": "gpt-4o"}, "no_data")]
    # Receivers know gpt-4o has no data: nothing more to say, its state is dropped.
    rule_evaluate(r, now=at(5))
    assert list(states(r)) == ['{"model": "llama"}']


def test_groups_beyond_the_watched_ones_are_counted_not_alerted(world, hook, monkeypatch):
    import alerts.evaluation as evaluation

    monkeypatch.setattr(evaluation, "TOP_MAX", 2)
    p = world.project
    for user, count in (("a", 3), ("b", 2), ("c", 1), ("d", 1)):
        for _ in range(count):
            trace(p, -1, user=user)
    r = rule(p, group_by="user_id", alert_threshold=0.5, min_observations=1)

    rule_evaluate(r, now=NOW)

    assert sorted(k for k in states(r)) == ['{"user_id": "a"}', '{"user_id": "b"}']
    r.refresh_from_db()
    assert r.unwatched_n == 2 and r.evaluated_at == NOW


def test_changing_group_by_drops_the_old_states(world):
    from alerts.services import RuleSpec, rule_update

    p = world.project
    r = rule(p, group_by="model", min_observations=1)
    for _ in range(3):
        trace(p, -1)
    rule_evaluate(r, now=NOW)
    assert AlertState.objects.filter(rule=r).count() == 1
    rule_update(rule=r, spec=RuleSpec(name="rule", measure="traces", agg="count", alert_threshold=2,
                                      window_seconds=300, group_by="user_id"))
    assert not AlertState.objects.filter(rule=r).exists()


def test_query_count_of_one_evaluation_is_bounded(world, hook, django_assert_max_num_queries):
    p = world.project
    r = rule(p, group_by="user_id", min_observations=1, cooldown_seconds=0)
    hook(r)
    hook(r, "http://127.0.0.1:9/second")
    for i in range(30):
        trace(p, -1, user=f"user-{i % 10}")
    r = AlertRule.objects.select_related("project").get(pk=r.pk)
    # metrics query (+ rollup status), lock states, channels, 10 new states with an event
    # and deliveries each, rule update: grows with the groups that change, never with traces.
    with django_assert_max_num_queries(80):
        rule_evaluate(r, now=NOW)
    assert AlertDelivery.objects.count() == 20


def test_a_steady_evaluation_writes_all_groups_in_a_few_statements(world, django_assert_max_num_queries):
    p = world.project
    r = rule(p, group_by="user_id", min_observations=1, alert_threshold=100)
    for i in range(40):
        trace(p, -1, user=f"user-{i}")
    r = AlertRule.objects.select_related("project").get(pk=r.pk)
    rule_evaluate(r, now=NOW)
    assert AlertState.objects.filter(rule=r).count() == 40
    # The metrics query, the locked read, channels, one bulk update, the rule: not one write per group.
    with django_assert_max_num_queries(15):  # 13 here (savepoints and the rollup status included)
        rule_evaluate(r, now=at(1))
    assert set(AlertState.objects.filter(rule=r).values_list("evaluated_at", flat=True)) == {at(1)}
