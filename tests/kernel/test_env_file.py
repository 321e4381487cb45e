"""The ``.env`` file (kernel/env_file.py): read at start by the command line and the library, never
over the real environment; a malformed line names the file and the line; ``.env.example`` lists
every setting with its default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.env_file import load_env_file, parse_env_file
from kernel.errors import ConfigError
from kernel.settings import Settings
from tests import keygen
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m router ...`` as a user runs it in ``cwd``, with only the given environment."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", str(cwd / "tiktoken")),
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
    }
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_format_comments_export_quotes_and_inline_comments() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "export A=1",
            "B = two words  # a comment",
            'C="quoted # not a comment\\nnext"',
            "D='single $x \\n'",
            "E=",
            "F=a#b",
        ]
    )
    assert parse_env_file(text, ".env") == {
        "A": "1",
        "B": "two words",
        "C": "quoted # not a comment\nnext",
        "D": "single $x \\n",
        "E": "",
        "F": "a#b",
    }


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("OPENAI_API_KEY sk-nothing-to-split-here", "no '='"),
        ("1BAD=x", "letters, digits"),
        ("OPENAI API KEY=x", "letters, digits"),
        ('TOKEN="unclosed', "unclosed"),
        ("TOKEN='a' b", "after the closing quote"),
    ],
)
def test_a_malformed_line_names_the_file_and_line_never_its_text(line: str, why: str) -> None:
    text = f"# settings\nREDIS_URL=redis://localhost:6379/0\n{line}\n"
    with pytest.raises(ConfigError) as caught:
        parse_env_file(text, "/srv/app/.env")
    message = str(caught.value)
    assert message.startswith("/srv/app/.env, line 3: "), message
    assert why in message
    assert "sk-nothing" not in message and "unclosed\n" not in message


def test_the_real_environment_wins_even_when_empty(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=from-file\nB=from-file\nC=from-file\n", encoding="utf-8")
    environ = {"A": "real", "B": ""}
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert load_env_file(environ) == Path(".env")
    finally:
        os.chdir(cwd)
    assert environ == {"A": "real", "B": "", "C": "from-file"}


def test_router_env_file_names_another_file_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf" / "router.env"
    elsewhere.parent.mkdir()
    elsewhere.write_text("GATEWAY_PORT=9123\n", encoding="utf-8")
    environ = {"ROUTER_ENV_FILE": str(elsewhere)}
    assert load_env_file(environ) == elsewhere
    assert Settings.from_env(environ).GATEWAY_PORT == 9123
    with pytest.raises(ConfigError, match=r"missing\.env.*ROUTER_ENV_FILE.*file not found"):
        load_env_file({"ROUTER_ENV_FILE": str(tmp_path / "missing.env")})
    # no ./.env and no ROUTER_ENV_FILE: nothing to read, not an error
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert load_env_file({}) is None
    finally:
        os.chdir(cwd)


def test_the_command_line_reads_dot_env_under_the_real_environment(tmp_path: Path) -> None:
    """The health check of a directory whose .env names a Redis nobody listens on in closed mode:
    unhealthy; the same with STORE_FAILURE_MODE=open in the real environment: degraded, healthy.
    The key in .env is counted and never printed."""
    secret = keygen.openai_project_key()
    (tmp_path / ".env").write_text(
        f"OPENAI_API_KEY={secret}\n"
        f"REDIS_URL=redis://127.0.0.1:{free_port()}/0\n"
        "STORE_FAILURE_MODE=closed\n",
        encoding="utf-8",
    )
    closed = run_cli(tmp_path, {}, "--health-check")
    assert closed.returncode == 1, closed.stderr
    assert '"total": 1' in closed.stdout and "unhealthy" in closed.stderr
    opened = run_cli(tmp_path, {"STORE_FAILURE_MODE": "open"}, "--health-check")
    assert opened.returncode == 0, opened.stderr
    assert '"status": "degraded"' in opened.stdout
    for out in (closed, opened):
        assert secret not in out.stdout + out.stderr


def test_the_command_line_stops_on_a_malformed_line_naming_file_and_line(tmp_path: Path) -> None:
    secret = keygen.openai_project_key()
    env_file = tmp_path / "conf.env"
    env_file.write_text(f"LOG_LEVEL=INFO\nOPENAI_API_KEY {secret}\n", encoding="utf-8")
    result = run_cli(tmp_path, {"ROUTER_ENV_FILE": str(env_file)}, "--health-check")
    assert result.returncode == 1
    assert f"{env_file}, line 2: expected NAME=value" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_the_library_reads_dot_env_at_its_first_settings(tmp_path: Path) -> None:
    """A program using the library (no command line): ``Settings.from_env()`` sees the file."""
    (tmp_path / ".env").write_text("GATEWAY_PORT=9321\nLOG_LEVEL=ERROR\n", encoding="utf-8")
    code = (
        "from kernel.settings import Settings; s = Settings.from_env(); "
        "print(s.GATEWAY_PORT, s.LOG_LEVEL)"
    )
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
        "HOME": str(tmp_path),
    }
    for env, expected in (({}, "9321 ERROR"), ({"LOG_LEVEL": "DEBUG"}, "9321 DEBUG")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == expected


# -- .env.example -----------------------------------------------------------------------------------

#: Variables .env.example lists that are not fields of Settings: the keys' own variables
#: (keys/config_env.py) and a library's (tiktoken).
KEY_VARIABLES = re.compile(
    r"^(?:(?:OPENAI|ANTHROPIC|GEMINI)_(?:API_KEYS?(?:_\d+)?|RPM|TPM|RPD|BASE_URL|MODEL|KEY_\w+)"
    r"|API_KEY_\w+|TIKTOKEN_CACHE_DIR)$"
)


def example_lines() -> dict[str, str]:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    found = re.findall(r"^# ([A-Z][A-Z0-9_]*(?:_[a-z0-9_]+)?)=(.*)$", text, re.MULTILINE)
    return dict(found)


def test_env_example_lists_every_setting_with_its_default() -> None:
    listed = example_lines()
    missing = sorted(set(Settings.model_fields) - set(listed))
    assert not missing, f".env.example does not list {missing}"
    defaults = Settings.from_env({})
    for name in Settings.model_fields:
        shown = Settings.from_env({name: listed[name]})  # empty: unset, the default
        assert getattr(shown, name) == getattr(defaults, name), f"{name}={listed[name]}"


def test_env_example_lists_nothing_the_code_does_not_read() -> None:
    unknown = sorted(
        name
        for name in example_lines()
        if name not in Settings.model_fields and not KEY_VARIABLES.match(name)
    )
    assert not unknown, f".env.example lists variables nothing reads: {unknown}"


def test_env_example_parses_as_a_dot_env_file() -> None:
    """Copied to .env as it is, it sets nothing (every line is commented out)."""
    assert parse_env_file((REPO / ".env.example").read_text(encoding="utf-8"), ".env.example") == {}
