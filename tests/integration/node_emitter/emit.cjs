#!/usr/bin/env node
// A small Node "customer app": the real `openai` npm client, one stock OTel
// instrumentation, and one stock OTLP/HTTP trace exporter, sending to Spyglass.
//
// Run by tests/integration/test_node_exporters.py (one process per combination:
// instrumentations patch the openai module globally):
//
//   node emit.cjs --endpoint http://127.0.0.1:8000/v1/traces --key sk-sg-... \
//     --exporter proto|http --instrumentation openinference|openllmetry \
//     --openai-base-url http://127.0.0.1:9999/v1 --session-id s-1 --user-id u-1 \
//     [--compression none|gzip] [--question "..."]
//
// Every flag can also come from the environment (EMIT_ENDPOINT, EMIT_KEY, ...).
// It makes one chat completion inside a parent span carrying the session and user,
// flushes, and prints one JSON line: {"trace_id", "spans", "answer"}. It exits 1 if
// the instrumentation made no LLM span or any export did not succeed.
//
// CommonJS on purpose: both instrumentations hook `require("openai")` through
// require-in-the-middle; under ESM the OpenInference one needs manuallyInstrument().
"use strict";

const { parseArgs } = require("node:util");

const OPTIONS = {
  endpoint: { type: "string" },
  key: { type: "string" },
  exporter: { type: "string" },
  instrumentation: { type: "string" },
  "openai-base-url": { type: "string" },
  "session-id": { type: "string" },
  "user-id": { type: "string" },
  compression: { type: "string" },
  question: { type: "string" },
};
const DEFAULTS = { compression: "none", question: "What is the capital of France?" };
const FLUSH_TIMEOUT_MS = 60_000;

function readConfig() {
  const { values } = parseArgs({ options: OPTIONS, strict: true });
  const config = {};
  for (const name of Object.keys(OPTIONS)) {
    const envName = "EMIT_" + name.toUpperCase().replace(/-/g, "_");
    config[name] = values[name] ?? process.env[envName] ?? DEFAULTS[name];
    if (config[name] === undefined) fail(`missing --${name} (or ${envName})`);
  }
  if (!["proto", "http"].includes(config.exporter)) fail(`--exporter must be proto or http, not ${config.exporter}`);
  if (!["openinference", "openllmetry"].includes(config.instrumentation)) {
    fail(`--instrumentation must be openinference or openllmetry, not ${config.instrumentation}`);
  }
  if (!["none", "gzip"].includes(config.compression)) fail(`--compression must be none or gzip`);
  return config;
}

function fail(message) {
  process.stderr.write(`emit: ${message}\n`);
  process.exit(2);
}

function makeExporter(kind, { endpoint, key, compression }) {
  const options = {
    url: endpoint,
    headers: { Authorization: `Bearer ${key}` },
    compression,
    timeoutMillis: 30_000,
  };
  if (kind === "proto") {
    const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
    return new OTLPTraceExporter(options);
  }
  const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http");
  return new OTLPTraceExporter(options);
}

// Delegates to the real exporter and keeps every result: the batch processor only
// logs a failed export, and this process must exit non-zero when one happens.
class RecordingExporter {
  constructor(inner) {
    this.inner = inner;
    this.results = [];
    this.spans = [];
  }

  export(spans, done) {
    this.inner.export(spans, (result) => {
      this.results.push(result);
      if (result.code === 0) this.spans.push(...spans);
      done(result);
    });
  }

  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }

  shutdown() {
    return this.inner.shutdown();
  }
}

function makeInstrumentation(name) {
  if (name === "openinference") {
    const { OpenAIInstrumentation } = require("@arizeai/openinference-instrumentation-openai");
    return new OpenAIInstrumentation();
  }
  const { OpenAIInstrumentation } = require("@traceloop/instrumentation-openai");
  return new OpenAIInstrumentation();
}

async function main() {
  const config = readConfig();
  const api = require("@opentelemetry/api");
  const { NodeTracerProvider } = require("@opentelemetry/sdk-trace-node");
  const { BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
  const { resourceFromAttributes } = require("@opentelemetry/resources");

  const exporter = new RecordingExporter(makeExporter(config.exporter, config));
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": `node-emitter-${config.instrumentation}` }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  // Global provider plus the AsyncLocalStorage context manager, so the LLM span made
  // inside the openai call becomes a child of our parent span.
  provider.register();

  // Enabled on construction: it hooks require("openai") from here on.
  const instrumentation = makeInstrumentation(config.instrumentation);
  instrumentation.setTracerProvider(provider);
  const { OpenAI } = require("openai");

  const client = new OpenAI({
    baseURL: config["openai-base-url"],
    apiKey: "test-key",
    maxRetries: 0,
    timeout: 30_000,
  });
  const tracer = provider.getTracer("spyglass-node-emitter");
  const sessionId = config["session-id"];
  const userId = config["user-id"];

  let ctx = api.context.active();
  if (config.instrumentation === "openinference") {
    // OpenInference's own way: its tracer copies these onto every span it makes.
    const { setSession, setUser } = require("@arizeai/openinference-core");
    ctx = setUser(setSession(ctx, { sessionId }), { userId });
  }

  let traceId;
  let answer;
  await api.context.with(ctx, () =>
    tracer.startActiveSpan(
      "support-chat",
      { attributes: { "session.id": sessionId, "user.id": userId } },
      async (parent) => {
        traceId = parent.spanContext().traceId;
        try {
          const completion = await client.chat.completions.create({
            model: "gpt-4o-mini",
            messages: [
              { role: "system", content: "You are a terse geography tutor." },
              { role: "user", content: config.question },
            ],
            temperature: 0.2,
          });
          answer = completion.choices[0].message.content;
        } finally {
          parent.end();
        }
      },
    ),
  );

  // forceFlush rejects when an export fails; the failure is reported after the trace
  // id is printed, so the caller still learns which trace was lost.
  let flushError;
  try {
    await provider.forceFlush();
  } catch (error) {
    flushError = error;
  }
  await provider.shutdown().catch(() => {});
  instrumentation.disable();

  const names = exporter.spans.map((span) => span.name);
  process.stdout.write(JSON.stringify({ trace_id: traceId, spans: names, answer }) + "\n");

  const failed = exporter.results.filter((result) => result.code !== 0);
  if (flushError || failed.length > 0 || exporter.results.length === 0) {
    const reasons = failed.map((result) => describeError(result.error));
    if (reasons.length === 0) reasons.push(flushError ? describeError(flushError) : "nothing was exported");
    process.stderr.write(`emit: export failed: ${reasons.join("; ")}\n`);
    return 1;
  }
  if (names.length < 2) {
    process.stderr.write(`emit: ${config.instrumentation} made no span for the openai call (spans: ${names})\n`);
    return 1;
  }
  return 0;
}

// OTLPExporterError carries the HTTP status as `code` and the response body as `data`.
function describeError(error) {
  if (!error) return "unknown error";
  const status = error.code ? ` (HTTP ${error.code})` : "";
  const body = error.data ? `: ${String(error.data).slice(0, 500)}` : "";
  return `${error.message || error}${status}${body}`;
}

const watchdog = setTimeout(() => {
  process.stderr.write("emit: gave up after the flush timeout\n");
  process.exit(1);
}, FLUSH_TIMEOUT_MS * 2);
watchdog.unref();

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`emit: ${error && error.stack ? error.stack : error}\n`);
    process.exitCode = 1;
  },
);
