"""Every Redis key name the product uses, built here and nowhere else.

Hash tags: Redis Cluster places a key by the part between the first ``{`` and ``}``. A Lua script may
only touch keys of one slot, so every key one script touches carries the same tag:

* ``{<prefix>}`` — the whole key pool (limits, usage, health, selection indexes, reservations).
  The reserve script chooses among all keys of a model atomically, so they must share one slot.
* ``{<prefix>:s<n>}`` — with ``POOL_SHARDS`` > 1, shard ``n`` of the pool: the same pool keys for
  the keys whose quota group hashes to it (:func:`shard_of`); a reservation runs on one shard.
  (``{<prefix>:s<n>.<j>}`` when needed to put shard n in the n-th equal range of slots:
  :func:`shard_tag`, so the shards spread evenly over a cluster's masters.)
  Run-time overrides, budgets and their spend stay under ``{<prefix>}``; usage records are written
  in the slot of the script that writes them (a shard's, or ``{<prefix>}``'s) and read from all.
* ``{<conv_id>}`` — the keys of one conversation (messages and metadata), appended atomically.
* ``{<prefix>:rl}`` — per-user and global request limits of the gateway, checked together.
* ``{<prefix>:vk}`` — virtual keys of the gateway (hashed), listed and revoked together.

The README's "Redis keys" table is generated from :func:`describe` and must stay in step with it.

Bounded by the configuration, not by client input: the pool's selection sets and records are per
*index* (keys.models.model_index): a model some key names, or the one pattern index shared by
every name only pattern bindings serve (``gpt-4o*#openai``); a key serving through a pattern is
charged in one bucket per binding (``<group>|<pattern>``). Sharing a pattern's bucket among its
names is conservative (providers limit each model on its own, so the key never exceeds its limit).
Per-request keys (reservations, gateway limits, conversations) expire.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot


def shard_of(group: str, shards: int) -> int:
    """The shard of a quota group among ``shards``: a stable hash (CRC-32 of the group), the same
    in every process and release, so the keys of one group always share one shard."""
    if shards <= 1:
        return 0
    return zlib.crc32(group.encode("utf-8")) % shards


@cache
def shard_tag(prefix: str, shard: int, shards: int) -> str:
    """The hash tag of shard ``shard`` of ``shards``: ``{<prefix>:s<shard>}``, or when its slot
    falls outside the shard's share of the slots ``{<prefix>:s<shard>.<j>}`` with the first ``j``
    whose slot does. Shard n's slot is then in the n-th of ``shards`` equal ranges of the 16,384
    slots, so a cluster whose masters hold equal ranges (``redis-cli --cluster create``) runs an
    equal number of shards on each when ``shards`` is a multiple of its masters."""
    low = shard * REDIS_CLUSTER_HASH_SLOTS // shards
    high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    tag = f"{prefix}:s{shard}"
    j = 0
    while not low <= key_slot(tag.encode()) < high:
        j += 1
        tag = f"{prefix}:s{shard}.{j}"
    return "{" + tag + "}"


@dataclass(frozen=True)
class RedisKeys:
    """Key names under one prefix (``REDIS_KEY_PREFIX``, default ``llmr``).

    ``shards`` (``POOL_SHARDS``): how many shards the pool is split into; ``shard``: which one
    these names are of (None: the pool's own tag, all of it when ``shards`` is 1).
    """

    prefix: str = "llmr"
    shards: int = 1
    shard: int | None = None

    # -- key pool: one slot (per shard) ------------------------------------------------------
    @property
    def pool_tag(self) -> str:
        if self.shard is None:
            return "{" + self.prefix + "}"
        return shard_tag(self.prefix, self.shard, max(self.shards, self.shard + 1))

    def shard_view(self, shard: int) -> RedisKeys:
        """The names of one shard's pool keys (``{<prefix>:s<shard>}``)."""
        return replace(self, shard=shard)

    def pool_views(self) -> list[RedisKeys]:
        """The names of every shard (just these when the pool is not sharded)."""
        if self.shards <= 1:
            return [self]
        return [self.shard_view(i) for i in range(self.shards)]

    def usage_views(self) -> list[RedisKeys]:
        """Every slot usage records are written in: the pool's tag (records without a settle),
        then each shard's when the pool is sharded. Readers merge them."""
        base = replace(self, shard=None)
        return [base] if self.shards <= 1 else [base, *self.pool_views()]

    @property
    def pool_config(self) -> str:
        """Hash: ``k:<key_id>`` key record, ``b:<group>|<model or pattern>`` limits, ``m:<index>``
        index record, ``w:<key_id>|<index>`` weight (and the pattern of the key's bucket); the
        formats are lua/records.py's (KeyRecord, Limits, ModelRecord, WeightRecord)."""
        return f"{self.pool_tag}:cfg"

    @property
    def pool_state(self) -> str:
        """Hash: ``<group>|<model or pattern>`` -> the bucket's state (GCRA timestamps, day and
        minute counters, provider block, last admission: lua.records.State), and
        ``<bucket>#lows`` -> its low-water marks (lua.records.Lows)."""
        return f"{self.pool_tag}:state"

    @property
    def pool_windows(self) -> str:
        """Hash: ``<group>|<model>`` -> per-second usage of the last minute (strict mode only)."""
        return f"{self.pool_tag}:win"

    @property
    def pool_health(self) -> str:
        """Hash: ``<key_id>`` -> health record (state, until, reason, level, failures)."""
        return f"{self.pool_tag}:health"

    @property
    def pool_stats(self) -> str:
        """Hash: ``<key_id>:<counter>`` -> request/success/failure/... counters and last use."""
        return f"{self.pool_tag}:stats"

    @property
    def pool_cursor(self) -> str:
        """Hash: ``rr:<tier>:<index>`` / ``vt:<tier>:<index>`` -> round-robin cursor, virtual time."""
        return f"{self.pool_tag}:cursor"

    @property
    def pool_overrides(self) -> str:
        """Hash: ``<key_id>`` -> key changes made at run time (add/update as JSON metadata, or
        a removal), layered over keys.json and the environment by every process."""
        return f"{self.pool_tag}:overrides"

    @property
    def pool_version(self) -> str:
        """String: counter bumped on every run-time key change; processes reload when it moves."""
        return f"{self.pool_tag}:version"

    @property
    def pool_shards(self) -> str:
        """String: POOL_SHARDS of a sharded pool (set by its first process; absent: one slot).
        A process started with another value refuses to start (keys/shards.py)."""
        return "{" + self.prefix + "}:shards"

    @property
    def pool_models(self) -> str:
        """Set: indexes (models, pattern indexes) that have selection sets in the store."""
        return f"{self.pool_tag}:models"

    def ready(self, model: str, tier: int | str) -> str:
        """Sorted set: key ids of an index's priority tier, scored by the earliest time they have
        room (``model`` is an index: a model's name or a pattern index, never a name only a
        pattern serves)."""
        return f"{self.pool_tag}:ready:{tier}:{model}"

    def order(self, model: str, tier: int | str) -> str:
        """Sorted set: key ids of an index's tier in round-robin order (score = position)."""
        return f"{self.pool_tag}:order:{tier}:{model}"

    def share(self, model: str, tier: int | str) -> str:
        """Sorted set: key ids scored by use divided by weight (least_used and weighted)."""
        return f"{self.pool_tag}:share:{tier}:{model}"

    def reservation(self, reservation_id: str) -> str:
        """Hash: one reservation (key, group|model, tokens, times, state); expires after its TTL."""
        return f"{self.pool_tag}:res:{reservation_id}"

    # -- usage log and budgets: the pool's slot (written by the same scripts) --------------------
    @property
    def usage_stream(self) -> str:
        """Stream: one usage record per call (field ``r``: kernel.usage_record.UsageRecord as
        JSON); trimmed by USAGE_MAX_RECORDS and USAGE_RETENTION_SECONDS on every write."""
        return f"{self.pool_tag}:usage"

    def usage_rollup(self, minute: int) -> str:
        """Hash: one minute's rollup (``minute`` = unix seconds // 60): ``<dim>|<name>`` ->
        requests, tokens in and out, cost, errors (lua.usage_records.Rollup); expires after
        USAGE_ROLLUP_TTL_SECONDS."""
        return f"{self.pool_tag}:usage:m:{int(minute)}"

    @property
    def budgets(self) -> str:
        """Hash: ``<scope>:<id>`` (or ``global``) -> a budget: limit, period, time zone, alert
        share (lua.usage_records.BudgetRecord)."""
        return f"{self.pool_tag}:budgets"

    @property
    def budget_spend(self) -> str:
        """Hash: ``<scope>:<id>`` -> the current period's spend: period, reserved, spent, alerted,
        requests (lua.usage_records.SpendRecord)."""
        return f"{self.pool_tag}:spend"

    def budget_hold(self, reservation_id: str) -> str:
        """String: with ``POOL_SHARDS`` > 1, what one reservation holds on the budgets
        (``<field>|<period>|<estimate>;...``), in the budgets' slot; settled or refunded by
        lua/budget_hold.lua, expires after the reservation's TTL."""
        return "{" + self.prefix + "}:bhold:" + reservation_id

    # -- conversations: one slot per conversation ----------------------------------------------
    def conv_messages(self, conv_id: str) -> str:
        """List: the messages of a conversation (document 004's ``conv:messages:<conv_id>``)."""
        return f"{self.prefix}:conv:messages:{{{conv_id}}}"

    def conv_meta(self, conv_id: str) -> str:
        """Hash: conversation metadata (document 004's ``conv:meta:<conv_id>``)."""
        return f"{self.prefix}:conv:meta:{{{conv_id}}}"

    def conv_pattern(self) -> str:
        """SCAN pattern matching every conversation's metadata key."""
        return f"{self.prefix}:conv:meta:*"

    # -- gateway limits and virtual keys -------------------------------------------------------
    @property
    def rl_tag(self) -> str:
        return "{" + self.prefix + ":rl}"

    def rl_user(self, user_id: str) -> str:
        """String: GCRA timestamp of a user's request limit (document 004's ``rl:user:<user_id>``)."""
        return f"{self.rl_tag}:user:{user_id}"

    @property
    def rl_global(self) -> str:
        """String: GCRA timestamp of the global request limit (document 004's ``rl:global``)."""
        return f"{self.rl_tag}:global"

    def rl_vkey(self, vkey_id: str, limit: str) -> str:
        """String: GCRA timestamp of a virtual key's own RPM/TPM budget."""
        return f"{self.rl_tag}:vkey:{vkey_id}:{limit}"

    def rl_vkey_revoked(self, vkey_id: str) -> str:
        """String: set when a virtual key is revoked. In the limits' slot, so the limits script
        refuses the key on every request whatever a process cached about it."""
        return f"{self.rl_tag}:revoked:{vkey_id}"

    def rl_call(self, call_id: str) -> str:
        """String: the answer of one limits call (acquire or adjust), kept a short while so that a
        call retried after a lost connection answers it again instead of charging twice."""
        return f"{self.rl_tag}:call:{call_id}"

    @property
    def vk_tag(self) -> str:
        return "{" + self.prefix + ":vk}"

    def vkey(self, digest: str) -> str:
        """Hash: one virtual key, stored under the SHA-256 of the key (never the key itself)."""
        return f"{self.vk_tag}:key:{digest}"

    @property
    def vkey_index(self) -> str:
        """Hash: virtual key id -> digest, for listing and revoking."""
        return f"{self.vk_tag}:index"

    # -- dashboard -------------------------------------------------------------------------------
    def ui_session(self, digest: str) -> str:
        """String: one dashboard session (role and CSRF token as JSON), stored under the SHA-256
        of the session cookie (never the cookie itself); expires with the session."""
        return "{" + self.prefix + ":ui}:session:" + digest


def describe(keys: RedisKeys | None = None) -> list[tuple[str, str, str]]:
    """(pattern, type, meaning) of every key, for the README table."""
    k = keys or RedisKeys()
    m, t, c, u = "<index>", "<tier>", "<conv_id>", "<user_id>"
    return [
        (
            k.pool_config,
            "hash",
            "key records, limits per quota group and model (or pattern), index records",
        ),
        (
            k.pool_state,
            "hash",
            "GCRA timestamps, day and minute counters per quota group and model (or pattern)",
        ),
        (k.pool_windows, "hash", "per-second usage of the last minute (strict mode)"),
        (k.pool_health, "hash", "health per key: state, until, reason, cooldown level, failures"),
        (
            k.pool_stats,
            "hash",
            "counters per key: requests, successes, failures, rate limited, last use",
        ),
        (k.pool_cursor, "hash", "round-robin cursor per index and tier"),
        (k.pool_models, "set", "indexes (models and pattern indexes) in the store"),
        (k.pool_overrides, "hash", "key changes made at run time (admin API), layered over config"),
        (k.pool_version, "string", "version of the run-time key changes"),
        (k.ready(m, t), "zset", "keys of an index's tier by earliest time with room"),
        (k.order(m, t), "zset", "keys of an index's tier in round-robin order"),
        (k.share(m, t), "zset", "keys by use / weight (least_used, weighted)"),
        (k.reservation("<reservation_id>"), "hash", "one reservation; expires after its TTL"),
        (k.usage_stream, "stream", "one usage record per call (bounded by age and length)"),
        (f"{k.pool_tag}:usage:m:<minute>", "hash", "one minute's usage rollup (TTL)"),
        (k.budgets, "hash", "budgets per scope: limit, period, time zone, alert share"),
        (k.budget_spend, "hash", "spend per budget scope in its current period"),
        (k.conv_messages(c), "list", "messages of a conversation"),
        (k.conv_meta(c), "hash", "conversation metadata"),
        (k.rl_user(u), "string", "per-user request limit (GCRA)"),
        (k.rl_global, "string", "global request limit (GCRA)"),
        (k.rl_vkey("<vkey_id>", "<rpm|tpm>"), "string", "a virtual key's own budget (GCRA)"),
        (k.rl_vkey_revoked("<vkey_id>"), "string", "marks a revoked virtual key"),
        (k.rl_call("<call_id>"), "string", "a limits call's answer, 30 s (retries charge once)"),
        (k.vkey("<sha256>"), "hash", "a virtual key (hashed)"),
        (k.vkey_index, "hash", "virtual key id -> digest"),
        (k.ui_session("<sha256>"), "string", "a dashboard session (hashed cookie); expires"),
        *_shard_rows(k),
    ]


def _shard_rows(k: RedisKeys) -> list[tuple[str, str, str]]:
    """The keys of a sharded pool (POOL_SHARDS > 1)."""
    return [
        (
            "{" + k.prefix + ":s<n>}:...",
            "various",
            "POOL_SHARDS > 1: shard n's cfg, state, win, health, stats, cursor, models, ready, "
            "order, share, res and usage keys (the keys whose quota group hashes to n); the tag "
            "is `{llmr:s<n>.<j>}` with the first j that puts it in the n-th equal range of slots",
        ),
        (k.pool_shards, "string", "POOL_SHARDS of a sharded pool; processes must agree"),
        (
            k.budget_hold("<reservation_id>"),
            "string",
            "POOL_SHARDS > 1: the budgets one reservation holds; expires after its TTL",
        ),
    ]
