"""``python -m router demo``: the one-command tour of the main job (router/demo)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="watch a sample key pool serve twice its capacity with zero provider 429s",
        description="Start the provider simulator with a sample pool (six keys, three providers, "
        "small limits), start the gateway on the embedded store, drive traffic above the pool's "
        "capacity through the official OpenAI SDK, show a live per-key table, then a summary. "
        "Runs on loopback only, needs no configuration and no Redis, and cleans up after itself.",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="how long to drive traffic (default 30)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="requests per second (default: twice the pool's sustained capacity, ~6.2/s)",
    )
    parser.add_argument(
        "--no-faults",
        action="store_true",
        help="no injected faults (by default one key fails half its calls, one answers spurious 429s)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulator's fault draws")
    parser.add_argument("--json", metavar="PATH", help="also write the summary as JSON to PATH")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after the summary, keep the gateway (and its dashboard at /ui) and the simulator "
        "running until Ctrl-C",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.seconds <= 0 or args.seconds > 3600:
        sys.stderr.write(
            f"error: --seconds {args.seconds}: expected more than 0 and at most 3600\n"
        )
        return 2
    if args.rate is not None and not 0 < args.rate <= 1000:
        sys.stderr.write(f"error: --rate {args.rate}: expected more than 0 and at most 1000\n")
        return 2
    try:
        import openai  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(
            f"error: the demo needs the 'demo' extra ({exc.name} is missing): "
            "pip install 'llm-keypool-router[demo]'\n"
        )
        return 2
    from router.demo import DemoOptions, run_demo
    from router.demo.gateway import GatewayError

    options = DemoOptions(
        seconds=args.seconds,
        rate=args.rate,
        faults=not args.no_faults,
        seed=args.seed,
        json_path=args.json,
        keep=args.keep,
    )
    try:
        run_demo(options)
    except GatewayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: simulator and gateway stopped\n")
        return 130
    return 0
