"""Command modules of ``python -m router``; each has ``add_parser(subparsers)``."""
