"""``python -m router plan``: how many keys a load needs.

Document 004's formula (``peak_rpm / key_rpm * 1.5``) beside a simulation of the router and the
provider at the stated peak with bursts, for N, N+1, ... keys (router/planner). With ``--keys`` it
plans against the configured pool: per model, the keys it has and the keys it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kernel.errors import ConfigError

HELP_KEY_LIMITS = "limits of one key (without --keys; with --keys: of the keys to add)"


_Option = tuple[str, dict[str, Any]]

LOAD_OPTIONS: tuple[_Option, ...] = (
    ("--model", {"help": "the model to plan (required without --keys)"}),
    ("--peak-rpm", {"type": float, "required": True, "help": "requests per minute at peak"}),
    (
        "--tokens-per-request",
        {
            "type": int,
            "default": 1000,
            "help": "tokens one request uses, prompt + completion (default 1000)",
        },
    ),
    (
        "--reserve-tokens",
        {
            "type": int,
            "help": "tokens the router reserves per request: prompt + max_tokens (default --tokens-per-request)",
        },
    ),
    (
        "--burst",
        {"type": float, "default": 2.0, "help": "rate during a burst, times the peak (default 2)"},
    ),
    (
        "--burst-seconds",
        {
            "type": float,
            "default": 10.0,
            "help": "seconds of burst at the start of each minute; the rest of the minute is slower, so each minute averages the peak (default 10)",
        },
    ),
    (
        "--duration",
        {"type": float, "default": 600.0, "help": "seconds of peak measured (default 600)"},
    ),
    (
        "--warmup",
        {
            "type": float,
            "default": 60.0,
            "help": "seconds of peak simulated before measuring (default 60)",
        },
    ),
    ("--seed", {"type": int, "default": 0, "help": "seed of the arrivals (default 0)"}),
)

KEY_OPTIONS: tuple[_Option, ...] = (
    (
        "--keys",
        {
            "metavar": "PATH",
            "default": argparse.SUPPRESS,
            "help": "plan against this keys.json: per model, keys configured and keys needed",
        },
    ),
    ("--key-rpm", {"type": int, "help": f"requests per minute of one key; {HELP_KEY_LIMITS}"}),
    ("--key-tpm", {"type": int, "help": f"tokens per minute of one key; {HELP_KEY_LIMITS}"}),
    ("--key-rpm-burst", {"type": int, "help": "rpm_burst of one key (default its rpm)"}),
    ("--key-tpm-burst", {"type": int, "help": "tpm_burst of one key (default its tpm)"}),
    (
        "--fresh-keys",
        {
            "action": "store_true",
            "help": "keys start with their whole burst (a peak after a quiet spell); default: drained (a sustained peak)",
        },
    ),
    ("--max-keys", {"type": int, "help": "largest pool to simulate (default 2 x the formula + 2)"}),
)

TARGET_OPTIONS: tuple[_Option, ...] = (
    (
        "--target",
        {
            "type": float,
            "default": 0.99,
            "help": "share of requests that must be served (default 0.99)",
        },
    ),
    (
        "--max-wait",
        {
            "type": float,
            "help": "seconds a request may wait for room (default RESERVE_WAIT_SECONDS)",
        },
    ),
    (
        "--p95-wait",
        {
            "type": float,
            "help": "also require the served requests' p95 wait at most this many seconds",
        },
    ),
    (
        "--latency",
        {
            "type": float,
            "default": 1.0,
            "help": "mean provider latency in seconds: when unused reserved tokens come back (default 1)",
        },
    ),
)

OUTPUT_OPTIONS: tuple[_Option, ...] = (
    (
        "--out",
        {
            "metavar": "PNG",
            "help": "write the plot of goodput and p95 wait against keys here (needs matplotlib)",
        },
    ),
    ("--format", {"choices": ("table", "json"), "default": "table"}),
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="how many keys a load needs: document 004's formula and a simulation, with a plot",
        description=(
            "How many keys of given limits a peak load needs: document 004's formula "
            "(peak_rpm / key_rpm x 1.5) and a simulation of the router and the provider at the "
            "peak with bursts against N, N+1, ... keys (goodput, waits, 429s per N)."
        ),
    )
    groups = (
        ("load", LOAD_OPTIONS),
        ("keys", KEY_OPTIONS),
        ("target", TARGET_OPTIONS),
        ("output", OUTPUT_OPTIONS),
    )
    for title, options in groups:
        group = parser.add_argument_group(title)
        for flag, kwargs in options:
            group.add_argument(flag, **kwargs)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from router.planner.plot import MISSING, have_matplotlib, write_plot

    try:
        plans = _plans(args)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.format == "json":
        from router.planner.report import plan_dict

        sys.stdout.write(json.dumps([plan_dict(p) for p in plans], indent=2) + "\n")
    else:
        from router.planner.report import plan_table, pool_summary

        sys.stdout.write("\n".join(plan_table(p) for p in plans))
        if getattr(args, "keys", None) is not None:
            sys.stdout.write("\n" + pool_summary(plans))
    sys.stdout.flush()
    if args.out:
        if not have_matplotlib():
            sys.stderr.write(MISSING + "\n")
            return 0
        write_plot(plans, Path(args.out))
        sys.stderr.write(f"plot written to {args.out}\n")
    return 0


def _plans(args: argparse.Namespace) -> list[Any]:
    from router.planner import Load, Target, plan_keys

    _check_positive(args)
    load = Load(
        peak_rpm=args.peak_rpm,
        tokens_per_request=args.tokens_per_request,
        reserve_tokens=args.reserve_tokens,
        duration=args.duration,
        warmup=args.warmup,
        burst=args.burst,
        burst_seconds=args.burst_seconds,
        seed=args.seed,
        fresh=args.fresh_keys,
    )
    target = Target(goodput=args.target, p95_wait=args.p95_wait)
    params = _router_params(args)
    options = {"target": target, "params": params, "max_keys": args.max_keys}
    keys_path = getattr(args, "keys", None)
    if keys_path is None:
        if not args.model:
            raise ConfigError("--model is required without --keys")
        limits = _cli_limits(args)
        if limits is None:
            raise ConfigError("--key-rpm or --key-tpm is required without --keys")
        return [plan_keys(args.model, limits, load, **options)]
    return [
        plan_keys(model, limits, load, existing=pool, **options)
        for model, pool, limits in _configured(keys_path, args)
    ]


def _configured(path: str, args: argparse.Namespace) -> list[tuple[str, Any, Any]]:
    from keys.config import read_keys_file
    from router.planner.pool import pools_by_model, select, typical

    pools = select(pools_by_model(read_keys_file(path).keys), args.model, path)
    override = _cli_limits(args)
    out = []
    for model, pool in pools.items():
        limits = override or typical(pool)
        if limits.rpm is None and limits.tpm is None:
            raise ConfigError(
                f"the keys of model {model!r} have no rpm or tpm limit: give --key-rpm/--key-tpm",
                source=path,
            )
        out.append((model, pool, limits))
    return out


def _cli_limits(args: argparse.Namespace) -> Any:
    from router.planner import KeyLimits

    if args.key_rpm is None and args.key_tpm is None:
        if args.key_rpm_burst or args.key_tpm_burst:
            raise ConfigError("--key-rpm-burst/--key-tpm-burst need --key-rpm/--key-tpm")
        return None
    if args.key_rpm_burst and args.key_rpm is None:
        raise ConfigError("--key-rpm-burst needs --key-rpm")
    if args.key_tpm_burst and args.key_tpm is None:
        raise ConfigError("--key-tpm-burst needs --key-tpm")
    return KeyLimits(args.key_rpm, args.key_tpm, args.key_rpm_burst, args.key_tpm_burst)


def _check_positive(args: argparse.Namespace) -> None:
    for name in (
        "peak_rpm",
        "key_rpm",
        "key_tpm",
        "key_rpm_burst",
        "key_tpm_burst",
        "max_keys",
        "latency",
        "max_wait",
    ):
        value = getattr(args, name)
        if (
            value is not None
            and not value > 0
            and not (name in ("latency", "max_wait") and value == 0)
        ):
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must be a positive number (got {value:g})")


def _router_params(args: argparse.Namespace) -> Any:
    from kernel.settings import Settings
    from router.planner import RouterParams

    settings = Settings.from_env()
    wait = settings.RESERVE_WAIT_SECONDS if args.max_wait is None else args.max_wait
    return RouterParams(
        wait_budget=wait,
        retry_budget=settings.RETRY_BUDGET_SECONDS,
        margin=settings.RESERVE_MARGIN_SECONDS,
        latency=args.latency,
        max_attempts=settings.MAX_ATTEMPTS,
    )
