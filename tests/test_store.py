"""The storage contract, on fakeredis and on a real server: what one load and one commit promise."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from bot.store import CommitStatus, SessionStore, short_id

PHONE, SID, SID2 = "+34600111222", "SM" + "1" * 32, "SM" + "2" * 32


@pytest.fixture
def store(client: redis.Redis) -> SessionStore:
    return SessionStore(client, prefix="t", session_ttl=1800, profile_ttl=86_400, dedupe_ttl=172_800)


def commit(store: SessionStore, sid: str, rev: str, reply: str, **fields: str) -> Any:
    return store.commit(
        store.keys(PHONE, sid),
        expected_rev=rev,
        fields={"r": str(int(rev or 0) + 1), **fields},
        reply=reply,
        profile_language=fields.get("language"),
    )


def test_keys_share_the_phones_hash_tag(store: SessionStore) -> None:
    keys = store.keys(PHONE, SID)
    assert keys.session == "t:session:{+34600111222}"
    assert keys.profile == "t:profile:{+34600111222}"
    assert keys.message == "t:msg:{+34600111222}:" + SID


def test_a_first_load_is_empty(store: SessionStore) -> None:
    snapshot = store.load(store.keys(PHONE, SID))
    assert (snapshot.prior_reply, snapshot.session, snapshot.profile_language) == (None, {}, None)


def test_commit_saves_the_session_reply_and_profile_with_expiries(store: SessionStore, client: redis.Redis) -> None:
    result = commit(store, SID, "", "<Response/>", step="menu", language="es")
    assert result.status is CommitStatus.OK
    snapshot = store.load(store.keys(PHONE, SID))
    assert snapshot.prior_reply == "<Response/>"
    assert snapshot.session == {"r": "1", "step": "menu", "language": "es", "n": short_id(SID)}
    assert snapshot.profile_language == "es"
    keys = store.keys(PHONE, SID)
    assert 1790 < client.ttl(keys.session) <= 1800
    assert 86_300 < client.ttl(keys.profile) <= 86_400
    assert 172_700 < client.ttl(keys.message) <= 172_800


def test_commit_replaces_the_whole_hash(store: SessionStore) -> None:
    commit(store, SID, "", "a", step="menu", extra="x")
    commit(store, SID2, "1", "b", step="language")
    assert store.load(store.keys(PHONE, SID2)).session == {"r": "2", "step": "language", "n": short_id(SID2)}


def test_a_message_is_committed_once(store: SessionStore) -> None:
    commit(store, SID, "", "first", step="menu")
    again = commit(store, SID, "1", "second", step="other")
    assert (again.status, again.prior_reply) == (CommitStatus.DUPLICATE, "first")
    assert store.load(store.keys(PHONE, SID2)).session["step"] == "menu"


def test_a_stale_rev_is_a_conflict_and_writes_nothing(store: SessionStore, client: redis.Redis) -> None:
    commit(store, SID, "", "first", step="menu")
    lost = commit(store, SID2, "", "second", step="other")
    assert lost.status is CommitStatus.CONFLICT
    assert not client.exists(store.keys(PHONE, SID2).message)
    assert store.load(store.keys(PHONE, SID2)).session["step"] == "menu"


def test_a_message_whose_record_expired_is_still_committed_once(store: SessionStore, client: redis.Redis) -> None:
    commit(store, SID, "", "first", step="menu")
    client.delete(store.keys(PHONE, SID).message)  # past DEDUPE_TTL_SECONDS
    snapshot = store.load(store.keys(PHONE, SID))
    assert (snapshot.prior_reply, snapshot.answered) == (None, True)
    again = commit(store, SID, "1", "second", step="other", n=snapshot.session["n"])
    assert (again.status, again.prior_reply) == (CommitStatus.DUPLICATE, "")
    assert store.load(store.keys(PHONE, SID2)).session["step"] == "menu"


def test_the_session_remembers_the_last_three_messages(store: SessionStore) -> None:
    sids = [f"SM{n:032x}" for n in range(1, 7)]
    seen = ""
    for rev, sid in enumerate(sids):
        commit(store, sid, str(rev or ""), "reply", step="menu", n=seen)
        seen = store.load(store.keys(PHONE, sid)).session["n"]
    assert seen.split() == [short_id(sid) for sid in reversed(sids[3:])]
    assert [len(short_id(sid)) for sid in sids] == [1, 1, 1, 1, 1, 1]
    assert short_id("SM" + "f" * 32) == "iakk7"  # 7 hex digits in at most 5 characters


def test_a_session_of_an_older_layout_is_checked_by_its_own_names(store: SessionStore, client: redis.Redis) -> None:
    """Layout 2 named the write counter ``rev`` and the answered messages ``seen`` (see bot.sessions)."""
    client.hset(store.keys(PHONE, SID).session, mapping={"v": "2", "rev": "4", "seen": SID[-7:], "step": "menu"})
    assert store.load(store.keys(PHONE, SID)).answered
    assert commit(store, SID, "4", "again", step="other").status is CommitStatus.DUPLICATE
    assert commit(store, SID2, "3", "stale", step="other").status is CommitStatus.CONFLICT
    assert commit(store, SID2, "4", "ok", step="other").status is CommitStatus.OK
    assert store.load(store.keys(PHONE, SID2)).session == {"r": "5", "step": "other", "n": short_id(SID2)}
