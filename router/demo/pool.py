"""The demo's sample pool: six keys of three providers, small limits, one fallback chain.

Each key is configured twice, identically: in the simulator (what the "provider" enforces) and in
the router's keys.json (what the router plans with). The router gets a small burst per key, so the
steady per-minute rate binds within seconds and rotation and fallbacks show at once. Secrets are
made at run time, in each provider's format (so masking shows them as it would real keys), and
travel to the gateway in environment variables only.

With faults on (the default), two keys misbehave the way real keys do: one Anthropic key fails
half its calls with a 500 (its circuit opens, then half-opens to probe), and the Gemini key
sometimes answers 429 although it has room (the router cools it down for the second the provider
asked and rotates). Neither is a limit being exceeded: the simulator counts them as faults.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.simulator import SimKey, SimulatorConfig

#: What the demo asks for; the pool falls back along this chain when a model has no room.
MODEL = "gpt-4o-mini"
CHAIN = [MODEL, "claude-3-5-haiku-latest", "gemini-2.0-flash"]
ROUTING = {"fallbacks": {CHAIN[0]: CHAIN[1:], CHAIN[1]: CHAIN[2:]}}
COMPLETION_TOKENS = 24


def _random(alphabet: str, size: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(size))


def make_secret(provider: str) -> str:
    """A fresh secret in the provider's own format (never a real key: only the simulator has it)."""
    letters = string.ascii_letters + string.digits
    if provider == "anthropic":
        return "sk-ant-api03-" + _random(letters + "-_", 40)
    if provider == "gemini":
        return "AIza" + _random(letters + "-_", 35)
    return "sk-proj-" + _random(letters + "-_", 48)


@dataclass
class DemoKey:
    key_id: str
    provider: str
    model: str
    rpm: int
    burst: int
    faults: dict[str, Any] | None = None
    secret: str = ""

    def __post_init__(self) -> None:
        self.secret = self.secret or make_secret(self.provider)

    @property
    def env_name(self) -> str:
        """The variable the env secret store reads by default (``API_KEY_<KEY_ID>``)."""
        return "API_KEY_" + "".join(c if c.isalnum() else "_" for c in self.key_id.upper())

    def entry(self, base_url: str) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "provider": self.provider,
            "model_name": self.model,
            "base_url": base_url,
            "rpm": self.rpm,
            "rpm_burst": self.burst,
        }

    def sim_key(self, faults: bool) -> SimKey:
        return SimKey(
            key_id=self.key_id,
            secret=self.secret,
            providers=[self.provider],  # type: ignore[list-item]
            rpm=self.rpm,
            faults=self.faults if faults else None,
        )


@dataclass
class DemoPool:
    keys: list[DemoKey] = field(default_factory=list)
    faults: bool = True

    @property
    def rpm(self) -> int:
        return sum(k.rpm for k in self.keys)

    def capacity(self, seconds: float) -> float:
        """Requests the router's configured limits admit in ``seconds`` from idle: every key's
        burst, then its per-minute rate."""
        return sum(k.burst + k.rpm * seconds / 60.0 for k in self.keys)

    def simulator_config(self, seed: int) -> SimulatorConfig:
        return SimulatorConfig(
            keys=[k.sim_key(self.faults) for k in self.keys],
            seed=seed,
            completion_tokens=COMPLETION_TOKENS,
            request_log_size=0,
        )

    def write_keys_json(self, directory: Path, base_url_for: Any) -> Path:
        path = directory / "keys.json"
        entries = [k.entry(base_url_for(k.provider)) for k in self.keys]
        path.write_text(json.dumps({"keys": entries, "routing": ROUTING}, indent=2))
        return path

    def environment(self) -> dict[str, str]:
        return {k.env_name: k.secret for k in self.keys}


def demo_pool(*, faults: bool = True) -> DemoPool:
    """185 requests per minute over six keys, three providers; bursts of 2 to 4."""
    return DemoPool(
        keys=[
            DemoKey("openai-1", "openai", CHAIN[0], rpm=60, burst=4),
            DemoKey("openai-2", "openai", CHAIN[0], rpm=40, burst=3),
            DemoKey("openai-3", "openai", CHAIN[0], rpm=20, burst=2),
            DemoKey("anthropic-1", "anthropic", CHAIN[1], rpm=30, burst=3),
            DemoKey(
                "anthropic-2", "anthropic", CHAIN[1], rpm=20, burst=2, faults={"error_rate": 0.5}
            ),
            DemoKey(
                "gemini-1", "gemini", CHAIN[2], rpm=15, burst=2, faults={"spurious_429_rate": 0.2}
            ),
        ],
        faults=faults,
    )
