"""The dashboard's door, in a real browser: the login page for a visitor without a session, the
master key logs in (by keyboard too), a wrong token does not, the session cookie's attributes,
actions refused without the CSRF token, and logout ends the session."""

from __future__ import annotations

import secrets
import time

import pytest
from selenium.webdriver.common.keys import Keys

from tests.browser.dashboard import Dashboard

SESSION_HOURS = 8
#: Posts a cooldown from the page: [status, body]; the CSRF header is the script's first argument.
POST_COOLDOWN = """
const [header, done] = [arguments[0], arguments[arguments.length - 1]];
const headers = {"Content-Type": "application/json"};
if (header !== null) headers["X-CSRF-Token"] = header;
fetch("/ui/api/keys/pool-a/cooldown", {method: "POST", headers,
       body: JSON.stringify({seconds: 120, reason: "from the page"})})
  .then(async r => done([r.status, await r.text()]), e => done([0, String(e)]));
"""


async def test_a_visitor_without_a_session_gets_the_login_page(dash: Dashboard) -> None:
    b = dash.browser
    for path in ("/ui", "/ui/overview", "/ui/keys", "/ui/requests"):
        await b.get(path)
        await b.wait_for("form#login-form")
        assert await b.path() == "/ui/login", path
    assert await dash.get_with_cookie("/ui/api/keys", "not-a-session") in (401, 403)
    await b.screenshot("login")


async def test_the_master_key_logs_in_and_sets_a_strict_cookie(dash: Dashboard) -> None:
    await dash.login()
    cookie = await dash.browser.run(dash.browser.driver.get_cookie, "llmr_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui" and cookie["secure"] is False  # plain http on loopback
    assert "expiry" in cookie and cookie["expiry"] <= time.time() + SESSION_HOURS * 3600 + 60
    assert dash.gw.master not in cookie["value"]
    assert "llmr_session" not in await dash.browser.js("return document.cookie;")  # HttpOnly


async def test_a_wrong_token_is_refused_without_a_cookie(dash: Dashboard) -> None:
    b = dash.browser
    await b.get("/ui/login")
    async with b.expect_console(r"status of 401"):  # Chromium logs the page's own 401
        await b.type("#login-token", dash.gw.master + "-wrong")
        await b.click("#login-submit")
        await b.wait_for("#login-error")
    assert await b.path() == "/ui/login"
    assert (await b.text("#login-error")).strip()
    assert await b.run(b.driver.get_cookie, "llmr_session") is None
    posted = [r for r in await b.run(b.network.responses) if r.method == "POST"]
    assert [(r.url, r.status) for r in posted] == [(dash.gw.url + "/ui/login", 401)]
    await b.get("/ui/keys")
    await b.wait_for("form#login-form")


async def test_the_keyboard_reaches_the_token_and_submit(dash: Dashboard) -> None:
    b = dash.browser
    await b.get("/ui/login")
    await b.wait_for("form#login-form")
    assert await b.js("return document.getElementById('login-token').labels.length;") >= 1
    assert await b.js("return document.getElementById('login-token').type;") == "password"
    order = [str(await b.js("return document.activeElement.id;"))]  # autofocus counts
    for _ in range(12):  # bounded: the token and submit come within a few Tabs
        if order[-1] == "login-token":
            await b.run(lambda: b.driver.switch_to.active_element.send_keys(dash.gw.master))
        if order[-1] == "login-submit":
            break
        await b.run(lambda: b.driver.switch_to.active_element.send_keys(Keys.TAB))
        order.append(str(await b.js("return document.activeElement.id;")))
    assert "login-token" in order and order[-1] == "login-submit", order
    assert order.index("login-token") < order.index("login-submit")
    await b.run(lambda: b.driver.switch_to.active_element.send_keys(Keys.ENTER))
    await b.wait_for_path("/ui/overview")


async def test_actions_without_the_csrf_token_are_refused(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    async with b.expect_console(r"status of 403"):
        for header in (None, "not-the-token"):
            status, body = await b.js_async(POST_COOLDOWN, header)
            assert status == 403 and '"csrf_failed"' in body, (header, status, body)
        status, body = await dash.post_with_cookie(
            "/ui/api/keys/pool-a/cooldown", {"seconds": 120, "reason": "no header"}
        )
        assert status == 403 and body["error"]["code"] == "csrf_failed", body
    assert (await dash.key_state("pool-a"))["state"] == "healthy"  # nothing was applied
    # the same call with the page's token is accepted: the refusals were the token's doing
    status, body = await b.js_async(POST_COOLDOWN, await dash.csrf())
    assert status == 200, body
    assert (await dash.key_state("pool-a"))["state"] == "cooldown"


@pytest.mark.parametrize(
    "dash", [{"DASHBOARD_TOKEN": "ro-" + secrets.token_hex(24)}], indirect=True
)
async def test_the_read_only_token_sees_but_cannot_act(dash: Dashboard) -> None:
    await dash.login(dash.read_only_token())
    await dash.open("keys")
    b = dash.browser
    assert len(await b.find_all("table#keys-table tr[data-key-id]")) == len(dash.gw.pool)
    assert await b.find_all("button[data-action]") == []  # no action offered
    async with b.expect_console(r"status of 403"):
        status, body = await b.js_async(POST_COOLDOWN, await dash.csrf())
    assert status == 403 and '"read_only"' in body, (status, body)
    assert (await dash.key_state("pool-a"))["state"] == "healthy"


async def test_logout_ends_the_session(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("keys")
    cookie = await dash.session_cookie()
    assert await dash.get_with_cookie("/ui/api/keys", cookie) == 200
    await dash.browser.click("button#logout")
    await dash.browser.wait_for_path("/ui/login")
    await dash.browser.wait_for("form#login-form")
    assert await dash.get_with_cookie("/ui/api/keys", cookie) in (401, 403)  # gone on the server
    await dash.browser.get("/ui/overview")
    await dash.browser.wait_for("form#login-form")
    assert await dash.browser.path() == "/ui/login"
