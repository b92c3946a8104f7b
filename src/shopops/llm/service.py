"""The gateway: routes a request for a model along the chain of backends that serve it.

For each backend in chain order: skip it while its circuit is open; redact personal data from the
prompt when the backend is external and the policy says so; call it; on a failure (connection,
timeout, 5xx, malformed answer) count it against its circuit breaker and fall back to the next.
The first answer wins and names its backend (``x-shopops-backend``, ``system_fingerprint``).
When every backend failed the client gets 503 with what happened at each.

A streamed answer is committed to a backend once its first chunk arrived: failures before that
fall back like any other; a failure after it ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from shopops.core.errors import ConfigError
from shopops.core.logging import get_logger
from shopops.core.registry import BackendSelection
from shopops.llm import metrics
from shopops.llm.breaker import BreakerState, CircuitBreaker
from shopops.llm.errors import BackendsUnavailableError, LlmError, ModelNotFoundError
from shopops.llm.model import (
    SSE_DONE,
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    Usage,
    backend_fingerprint,
    count_tokens,
    prompt_tokens,
    sse_event,
)
from shopops.llm.port import BackendFailure, ChatBackend, Embedder, Retriever, Target
from shopops.llm.redaction import Redactor

if TYPE_CHECKING:
    from shopops.core.settings import LlmSettings
    from shopops.governance.model import Principal
    from shopops.governance.port import SecretProvider
    from shopops.governance.service import GovernanceService

log = get_logger(__name__)

#: Decides whether ``principal`` may send personal data of ``kinds`` in clear to ``backend``.
PiiPolicy = Callable[["Principal", ChatBackend, Sequence[str]], bool]


@dataclass(frozen=True)
class Attempt:
    """A backend the gateway tried (or skipped) before the one that answered."""

    backend: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "reason": self.reason, "detail": self.detail}


@dataclass
class ChatResult:
    completion: ChatCompletion
    backend: str
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class StreamResult:
    """A stream committed to ``backend``: ``body`` yields the server-sent events, ``[DONE]`` last."""

    backend: str
    attempts: list[Attempt]
    body: AsyncIterator[bytes]


@dataclass
class EmbeddingResult:
    body: dict[str, Any]
    backend: str
    attempts: list[Attempt] = field(default_factory=list)


class LlmGateway:
    """The chain of backends with a circuit breaker each, personal-data redaction and metrics."""

    def __init__(
        self,
        backends: Sequence[ChatBackend],
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        redactor: Redactor | None = None,
        pii_policy: PiiPolicy | None = None,
        default_model: str = "shopops-offline",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [b.name for b in backends]
        if not backends:
            raise ConfigError(
                "llm.backends is empty", hint='give at least one backend, e.g. {type = "offline"}'
            )
        if len(set(names)) != len(names):
            raise ConfigError(
                f"llm.backends names must be unique: {', '.join(names)}",
                hint="give each backend its own name",
            )
        self.backends = list(backends)
        self.breakers = {
            b.name: CircuitBreaker(
                failure_threshold, cooldown_s, clock=clock, on_change=_gauge_setter(b.name)
            )
            for b in self.backends
        }
        for b in self.backends:
            metrics.BREAKER.labels(b.name).set(0)
        self.redactor = redactor or Redactor()
        self.pii_policy = pii_policy
        self.default_model = default_model

    # --- routing -------------------------------------------------------------------------------

    def targets(self, model: str, *, embeddings: bool = False) -> list[Target]:
        """The backends serving ``model``, in chain order; none raises :class:`ModelNotFoundError`."""
        out = []
        for backend in self.backends:
            upstream = backend.resolve(model, embeddings=embeddings)
            if upstream is not None:
                out.append(Target(backend, upstream))
        if not out:
            known = sorted(self.models(embeddings=embeddings))
            what = "embedding model" if embeddings else "model"
            raise ModelNotFoundError(
                f"no backend serves the {what} {model!r}",
                hint=f"known {what}s: {', '.join(known) or 'none'} (llm.backends, docs/llm.md)",
                param="model",
            )
        return out

    def models(self, *, embeddings: bool = False) -> dict[str, list[str]]:
        """Model name → the backends serving it, in chain order (``*`` for pass-through backends)."""
        out: dict[str, list[str]] = {}
        for backend in self.backends:
            for name in backend.embedding_models if embeddings else backend.models:
                out.setdefault(name, []).append(backend.name)
        return out

    def status(self) -> list[dict[str, Any]]:
        """Every backend with its circuit state, as ``GET /v1/chat/backends`` shows it."""
        out = []
        for backend in self.backends:
            breaker = self.breakers[backend.name]
            out.append(
                {
                    **backend.describe(),
                    "circuit": breaker.state.value,
                    "consecutive_failures": breaker.consecutive_failures,
                    "retry_in_s": round(breaker.retry_in(), 3),
                }
            )
        return out

    # --- personal data -------------------------------------------------------------------------

    async def _outgoing(
        self, backend: ChatBackend, request: ChatCompletionRequest, principal: Principal | None
    ) -> ChatCompletionRequest:
        """``request`` as ``backend`` may receive it: personal data redacted unless permitted."""
        if backend.redact_pii == "never":  # the offline model, or a backend set so
            return request
        findings = self.redactor.scan(request)
        if not findings:
            return request
        kinds = sorted(findings.kinds)
        if backend.redact_pii == "policy" and principal is not None and self.pii_policy is not None:
            allowed = await anyio.to_thread.run_sync(self.pii_policy, principal, backend, kinds)
            if allowed:
                return request
        redacted, findings = self.redactor.redact(request)
        for kind, count in findings.kinds.items():
            metrics.REDACTIONS.labels(backend.name, kind).inc(count)
        log.info("personal data redacted before an external LLM backend", backend=backend.name, kinds=kinds)
        return redacted

    # --- chat ----------------------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest, principal: Principal | None = None) -> ChatResult:
        """One completion from the first backend of the chain that can give it."""
        targets = self.targets(request.model)
        attempts: list[Attempt] = []
        for index, target in enumerate(targets):
            backend = target.backend
            breaker = self.breakers[backend.name]
            if not self._admit(backend, request.model, breaker, attempts, index, len(targets)):
                continue
            start = time.perf_counter()
            try:
                outgoing = await self._outgoing(backend, request, principal)
                completion = await backend.chat(outgoing, target.upstream_model)
            except BackendFailure as failure:
                self._failed(backend, request.model, breaker, failure, attempts, index, len(targets))
                continue
            except LlmError:
                breaker.record_success()  # the upstream answered: it is the request that is wrong
                metrics.REQUESTS.labels(backend.name, request.model, "rejected").inc()
                raise
            except BaseException:
                breaker.release()
                raise
            breaker.record_success()
            completion = completion.model_copy(
                update={"model": request.model, "system_fingerprint": backend_fingerprint(backend.name)}
            )
            usage = completion.usage or _usage(
                prompt_tokens(request), count_tokens(_completion_text(completion))
            )
            self._succeeded(backend, request.model, usage, time.perf_counter() - start)
            return ChatResult(completion, backend.name, attempts)
        raise self._exhausted(request.model, attempts)

    async def complete(
        self, request: ChatCompletionRequest, principal: Principal | None = None
    ) -> ChatCompletion:
        """The completion of :meth:`chat` alone (its ``system_fingerprint`` names the backend)."""
        return (await self.chat(request, principal)).completion

    def chat_sync(self, request: ChatCompletionRequest, principal: Principal | None = None) -> ChatResult:
        """:meth:`chat` from synchronous code (the CLI, batch jobs); not inside an event loop."""
        result: ChatResult = _run(self.chat(request, principal))
        return result

    async def stream(
        self, request: ChatCompletionRequest, principal: Principal | None = None
    ) -> StreamResult:
        """A streamed completion, committed to the first backend whose first chunk arrives."""
        targets = self.targets(request.model)
        attempts: list[Attempt] = []
        for index, target in enumerate(targets):
            backend = target.backend
            breaker = self.breakers[backend.name]
            if not self._admit(backend, request.model, breaker, attempts, index, len(targets)):
                continue
            start = time.perf_counter()
            chunks: AsyncIterator[dict[str, Any]] | None = None
            try:
                outgoing = await self._outgoing(backend, request, principal)
                chunks = backend.stream(outgoing, target.upstream_model)
                first = await anext(chunks)
            except StopAsyncIteration:
                failure = BackendFailure("invalid_response", "the stream ended before its first chunk")
                self._failed(backend, request.model, breaker, failure, attempts, index, len(targets))
                continue
            except BackendFailure as failure:
                await _close(chunks)
                self._failed(backend, request.model, breaker, failure, attempts, index, len(targets))
                continue
            except LlmError:
                await _close(chunks)
                breaker.record_success()
                metrics.REQUESTS.labels(backend.name, request.model, "rejected").inc()
                raise
            except BaseException:
                await _close(chunks)
                breaker.release()
                raise
            metrics.FIRST_CHUNK.labels(backend.name, request.model).observe(time.perf_counter() - start)
            body = self._relay(backend, breaker, request, first, chunks, start)
            return StreamResult(backend.name, attempts, body)
        raise self._exhausted(request.model, attempts)

    async def _relay(
        self,
        backend: ChatBackend,
        breaker: CircuitBreaker,
        request: ChatCompletionRequest,
        first: dict[str, Any],
        chunks: AsyncIterator[dict[str, Any]],
        start: float,
    ) -> AsyncIterator[bytes]:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        fingerprint = backend_fingerprint(backend.name)
        usage: dict[str, Any] | None = None
        completion_text: list[str] = []
        last: dict[str, Any] = first
        outcome = "cancelled"
        try:
            pending: dict[str, Any] | None = first
            while True:
                chunk = pending if pending is not None else await anext(chunks)
                pending = None
                last = chunk
                chunk["model"] = request.model
                chunk["system_fingerprint"] = fingerprint
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {} if isinstance(choice, dict) else {}
                    if isinstance(delta.get("content"), str):
                        completion_text.append(delta["content"])
                    for call in delta.get("tool_calls") or ():
                        function = call.get("function") or {} if isinstance(call, dict) else {}
                        completion_text.append(
                            str(function.get("name") or "") + str(function.get("arguments") or "")
                        )
                if not chunk.get("choices") and usage is not None and not include_usage:
                    continue  # a usage chunk the client did not ask for
                if "usage" in chunk and chunk.get("choices") and not include_usage:
                    chunk.pop("usage")
                yield sse_event(chunk)
        except StopAsyncIteration:
            outcome = "ok"
        except BackendFailure as failure:
            outcome = "failed"
            breaker.record_failure()
            metrics.ERRORS.labels(backend.name, failure.kind).inc()
            metrics.REQUESTS.labels(backend.name, request.model, "failed").inc()
            log.warning("LLM stream broke after its first chunk", backend=backend.name, error=str(failure))
            error = BackendsUnavailableError(
                f"backend {backend.name!r} failed mid-stream: {failure}",
                hint="retry the request: a backend that keeps failing is skipped (circuit breaker)",
            )
            yield sse_event(error.to_openai())
            return
        finally:
            if outcome == "cancelled":
                breaker.release()
                await _close(chunks)
                metrics.REQUESTS.labels(backend.name, request.model, "cancelled").inc()
        breaker.record_success()
        estimated = _usage(prompt_tokens(request), count_tokens("".join(completion_text)))
        final = Usage.model_validate(usage) if usage is not None else estimated
        if include_usage and usage is None:
            yield sse_event(
                {
                    "id": last.get("id"),
                    "object": "chat.completion.chunk",
                    "created": last.get("created"),
                    "model": request.model,
                    "system_fingerprint": fingerprint,
                    "choices": [],
                    "usage": estimated.model_dump(),
                }
            )
        self._succeeded(backend, request.model, final, time.perf_counter() - start)
        yield SSE_DONE

    # --- embeddings ----------------------------------------------------------------------------

    async def embeddings(
        self, request: EmbeddingRequest, principal: Principal | None = None
    ) -> EmbeddingResult:
        """Embeddings from the first backend serving the embedding model that answers."""
        targets = self.targets(request.model, embeddings=True)
        attempts: list[Attempt] = []
        for index, target in enumerate(targets):
            backend = target.backend
            breaker = self.breakers[backend.name]
            if not self._admit(backend, request.model, breaker, attempts, index, len(targets)):
                continue
            start = time.perf_counter()
            try:
                body = await backend.embed(request, target.upstream_model)
            except BackendFailure as failure:
                self._failed(backend, request.model, breaker, failure, attempts, index, len(targets))
                continue
            except LlmError:
                breaker.record_success()
                metrics.REQUESTS.labels(backend.name, request.model, "rejected").inc()
                raise
            except BaseException:
                breaker.release()
                raise
            breaker.record_success()
            body["system_fingerprint"] = backend_fingerprint(backend.name)
            tokens = int((body.get("usage") or {}).get("prompt_tokens") or 0)
            self._succeeded(backend, request.model, Usage(prompt_tokens=tokens), time.perf_counter() - start)
            return EmbeddingResult(body, backend.name, attempts)
        raise self._exhausted(request.model, attempts)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _admit(
        self,
        backend: ChatBackend,
        model: str,
        breaker: CircuitBreaker,
        attempts: list[Attempt],
        index: int,
        total: int,
    ) -> bool:
        if breaker.allow():
            return True
        attempts.append(Attempt(backend.name, "circuit_open", f"probed again in {breaker.retry_in():.1f} s"))
        metrics.REQUESTS.labels(backend.name, model, "skipped").inc()
        if index + 1 < total:
            metrics.FALLBACKS.labels(backend.name, "circuit_open").inc()
        return False

    def _failed(
        self,
        backend: ChatBackend,
        model: str,
        breaker: CircuitBreaker,
        failure: BackendFailure,
        attempts: list[Attempt],
        index: int,
        total: int,
    ) -> None:
        breaker.record_failure()
        attempts.append(Attempt(backend.name, failure.kind, failure.detail))
        metrics.ERRORS.labels(backend.name, failure.kind).inc()
        metrics.REQUESTS.labels(backend.name, model, "failed").inc()
        if index + 1 < total:
            metrics.FALLBACKS.labels(backend.name, failure.kind).inc()
        log.warning(
            "LLM backend failed", backend=backend.name, model=model, kind=failure.kind, detail=failure.detail
        )

    def _succeeded(self, backend: ChatBackend, model: str, usage: Usage, seconds: float) -> None:
        metrics.REQUESTS.labels(backend.name, model, "ok").inc()
        metrics.TOKENS.labels(backend.name, model, "prompt").inc(usage.prompt_tokens)
        metrics.TOKENS.labels(backend.name, model, "completion").inc(usage.completion_tokens)
        metrics.LATENCY.labels(backend.name, model).observe(seconds)

    def _exhausted(self, model: str, attempts: list[Attempt]) -> BackendsUnavailableError:
        summary = "; ".join(
            f"{a.backend}: {a.reason}" + (f" ({a.detail})" if a.detail else "") for a in attempts
        )
        return BackendsUnavailableError(
            f"no backend could answer for model {model!r}: {summary}",
            hint="check the upstreams (GET /v1/chat/backends shows each circuit); an open circuit is "
            "probed again after llm.breaker_cooldown_s",
            attempts=[a.to_dict() for a in attempts],
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        for backend in self.backends:
            await backend.aclose()

    def close(self) -> None:
        """Release what can be released outside an event loop (connection pools close with theirs)."""
        for backend in self.backends:
            forget = getattr(backend, "forget_clients", None)
            if forget is not None:
                forget()


def _gauge_setter(name: str) -> Callable[[BreakerState], None]:
    def set_gauge(state: BreakerState) -> None:
        metrics.BREAKER.labels(name).set(state.gauge)

    return set_gauge


def _usage(prompt: int, completion: int) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _completion_text(completion: ChatCompletion) -> str:
    message = completion.choices[0].message
    return message.content or "".join(
        c.function.name + c.function.arguments for c in message.tool_calls or ()
    )


async def _close(chunks: AsyncIterator[dict[str, Any]] | None) -> None:
    closer = getattr(chunks, "aclose", None)
    if closer is not None:
        with contextlib.suppress(BackendFailure, RuntimeError):  # a generator that already failed
            await closer()


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("chat_sync was called inside an event loop: await LlmGateway.chat() instead")


# --- wiring -----------------------------------------------------------------------------------

_SHARED_EMBEDDER: Embedder | None = None


def shared_embedder() -> Embedder:
    """One MiniLM per process, cached: every gateway and the offline model share it."""
    global _SHARED_EMBEDDER
    if _SHARED_EMBEDDER is None:
        from shopops.llm.embedder import CachedEmbedder, MiniLMEmbedder

        _SHARED_EMBEDDER = CachedEmbedder(MiniLMEmbedder())
    return _SHARED_EMBEDDER


def _resolve(rag: Any) -> Any:
    return rag() if callable(rag) and not hasattr(rag, "search") else rag


def open_gateway(
    section: LlmSettings,
    *,
    rag: Any = None,
    governance: GovernanceService | None = None,
    secrets: SecretProvider | None = None,
) -> LlmGateway:
    """Build the chain of ``section.backends``; a bad entry raises :class:`ConfigError` naming it.

    ``rag`` is the retrieval service (``search`` and ``embed``) or a function returning it when
    first needed; without it the offline model answers only from the conversation and embeds with
    its own MiniLM.
    """
    from shopops.llm.backends import LLM_BACKENDS, BackendContext, Defaults
    from shopops.llm.embedder import CachedEmbedder

    rag_failed: list[str] = []

    def retriever() -> Retriever | None:
        if rag is None or rag_failed:
            return None
        try:
            found = _resolve(rag)
        except Exception as exc:  # the gateway still answers from the conversation without retrieval
            rag_failed.append(str(exc))
            log.warning("retrieval is unavailable to the offline model", error=str(exc))
            return None
        return found if isinstance(found, Retriever) else None

    embedders: list[Embedder] = []

    def embedder() -> Embedder | None:
        if not embedders:
            found = retriever()
            embedders.append(CachedEmbedder(found) if isinstance(found, Embedder) else shared_embedder())
        return embedders[0]

    context = BackendContext(
        defaults=Defaults(
            timeout_s=section.timeout_s,
            connect_timeout_s=section.connect_timeout_s,
            retries=section.retries,
            retry_backoff_s=section.retry_backoff_s,
        ),
        secrets=secrets or (governance.secrets if governance is not None else None),
        embedder=embedder,
        retriever=retriever,
    )
    backends = []
    for position, selection in enumerate(section.backends):
        try:
            backends.append(LLM_BACKENDS.create(_named(selection), context=context))
        except ConfigError as exc:
            raise ConfigError(f"llm.backends[{position}]: {exc.message}", hint=exc.hint) from exc
    policy: PiiPolicy | None = None
    if governance is not None:
        policy = _cedar_pii_policy(governance)
    tags: Callable[[], Mapping[str, Any]] = (lambda: governance.data.tags) if governance is not None else dict
    return LlmGateway(
        backends,
        failure_threshold=section.breaker_failures,
        cooldown_s=section.breaker_cooldown_s,
        redactor=Redactor(tags),
        pii_policy=policy,
        default_model=section.default_model,
    )


def check_llm_settings(section: LlmSettings) -> None:
    """Validate the chain without building it: known types, valid options, unique names."""
    from shopops.llm.backends import LLM_BACKENDS

    if not section.backends:
        raise ConfigError("llm.backends is empty", hint='give at least one backend, e.g. {type = "offline"}')
    names = []
    for position, selection in enumerate(section.backends):
        try:
            config = LLM_BACKENDS.config_for(_named(selection))
        except ConfigError as exc:
            raise ConfigError(f"llm.backends[{position}]: {exc.message}", hint=exc.hint) from exc
        names.append(str(getattr(config, "name", selection.type)))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"llm.backends: the name {', '.join(duplicates)} is used twice",
            hint="give each backend its own name",
        )


def _named(selection: BackendSelection) -> BackendSelection:
    options = selection.options()
    if "name" not in options and selection.type == "offline":
        return BackendSelection(type=selection.type, name="offline", **options)
    return selection


def _cedar_pii_policy(governance: GovernanceService) -> PiiPolicy:
    from shopops.governance.model import EntityRef

    def decide(principal: Principal, backend: ChatBackend, kinds: Sequence[str]) -> bool:
        decision = governance.decide(
            principal,
            "send_pii",
            EntityRef("LlmBackend", backend.name),
            {"external": backend.external, "region": backend.region, "kinds": list(kinds)},
            audit=True,
        )
        return decision.allowed

    return decide
