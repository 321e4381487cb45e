"""Every page of the dashboard in a real browser, after real traffic: it renders through the nav
without a console error, loads its scripts from /ui/static/ only (no inline script, a CSP), shows
what it is for, is photographed (the overview, taken while traffic runs, is docs/dashboard.png
with UPDATE_SCREENSHOT=1), and a phone-width window shows the Keys page without overflow."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.browser import describe
from tests.browser.dashboard import PAGE_MARK, PAGES, Dashboard
from tests.router.gateway.harness import MODEL

NO_INLINE_SCRIPT = """
const scripts = [...document.querySelectorAll("script")];
return scripts.map(s => s.getAttribute("src") || "INLINE");
"""


async def check_scripts_and_csp(dash: Dashboard, page: str) -> None:
    sources = await dash.browser.js(NO_INLINE_SCRIPT)
    assert all(s.startswith("/ui/static/") for s in sources), (page, sources)
    responses = await dash.browser.run(dash.browser.network.responses)
    documents = [r for r in responses if r.url == dash.gw.url + f"/ui/{page}" and r.status == 200]
    assert documents, f"/ui/{page} was not loaded"
    headers = {k.lower(): v for k, v in documents[-1].headers.items()}
    assert "script-src 'self'" in headers.get("content-security-policy", ""), (page, headers)


async def test_every_page_renders_through_the_nav(dash: Dashboard) -> None:
    await dash.calls(6)
    await dash.login()
    b = dash.browser
    for page in PAGES:
        await b.click(f'nav#nav a[data-page="{page}"]')
        await b.wait_for_path(f"/ui/{page}")
        await b.wait_for(PAGE_MARK[page])
        await dash.loaded()
        await check_scripts_and_csp(dash, page)
        await check_content(dash, page)
        found = await b.secrets_seen(dash.secrets())  # this page's DOM, every response so far
        assert not found, describe(found)
        await b.screenshot(page)


async def check_content(dash: Dashboard, page: str) -> None:
    """What each page is for, after six calls of the model through the pool."""
    b = dash.browser
    if page == "models":
        await b.wait_for(f'table#models-table tr[data-model="{MODEL}"]')
    elif page == "spend":
        await b.wait_for("table#spend-table tr[data-name]")
        options = await b.js(
            "return [...document.querySelectorAll('#spend-by option')].map(o => o.value);"
        )
        assert set(options) >= {"key", "model", "user", "vkey", "team"}, options
        await b.wait_for("table#budgets-table", visible=False)
    elif page == "requests":
        await b.wait_for("table#requests-table tr[data-request-id]")
    elif page == "keys":
        assert len(await b.find_all("table#keys-table tr[data-key-id]")) == len(dash.gw.pool)
    else:
        await b.wait_for("#outcomes tr[data-outcome]")


async def test_a_request_has_a_detail_page(dash: Dashboard) -> None:
    await dash.calls(3)
    await dash.login()
    await dash.open("requests")
    b = dash.browser
    await b.wait_for("table#requests-table tr[data-request-id]")
    rows = await b.find_all("table#requests-table tr[data-request-id]")
    assert len(rows) >= 3
    request_id = await b.run(rows[0].get_attribute, "data-request-id")
    link = await b.run(rows[0].find_element, By.CSS_SELECTOR, "a")
    await b.run(link.click)
    await b.wait_for_path(f"/ui/requests/{request_id}")
    detail = await b.wait_for("#request-detail")
    text = await b.run(lambda: detail.text)
    assert MODEL in text, text
    assert "call " not in text  # the prompts ("call 0" ...) are not stored by default
    await dash.loaded()
    await b.screenshot("request-detail")


async def test_the_overview_shows_the_pool_at_work(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("overview")
    b = dash.browser
    async with dash.traffic():
        await dash.calls(10)
        stamp = await b.text("#last-updated")
        await b.wait_until(
            lambda d: d.find_element(By.ID, "last-updated").text != stamp, "no refresh"
        )
        await b.wait_for("#outcomes tr[data-outcome]")
        for field in (
            "#capacity-now",
            "#requests-per-second",
            "#cost-today",
            "#cost-month",
            "#avoided-429",
            "#provider-429",
            "#latency-p50",
            "#latency-p95",
        ):
            assert (await b.text(field)).strip(), field
        assert "%" in await b.text("#capacity-now")
        await b.screenshot("overview", docs=True)


async def test_a_phone_width_window_shows_the_keys_without_overflow(dash: Dashboard) -> None:
    await dash.login()
    await dash.browser.resize(390, 844)
    await dash.open("keys")
    b = dash.browser
    width = await b.js("return window.innerWidth;")
    assert width == 390, width  # the window really is phone-sized
    await b.wait_for("table#keys-table", visible=False)
    overflow = await b.js("return [document.body.scrollWidth, window.innerWidth];")
    assert overflow[0] <= overflow[1], overflow
    await b.screenshot("keys-phone")
