from __future__ import annotations

from spyglass._config import resolve

_NONE = dict(
    host=None,
    public_key=None,
    secret_key=None,
    service_name=None,
    environment=None,
    release=None,
    sample_rate=None,
    mask=None,
    enabled=None,
    max_field_chars=None,
    export_timeout=None,
)


def test_every_setting_is_read_from_the_environment(monkeypatch):
    env = {
        "SPYGLASS_HOST": "https://spyglass.example/",
        "SPYGLASS_PUBLIC_KEY": "pk",
        "SPYGLASS_SECRET_KEY": "sk",
        "SPYGLASS_SERVICE_NAME": "svc",
        "SPYGLASS_ENVIRONMENT": "prod",
        "SPYGLASS_RELEASE": "v9",
        "SPYGLASS_SAMPLE_RATE": "0.25",
        "SPYGLASS_ENABLED": "false",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    config = resolve(**_NONE)
    assert config.traces_endpoint == "https://spyglass.example/v1/traces"
    assert config.feedback_endpoint == "https://spyglass.example/api/v1/feedback"
    assert (config.public_key, config.secret_key, config.service_name) == ("pk", "sk", "svc")
    assert (config.environment, config.release, config.sample_rate, config.enabled) == (
        "prod",
        "v9",
        0.25,
        False,
    )


def test_explicit_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("SPYGLASS_HOST", "http://env")
    monkeypatch.setenv("SPYGLASS_SAMPLE_RATE", "0.5")
    config = resolve(**{**_NONE, "host": "http://arg", "sample_rate": 1.0})
    assert config.host == "http://arg"
    assert config.sample_rate == 1.0


def test_bad_environment_values_fall_back_to_defaults(monkeypatch, caplog):
    monkeypatch.setenv("SPYGLASS_SAMPLE_RATE", "lots")
    monkeypatch.setenv("SPYGLASS_ENABLED", "maybe")
    config = resolve(**_NONE)
    assert config.sample_rate == 1.0
    assert config.enabled is True
    assert config.service_name == "unknown_service"


def test_a_second_init_with_another_environment_and_release_applies_to_new_spans():
    # OTel sets the global provider once per process, so the resource the first init() made
    # stays; the new environment and release must still reach the spans (as span attributes,
    # which beat the resource at ingest).
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import spyglass
    from spyglass import _attributes as A

    @spyglass.observe()
    def step() -> None:
        return None

    def effective(span, key):
        return span.attributes.get(key, span.resource.attributes.get(key))

    for environment, release in (("canary", "1.0"), ("staging", "2.0")):
        exporter = InMemorySpanExporter()
        spyglass.init(host="http://127.0.0.1:9", environment=environment, release=release,
                      span_exporter=exporter)
        step()
        assert spyglass.flush(timeout=10.0)
        (span,) = exporter.get_finished_spans()
        assert effective(span, A.DEPLOYMENT_ENVIRONMENT) == environment
        assert effective(span, A.SERVICE_VERSION) == release
