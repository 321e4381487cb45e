"""Benchmarks against LiteLLM and the performance targets: see docs/BENCHMARKS.md."""
