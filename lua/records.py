"""The key pool's records, defined once in Python (their Lua twins are in lua/lib_pool.lua).

Records are tab-separated strings in Redis hash fields, read and written by the scripts; Python
writes the configuration records (through ``sync_model``'s arguments, or directly for ``k:``) and
reads state and health for status. Each format below has exactly one encoder and one decoder here,
and one reader and one writer in lib_pool.lua; tests/lua/test_records.py runs each side on what
the other wrote (real Redis, the cluster and the embedded store).

    cfg    k:<key>            group, active (1/0), tags (";k=v;k=v;")     key_record / KeyRecord
    cfg    b:<bucket>         rpm, tpm, rpd, rpm_burst, tpm_burst, strict, tz[, itpm, otpm,
                              itpm_burst, otpm_burst, learn]                     Limits
    cfg    p:<bucket>         learned rpm, tpm, rpd, itpm, otpm, at, in flight   Learned
    cfg    m:<index>          max tpm burst (-1: a key has no tpm limit), tiers   ModelRecord
    cfg    w:<key>|<index>    weight[, TAB, the pattern the key's bucket is under]  WeightRecord
    state  <bucket>           GCRA times, day/minute counters, block, level, last,
                              input and output GCRA times                         State
    state  <bucket>#lows      seq, cut, "seq:level,..." (low-water marks)         Lows
    win    <bucket>           "slot:req:tok;..." per second (strict mode)        decode_window
    health <key>              state, until, reason, level, fails                   Health

A bucket is named by :func:`bucket_name` (``<group>|<index>``; lib_pool.lua's ``bucket_name``).

Free text inside a record (health reasons, tag names and values) is percent-encoded on write:
``%``, every control character (tab and newline included) and the separators ``| ; = ,`` become
``%XX``, so no value can add or move a field. Lua's ``enc``/``dec`` do exactly what
:func:`encode_text`/:func:`decode_text` do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

_UNSAFE = re.compile(r"[%\x00-\x1f\x7f|;=,]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
TAB = "\t"


# -- free text -----------------------------------------------------------------------------------
def encode_text(value: str) -> str:
    """``value`` safe inside any record: the unsafe characters as ``%XX`` (UTF-8 bytes are kept)."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def decode_text(value: str) -> str:
    """The inverse of :func:`encode_text` (and of lib_pool.lua's ``enc``)."""
    if "%" not in value:
        return value
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def tags_record(tags: Mapping[str, str]) -> str:
    """A key's tags as the pool's records hold them: ``;k=v;k=v;`` (sorted, encoded)."""
    return ";" + "".join(f"{encode_text(k)}={encode_text(v)};" for k, v in sorted(tags.items()))


def tags_wanted(tags: Mapping[str, str]) -> str:
    """Required tags as the reserve script takes them: ``k=v,k=v`` (sorted, encoded)."""
    return ",".join(f"{encode_text(k)}={encode_text(v)}" for k, v in sorted(tags.items()))


def decode_tags(record: str) -> dict[str, str]:
    """The tags of a ``;k=v;`` record."""
    pairs = (item.split("=", 1) for item in record.split(";") if item)
    return {decode_text(k): decode_text(v) for k, v in pairs}


# -- names ---------------------------------------------------------------------------------------
def bucket_name(group: str, index: str) -> str:
    """The bucket of a quota group under a model or pattern index: ``<group>|<index>``."""
    return f"{group}|{index}"


def limits_field(bucket: str) -> str:
    return f"b:{bucket}"


def learned_field(bucket: str) -> str:
    return f"p:{bucket}"


def key_field(key_id: str) -> str:
    return f"k:{key_id}"


def model_field(index: str) -> str:
    return f"m:{index}"


def weight_field(key_id: str, index: str) -> str:
    return f"w:{key_id}|{index}"


def lows_field(bucket: str) -> str:
    return f"{bucket}#lows"


# -- configuration records -----------------------------------------------------------------------
@dataclass(frozen=True)
class KeyRecord:
    """``k:<key>``: the key's quota group, whether it is active, its tags."""

    group: str
    active: bool
    tags: Mapping[str, str]

    def encode(self) -> str:
        return key_record(self.group, self.active, tags_record(self.tags))

    @classmethod
    def decode(cls, raw: str) -> KeyRecord:
        group, active, tags = raw.split(TAB, 2)
        return cls(group, active == "1", decode_tags(tags))


def key_record(group: str, active: bool, tags: str) -> str:
    """A ``k:`` record from an already encoded tags record (see :func:`tags_record`)."""
    return f"{group}{TAB}{1 if active else 0}{TAB}{tags}"


@dataclass(frozen=True)
class Limits:
    """``b:<bucket>``: a bucket's configured limits (0 = no limit), its day-reset calendar, its
    input and output token limits (Anthropic's) and whether the limits its provider reports are
    adopted (``learn``; a 7-field record, written before them, does not learn)."""

    rpm: int
    tpm: int
    rpd: int
    rpm_burst: int
    tpm_burst: int
    strict: bool
    tz: str
    itpm: int = 0
    otpm: int = 0
    itpm_burst: int = 0
    otpm_burst: int = 0
    learn: bool = False

    def encode(self) -> str:
        values = (self.rpm, self.tpm, self.rpd, self.rpm_burst, self.tpm_burst)
        more = (self.itpm, self.otpm, self.itpm_burst, self.otpm_burst)
        strict, learn = "1" if self.strict else "0", "1" if self.learn else "0"
        return TAB.join([*map(str, values), strict, self.tz, *map(str, more), learn])

    @classmethod
    def decode(cls, raw: str) -> Limits:
        p = raw.split(TAB)
        rpm, tpm, rpd, br, bt, strict, tz = p[:7]
        base = (int(rpm), int(tpm), int(rpd), int(br), int(bt), strict == "1", tz)
        if len(p) == 7:
            return cls(*base)
        itpm, otpm, bi, bo, learn = p[7:12]
        return cls(*base, int(itpm), int(otpm), int(bi), int(bo), learn == "1")


#: The figures a provider may report of a bucket's limits, in the order settle takes them.
FIGURES = ("rpm", "tpm", "rpd", "itpm", "otpm")


@dataclass(frozen=True)
class Learned:
    """``p:<bucket>``: the limits the provider reported (0 = not said), when it last answered a
    call (0 = never: nothing known yet) and until when the one call sent to learn them may be in
    flight (lib_pool.lua's read_learned/write_learned)."""

    rpm: int = 0
    tpm: int = 0
    rpd: int = 0
    itpm: int = 0
    otpm: int = 0
    at: float = 0.0
    flight: float = 0.0

    @classmethod
    def decode(cls, raw: str | None) -> Learned:
        if not raw:
            return cls()
        p = raw.split(TAB)
        rpm, tpm, rpd, itpm, otpm = (int(v) for v in p[:5])
        return cls(rpm, tpm, rpd, itpm, otpm, float(p[5]), float(p[6]))

    def encode(self) -> str:
        counts = (self.rpm, self.tpm, self.rpd, self.itpm, self.otpm)
        return TAB.join([*map(str, counts), f"{self.at:.6f}", f"{self.flight:.6f}"])

    def figure(self, name: str) -> int:
        return int(getattr(self, name))


@dataclass(frozen=True)
class ModelRecord:
    """``m:<index>``: the largest token burst of its keys (-1: one has no tpm limit), its tiers."""

    max_burst: int
    tiers: tuple[int, ...]

    def encode(self) -> str:
        return f"{self.max_burst}{TAB}{tiers_list(self.tiers)}"

    @classmethod
    def decode(cls, raw: str) -> ModelRecord:
        burst, tiers = raw.split(TAB)
        return cls(int(burst), tuple(int(t) for t in tiers.split(",") if t))


def tiers_list(tiers: Sequence[int]) -> str:
    """Tiers as the scripts take them: a comma list."""
    return ",".join(map(str, tiers))


@dataclass(frozen=True)
class WeightRecord:
    """``w:<key>|<index>``: the key's weight there; for a pattern binding, the pattern its bucket
    is under (else the bucket is under the index itself)."""

    weight: float
    pattern: str = ""

    def encode(self) -> str:
        weight = repr(float(self.weight))
        return f"{weight}{TAB}{self.pattern}" if self.pattern else weight

    @classmethod
    def decode(cls, raw: str) -> WeightRecord:
        weight, _, pattern = raw.partition(TAB)
        return cls(float(weight), pattern)


# -- state records -------------------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    """A bucket's state (lib_pool.lua's read_state/write_state): the GCRA times of the request and
    token limits, the day and minute counters (for RPD and status), a provider-imposed block with
    its backoff level, the time of the last admission (0: unknown, a 12-field record), and the
    GCRA times of the input and output token limits (0 when a 12- or 13-field record)."""

    tat_r: float = 0.0
    tat_t: float = 0.0
    day: int = -1
    day_req: int = 0
    day_tok: int = 0
    minute: int = -1
    min_req: int = 0
    min_tok: int = 0
    prev_req: int = 0
    prev_tok: int = 0
    blocked: float = 0.0
    level: int = 0
    last: float = 0.0
    tat_i: float = 0.0
    tat_o: float = 0.0

    @classmethod
    def decode(cls, raw: str | None) -> State:
        if not raw:
            return cls()
        p = raw.split(TAB)
        if len(p) not in (12, 13, 15):
            raise ValueError(f"state record with {len(p)} fields: {raw!r}")
        c = [int(v) for v in p[2:10]]
        last = float(p[12]) if len(p) >= 13 else 0.0
        io = (float(p[13]), float(p[14])) if len(p) == 15 else (0.0, 0.0)
        tats, block = (float(p[0]), float(p[1])), (float(p[10]), int(p[11]))
        return cls(*tats, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], *block, last, *io)

    def encode(self) -> str:
        counters = [self.day, self.day_req, self.day_tok, self.minute, self.min_req]
        counters += [self.min_tok, self.prev_req, self.prev_tok]
        return TAB.join(
            [
                f"{self.tat_r:.6f}",
                f"{self.tat_t:.6f}",
                *(str(int(v)) for v in counters),
                f"{self.blocked:.6f}",
                str(int(self.level)),
                f"{self.last:.6f}",
                f"{self.tat_i:.6f}",
                f"{self.tat_o:.6f}",
            ]
        )


@dataclass(frozen=True)
class Lows:
    """``<bucket>#lows``: low-water marks of the token level (lib_pool.lua's push_low)."""

    seq: int = 0
    cut: int = 0
    marks: tuple[tuple[int, float], ...] = ()

    @classmethod
    def decode(cls, raw: str | None) -> Lows:
        if not raw:
            return cls()
        seq, cut, listed = raw.split(TAB)
        marks = tuple(
            (int(q), float(v)) for q, v in (item.split(":") for item in listed.split(",") if item)
        )
        return cls(int(seq), int(cut), marks)

    def encode(self) -> str:
        listed = ",".join(f"{q}:{v:.3f}" for q, v in self.marks)
        return f"{self.seq}{TAB}{self.cut}{TAB}{listed}"


def decode_window(raw: str | None) -> list[tuple[int, int, int]]:
    """A strict window ``slot:req:tok;...``: (second, requests, tokens), oldest first."""
    out = []
    for item in (raw or "").split(";"):
        if item:
            slot, req, tok = item.split(":")
            out.append((int(slot), int(req), int(tok)))
    return out


def encode_window(window: Sequence[tuple[int, int, int]]) -> str:
    return ";".join(f"{s}:{r}:{t}" for s, r, t in window if r > 0 or t > 0)


@dataclass(frozen=True)
class Health:
    """A key's health (lib_pool.lua's read_health/write_health). A record that does not parse is
    a healthy key, as the scripts read it (one written before reasons were encoded)."""

    state: str = "ok"
    until: float = 0.0
    reason: str = ""
    level: int = 0
    fails: int = 0

    @classmethod
    def decode(cls, raw: str | None) -> Health:
        if not raw:
            return cls()
        p = raw.split(TAB)
        try:
            if len(p) != 5:
                raise ValueError(raw)
            return cls(p[0], float(p[1]), decode_text(p[2]), int(p[3]), int(p[4]))
        except ValueError:
            return cls(reason="unreadable_record")

    def encode(self) -> str:
        reason = encode_text(self.reason)
        return f"{self.state}{TAB}{self.until:.6f}{TAB}{reason}{TAB}{self.level}{TAB}{self.fails}"


# -- the status mirror ---------------------------------------------------------------------------
# Status reads a bucket's state without a script; these two functions are the one Python mirror
# of lib_pool.lua's roll() and gcra_level() (tests/lua/test_records.py checks they agree).
def rolled(state: State, now: float, day: int) -> State:
    """``state`` with its day and minute counters moved to ``now`` (lib_pool.lua's roll)."""
    s = state
    if s.day != day:
        s = replace(s, day=day, day_req=0, day_tok=0)
    minute = int(now // 60)
    if s.minute != minute:
        prev = (s.min_req, s.min_tok) if s.minute == minute - 1 else (0, 0)
        s = replace(s, prev_req=prev[0], prev_tok=prev[1], minute=minute, min_req=0, min_tok=0)
    return s


def gcra_level(tat: float, now: float, limit: int) -> float:
    """Units of a limit in use at ``now`` (lib_pool.lua's gcra_level; 0: the bucket is full)."""
    if limit <= 0:
        return 0.0
    return max(0.0, tat - now) / (60.0 / limit)
