"""The simulator's decisions, independent of any wire format: who calls, may it, what happens.

:meth:`Engine.evaluate` takes a parsed call and the secret it came with and returns one outcome:
denied (auth), not found (model), invalid (context length, max_tokens), a pre-admission fault,
rate limited, or admitted (with the reply to send and any post-admission fault). The server renders
the outcome in the provider's format and, for an admitted call, reports back through
:meth:`Engine.complete` how many completion tokens were delivered, which settles the token charge.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kernel.tokens import content_text
from router.providers.catalog import context_window as catalog_context_window
from router.providers.catalog import max_output_tokens as catalog_max_output
from router.simulator.config import (
    DAY_RESET_TZ,
    FaultConfig,
    SimKey,
    SimulatorConfig,
    fingerprint,
)
from router.simulator.content import (
    Reply,
    count_prompt_tokens,
    count_text_tokens,
    make_reply,
    tool_reply,
)
from router.simulator.faults import fault_status, post_admission_fault, pre_admission_fault
from router.simulator.limits import Limits, QuotaState, Rejection, Ticket
from router.simulator.outcomes import (
    Admitted,
    Call,
    Denied,
    Fault,
    Invalid,
    Limited,
    NotFound,
    Outcome,
    RequestRecord,
)
from router.simulator.stats import StatsBook, UsageStats
from router.simulator.structured import json_reply


class KeyState:
    """A configured key with its effective faults and its own seeded random stream."""

    def __init__(self, key: SimKey, faults: FaultConfig, seed: int) -> None:
        self.key = key
        self.faults = faults.merged(key.faults)
        self.rng = random.Random(f"{seed}:{key.key_id}")
        self.fingerprint = fingerprint(key.secret)


class Engine:
    """Keys, limits, faults, stats and the request log of one simulator."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.faults = config.faults
        self.keys: dict[str, KeyState] = {}
        self.quotas: dict[tuple[str, str], QuotaState] = {}
        self.stats = StatsBook(config.window_seconds)
        self.log: deque[RequestRecord] = deque(maxlen=config.request_log_size)
        self.rng = random.Random(f"{config.seed}:*")
        self._ids = itertools.count(1)
        for key in config.keys:
            self.add_key(key)

    # -- administration ------------------------------------------------------------------
    def add_key(self, key: SimKey) -> None:
        """Add (or replace, by key id) a key; a replaced key keeps its quota state."""
        for secret, state in list(self.keys.items()):
            if state.key.key_id == key.key_id:
                del self.keys[secret]
        self.keys[key.secret] = KeyState(key, self.faults, self.config.seed)

    def find_key(self, key_id: str) -> KeyState | None:
        return next((s for s in self.keys.values() if s.key.key_id == key_id), None)

    def set_revoked(self, key_id: str, revoked: bool = True) -> bool:
        state = self.find_key(key_id)
        if state is None:
            return False
        state.key = state.key.model_copy(update={"revoked": revoked})
        return True

    def set_faults(self, faults: FaultConfig | dict[str, Any], key_id: str | None = None) -> bool:
        """Change faults at run time: the global ones, or one key's overrides (merged on global)."""
        if key_id is None:
            self.faults = (
                faults if isinstance(faults, FaultConfig) else FaultConfig.model_validate(faults)
            )
            for state in self.keys.values():
                state.faults = self.faults.merged(state.key.faults)
            return True
        found = self.find_key(key_id)
        if found is None:
            return False
        state = found
        overrides = faults.model_dump() if isinstance(faults, FaultConfig) else dict(faults)
        state.key = SimKey.model_validate({**state.key.model_dump(), "faults": overrides})
        state.faults = self.faults.merged(state.key.faults)
        return True

    def reset_stats(self, *, limits: bool = False) -> None:
        self.stats = StatsBook(self.config.window_seconds)
        self.log.clear()
        if limits:
            self.quotas.clear()

    def next_id(self) -> str:
        return f"{next(self._ids):010d}"

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, call: Call, secret: str | None) -> Outcome:
        record = self._record(call, secret)
        outcome = self._decide(call, secret, record)
        if record is not None:
            record.outcome = type(outcome).__name__.lower()
            if isinstance(outcome, Fault | Limited):
                record.outcome += ":" + (
                    outcome.kind if isinstance(outcome, Fault) else outcome.rejection.scope
                )
        return outcome

    def _record(self, call: Call, secret: str | None) -> RequestRecord | None:
        if self.log.maxlen == 0:
            return None
        state = self.keys.get(secret) if secret else None
        record = RequestRecord(
            time=self.wall_clock(),
            provider=call.provider,
            model=call.model,
            key_id=state.key.key_id if state else None,
            key_fingerprint=fingerprint(secret) if secret else None,
            messages=call.messages,
            stream=call.stream,
            max_tokens=call.max_tokens,
        )
        self.log.append(record)
        return record

    def _decide(self, call: Call, secret: str | None, record: RequestRecord | None) -> Outcome:
        state = self._authenticate(call, secret)
        if not isinstance(state, KeyState):
            return state
        key = state.key
        stats = self.stats.key(key.key_id, call.model)
        if not self._model_allowed(key, call.model):
            stats.bad_requests["model_not_found"] += 1
            return NotFound(call.model)
        prompt = (
            count_prompt_tokens(call.model, call.messages)
            if call.inputs is None
            else sum(count_text_tokens(call.model, t) for t in call.inputs)
        )
        if record is not None:
            record.prompt_tokens = prompt
        invalid = self._validate(call, prompt)
        if invalid is not None:
            stats.bad_requests[invalid.reason] += 1
            return invalid
        draw = state.rng.random()
        quota = self._quota(key, call)
        fault = pre_admission_fault(state.faults, draw)
        if fault is not None:
            stats.faults[fault] += 1
            view = quota.view(self.clock()) if quota is not None else None
            return Fault(fault, fault_status(fault, call.provider, state.faults), view)
        return self._admit(state, call, prompt, quota, draw, stats)

    def _authenticate(self, call: Call, secret: str | None) -> KeyState | Denied:
        if not secret:
            self.stats.missing_keys += 1
            return Denied("missing")
        state = self.keys.get(secret)
        if state is None and self.config.open_access:
            state = KeyState(SimKey(secret=secret), self.faults, self.config.seed)
            self.keys[secret] = state
        if state is None or call.provider not in state.key.providers:
            self.stats.unknown_keys += 1
            return Denied("invalid", secret)
        if state.key.revoked:
            self.stats.key(state.key.key_id, call.model).auth_failures += 1
            return Denied("revoked", secret)
        return state

    def _model_allowed(self, key: SimKey, model: str) -> bool:
        for allowed in (self.config.models, key.models):
            if allowed is not None and not any(fnmatch.fnmatchcase(model, p) for p in allowed):
                return False
        return True

    def context_window(self, model: str) -> int:
        configured = self.config.context_windows.get(model)
        if configured is not None:
            return configured
        return catalog_context_window(model) or self.config.default_context_window

    def max_output(self, model: str) -> int | None:
        configured = self.config.max_output_tokens.get(model)
        return configured if configured is not None else catalog_max_output(model)

    def _validate(self, call: Call, prompt: int) -> Invalid | None:
        if call.inputs is not None:  # embeddings: each text within the model's input limit
            window = self.context_window(call.model)
            largest = max((count_text_tokens(call.model, t) for t in call.inputs), default=0)
            return Invalid("context_length", largest, window, None) if largest > window else None
        limit = self.max_output(call.model)
        if call.max_tokens is not None and limit is not None and call.max_tokens > limit:
            return Invalid("max_tokens", prompt, limit, call.max_tokens)
        window = self.context_window(call.model)
        # Gemini checks the input alone; OpenAI and Anthropic the input plus max_tokens.
        needed = prompt if call.provider == "gemini" else prompt + (call.max_tokens or 0)
        if needed > window:
            return Invalid("context_length", prompt, window, call.max_tokens)
        return None

    def _quota(self, key: SimKey, call: Call) -> QuotaState | None:
        limits = key.limits_for(call.model)
        if not (limits.rpm or limits.tpm or limits.rpd or limits.itpm or limits.otpm):
            return None
        slot = (key.group, call.model)
        quota = self.quotas.get(slot)
        if quota is None:
            tz = key.day_reset_tz or DAY_RESET_TZ.get(call.provider, "UTC")
            quota = QuotaState(
                Limits(limits.rpm, limits.tpm, limits.rpd, limits.itpm, limits.otpm),
                now=self.clock(),
                window=self.config.window_seconds,
                strict=key.strict,
                tz=tz,
            )
            self.quotas[slot] = quota
            shown = {"rpm": limits.rpm, "tpm": limits.tpm, "rpd": limits.rpd}
            shown.update({k: v for k, v in (("itpm", limits.itpm), ("otpm", limits.otpm)) if v})
            self.stats.group_limits[slot] = shown
        return quota

    def _admit(
        self,
        state: KeyState,
        call: Call,
        prompt: int,
        quota: QuotaState | None,
        draw: float,
        stats: UsageStats,
    ) -> Limited | Admitted:
        key = state.key
        charge = prompt + (call.max_tokens or 0)
        now = self.clock()
        if quota is None:
            ticket = Ticket(None, charge)
            view = None
        else:
            result = quota.admit(now, self.wall_clock(), charge, call.max_tokens or 0)
            if isinstance(result, Rejection):
                stats.rejected_429[result.scope] += 1
                return Limited(result, quota.view(now))
            ticket, view = result, quota.view(now)
        group_stats = self.stats.group(key.group, call.model)
        index = (stats.windows.add(now, charge), group_stats.windows.add(now, charge))
        stats.admitted_requests += 1
        group_stats.admitted_requests += 1
        fault = post_admission_fault(state.faults, draw)
        if fault is not None:
            stats.faults[fault] += 1
        filtered = call.inputs is None and self.config.content_filter_phrase in _last_user_text(
            call
        )
        reply = self._reply(call, filtered)
        return Admitted(
            key,
            prompt,
            reply,
            view,
            ticket,
            filtered,
            fault,
            state.faults,
            stats,
            group_stats,
            index,
            self.next_id(),
        )

    def _reply(self, call: Call, filtered: bool) -> Reply:
        if call.inputs is not None:  # embeddings: no completion
            return Reply((), 0, "stop")
        if filtered:
            return Reply((), 0, "content_filter")
        if call.forced_tool:
            return tool_reply(
                call.model, call.forced_tool, "call_sim" + self.next_id(), call.max_tokens
            )
        if call.response_schema is not None:
            return json_reply(
                call.model, call.response_schema, call.max_tokens, self.config.stream_chunk_tokens
            )
        wanted = (
            call.completion_tokens
            if call.completion_tokens is not None
            else self.config.completion_tokens
        )
        return make_reply(
            call.provider,
            call.model,
            call.messages,
            completion_tokens=wanted,
            max_tokens=call.max_tokens,
            chunk_tokens=self.config.stream_chunk_tokens,
        )

    def complete(self, admitted: Admitted, completion_tokens: int) -> None:
        """Settle an admitted call with the completion tokens actually delivered (idempotent)."""
        ticket = admitted.ticket
        if ticket.settled:
            return
        ticket.settled = True
        final: float = admitted.prompt_tokens + completion_tokens
        final_output: float = completion_tokens
        if not self.config.refund_unused:
            final = max(final, ticket.charged)
            final_output = max(final_output, ticket.charged_output)
        now = self.clock()
        if ticket.state is not None:
            ticket.state.settle(ticket, final, now, final_output)
        for stats, index in (
            (admitted.key_stats, admitted.window_index[0]),
            (admitted.group_stats, admitted.window_index[1]),
        ):
            if stats is None:
                continue
            stats.admitted_tokens += final
            stats.prompt_tokens += admitted.prompt_tokens
            stats.completion_tokens += completion_tokens
            stats.windows.set_tokens(index, final)

    def latency(self, secret: str | None) -> float:
        """Seconds to delay this answer: ``latency_ms`` plus a random part from the key's stream."""
        state = self.keys.get(secret) if secret else None
        faults, rng = (state.faults, state.rng) if state else (self.faults, self.rng)
        if not faults.latency_ms and not faults.latency_jitter_ms:
            return 0.0
        jitter = faults.latency_jitter_ms
        if jitter and faults.latency_distribution == "exponential":
            extra = rng.expovariate(1.0 / jitter)
        else:
            extra = rng.uniform(0.0, jitter) if jitter else 0.0
        return (faults.latency_ms + extra) / 1000.0

    def requests(self, key_id: str | None = None, model: str | None = None) -> list[RequestRecord]:
        return [
            r
            for r in self.log
            if (key_id is None or r.key_id == key_id) and (model is None or r.model == model)
        ]


def _last_user_text(call: Call) -> str:
    for message in reversed(call.messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""
