"""HTML building blocks: the page layout, the login page, escaped text, tables and bars.

Every value put in a page goes through :func:`esc` (``html.escape`` with quotes), templates are
``string.Template`` (no template engine dependency), and a page holds no inline script or style:
app.js and app.css come from ``/ui/static/`` under the CSP ``default-src 'self'``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from string import Template
from typing import Any

PAGES = (
    ("overview", "Overview"),
    ("keys", "Keys"),
    ("models", "Models"),
    ("spend", "Spend"),
    ("requests", "Requests"),
)

LAYOUT = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="$csrf">
<title>$title · LLM key pool</title>
<link rel="stylesheet" href="/ui/static/app.css">
<link rel="icon" href="data:,">
<script src="/ui/static/app.js" defer></script>
</head>
<body data-page="$page" data-role="$role">
<a class="skip" href="#main">Skip to the content</a>
<header class="top">
<span class="brand">LLM key pool</span>
<nav id="nav" aria-label="Dashboard pages">$nav</nav>
<span class="meta">Updated <span id="last-updated">$updated</span> · $role_text</span>
<form method="post" action="/ui/logout" class="logout">
<input type="hidden" name="csrf" value="$csrf">
<button id="logout" type="submit">Log out</button>
</form>
</header>
<main id="main">
$body
</main>
<div id="action-result" role="status" aria-live="polite"></div>
</body>
</html>
""")

LOGIN = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · LLM key pool</title>
<link rel="stylesheet" href="/ui/static/app.css">
<link rel="icon" href="data:,">
</head>
<body class="login-page">
<main id="main">
<h1>LLM key pool</h1>
<form id="login-form" method="post" action="/ui/login">
<label for="login-token">Master key or dashboard token</label>
<input id="login-token" name="token" type="password" autocomplete="current-password" required>
<button id="login-submit" type="submit">Log in</button>
<p id="login-error" role="alert">$error</p>
</form>
</main>
</body>
</html>
""")


def esc(value: Any) -> str:
    """Text for HTML (content or a quoted attribute); None is empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def nav(current: str) -> str:
    links = []
    for page, label in PAGES:
        here = ' aria-current="page"' if page == current else ""
        links.append(f'<a href="/ui/{page}" data-page="{page}"{here}>{label}</a>')
    return "".join(links)


def layout(page: str, title: str, body: str, csrf: str, role: str, updated: str) -> str:
    role_text = "admin" if role == "admin" else "read-only"
    return LAYOUT.substitute(
        page=esc(page),
        title=esc(title),
        body=body,
        csrf=esc(csrf),
        role=esc(role),
        role_text=role_text,
        nav=nav(page),
        updated=esc(updated),
    )


def login(error: str = "") -> str:
    return LOGIN.substitute(error=esc(error))


def attrs(**values: Any) -> str:
    """`` name="value"`` pairs (underscores become dashes; None values are left out)."""
    return "".join(
        f' {name.replace("_", "-")}="{esc(value)}"'
        for name, value in values.items()
        if value is not None
    )


def table(table_id: str, caption: str, headers: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "\n".join(rows)
    return (
        f'<div class="table-wrap"><table id="{esc(table_id)}"><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>"
    )


def bar(field: str, used: int, limit: int | None, label: str) -> str:
    """A usage bar with its numbers in text (colour is never the only signal)."""
    text = f"{used} / {limit}" if limit else f"{used} (no limit)"
    value = min(used, limit) if limit else 0
    progress = attrs(
        data_field=field,
        role="progressbar",
        value=value,
        max=limit or 1,
        aria_valuenow=used,
        aria_valuemin=0,
        aria_valuemax=limit,
        aria_label=label,
        aria_valuetext=text,
    )
    return f'<progress{progress}></progress> <span class="num" data-text="{esc(field)}">{esc(text)}</span>'


def number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else esc(value)


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def usd(value: float | None) -> str:
    return "–" if value is None else f"${value:,.4f}"
