"""The provider simulator: OpenAI, Azure OpenAI, Anthropic and Gemini wire formats on loopback.

Every test, demo and benchmark of the project runs against it. See docs/simulator.md.

    config = SimulatorConfig(keys=[SimKey(secret="sk-sim-...", rpm=60)])
    async with ProviderSimulator(config) as sim:
        sim.base_url_for("openai")   # give this to an OpenAI client or an APIKey.base_url
        sim.stats()                  # admitted requests and tokens, 429s, window maxima per key
"""

from router.simulator.config import (
    FaultConfig,
    ModelLimits,
    SimKey,
    SimulatorConfig,
    load_config,
    parse_config,
)
from router.simulator.outcomes import RequestRecord
from router.simulator.runner import SimulatorProcess, SimulatorThread, run_in_thread
from router.simulator.server import ProviderSimulator, build_app

__all__ = [
    "FaultConfig",
    "ModelLimits",
    "ProviderSimulator",
    "RequestRecord",
    "SimKey",
    "SimulatorConfig",
    "SimulatorProcess",
    "SimulatorThread",
    "build_app",
    "load_config",
    "parse_config",
    "run_in_thread",
]
