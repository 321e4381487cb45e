"""The secret scanner: each kind of key found and masked, placeholders and code left alone,
binary files and .git/.venv skipped, exit codes of ``python -m router scan-secrets``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keys.scanner import scan_paths, scan_text, shannon_entropy
from tests.keys.secret_store import canaries

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "AZURE_"))}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or REPO,
        env=env,
        check=False,
    )


def planted_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    values = {
        "openai_api_key": canaries.openai_key(),
        "anthropic_api_key": canaries.anthropic_key(),
        "google_api_key": canaries.gemini_key(),
        "aws_access_key_id": canaries.aws_access_key_id(),
        "aws_secret_access_key": canaries.aws_secret_access_key(),
        "generic_secret": canaries.opaque_secret(),
    }
    text = "\n".join(
        [
            "# configuration written by a careless script",
            f"OPENAI_API_KEY={values['openai_api_key']}",
            f'client = Anthropic(api_key="{values["anthropic_api_key"]}")',
            f"url = 'https://generativelanguage.googleapis.com/v1/models?key={values['google_api_key']}'",
            f"aws_access_key_id = {values['aws_access_key_id']}",
            f"aws_secret_access_key = {values['aws_secret_access_key']}",
            f'{{"webhook_secret": "{values["generic_secret"]}"}}',
        ]
    )
    path = tmp_path / "leaky.py"
    path.write_text(text + "\n")
    return path, values


def test_every_kind_is_found_at_its_line_and_masked(tmp_path: Path) -> None:
    path, values = planted_file(tmp_path)
    findings = scan_paths([tmp_path]).findings
    assert sorted(f.rule for f in findings) == sorted(values)
    assert [f.line for f in findings] == [2, 3, 4, 5, 6, 7]
    by_rule = {f.rule: f for f in findings}
    for rule, value in values.items():
        shown = str(by_rule[rule])
        assert shown.startswith(f"{path}:{by_rule[rule].line}:")
        assert value not in shown and ("..." in shown or "****" in shown)
    assert by_rule["openai_api_key"].column == len("OPENAI_API_KEY=") + 1


@pytest.mark.parametrize(
    "line",
    [
        'OPENAI_API_KEY="sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
        "api_key = 'your-api-key-here-please-replace'",
        'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
        "key = 'sk-ant-api03-SECRETSECRETSECRETSECRETSECRETSECRET'",
        'key="sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"',
        'token = os.environ["GITHUB_TOKEN_FOR_RELEASES"]',
        'secret_ref = "env:OPENAI_API_KEYS#2"',
        'password = f"{prefix}{suffix}{another_part}"',
        'api_key_header = "x-goog-api-key-header-name"',
        "SECRET_STORE_TYPE=infisical_production_setting",
        'token_url = "https://login.example.com/oauth2/v2.0/token"',
        'access_key_pattern = r"(?:AKIA|ASIA)[0-9A-Z]{16}"',
        "hash = 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'",
    ],
)
def test_placeholders_and_ordinary_code_are_not_flagged(line: str) -> None:
    assert scan_text(line) == []


def test_allowlist_marker_and_entropy() -> None:
    value = canaries.openai_key()
    assert scan_text(f"k = '{value}'  # pragma: allowlist secret") == []
    assert len(scan_text(f"k = '{value}'")) == 1
    assert shannon_entropy("aaaa") == 0 and shannon_entropy(value) > 4


def test_binary_and_tool_folders_are_skipped(tmp_path: Path) -> None:
    value = canaries.openai_key()
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" + value.encode() + b"\x00")
    for folder in (".git", ".venv", "node_modules", "__pycache__"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config").write_text(f"key={value}\n")
    (tmp_path / "notes.txt").write_text(f"key={value}\n")
    result = scan_paths([tmp_path])
    assert [Path(f.path).name for f in result.findings] == ["notes.txt"]
    assert result.files_skipped == 1  # the binary file
    excluded = scan_paths([tmp_path], exclude=["notes.*"])
    assert excluded.findings == []


def test_the_repository_source_is_clean() -> None:
    """The product's own source, docs and these tests hold no credential (test keys are made at
    run time, never written down)."""
    targets = [REPO / name for name in ("router", "keys", "conversation", "lua", "docs", "bench")]
    targets.append(Path(__file__).parent)
    result = scan_paths([t for t in targets if t.exists()])
    assert result.files_scanned > 20
    assert [str(f) for f in result.findings] == []


def test_cli_exit_codes_and_masked_output(tmp_path: Path) -> None:
    path, values = planted_file(tmp_path)
    found = run_cli("scan-secrets", str(tmp_path), "--fail-on-found")
    assert found.returncode == 1
    assert found.stdout.count(f"{path}:") == len(values)
    assert canaries.leaked_in(found.stdout + found.stderr) == []
    assert "6 finding(s) in 1 file(s)" in found.stderr
    assert run_cli("scan-secrets", str(tmp_path)).returncode == 0  # report only
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "ok.py").write_text("print('hello')\n")
    assert run_cli("scan-secrets", str(clean), "--fail-on-found").returncode == 0
    as_json = run_cli("scan-secrets", str(path), "--json")
    document = json.loads(as_json.stdout)
    assert len(document["findings"]) == 6 and document["files_scanned"] == 1
    assert canaries.leaked_in(as_json.stdout) == []
    missing = run_cli("scan-secrets", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
