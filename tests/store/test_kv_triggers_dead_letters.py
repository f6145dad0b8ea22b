"""KV with types and TTL, trigger cursors, dead letters."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from actors._store import DeadLetter, KVType, Store, TriggerState
from flows import StoreError
from tests.polling import eventually

pytestmark = pytest.mark.integration


TYPED_VALUES: list[tuple[Any, KVType]] = [
    ("hello ✓", KVType.STRING),
    ("", KVType.STRING),
    (42, KVType.NUMBER),
    (-3.25, KVType.NUMBER),
    (10**18, KVType.NUMBER),
    (True, KVType.BOOLEAN),
    (False, KVType.BOOLEAN),
    ({"a": [1, 2.5, None, {"b": "c"}], "ok": True}, KVType.JSON),
    ([1, "two"], KVType.JSON),
    (None, KVType.JSON),
    (dt.datetime(2030, 1, 2, 3, 4, 5, 6789, tzinfo=dt.UTC), KVType.DATETIME),
    (
        dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        KVType.DATETIME,
    ),
    (dt.date(2030, 12, 31), KVType.DATE),
    (dt.timedelta(days=2, hours=3, minutes=4, seconds=5, microseconds=6), KVType.DURATION),
    (dt.timedelta(0), KVType.DURATION),
    (-dt.timedelta(seconds=90), KVType.DURATION),
]


async def test_typed_values_round_trip(store: Store) -> None:
    for index, (value, kv_type) in enumerate(TYPED_VALUES):
        key = f"key-{index}"
        written = await store.kv_set("ns", key, value)
        read = await store.kv_get("ns", key)
        assert read is not None, value
        assert (read.type, written.type) == (kv_type, kv_type), value
        assert read.value == value and type(read.value) is type(value), value
        if isinstance(value, dt.datetime):
            assert read.value.utcoffset() == value.utcoffset()


async def test_explicit_types_convert_iso_text_and_refuse_mismatches(store: Store) -> None:
    entry = await store.kv_set("ns", "d", "PT1H30M", type=KVType.DURATION)
    assert entry.value == dt.timedelta(hours=1, minutes=30)
    entry = await store.kv_set("ns", "j", "just text", type=KVType.JSON)
    assert entry.value == "just text" and entry.type is KVType.JSON
    with pytest.raises(StoreError, match="as a KV BOOLEAN"):
        await store.kv_set("ns", "b", "yes", type=KVType.BOOLEAN)
    with pytest.raises(StoreError):
        await store.kv_set("ns", "n", float("nan"))


async def test_a_ttl_in_the_past_is_already_expired(store: Store) -> None:
    await store.kv_set("ns", "gone", "x", ttl=dt.timedelta(seconds=-1))
    await store.kv_set("ns", "kept", "y", ttl=dt.timedelta(hours=1))
    assert await store.kv_get("ns", "gone") is None
    kept = await store.kv_get("ns", "kept")
    assert kept is not None and kept.expires_at is not None
    assert [e.key for e in await store.kv_list("ns")] == ["kept"]
    assert not await store.kv_delete("ns", "gone")  # expired counts as absent
    assert await store.kv_purge_expired() == 0  # kv_delete removed the row already
    await store.kv_set("ns", "gone2", "x", ttl=dt.timedelta(seconds=-1))
    assert await store.kv_purge_expired() == 1
    assert await store.kv_delete("ns", "kept")
    assert await store.kv_get("ns", "kept") is None


async def test_a_value_expires_at_its_ttl(store: Store) -> None:
    ttl = dt.timedelta(milliseconds=300)
    entry = await store.kv_set("ns", "soon", 1, ttl=ttl)
    assert entry.expires_at is not None
    assert entry.expires_at - entry.updated_at == ttl
    assert await store.kv_get("ns", "soon") is not None  # read well within the TTL

    async def expired() -> bool:
        return await store.kv_get("ns", "soon") is None

    await eventually(expired, within=10, what="the value to expire", interval=0.05)


async def test_setting_again_replaces_value_type_and_expiry(store: Store) -> None:
    await store.kv_set("ns", "k", "text", ttl=dt.timedelta(seconds=-1))
    entry = await store.kv_set("ns", "k", 7)
    assert entry.type is KVType.NUMBER and entry.expires_at is None
    again = await store.kv_get("ns", "k")
    assert again is not None and again.value == 7
    assert await store.kv_get("other-ns", "k") is None


async def test_trigger_cursors_are_saved_and_read(store: Store) -> None:
    at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    await store.save_trigger_state(
        TriggerState(namespace="shop", flow_id="alerts", trigger_id="orders", cursor={"0": 1})
    )
    await asyncio.gather(
        *(
            store.save_trigger_state(
                TriggerState(
                    namespace="shop",
                    flow_id="alerts",
                    trigger_id="orders",
                    cursor={"0": offset},
                    last_event_at=at,
                    status="FAILED" if offset == 9 else "RUNNING",
                    last_error="broker gone" if offset == 9 else None,
                )
            )
            for offset in range(2, 10)
        )
    )
    state = await store.get_trigger_state("shop", "alerts", "orders")
    assert state is not None
    assert (state.cursor, state.status, state.last_error, state.last_event_at) == (
        {"0": 9},
        "FAILED",
        "broker gone",
        at,
    )
    assert state.updated_at is not None
    assert await store.get_trigger_state("shop", "alerts", "other") is None
    assert [s.trigger_id for s in await store.list_trigger_states("shop")] == ["orders"]


async def test_dead_letters_keep_the_raw_payload(store: Store) -> None:
    raw = b"\x00\xff{not json"
    written = await store.write_dead_letter(
        DeadLetter(
            source="kafka:orders/3@17",
            payload=raw,
            reason="JSON deserializer: Expecting value at 0",
            attempts=3,
            metadata={"key": "abc", "headers": {"h": "v"}},
            namespace="shop",
            flow_id="alerts",
            trigger_id="orders",
        )
    )
    assert written.created_at is not None
    letters = await store.list_dead_letters(source="kafka:orders/3@17")
    assert letters == [written]
    assert letters[0].payload == raw and letters[0].attempts == 3
    assert await store.list_dead_letters(flow_id="other") == []
