"""The LLM gateway: an OpenAI-compatible API over a chain of backends (OpenAI-compatible upstreams
with fallback and circuit breakers, and a built-in offline model). See docs/llm.md."""
