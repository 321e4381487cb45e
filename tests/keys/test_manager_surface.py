"""KeyManager's public surface: the facade keeps every method and signature it had before it was
split into parts (document 004's names, the README's "Keys and health" section)."""

from __future__ import annotations

import inspect

from keys.manager import KeyManager

#: method -> its parameters after self: ``*`` keyword-only, ``**`` var-keyword, ``=`` default.
SURFACE = {
    "activate_key": "key_id",
    "add_key": "key *persist=False",
    "clear_cooldown": "key_id",
    "close": "",
    "deactivate_key": "key_id",
    "default_model": "",
    "extend_reservation": "selection",
    "flush": "",
    "get_all_key_statuses": "",
    "get_health_status": "",
    "get_key_status": "key_id",
    "get_rpm_usage": "key_id",
    "get_secret": "selection",
    "get_stats": "",
    "get_tpm_usage": "key_id",
    "health_check": "",
    "mark_key_unhealthy": "key_id cooldown_seconds=None reason='manual'",
    "put_key": "key *persist=False",
    "masked": "key_id",
    "record_failure": "selection error actual_tokens=None *provider_limits='' *cost_nanos=0 *said=''",
    "record_success": "selection actual_tokens=None *provider_limits='' *hold=0.0 *provider_room=(None, None) *provider_tolerance=(1.0, 1.0) *cost_nanos=None *usage=None *said='' *split=(None, None)",
    "release": "selection",
    "reload_keys": "",
    "remove_key": "key_id *persist=False",
    "save_keys": "path=None",
    "select_key": "model_preference=None tokens_needed=0 *tags=None *exclude=() *strategy=None *wait=0.0 *margin=None *budgets=() *cost_nanos=None *output_tokens=0 *admission=None",
    "start": "",
    "strategy_for_model": "model",
    "update_key": "key_id *persist=False **changes",
}


def parameters(name: str) -> str:
    out = []
    for p in list(inspect.signature(getattr(KeyManager, name)).parameters.values())[1:]:
        text = {p.KEYWORD_ONLY: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.default is not p.empty:
            text += "=" + repr(p.default)
        out.append(text)
    return " ".join(out)


def test_every_public_method_keeps_its_signature() -> None:
    public = {n for n, v in vars(KeyManager).items() if not n.startswith("_") and callable(v)}
    assert public == set(SURFACE)
    assert {name: parameters(name) for name in SURFACE} == SURFACE


def test_the_documented_methods_are_coroutines_as_before() -> None:
    plain = {"default_model", "masked", "strategy_for_model"}
    for name in SURFACE:
        assert inspect.iscoroutinefunction(getattr(KeyManager, name)) == (name not in plain), name
