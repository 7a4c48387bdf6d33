"""Attribute names, in the dialects the Spyglass receiver (and other backends) map.

OTel GenAI (current) names are primary; OpenInference names are added where other tools
only understand those. Spyglass-only concepts use the ``spyglass.`` prefix.
"""

# OTel GenAI semantic conventions (current names)
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_EMBEDDING_DIMENSIONS = "gen_ai.embeddings.dimension.count"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# request parameters: our keyword -> gen_ai.request.* attribute
GEN_AI_REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}

# OpenInference
OI_SPAN_KIND = "openinference.span.kind"
INPUT_VALUE = "input.value"
INPUT_MIME = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME = "output.mime_type"
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
LLM_TOKENS_PROMPT = "llm.token_count.prompt"
LLM_TOKENS_COMPLETION = "llm.token_count.completion"
LLM_TOKENS_TOTAL = "llm.token_count.total"
LLM_TOKENS_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKENS_REASONING = "llm.token_count.completion_details.reasoning"
LLM_PROMPT_TEMPLATE_VERSION = "llm.prompt_template.version"
LLM_PROMPT_TEMPLATE = "llm.prompt_template.template"
LLM_PROMPT_VARIABLES = "llm.prompt_template.variables"
# The prompt-name key the Spyglass receiver maps to Trace.prompt_name (it does not read
# spyglass.prompt.name); with llm.prompt_template.version it links a span to a version.
GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
TOOL_NAME = "tool.name"
USER_ID = "user.id"
SESSION_ID = "session.id"
TAGS = "tag.tags"
METADATA = "metadata"

# Spyglass
SPYGLASS_KIND = "spyglass.span.kind"
SPYGLASS_PROMPT_NAME = "spyglass.prompt.name"
SPYGLASS_PROMPT_VERSION = "spyglass.prompt.version"
SPYGLASS_TRUNCATED = "spyglass.truncated"

# resource-level facts, repeated on spans when we join a provider we did not create
DEPLOYMENT_ENVIRONMENT = "deployment.environment.name"
SERVICE_VERSION = "service.version"
SERVICE_NAME = "service.name"

# observe(kind=...) -> gen_ai.operation.name, only where the mapping is unambiguous
KIND_TO_OPERATION = {
    "tool": "execute_tool",
    "agent": "invoke_agent",
    "embedding": "embeddings",
    "retriever": "retrieval",
}
