"""Operations on one task through the SDK (scale-api.md §3.1): get, unique_id, metadata, tags,
cancel, audit."""

import threading

from scaleapi.exceptions import (
    ScaleDuplicateResource,
    ScaleInvalidRequest,
    ScaleResourceNotFound,
)
from support import raises, small_task

MISSING = "5c84d0fe958593004f13e5ba"


# --- get ---------------------------------------------------------------------------------------


def test_get_task_and_refresh(client):
    task = small_task(client, metadata={"a": 1})
    got = client.get_task(task.id)
    for key in ("task_id", "type", "status", "created_at", "completed_at", "params", "response",
                "metadata", "is_test"):
        assert got.as_dict().get(key) == task.as_dict().get(key), key
    task.refresh()
    assert task.as_dict()["task_id"] == got.id
    assert task.metadata == {"a": 1}


# --- unique_id ---------------------------------------------------------------------------------


def test_create_with_unique_id_and_duplicate_is_409(client, uniq):
    uid = uniq("s3://bucket/file") + ".png"
    first = small_task(client, unique_id=uid)
    assert first.unique_id == uid
    err = raises(ScaleDuplicateResource, small_task, client, unique_id=uid, code=409)
    assert first.id in err.message, f"the 409 message should name the task: {err.message!r}"
    # the original task is unchanged, and the list filter finds exactly it
    found = client.tasks(unique_id=uid)
    assert [t.id for t in found] == [first.id]


def test_unique_id_is_per_mode(client, live_client, uniq):
    uid = uniq("per-mode")
    t = small_task(client, unique_id=uid)
    l = small_task(live_client, unique_id=uid)
    assert t.id != l.id
    assert [x.id for x in client.tasks(unique_id=uid)] == [t.id]
    assert [x.id for x in live_client.tasks(unique_id=uid)] == [l.id]


def test_unique_id_is_per_team(client, other_client, uniq):
    uid = uniq("per-team")
    a = small_task(client, unique_id=uid)
    b = small_task(other_client, unique_id=uid)
    assert a.id != b.id


def test_update_task_unique_id(client, uniq):
    old, new, taken = uniq("old"), uniq("new"), uniq("taken")
    task = small_task(client, unique_id=old)
    other = small_task(client, unique_id=taken)

    updated = client.update_task_unique_id(task.id, new)
    assert updated.id == task.id
    assert updated.unique_id == new
    assert client.get_task(task.id).unique_id == new
    assert [t.id for t in client.tasks(unique_id=new)] == [task.id]
    assert list(client.tasks(unique_id=old)) == []
    # the old value is free again
    assert small_task(client, unique_id=old).unique_id == old

    # a value used by another task -> 409 (a JSON-object body, so the SDK raises cleanly)
    raises(ScaleDuplicateResource, client.update_task_unique_id, task.id, taken, code=409)
    assert client.get_task(task.id).unique_id == new
    assert client.get_task(other.id).unique_id == taken

    # setting a task's own value again is fine
    assert client.update_task_unique_id(task.id, new).unique_id == new

    # Task helper
    task2 = client.get_task(task.id)
    task2.update_unique_id(uniq("via-helper"))
    assert client.get_task(task.id).unique_id.startswith("via-helper")

    raises(ScaleResourceNotFound, client.update_task_unique_id, MISSING, uniq("x"), code=404)


def test_update_unique_id_on_task_without_one(client, uniq):
    task = small_task(client)
    uid = uniq("late")
    assert client.update_task_unique_id(task.id, uid).unique_id == uid


def test_clear_task_unique_id(client, uniq):
    uid = uniq("clear")
    task = small_task(client, unique_id=uid)
    cleared = client.clear_task_unique_id(task.id)
    assert cleared.id == task.id
    assert "unique_id" not in cleared.as_dict(), cleared.as_dict()
    assert not hasattr(cleared, "unique_id")
    assert "unique_id" not in client.get_task(task.id).as_dict()
    assert list(client.tasks(unique_id=uid)) == []
    # the value can be used again
    assert small_task(client, unique_id=uid).unique_id == uid
    # clearing again is harmless; unknown task -> 404
    assert "unique_id" not in client.clear_task_unique_id(task.id).as_dict()
    raises(ScaleResourceNotFound, client.clear_task_unique_id, MISSING, code=404)


# --- metadata ----------------------------------------------------------------------------------


def test_set_task_metadata_replaces(client):
    task = small_task(client, metadata={"old": True, "keep": "no"})
    md = {"filename": "kitten.png", "nested": {"n": [1, 2, 3]}, "flag": False}
    updated = client.set_task_metadata(task.id, md)
    assert updated.id == task.id
    assert updated.metadata == md
    assert client.get_task(task.id).metadata == md
    assert client.set_task_metadata(task.id, {}).metadata == {}
    raises(ScaleResourceNotFound, client.set_task_metadata, MISSING, {"a": 1}, code=404)


def test_metadata_defaults_to_empty_object(client):
    assert small_task(client).metadata == {}


# --- tags --------------------------------------------------------------------------------------


def test_tags_set_add_delete(client):
    task = small_task(client)
    assert "tags" not in task.as_dict()

    t = client.set_task_tags(task.id, ["a", "b"])
    assert t.tags == ["a", "b"]
    t = client.add_task_tags(task.id, ["b", "c", "d"])
    assert t.tags == ["a", "b", "c", "d"]
    t = client.delete_task_tags(task.id, ["a", "zzz"])
    assert t.tags == ["b", "c", "d"]
    assert client.get_task(task.id).tags == ["b", "c", "d"]
    t = client.set_task_tags(task.id, ["x"])
    assert t.tags == ["x"]
    # deleting all: either [] or the key disappears (§8.2)
    t = client.delete_task_tags(task.id, ["x"])
    assert t.as_dict().get("tags", []) == []

    for fn in (client.set_task_tags, client.add_task_tags, client.delete_task_tags):
        raises(ScaleResourceNotFound, fn, MISSING, ["a"], code=404)


def test_create_with_tags(client):
    task = small_task(client, tags=["alpha", "beta"])
    assert task.tags == ["alpha", "beta"]
    assert "tags" not in task.params


def test_tags_via_task_helpers(client):
    task = small_task(client)
    task.set_tags(["one"])
    task.add_tags(["two"])
    task.delete_tags(["one"])
    assert client.get_task(task.id).tags == ["two"]


# --- cancel ------------------------------------------------------------------------------------


def test_live_task_is_pending_and_can_be_canceled(live_client):
    task = small_task(live_client)
    d = task.as_dict()
    assert d["status"] == "pending", d
    assert not d.get("is_test"), d
    assert "response" not in d or d["response"] in (None, {}), d
    assert not d.get("completed_at"), d

    canceled = live_client.cancel_task(task.id)
    assert canceled.id == task.id
    assert canceled.status == "canceled"
    assert live_client.get_task(task.id).status == "canceled"

    # already canceled -> 400 (never 409 on a task path, §2.3)
    raises(ScaleInvalidRequest, live_client.cancel_task, task.id, code=400)


def test_cancel_with_clear_unique_id(live_client, uniq):
    uid = uniq("cancel-clear")
    task = small_task(live_client, unique_id=uid)
    canceled = live_client.cancel_task(task.id, clear_unique_id=True)
    assert canceled.status == "canceled"
    assert "unique_id" not in canceled.as_dict(), canceled.as_dict()
    assert "unique_id" not in live_client.get_task(task.id).as_dict()
    # the unique_id is free again
    assert small_task(live_client, unique_id=uid).unique_id == uid


def test_cancel_without_clear_keeps_unique_id(live_client, uniq):
    uid = uniq("cancel-keep")
    task = small_task(live_client, unique_id=uid)
    task.cancel()
    got = live_client.get_task(task.id)
    assert got.status == "canceled"
    assert got.unique_id == uid


def test_cancel_completed_test_task_is_400(client):
    task = small_task(client)
    assert task.status == "completed"
    err = raises(ScaleInvalidRequest, client.cancel_task, task.id, code=400)
    assert err.message
    assert client.get_task(task.id).status == "completed"


def test_cancel_unknown_task_is_404(client):
    raises(ScaleResourceNotFound, client.cancel_task, MISSING, code=404)
    raises(ScaleResourceNotFound, client.cancel_task, MISSING, True, code=404)


# --- audit -------------------------------------------------------------------------------------


def test_audit_accept_and_reject(client, uniq):
    tag = uniq("audit")
    good = small_task(client, tags=[tag])
    bad = small_task(client, tags=[tag])
    untouched = small_task(client, tags=[tag])

    assert client.audit_task(good.id, True) is None  # the SDK returns nothing
    client.audit_task(bad.id, False, "wrong category")

    g = client.get_task(good.id).as_dict()
    b = client.get_task(bad.id).as_dict()
    assert g.get("customer_review_status") == "accepted", g
    assert b.get("customer_review_status") == "rejected", b
    assert isinstance(g.get("audits"), list) and g["audits"], g
    assert isinstance(b.get("audits"), list) and b["audits"], b
    assert g["status"] == "completed" and b["status"] == "completed"

    # the review-status filter (comma-joined for several values, §3.0)
    accepted = {t.id for t in client.tasks(tags=tag, customer_review_status="accepted")}
    assert accepted == {good.id}
    both = {t.id for t in client.tasks(tags=tag, customer_review_status="accepted,rejected")}
    assert both == {good.id, bad.id}
    assert untouched.id not in both

    good.audit(False, "changed my mind")
    assert client.get_task(good.id).as_dict().get("customer_review_status") == "rejected"


def test_audit_unknown_task_is_404(client):
    raises(ScaleResourceNotFound, client.audit_task, MISSING, True, code=404)


# --- concurrency -------------------------------------------------------------------------------


def _race(n, fn):
    """Runs fn() n times at once; returns (results, exceptions)."""
    barrier = threading.Barrier(n)
    results, errors = [], []
    lock = threading.Lock()

    def run():
        barrier.wait()
        try:
            r = fn()
            with lock:
                results.append(r)
        except Exception as e:  # noqa: BLE001 - collected for the assertions
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_concurrent_creates_with_one_unique_id(client, uniq):
    uid = uniq("race")
    results, errors = _race(8, lambda: small_task(client, unique_id=uid))
    assert len(results) == 1, f"{len(results)} creates succeeded: {errors}"
    assert all(isinstance(e, ScaleDuplicateResource) for e in errors), errors
    assert [t.id for t in client.tasks(unique_id=uid)] == [results[0].id]


def test_concurrent_unique_id_updates(client, uniq):
    uid = uniq("race-set")
    tasks = [small_task(client) for _ in range(6)]
    it = iter(tasks)
    lock = threading.Lock()

    def set_one():
        with lock:
            t = next(it)
        return client.update_task_unique_id(t.id, uid)

    results, errors = _race(6, set_one)
    assert len(results) == 1, f"{len(results)} updates succeeded: {errors}"
    assert all(isinstance(e, ScaleDuplicateResource) for e in errors), errors
    assert [t.id for t in client.tasks(unique_id=uid)] == [results[0].id]


def test_unique_id_with_special_characters(client):
    from conftest import RUN

    for uid in (f"s3://bucket/a b/{RUN}.png", f"{RUN}&x=1?y#z", f"{RUN}-ünï-日本", f"{RUN} + %2F"):
        task = small_task(client, unique_id=uid)
        assert task.unique_id == uid
        assert [t.id for t in client.tasks(unique_id=uid)] == [task.id], uid
        raises(ScaleDuplicateResource, small_task, client, unique_id=uid, code=409)
