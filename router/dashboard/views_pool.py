"""The bodies of the Overview, Keys and Models pages, rendered from router/dashboard/data.py's
dicts (app.js re-renders the same elements from the JSON endpoints every 2 s)."""

from __future__ import annotations

from typing import Any

from router.dashboard.html import attrs, bar, esc, number, percent, table, usd

STATES = ("healthy", "cooldown", "circuit_open", "half_open", "disabled")
#: (action, button text, what it does: the button's accessible name and the dialog's title).
ACTIONS = (
    ("cooldown", "Cooldown", "Cool down"),
    ("clear-cooldown", "Clear", "Clear the cooldown and reset the breaker of"),
    ("disable", "Disable", "Disable"),
    ("enable", "Enable", "Enable"),
)


def _card(title: str, value_id: str, value: str, sub: str = "") -> str:
    extra = f'<p class="sub">{sub}</p>' if sub else ""
    return (
        f'<section class="card"><h2>{esc(title)}</h2>'
        f'<p class="big" id="{value_id}">{value}</p>{extra}</section>'
    )


def outcome_row(outcome: str, count: int) -> str:
    return (
        f'<tr{attrs(data_outcome=outcome)}><th scope="row">{esc(outcome)}</th>'
        f'<td data-field="count">{number(count)}</td></tr>'
    )


def overview(view: dict[str, Any]) -> str:
    minutes = view["window_seconds"] // 60
    cards = [
        _card(
            "Capacity used now",
            "capacity-now",
            percent(view["capacity_now"]),
            f'last hour: <span id="capacity-hour">{percent(view["capacity_hour"])}</span> of '
            f'<span id="rpm-capacity">{number(view["rpm_capacity"])}</span> requests/min',
        ),
        _card("Requests per second", "requests-per-second", number(view["requests_per_second"])),
        _card(
            f"429s avoided (last {minutes} min)",
            "avoided-429",
            number(view["avoided_429"]),
            f'waited for room: <span id="waited">{number(view["waited"])}</span>; told to retry '
            f'later: <span id="told-retry">{number(view["told_retry_after"])}</span>',
        ),
        _card("Provider 429s received (all time)", "provider-429", number(view["provider_429"])),
        _card("Latency p50", "latency-p50", _ms(view["latency_p50_ms"])),
        _card("Latency p95", "latency-p95", _ms(view["latency_p95_ms"])),
        _card("Cost today (UTC)", "cost-today", usd(view["cost_today"])),
        _card("Cost this month (UTC)", "cost-month", usd(view["cost_month"])),
    ]
    rows = [outcome_row(o, c) for o, c in view["outcomes"].items()]
    outcomes = table(
        "outcomes", f"Answers by outcome, last {minutes} min", ["Outcome", "Requests"], rows
    )
    states = ", ".join(f"{esc(s)}: {n}" for s, n in sorted(view["keys"]["by_state"].items()))
    return (
        "<h1>Overview</h1>"
        f'<p id="usage-error" role="alert">{esc(view["usage_error"] or "")}</p>'
        '<div class="cards">' + "".join(cards) + "</div>"
        f'<p id="key-states">Keys: {view["keys"]["total"]} ({states})</p>'
        f"{outcomes}"
        "<section><h2>Last hour: requests per minute</h2>"
        '<div id="chart-requests" class="chart" role="img" aria-label="Requests per minute, last hour"></div>'
        "<h2>Last hour: cost per minute</h2>"
        '<div id="chart-cost" class="chart" role="img" aria-label="Cost per minute, last hour"></div>'
        "</section>"
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _filters() -> str:
    states = "".join(f'<option value="{s}">{s}</option>' for s in STATES)
    return (
        '<form class="filters" id="keys-filters" role="search">'
        '<label for="filter-provider">Provider</label>'
        '<select id="filter-provider"><option value="">any</option>'
        '<option value="openai">openai</option><option value="anthropic">anthropic</option>'
        '<option value="gemini">gemini</option></select>'
        f'<label for="filter-state">State</label><select id="filter-state"><option value="">any</option>{states}</select>'
        '<label for="filter-model">Model</label><input id="filter-model" type="search">'
        '<label for="filter-tag">Tag</label><input id="filter-tag" type="search" placeholder="name=value">'
        "</form>"
    )


def _buttons(key_id: str, can_act: bool) -> str:
    if not can_act:
        return '<span class="muted">read-only</span>'
    return "".join(
        f"<button{attrs(type='button', data_action=name, data_key=key_id, aria_label=f'{what} {key_id}')}>"
        f"{label}</button>"
        for name, label, what in ACTIONS
    )


def _tags(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def countdown(until: float | None, now: float) -> str:
    """Time left until ``until`` as text (app.js counts it down every second)."""
    if until is None:
        return ""
    left = max(0, int(until - now))
    return f"{left // 60} min {left % 60} s left" if left >= 60 else f"{left} s left"


def key_row(row: dict[str, Any], can_act: bool, now: float) -> str:
    key_id = row["key_id"]
    tr = attrs(
        data_key_id=key_id,
        data_provider=row["provider"],
        data_state=row["state"],
        data_models=" ".join(row["models"]),
        data_tags=_tags(row["tags"]),
    )
    until = attrs(data_field="until", data_until=row["until_ts"])
    cells = [
        f'<th scope="row" data-field="key_id">{esc(key_id)}</th>',
        f'<td><code data-field="masked">{esc(row["masked"])}</code></td>',
        f'<td data-field="provider">{esc(row["provider"])}</td>',
        f'<td data-field="models">{esc(", ".join(row["models"]))}</td>',
        f'<td><span data-field="state" class="state state-{esc(row["state"])}">{esc(row["state"])}</span>'
        f"<span{until}>{esc(countdown(row['until_ts'], now))}</span>"
        f'<span class="reason" data-field="reason">{esc(row["reason"])}</span></td>',
        f"<td>{bar('rpm', row['rpm']['used'], row['rpm']['limit'], f'{key_id} requests per minute')}</td>",
        f"<td>{bar('tpm', row['tpm']['used'], row['tpm']['limit'], f'{key_id} tokens per minute')}</td>",
        f"<td>{bar('rpd', row['rpd']['used'], row['rpd']['limit'], f'{key_id} requests per day')}</td>",
        f'<td data-field="requests">{number(row["requests"])}</td>',
        f'<td data-field="tokens">{number(row["tokens"])}</td>',
        f'<td data-field="last_error">{esc(row["last_error"] or "")}</td>',
        f'<td><div class="actions">{_buttons(key_id, can_act)}</div></td>',
    ]
    labelled = [_label(c, h) for c, h in zip(cells, KEY_HEADERS, strict=True)]
    return f"<tr{tr}>" + "".join(labelled) + "</tr>"


def _label(cell: str, header: str) -> str:
    """A cell with its column's name (phone-width windows show rows as cards, labelled)."""
    return cell[:3] + attrs(data_label=header) + cell[3:]


DIALOG = """<dialog id="confirm-dialog" aria-labelledby="confirm-title">
<form method="dialog" id="confirm-form">
<h2 id="confirm-title">Confirm</h2>
<p id="confirm-text"></p>
<div id="cooldown-fields">
<label for="cooldown-seconds">Cooldown seconds</label>
<input id="cooldown-seconds" type="number" min="1" max="2592000" step="1" value="60">
<label for="cooldown-reason">Reason</label>
<input id="cooldown-reason" type="text" maxlength="200" value="manual">
</div>
<div class="buttons">
<button id="confirm-cancel" type="button">Cancel</button>
<button id="confirm-ok" type="submit" value="ok">Apply</button>
</div>
</form>
</dialog>"""

KEY_HEADERS = (
    "Key", "Masked secret", "Provider", "Models", "State", "RPM", "TPM", "RPD",
    "Requests", "Tokens", "Last error", "Actions",
)  # fmt: skip


def keys(view: dict[str, Any], can_act: bool) -> str:
    rows = [key_row(r, can_act, view["now"]) for r in view["keys"]]
    return (
        "<h1>Keys</h1>"
        + _filters()
        + table("keys-table", "Keys of the pool (secrets masked)", KEY_HEADERS, rows)
        + (DIALOG if can_act else "")
    )


def _names(values: list[str]) -> str:
    return esc(" → ".join(values)) if values else "–"


def model_row(row: dict[str, Any]) -> str:
    serving = ", ".join(f"{k['key_id']} ({k['state']})" for k in row["keys"])
    cells = [
        f'<th scope="row">{esc(row["model"])}</th>',
        f'<td data-field="provider">{esc(row["provider"])}</td>',
        f'<td data-field="chain">{_names(row["chain"])}</td>',
        f'<td data-field="fallbacks">{_names(row["fallbacks"] + row["context_fallbacks"])}</td>',
        f'<td data-field="aliases">{esc(", ".join(row["aliases"])) or "–"}</td>',
        f'<td data-field="keys">{esc(serving) or "none"}</td>',
        f'<td data-field="healthy_keys">{row["healthy_keys"]} of {len(row["keys"])}</td>',
        f'<td data-field="rpm">{number(row["rpm"])}</td>',
        f'<td data-field="tpm">{number(row["tpm"])}</td>',
        f'<td data-field="rpd">{number(row["rpd"])}</td>',
    ]
    return f"<tr{attrs(data_model=row['model'])}>" + "".join(cells) + "</tr>"


MODEL_HEADERS = (
    "Model", "Provider", "Chain tried", "Fallbacks", "Aliases", "Keys (state)",
    "Healthy keys", "Combined RPM", "Combined TPM", "Combined RPD",
)  # fmt: skip


def models(view: dict[str, Any]) -> str:
    rows = [model_row(r) for r in view["models"]]
    aliases = "".join(
        f"<li><code>{esc(name)}</code> → {_names(targets)}</li>"
        for name, targets in sorted(view["aliases"].items())
    )
    return (
        "<h1>Models and routing</h1>"
        + table("models-table", "Models served, their chains and keys", MODEL_HEADERS, rows)
        + f'<h2>Aliases</h2><ul id="aliases">{aliases or "<li>none</li>"}</ul>'
    )
