/* The dashboard's live refresh and actions: plain JavaScript, no build step, no dependency.
 * Every page polls its JSON endpoint every 2 s while the tab is visible and re-renders its
 * elements with textContent (never innerHTML: nothing from the server is parsed as HTML). */
"use strict";

(function () {
  const PERIOD_MS = 2000;
  const page = document.body.dataset.page;
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  let timer = null;
  let refreshes = 0;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  const fmt = {
    num: (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US")),
    pct: (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"),
    usd: (v) => (v === null || v === undefined ? "–" : "$" + Number(v).toFixed(4)),
    ms: (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US") + " ms"),
    time: (ts) => (ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : ""),
  };

  function countdown(until) {
    if (!until) return "";
    const left = Math.max(0, Math.floor(until - Date.now() / 1000));
    return left >= 60 ? Math.floor(left / 60) + " min " + (left % 60) + " s left" : left + " s left";
  }

  /* A selector finding again, in re-rendered rows, the control that had the focus. */
  function focusSelector(body) {
    const active = document.activeElement;
    if (!active || !body.contains(active)) return null;
    if (active.dataset.action) {
      return 'button[data-action="' + CSS.escape(active.dataset.action) + '"][data-key="' +
        CSS.escape(active.dataset.key) + '"]';
    }
    const href = active.getAttribute("href");
    return href ? 'a[href="' + CSS.escape(href) + '"]' : null;
  }

  function fillBody(table, rows) {
    const body = document.querySelector("#" + table + " tbody");
    if (!body) return;
    const focused = focusSelector(body);
    body.replaceChildren(...rows);
    const again = focused && body.querySelector(focused);
    if (again) again.focus();
  }

  function cell(tag, field, text) {
    return el(tag, field ? { "data-field": field } : {}, text);
  }

  function bar(field, used, limit, label) {
    const text = limit ? used + " / " + limit : used + " (no limit)";
    const progress = el("progress", {
      "data-field": field, role: "progressbar", value: limit ? Math.min(used, limit) : 0,
      max: limit || 1, "aria-valuenow": used, "aria-valuemin": 0, "aria-valuemax": limit,
      "aria-label": label, "aria-valuetext": text,
    });
    const td = el("td");
    td.append(progress, " ", el("span", { class: "num", "data-text": field }, text));
    return td;
  }

  /* -- overview ---------------------------------------------------------------------------- */
  function chart(id, series, key, format) {
    const box = document.getElementById(id);
    if (!box) return;
    const peak = Math.max(1e-9, ...series.map((p) => p[key]));
    const bars = series.map((p) => {
      const b = el("span", { class: "chart-bar", title: fmt.time(p.minute) + ": " + format(p[key]) });
      b.style.height = Math.round((p[key] / peak) * 100) + "%";
      return b;
    });
    box.replaceChildren(...bars);
    const total = series.reduce((s, p) => s + p[key], 0);
    box.setAttribute("aria-label", box.getAttribute("aria-label").split(":")[0] + ": total " +
      format(total) + ", peak " + format(peak > 1e-9 ? peak : 0) + " per minute");
  }

  function renderOverview(d) {
    setText("usage-error", d.usage_error ? "The usage log cannot be read: " + d.usage_error : "");
    setText("capacity-now", fmt.pct(d.capacity_now));
    setText("capacity-hour", fmt.pct(d.capacity_hour));
    setText("rpm-capacity", fmt.num(d.rpm_capacity));
    setText("requests-per-second", fmt.num(d.requests_per_second));
    setText("avoided-429", fmt.num(d.avoided_429));
    setText("waited", fmt.num(d.waited));
    setText("told-retry", fmt.num(d.told_retry_after));
    setText("provider-429", fmt.num(d.provider_429));
    setText("latency-p50", fmt.ms(d.latency_p50_ms));
    setText("latency-p95", fmt.ms(d.latency_p95_ms));
    setText("cost-today", fmt.usd(d.cost_today));
    setText("cost-month", fmt.usd(d.cost_month));
    const states = Object.entries(d.keys.by_state).sort().map(([s, n]) => s + ": " + n).join(", ");
    setText("key-states", "Keys: " + d.keys.total + " (" + states + ")");
    fillBody("outcomes", Object.entries(d.outcomes).map(([outcome, count]) => {
      const tr = el("tr", { "data-outcome": outcome });
      tr.append(el("th", { scope: "row" }, outcome), cell("td", "count", fmt.num(count)));
      return tr;
    }));
    chart("chart-requests", d.series, "requests", fmt.num);
    chart("chart-cost", d.series, "cost", fmt.usd);
  }

  /* -- keys -------------------------------------------------------------------------------- */
  const ACTIONS = [["cooldown", "Cooldown", "Cool down"],
    ["clear-cooldown", "Clear", "Clear the cooldown and reset the breaker of"],
    ["disable", "Disable", "Disable"], ["enable", "Enable", "Enable"]];

  const KEY_HEADERS = ["Key", "Masked secret", "Provider", "Models", "State", "RPM", "TPM", "RPD",
    "Requests", "Tokens", "Last error", "Actions"];

  function keyRow(k, canAct) {
    const tags = Object.entries(k.tags).sort().map(([n, v]) => n + "=" + v).join(" ");
    const tr = el("tr", { "data-key-id": k.key_id, "data-provider": k.provider, "data-state": k.state,
      "data-models": k.models.join(" "), "data-tags": tags });
    const masked = el("td");
    masked.append(el("code", { "data-field": "masked" }, k.masked));
    const state = el("td");
    state.append(el("span", { "data-field": "state", class: "state state-" + k.state }, k.state),
      el("span", { "data-field": "until", "data-until": k.until_ts }, countdown(k.until_ts)),
      el("span", { class: "reason", "data-field": "reason" }, k.reason));
    const actionsCell = el("td");
    const actions = el("div", { class: "actions" });
    actionsCell.append(actions);
    if (canAct) {
      for (const [name, label, what] of ACTIONS) {
        actions.append(el("button", { type: "button", "data-action": name, "data-key": k.key_id,
          "aria-label": what + " " + k.key_id }, label));
      }
    } else {
      actions.append(el("span", { class: "muted" }, "read-only"));
    }
    tr.append(el("th", { scope: "row", "data-field": "key_id" }, k.key_id), masked,
      cell("td", "provider", k.provider), cell("td", "models", k.models.join(", ")), state,
      bar("rpm", k.rpm.used, k.rpm.limit, k.key_id + " requests per minute"),
      bar("tpm", k.tpm.used, k.tpm.limit, k.key_id + " tokens per minute"),
      bar("rpd", k.rpd.used, k.rpd.limit, k.key_id + " requests per day"),
      cell("td", "requests", fmt.num(k.requests)), cell("td", "tokens", fmt.num(k.tokens)),
      cell("td", "last_error", k.last_error || ""), actionsCell);
    [...tr.children].forEach((c, i) => { c.dataset.label = KEY_HEADERS[i]; });
    return tr;
  }

  function applyKeyFilters() {
    const value = (id) => ((document.getElementById(id) || {}).value || "").trim();
    const provider = value("filter-provider"), state = value("filter-state");
    const model = value("filter-model").toLowerCase(), tag = value("filter-tag").toLowerCase();
    for (const tr of document.querySelectorAll("#keys-table tbody tr")) {
      const show = (!provider || tr.dataset.provider === provider) &&
        (!state || tr.dataset.state === state) &&
        (!model || tr.dataset.models.toLowerCase().includes(model)) &&
        (!tag || tr.dataset.tags.toLowerCase().includes(tag));
      tr.hidden = !show;
    }
  }

  function renderKeys(d) {
    const canAct = document.body.dataset.role === "admin";
    fillBody("keys-table", d.keys.map((k) => keyRow(k, canAct)));
    applyKeyFilters();
  }

  function tickCountdowns() {
    for (const span of document.querySelectorAll('[data-field="until"][data-until]')) {
      span.textContent = countdown(Number(span.dataset.until));
    }
  }

  /* -- actions ----------------------------------------------------------------------------- */
  let pending = null;

  function openDialog(button) {
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog) return;
    pending = { action: button.dataset.action, key: button.dataset.key };
    dialog.dataset.from = 'button[data-action="' + CSS.escape(pending.action) + '"][data-key="' +
      CSS.escape(pending.key) + '"]';
    const what = button.getAttribute("aria-label");
    setText("confirm-title", what + "?");
    setText("confirm-text", pending.action === "cooldown"
      ? "No request will use the key until the cooldown ends or is cleared."
      : "Every process sees the change at once.");
    document.getElementById("cooldown-fields").hidden = pending.action !== "cooldown";
    dialog.showModal();
    (pending.action === "cooldown" ? document.getElementById("cooldown-seconds")
      : document.getElementById("confirm-ok")).focus();
  }

  async function runAction(action, key) {
    let body = {};
    if (action === "cooldown") {
      body = { seconds: Number(document.getElementById("cooldown-seconds").value),
        reason: document.getElementById("cooldown-reason").value || "manual" };
    }
    const response = await fetch("/ui/api/keys/" + encodeURIComponent(key) + "/" + action, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) {
      setText("action-result", action + " " + key + ": done, state now " + answer.data.state);
    } else {
      const error = answer.error || {};
      setText("action-result", action + " " + key + " failed: " + (error.message || response.status));
    }
    refresh();
  }

  function wireKeys() {
    const table = document.getElementById("keys-table");
    if (table) {
      table.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-action]");
        if (button) openDialog(button);
      });
    }
    for (const id of ["filter-provider", "filter-state", "filter-model", "filter-tag"]) {
      const input = document.getElementById(id);
      if (input) input.addEventListener("input", applyKeyFilters);
    }
    const form = document.getElementById("keys-filters");
    if (form) form.addEventListener("submit", (event) => event.preventDefault());
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog) return;
    document.getElementById("confirm-cancel").addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("close", () => {  // back to the button that opened it (rows re-render)
      const from = dialog.dataset.from ? document.querySelector(dialog.dataset.from) : null;
      if (from) from.focus();
    });
    document.getElementById("confirm-form").addEventListener("submit", () => {
      const chosen = pending;
      pending = null;
      if (chosen) runAction(chosen.action, chosen.key);
    });
    setInterval(tickCountdowns, 1000);
  }

  /* -- models, spend, requests ------------------------------------------------------------- */
  function names(list) {
    return list && list.length ? list.join(" \u2192 ") : "–";
  }

  function renderModels(d) {
    fillBody("models-table", d.models.map((m) => {
      const tr = el("tr", { "data-model": m.model });
      const serving = m.keys.map((k) => k.key_id + " (" + k.state + ")").join(", ");
      tr.append(el("th", { scope: "row" }, m.model), cell("td", "provider", m.provider),
        cell("td", "chain", names(m.chain)),
        cell("td", "fallbacks", names(m.fallbacks.concat(m.context_fallbacks))),
        cell("td", "aliases", m.aliases.join(", ") || "–"), cell("td", "keys", serving || "none"),
        cell("td", "healthy_keys", m.healthy_keys + " of " + m.keys.length),
        cell("td", "rpm", fmt.num(m.rpm)), cell("td", "tpm", fmt.num(m.tpm)),
        cell("td", "rpd", fmt.num(m.rpd)));
      return tr;
    }));
  }

  function renderSpend(d) {
    fillBody("spend-table", d.rows.map((r) => {
      const tr = el("tr", { "data-name": r.name === null ? "" : r.name });
      tr.append(el("th", { scope: "row" }, r.name === null ? "(none)" : r.name),
        cell("td", "requests", fmt.num(r.requests)), cell("td", "tokens", fmt.num(r.tokens_in + r.tokens_out)),
        cell("td", "cost", fmt.usd(r.cost_usd)), cell("td", "errors", fmt.num(r.errors)));
      return tr;
    }));
    setText("spend-total", "Total: " + fmt.num(d.total.requests) + " requests, " + fmt.usd(d.total.cost_usd));
    fillBody("budgets-table", d.budgets.map((b) => {
      const name = b.scope === "global" ? "global" : b.scope + ":" + b.id;
      const used = b.spent_usd + b.reserved_usd;
      const tr = el("tr", { "data-budget": name });
      const use = bar("use", Math.round(used * 100), Math.round(b.limit_usd * 100) || null, name + " budget used (cents)");
      use.append(" " + (b.used_share * 100).toFixed(1) + "% used");
      tr.append(el("th", { scope: "row" }, name),
        cell("td", "spent", fmt.usd(b.spent_usd) + " spent, " + fmt.usd(b.reserved_usd) + " reserved"),
        cell("td", "limit", fmt.usd(b.limit_usd) + " per " + b.period), use,
        cell("td", "resets", fmt.time(b.resets_at) + " (" + b.timezone + ")"));
      return tr;
    }));
  }

  function renderRequests(d) {
    fillBody("requests-table", d.requests.map((r) => {
      const tr = el("tr", { "data-request-id": r.request_id });
      const id = el("th", { scope: "row" });
      id.append(el("a", { href: "/ui/requests/" + encodeURIComponent(r.request_id) }, r.request_id));
      tr.append(cell("td", "ts", fmt.time(r.ts)), id, cell("td", "model", r.model || r.requested_model),
        cell("td", "key_id", r.key_id || ""), cell("td", "user", r.user || ""),
        cell("td", "outcome", r.outcome), cell("td", "latency", fmt.ms(r.latency_ms)),
        cell("td", "wait", fmt.ms(r.wait_ms)), cell("td", "attempts", fmt.num(r.attempts)),
        cell("td", "cost", fmt.usd(r.cost)));
      return tr;
    }));
  }

  /* -- polling ----------------------------------------------------------------------------- */
  function query(ids) {
    const params = new URLSearchParams();
    for (const [id, name] of ids) {
      const node = document.getElementById(id);
      if (node && node.value) params.set(name, node.value);
    }
    return params.toString();
  }

  const PAGES = {
    overview: { url: () => "/ui/api/overview", render: renderOverview },
    keys: { url: () => "/ui/api/keys", render: renderKeys },
    models: { url: () => "/ui/api/models", render: renderModels },
    spend: { url: () => "/ui/api/spend?" + query([["spend-by", "by"], ["spend-since", "since"]]),
      render: renderSpend },
    requests: { url: () => "/ui/api/requests?" + query([["filter-model", "model"], ["filter-key", "key_id"],
      ["filter-user", "user"], ["filter-outcome", "outcome"]]), render: renderRequests },
  };

  async function refresh() {
    const current = PAGES[page];
    if (!current || document.getElementById("request-detail")) return;
    try {
      const response = await fetch(current.url(), { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/ui/login");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      current.render(await response.json());
      refreshes += 1;
      setText("last-updated", new Date().toLocaleTimeString("en-GB") + " (#" + refreshes + ")");
      document.body.classList.remove("stale");
    } catch (error) {
      document.body.classList.add("stale");
      setText("last-updated", "refresh failed (" + error.message + "), retrying");
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (document.hidden || !PAGES[page]) return;
    timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, PERIOD_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else {
      refresh().then(schedule);
    }
  });

  function wireForms() {
    for (const id of ["spend-by", "spend-since", "filter-outcome"]) {
      const node = document.getElementById(id);
      if (node && page !== "keys") node.addEventListener("change", () => refresh());
    }
    for (const id of ["filter-model", "filter-key", "filter-user"]) {
      const node = document.getElementById(id);
      if (node && page === "requests") node.addEventListener("input", () => refresh());
    }
  }

  wireKeys();
  wireForms();
  if (PAGES[page] && !document.getElementById("request-detail")) {
    refresh().then(schedule);
  }
}());
