"""The Keys page in a real browser: every key of the pool (masked only, with its limits as bars),
counters that move while traffic runs, and a cooldown applied from the page that the admin API
reports and the router obeys on its next selections."""

from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from tests.browser.dashboard import Dashboard, number

ROW = 'tr[data-key-id="{}"]'
MASKED = re.compile(r"^sk-proj-[A-Za-z0-9_-]{3}\.\.\.[A-Za-z0-9_-]{4}$")


#: The key ids of the rows the filters leave visible.
VISIBLE_ROWS = """return [...document.querySelectorAll("#keys-table tr[data-key-id]")]
  .filter(r => r.getClientRects().length > 0).map(r => r.dataset.keyId).sort();"""


def cell(key_id: str, field: str) -> str:
    return f'{ROW.format(key_id)} [data-field="{field}"]'


async def test_every_key_of_the_pool_is_listed_masked(dash: Dashboard) -> None:
    await dash.calls(9)  # a key's masked form is known once its secret was loaded for a call
    served = {key_id for key_id, n in dash.served().items() if n}
    assert served
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    rows = await b.find_all("table#keys-table tr[data-key-id]")
    listed = {await b.run(row.get_attribute, "data-key-id") for row in rows}
    assert listed == {k.key_id for k in dash.gw.pool}
    for key in dash.gw.pool:
        masked = (await b.text(cell(key.key_id, "masked"))).strip()
        assert masked == (await dash.key_state(key.key_id))["masked_key"]
        assert key.secret not in masked and len(masked) < len(key.secret)
        if key.key_id in served:
            assert MASKED.match(masked) and masked[:11] == key.secret[:11], masked
            assert masked.endswith(key.secret[-4:]), masked
        assert (await b.text(cell(key.key_id, "provider"))).strip() == "openai"
        assert "healthy" in await b.text(cell(key.key_id, "state"))
        bar = await b.wait_for(cell(key.key_id, "rpm"))
        assert await b.run(bar.get_attribute, "role") == "progressbar"
        limit = await b.run(bar.get_attribute, "aria-valuemax")
        assert number(limit or "") == key.rpm
    await b.screenshot("keys")


async def test_counters_move_while_traffic_runs(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    before = {k.key_id: number(await b.text(cell(k.key_id, "requests"))) for k in dash.gw.pool}
    stamp = await b.text("#last-updated")

    def moved(driver: object) -> list[str]:
        assert driver is b.driver
        return [
            key_id
            for key_id, count in before.items()
            if number(b.driver.find_element(By.CSS_SELECTOR, cell(key_id, "requests")).text) > count
        ]

    async with dash.traffic():
        grown = await b.wait_until(moved, "no key's requests counter grew", within=15)
        await b.wait_until(
            lambda d: d.find_element(By.ID, "last-updated").text != stamp,
            "#last-updated never changed",
        )
        await b.screenshot("keys-traffic")
    assert grown


async def test_a_cooldown_from_the_page_reaches_the_api_and_the_router(dash: Dashboard) -> None:
    await dash.calls(3)
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    await b.click(f'{ROW.format("pool-a")} button[data-action="cooldown"]')
    await b.wait_for("dialog#confirm-dialog")
    assert await b.js("return document.getElementById('confirm-dialog').open;") is True
    await b.type("#cooldown-seconds", "300")
    await b.type("#cooldown-reason", "browser test")
    await b.screenshot("keys-cooldown-dialog")
    await b.click("#confirm-ok")
    result = await b.wait_until(
        lambda d: d.find_element(By.ID, "action-result").text.strip(), "no #action-result"
    )
    assert "pool-a" in result or "cooldown" in result.lower(), result
    assert await b.js("return document.getElementById('action-result').getAttribute('role');") == (
        "status"
    )
    state = await dash.key_state("pool-a")
    assert state["state"] == "cooldown", state
    await b.wait_until(
        lambda d: "cooldown" in d.find_element(By.CSS_SELECTOR, cell("pool-a", "state")).text,
        "the row never showed the cooldown",
    )
    until = await b.text(cell("pool-a", "until"))
    assert until.strip(), "no countdown"
    select = Select(await b.wait_for("select#filter-state"))
    await b.run(select.select_by_value, "cooldown")
    await b.wait_until(lambda d: d.execute_script(VISIBLE_ROWS) == ["pool-a"], "state filter")
    # the router's next selections avoid the key
    assert dash.gw.sim is not None
    dash.gw.sim.reset_stats()
    await dash.calls(8)
    served = dash.served()
    assert served.get("pool-a", 0) == 0 and sum(served.values()) == 8, served


async def test_the_tag_and_model_filters_narrow_the_rows(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    assert await b.js(VISIBLE_ROWS) == ["pool-a", "pool-b", "pool-c"]
    await b.type("input#filter-tag", "ads")
    await b.wait_until(lambda d: d.execute_script(VISIBLE_ROWS) == ["pool-c"], "tag filter")
    await b.type("input#filter-tag", "")
    await b.type("input#filter-model", "no-such-model")
    await b.wait_until(lambda d: d.execute_script(VISIBLE_ROWS) == [], "model filter")
    for control in ("filter-provider", "filter-state", "filter-model", "filter-tag"):
        labels = await b.js(f"return document.getElementById('{control}').labels.length;")
        assert labels >= 1, f"#{control} has no label"


async def test_a_cancelled_action_changes_nothing(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    await b.click(f'{ROW.format("pool-b")} button[data-action="disable"]')
    await b.wait_for("dialog#confirm-dialog")
    await b.click("#confirm-cancel")
    await b.wait_until(
        lambda d: not d.execute_script("return document.getElementById('confirm-dialog').open;"),
        "the dialog stayed open",
    )
    state = await dash.key_state("pool-b")
    assert state["state"] == "healthy" and state.get("active", True) is True, state


async def tab_to(dash: Dashboard, css: str, presses: int = 80) -> None:
    """Presses Tab until the focused element matches ``css`` (at most ``presses`` times)."""
    b = dash.browser
    for _ in range(presses):
        if await b.js("return document.activeElement.matches(arguments[0]);", css):
            return
        await b.run(lambda: b.driver.switch_to.active_element.send_keys(Keys.TAB))
    raise AssertionError(f"Tab never reached {css}")


async def test_the_keyboard_alone_applies_a_cooldown(dash: Dashboard) -> None:
    await dash.login()
    await dash.open("keys")
    b = dash.browser
    await b.js("document.activeElement.blur();")
    await tab_to(dash, f'{ROW.format("pool-b")} button[data-action="cooldown"]')
    await b.run(lambda: b.driver.switch_to.active_element.send_keys(Keys.ENTER))
    await b.wait_for("dialog#confirm-dialog")
    await tab_to(dash, "#cooldown-seconds", presses=6)
    await b.run(lambda: b.driver.switch_to.active_element.send_keys(Keys.CONTROL, "a"))
    await b.run(lambda: b.driver.switch_to.active_element.send_keys("90"))
    await tab_to(dash, "#cooldown-reason", presses=6)
    await b.run(lambda: b.driver.switch_to.active_element.send_keys("keyboard"))
    await tab_to(dash, "#confirm-ok", presses=6)
    await b.run(lambda: b.driver.switch_to.active_element.send_keys(Keys.ENTER))
    await b.wait_until(
        lambda d: d.find_element(By.ID, "action-result").text.strip(), "no #action-result"
    )
    state = await dash.key_state("pool-b")
    assert state["state"] == "cooldown" and state.get("reason") == "keyboard", state
