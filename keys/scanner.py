"""Secret scanner: finds provider API keys and other credentials in files (document 004).

    python -m router scan-secrets artifacts/ logs/ --fail-on-found

Rules: OpenAI (``sk-``, ``sk-proj-``...), Anthropic (``sk-ant-``), Google / Gemini (``AIza``), AWS
access key ids (``AKIA``/``ASIA``...) and secret access keys (40 characters next to an AWS secret
name), Vault tokens (``hvs.``), and generic high-entropy values assigned to a name that says key,
secret, token or password. Findings are reported as ``file:line:column: rule: masked`` and the value
is never printed whole.

False positives are kept low: values must look random (placeholders such as ``sk-xxxx``,
``your-api-key-here``, ``AKIA...EXAMPLE`` or runs like ``abcdefgh`` are ignored), and a generic
value needs a secret-like name. A line containing ``pragma: allowlist secret`` (detect-secrets'
marker) or ``secret-scan: ignore`` is skipped. Binary files, and ``.git``, ``.venv`` and cache
folders, are skipped.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kernel.masking import mask_secret

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".eggs",
    }
)
ALLOW_MARKERS = ("pragma: allowlist secret", "secret-scan: ignore")
MAX_FILE_BYTES = 10 * 1024 * 1024
_BINARY_PROBE = 8192
_MAX_LINE = 20_000  # minified lines are scanned only up to here


@dataclass(frozen=True)
class Finding:
    """One credential found: where, which rule, and the value masked."""

    path: str
    line: int
    column: int
    rule: str
    masked: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.rule}: {self.masked}"

    def as_dict(self) -> dict[str, str | int]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "masked": self.masked,
        }


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    files_scanned: int = 0
    files_skipped: int = 0


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    group: int = 0
    min_entropy: float = 3.0


_B = r"(?<![A-Za-z0-9_\-])"  # a key starts at a token boundary
_E = r"(?![A-Za-z0-9_\-])"
RULES: tuple[_Rule, ...] = (
    _Rule("anthropic_api_key", re.compile(_B + r"sk-ant-[A-Za-z0-9_\-]{32,}" + _E)),
    _Rule(
        "openai_api_key",
        re.compile(_B + r"sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_\-]{32,}" + _E),
    ),
    _Rule("google_api_key", re.compile(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E)),
    _Rule(
        "aws_access_key_id",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}(?![A-Z0-9])"),
        min_entropy=2.5,
    ),
    _Rule(
        "aws_secret_access_key",
        re.compile(
            r"(?i)aws.{0,20}?(?:secret|sk).{0,20}?[\"']?\s*[:=]{1,2}\s*[\"']?"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
        min_entropy=3.5,
    ),
    _Rule("vault_token", re.compile(_B + r"hv[sb]\.[A-Za-z0-9_\-]{24,}" + _E)),
)

_NAME_WORDS = r"(?:api[_\-]?key|secret|token|passw(?:or)?d|access[_\-]?key|credential)"
_SECRET_NAME = r"[A-Za-z0-9_.\-]*" + _NAME_WORDS + r"[A-Za-z0-9_.\-]*"
_GENERIC = (
    # name = "value" / name: 'value' / "name": "value"
    re.compile(r"(?i)(" + _SECRET_NAME + r")[\"']?\s*(?::=|=>|[:=])\s*([\"'])([^\"'\s]{20,200})\2"),
    # .env style: NAME=value (no quotes)
    re.compile(
        r"(?i)^\s*(?:export\s+)?(" + _SECRET_NAME + r")\s*=\s*()([^\s\"'#]{20,200})\s*(?:#.*)?$"
    ),
)
_PLACEHOLDER = re.compile(
    r"(?i)x{4,}|\*{3,}|\.\.\.|your[_\-]?|example|placeholder|changeme|dummy|redacted|sample"
    r"|fake|<[^>]*>|\$\{|\{\{|%\(|^\$|os\.environ|getenv"
    r"|(.)\1{3,}|(.{2,8})\2{2,}"  # aaaa, SECRETSECRETSECRET: typed, not generated
)
_VARIABLE = re.compile(r"^(?:env:)?[A-Z][A-Z0-9_]*(?:#\d+)?$")  # env:OPENAI_API_KEYS#2
_CODE_CHARS = re.compile(r"[{}()<>\[\]\\,;$%]")
_IDENTIFIER = re.compile(r"^(?:[a-z_.\-]+|[A-Z_.\-]+|[a-z][A-Za-z]*(?:[._][A-Za-z]+)*)$")


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (random base62 is near 5.9, English words near 3)."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _has_run(value: str, length: int = 8) -> bool:
    """True when ``value`` holds ``length`` ascending characters in a row (abcdefgh, 12345678)."""
    run = 1
    for a, b in itertools.pairwise(value):
        run = run + 1 if ord(b) == ord(a) + 1 else 1
        if run >= length:
            return True
    return False


def looks_random(value: str, min_entropy: float) -> bool:
    """A value that could be a real credential rather than a placeholder or an identifier."""
    if _PLACEHOLDER.search(value) or _has_run(value):
        return False
    return shannon_entropy(value) >= min_entropy


def _is_wordy(value: str) -> bool:
    """Names and paths (``secret/llm/claude-2``, ``gemini_flash_01``): words and short numbers."""
    parts = [p for p in re.split(r"[/_.:\-]+", value) if p]
    return all(p.isalpha() or (p.isdigit() and len(p) <= 4) for p in parts)


def _generic_candidate(value: str) -> bool:
    """A value assigned to a secret-like name that is neither code, a path nor a variable name."""
    if _IDENTIFIER.match(value) or _VARIABLE.match(value) or _CODE_CHARS.search(value):
        return False
    if "://" in value or value.count("/") > 2 or _is_wordy(value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 2 and looks_random(value, 3.5)


def scan_line(line: str) -> Iterator[tuple[int, str, str]]:
    """(column, rule, value) of every credential in one line."""
    if any(marker in line for marker in ALLOW_MARKERS):
        return
    line = line[:_MAX_LINE]
    taken: list[tuple[int, int]] = []
    for rule in RULES:
        for match in rule.pattern.finditer(line):
            value = match.group(rule.group)
            start = match.start(rule.group)
            body = value.split("-", 2)[-1] if value.startswith("sk-") else value
            if looks_random(body, rule.min_entropy):
                taken.append((start, start + len(value)))
                yield start + 1, rule.name, value
    for pattern in _GENERIC:
        for match in pattern.finditer(line):
            value, start = match.group(3), match.start(3)
            if any(a <= start < b for a, b in taken) or not _generic_candidate(value):
                continue
            taken.append((start, start + len(value)))
            yield start + 1, "generic_secret", value


def scan_text(text: str, path: str = "<text>") -> list[Finding]:
    """Every credential in ``text``, masked."""
    return [
        Finding(path, number, column, rule, mask_secret(value))
        for number, line in enumerate(text.splitlines(), 1)
        for column, rule, value in scan_line(line)
    ]


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(_BINARY_PROBE)


def iter_files(
    paths: Iterable[str | os.PathLike[str]], exclude: Iterable[str] = ()
) -> Iterator[Path]:
    """Regular files under ``paths`` (files given directly are always included), sorted."""
    patterns = tuple(exclude)

    def excluded(p: Path) -> bool:
        return any(fnmatch.fnmatch(p.name, pat) or fnmatch.fnmatch(str(p), pat) for pat in patterns)

    for root in map(Path, paths):
        if root.is_file():
            yield root
            continue
        for current, dirs, files in os.walk(root):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in SKIP_DIRS
                and not d.endswith(".egg-info")
                and not excluded(Path(current, d))
            )
            for name in sorted(files):
                candidate = Path(current, name)
                if not candidate.is_symlink() and not excluded(candidate):
                    yield candidate


def scan_file(path: Path) -> list[Finding] | None:
    """Findings of one file; None when it was skipped (binary, too large, unreadable)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES or _is_binary(path):
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return scan_text(text, str(path))


def scan_paths(paths: Iterable[str | os.PathLike[str]], exclude: Iterable[str] = ()) -> ScanResult:
    """Scan every file under ``paths``."""
    result = ScanResult()
    for path in iter_files(paths, exclude):
        findings = scan_file(path)
        if findings is None:
            result.files_skipped += 1
            continue
        result.files_scanned += 1
        result.findings.extend(findings)
    return result
