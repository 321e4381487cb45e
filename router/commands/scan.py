"""``python -m router scan-secrets PATH... [--fail-on-found] [--json] [--exclude GLOB]``.

Document 004's ``tools/secret_scanner.py``: prints ``file:line:column: rule: masked`` for every
credential found (see :mod:`keys.scanner`). Exit status: 0, or 1 with ``--fail-on-found`` when
something was found, 2 when a path does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scan-secrets",
        help="find API keys and other credentials in files (values are printed masked)",
        description="Scan files and folders for OpenAI, Anthropic, Google, AWS, Vault and "
        "generic high-entropy credentials. Binary files and .git/.venv are skipped.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to scan")
    parser.add_argument(
        "--fail-on-found", action="store_true", help="exit with status 1 when anything is found"
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files or folders matching GLOB (name or path); repeatable",
    )
    parser.set_defaults(handler=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    from keys.scanner import scan_paths

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        sys.stderr.write(f"scan-secrets: no such file or folder: {', '.join(missing)}\n")
        return 2
    result = scan_paths(args.paths, exclude=args.exclude)
    if args.json:
        document = {
            "findings": [f.as_dict() for f in result.findings],
            "files_scanned": result.files_scanned,
            "files_skipped": result.files_skipped,
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for finding in result.findings:
            sys.stdout.write(f"{finding}\n")
    files_with = len({f.path for f in result.findings})
    sys.stderr.write(
        f"{len(result.findings)} finding(s) in {files_with} file(s); "
        f"{result.files_scanned} file(s) scanned, {result.files_skipped} skipped\n"
    )
    return 1 if args.fail_on_found and result.findings else 0
