"""``python -m router demo``: the main job, shown in half a minute on any machine.

A provider simulator with a sample pool (six keys of OpenAI, Anthropic and Gemini, small limits),
the gateway on the embedded store, and traffic through the official OpenAI SDK at twice the pool's
capacity; a live per-key table while it runs, then a summary: requests served, share of the pool's
capacity used, 429s received from the providers for exceeding a limit (the goal is zero), rotations
and fallbacks. Needs the ``demo`` extra (``openai``, ``rich``); no Redis, no keys, no network.
"""

from router.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
