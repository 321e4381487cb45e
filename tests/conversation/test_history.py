"""Choosing the history for a budget: pure logic, no store."""

from __future__ import annotations

from conversation.history import Entry, group_turns, select_history, tokenizer_id
from conversation.models import Message
from kernel.tokens import count_message_tokens


def stored(*specs: tuple[str, str, int], model: str = "gpt-4o") -> list[Entry]:
    """Entries as a read returns them, from (role, content, turn), seq in order, in stored form."""
    from conversation.history import message_cost

    out = []
    for seq, (role, content, turn) in enumerate(specs, start=1):
        message = Message(role=role, content=content, tool_call_id="c1" if role == "tool" else None)  # type: ignore[arg-type]
        tokens = message_cost(message.to_provider(), model)
        header = f'{{"seq":{seq},"turn":{turn},"tokens":{tokens},"ts":1718000000000,'
        header += f'"tk":"{tokenizer_id(model)}",'
        out.append(Entry(header + message.body()[1:], seq - 1))
    return out


def provider_form(entries: list[Entry]) -> list[dict[str, object]]:
    return [entry.message.to_provider() for entry in entries]


def pairs(n: int) -> list[Entry]:
    specs = []
    for i in range(n):
        specs += [
            ("user", f"question number {i}", 2 * i + 1),
            ("assistant", f"answer number {i}", 2 * i + 1),
        ]
    return stored(*specs)


def test_no_budget_keeps_everything() -> None:
    messages, tokens, dropped, turns = select_history(
        pairs(3), model="gpt-4o", max_tokens=None, system_prompt="sys"
    )
    assert len(messages) == 7 and dropped == turns == 0
    assert tokens == count_message_tokens(messages, "gpt-4o")


def test_each_budget_keeps_the_longest_suffix_of_whole_turns_that_fits() -> None:
    history = pairs(6)
    full = count_message_tokens(
        [{"role": "system", "content": "sys"}, *provider_form(history)], "gpt-4o"
    )
    for budget in range(0, full + 5):
        messages, tokens, dropped, turns = select_history(
            history, model="gpt-4o", max_tokens=budget, system_prompt="sys"
        )
        assert messages[0] == {"role": "system", "content": "sys"}
        assert tokens == count_message_tokens(messages, "gpt-4o")
        kept = messages[1:]
        assert len(kept) % 2 == 0 and dropped == 2 * turns == 12 - len(kept)
        assert kept == provider_form(history[dropped:])
        if turns and tokens <= budget:  # one more turn would not have fitted
            bigger = [messages[0], *provider_form(history[dropped - 2 :])]
            assert count_message_tokens(bigger, "gpt-4o") > budget


def test_tool_results_stay_with_their_call_and_orphans_are_never_sent() -> None:
    history = stored(
        ("user", "weather?", 1),
        ("assistant", "calling", 1),
        ("tool", "3 degrees", 3),  # a later turn continuing the first one
        ("assistant", "it is cold", 3),
        ("user", "thanks", 5),
        ("assistant", "welcome", 5),
    )
    assert [len(unit) for unit in group_turns(history)] == [4, 2]
    last = count_message_tokens(provider_form(history[4:]), "gpt-4o")
    messages, _, dropped, turns = select_history(
        history, model="gpt-4o", max_tokens=last, system_prompt=None
    )
    assert [m["content"] for m in messages] == ["thanks", "welcome"] and (dropped, turns) == (4, 1)
    # A list that starts with a tool result (its call trimmed away earlier) does not send it.
    messages, tokens, dropped, _ = select_history(
        history[2:], model="gpt-4o", max_tokens=None, system_prompt=None
    )
    assert messages[0]["role"] == "assistant" and dropped == 1
    assert tokens == count_message_tokens(messages, "gpt-4o")


def test_pending_messages_are_always_kept_and_counted() -> None:
    pending = [Message.user("the new question " * 20)]
    messages, tokens, _, turns = select_history(
        pairs(3), model="gpt-4o", max_tokens=20, system_prompt="s", pending=pending
    )
    assert messages == [{"role": "system", "content": "s"}, pending[0].to_provider()] and turns == 3
    assert tokens == count_message_tokens(messages, "gpt-4o") > 20


def test_stored_counts_are_reused_only_for_the_same_tokenizer() -> None:
    history = pairs(2)
    poisoned = [Entry.of(Message(**{**e.message.as_dict(), "tokens": 10_000})) for e in history]
    _, same, _, _ = select_history(
        poisoned, model="gpt-4o-mini", max_tokens=None, system_prompt=None
    )
    assert same > 40_000  # gpt-4o-mini counts with o200k_base too: the stored numbers are used
    _, other, _, _ = select_history(poisoned, model="gpt-4", max_tokens=None, system_prompt=None)
    assert other == count_message_tokens(provider_form(history), "gpt-4")


def test_tokenizer_ids() -> None:
    assert tokenizer_id("gpt-4o") == tokenizer_id("gpt-4.1-mini") == "o200k_base"
    assert tokenizer_id("gpt-4") == "cl100k_base"
    assert tokenizer_id("claude-3-5-sonnet-20241022") == "cl100k_base*1.1"
    assert tokenizer_id("gemini-2.5-flash") == "o200k_base*1.05"


def test_messages_that_are_not_sent_are_never_decoded() -> None:
    history = pairs(50)
    budget = count_message_tokens(provider_form(pairs(50)[-4:]), "gpt-4o")
    messages, _, dropped, _ = select_history(
        history, model="gpt-4o", max_tokens=budget, system_prompt=None
    )
    assert len(messages) == 4 and dropped == 96
    assert sum(entry._message is not None for entry in history) == 4


def test_a_corrupt_entry_names_its_index() -> None:
    import pytest

    entry = Entry('{"seq":1,"turn":1,"tokens":3,"ts":1,"tk":"o200k_base","role":"user",broken', 7)
    with pytest.raises(ValueError, match="index 7"):
        _ = entry.message
    with pytest.raises(ValueError, match="index 2"):
        Entry("not json at all", 2)
