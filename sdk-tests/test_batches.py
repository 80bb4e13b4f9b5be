"""Batches through the SDK (scale-api.md §3.2, §4.2, §4.5)."""

import pytest
from scaleapi.batches import BatchStatus
from scaleapi.exceptions import (
    ScaleDuplicateResource,
    ScaleException,
    ScaleInvalidRequest,
    ScaleResourceNotFound,
)
from scaleapi.tasks import TaskType

from support import ISO_MS_Z, check_error_response, check_ok_json, pause, raises, small_task

N_BATCHES = 105


@pytest.fixture
def project(client, uniq):
    name = uniq("batch-proj")
    client.create_project(name, TaskType.Categorization)
    return name


def test_create_get_batch(client, project, uniq):
    name = uniq("batch")
    batch = client.create_batch(project, name, metadata={"week": 7})
    assert batch.name == name
    assert batch.project == project
    assert batch.status == "in_progress"  # a normal (non-Rapid) project
    assert ISO_MS_Z.match(batch.created_at), batch.created_at
    assert batch.metadata == {"week": 7}

    got = client.get_batch(name)
    assert (got.name, got.project, got.status, got.created_at, got.metadata) == (
        name,
        project,
        "in_progress",
        batch.created_at,
        {"week": 7},
    )
    d = got.as_dict()
    assert "callback" in d


def test_create_batch_defaults(client, project, uniq):
    batch = client.create_batch(project, uniq("plain"))
    assert batch.metadata == {}


def test_batch_with_callback(client, project, uniq):
    batch = client.create_batch(project, uniq("cb"), callback="http://127.0.0.1:9/batch-done")
    assert batch.as_dict().get("callback") == "http://127.0.0.1:9/batch-done"


def test_duplicate_batch_name_is_409(client, project, uniq):
    name = uniq("dup")
    client.create_batch(project, name)
    raises(ScaleDuplicateResource, client.create_batch, project, name, code=409)
    # also when the second create names another project of the team
    other = uniq("batch-proj-2")
    client.create_project(other, TaskType.Categorization)
    raises(ScaleDuplicateResource, client.create_batch, other, name, code=409)


def test_batch_in_unknown_project_is_404(client, uniq):
    raises(ScaleResourceNotFound, client.create_batch, uniq("nope"), uniq("b"), code=404)


def test_unknown_batch_is_404(client, uniq):
    missing = uniq("missing-batch")
    raises(ScaleResourceNotFound, client.get_batch, missing, code=404)
    raises(ScaleResourceNotFound, client.finalize_batch, missing, code=404)
    raises(ScaleResourceNotFound, client.batch_status, missing, code=404)
    raises(ScaleResourceNotFound, client.set_batch_metadata, missing, {"a": 1}, code=404)


def test_finalize(client, project, uniq):
    batch = client.create_batch(project, uniq("fin"))
    done = client.finalize_batch(batch.name)
    assert done.name == batch.name
    assert done.status == "in_progress"
    # again: still 200
    assert batch.finalize().status == "in_progress"


def test_rapid_batch_stages_until_finalized(client, uniq):
    project = uniq("rapid")
    client.create_project(project, TaskType.ImageAnnotation, rapid=True)
    batch = client.create_batch(project, uniq("rapid-batch"))
    assert batch.status == "staging"
    assert client.get_batch(batch.name).status == "staging"
    assert client.finalize_batch(batch.name).status == "in_progress"
    assert client.get_batch(batch.name).status == "in_progress"


def test_status_counts_test_mode(client, project, uniq):
    batch = client.create_batch(project, uniq("counts"))
    tasks = [small_task(client, batch=batch.name) for _ in range(3)]
    for t in tasks:
        assert t.batch == batch.name
        assert t.project == project
    status = client.batch_status(batch.name)
    assert status["status"] in ("in_progress", "completed"), status
    assert status.get("completed", 0) == 3, status
    assert status.get("pending", 0) == 0, status

    b = client.get_batch(batch.name)
    b.get_status()
    assert b.tasks_completed == 3 and b.tasks_pending == 0


def test_status_counts_live_mode(live_client, uniq):
    project = uniq("live-batch-proj")
    live_client.create_project(project, TaskType.Categorization)
    batch = live_client.create_batch(project, uniq("live-counts"))
    a = small_task(live_client, batch=batch.name)
    small_task(live_client, batch=batch.name)
    b = small_task(live_client, batch=batch.name)
    live_client.cancel_task(b.id)
    status = live_client.batch_status(batch.name)
    assert status["status"] == "in_progress", status
    assert status.get("pending", 0) == 2, status
    assert status.get("canceled", 0) == 1, status
    assert status.get("completed", 0) == 0, status
    assert a.status == "pending"


def test_set_batch_metadata_replaces(client, project, uniq):
    batch = client.create_batch(project, uniq("md"), metadata={"old": 1})
    updated = client.set_batch_metadata(batch.name, {"new": [1, 2], "deep": {"x": None}})
    assert updated.metadata == {"new": [1, 2], "deep": {"x": None}}
    assert client.get_batch(batch.name).metadata == {"new": [1, 2], "deep": {"x": None}}


def test_batch_names_with_slash_and_space(client, project, uniq):
    name = uniq("a b/c") + " d%2Fe+f"
    batch = client.create_batch(project, name)
    assert batch.name == name
    assert client.get_batch(name).name == name
    assert client.batch_status(name)["status"]
    assert client.set_batch_metadata(name, {"ok": True}).metadata == {"ok": True}
    t = small_task(client, batch=name)
    assert t.batch == name
    assert [x.id for x in client.tasks(batch=name)] == [t.id]
    assert [x.id for x in client.get_tasks(batch_name=name)] == [t.id]


def test_task_with_unknown_batch_is_rejected(client, uniq):
    with pytest.raises(ScaleException) as info:
        small_task(client, batch=uniq("no-such-batch"))
    assert info.value.code in (400, 404), info.value


def test_batch_list_filters(client, uniq):
    project = uniq("list-filters")
    client.create_project(project, TaskType.Categorization, rapid=True)
    staged = client.create_batch(project, uniq("staged"))
    pause()
    running = client.create_batch(project, uniq("running"))
    client.finalize_batch(running.name)

    all_names = {b.name for b in client.get_batches(project_name=project)}
    assert all_names == {staged.name, running.name}
    got = {b.name for b in client.get_batches(project_name=project, batch_status=BatchStatus.Staging)}
    assert got == {staged.name}
    got = {
        b.name for b in client.get_batches(project_name=project, batch_status=BatchStatus.InProgress)
    }
    assert got == {running.name}
    # created_after / created_before map to start_time / end_time
    got = {b.name for b in client.get_batches(project_name=project, created_after=running.created_at)}
    assert got == {running.name}
    got = {b.name for b in client.get_batches(project_name=project, created_before=staged.created_at)}
    assert got == {staged.name}


@pytest.fixture(scope="module")
def many_batches(client):
    from conftest import RUN

    project = f"many-batches-{RUN}"
    client.create_project(project, TaskType.Categorization)
    names = [client.create_batch(project, f"mb-{RUN}-{i:03d}").name for i in range(N_BATCHES)]
    return project, names


def test_get_batches_pages(client, many_batches):
    project, names = many_batches
    got = list(client.get_batches(project_name=project))
    got_names = [b.name for b in got]
    assert len(got_names) == N_BATCHES, f"{len(got_names)} batches came back"
    assert len(set(got_names)) == N_BATCHES, "duplicates across pages"
    assert set(got_names) == set(names), "gaps across pages"
    stamps = [b.created_at for b in got]
    assert stamps == sorted(stamps, reverse=True), "batches are not newest-first"


def test_batches_page_envelope(client, raw, many_batches):
    project, names = many_batches
    page = client.batches(project=project, limit=10, offset=0)
    assert len(page) == 10 and page.total == N_BATCHES and page.limit == 10
    assert page.offset == 0 and page.has_more is True
    last = client.batches(project=project, limit=10, offset=100)
    assert len(last) == N_BATCHES - 100 and last.has_more is False
    assert not {b.name for b in page} & {b.name for b in last}

    body = check_ok_json(
        raw.get("batches", params={"project": project, "offset": 0, "exclude_archived": "False"})
    )
    for key in ("docs", "totalDocs", "limit", "offset", "has_more"):
        assert key in body, f"batch list envelope lacks {key}: {sorted(body)}"
    assert body["totalDocs"] == N_BATCHES
    assert body["limit"] == 100 and len(body["docs"]) == 100 and body["has_more"] is True


@pytest.mark.parametrize("limit", [0, 101])
def test_batches_limit_out_of_range_is_400(raw, limit):
    check_error_response(raw.get("batches", params={"limit": limit}), 400)


def test_concurrent_batch_creates_with_one_name(client, project, uniq):
    import threading

    name = uniq("race-batch")
    barrier = threading.Barrier(6)
    outcomes = []

    def run():
        barrier.wait()
        try:
            client.create_batch(project, name)
            outcomes.append("ok")
        except ScaleDuplicateResource:
            outcomes.append("dup")
        except Exception as e:  # noqa: BLE001
            outcomes.append(repr(e))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["dup"] * 5 + ["ok"], outcomes
    assert [b.name for b in client.get_batches(project_name=project)].count(name) == 1


def test_rapid_batch_takes_tasks_only_before_finalize(client, uniq):
    project = uniq("rapid-add")
    client.create_project(project, TaskType.Categorization, rapid=True)
    batch = client.create_batch(project, uniq("rapid-add-batch"))
    assert batch.status == "staging"
    t = small_task(client, batch=batch.name)
    assert t.batch == batch.name
    client.finalize_batch(batch.name)
    # §3.3: no new tasks after finalize (code assumed 400, §8.9)
    raises(ScaleInvalidRequest, small_task, client, batch=batch.name, code=400)
    assert [x.id for x in client.get_tasks(batch_name=batch.name)] == [t.id]


def test_unicode_batch_and_project_names(client, uniq):
    project = uniq("projekt-ü/日本")
    client.create_project(project, TaskType.Categorization)
    assert client.get_project(project).name == project
    name = uniq("lot-é 🚀/x")
    assert client.create_batch(project, name).name == name
    assert client.get_batch(name).project == project
    t = small_task(client, batch=name)
    assert [x.id for x in client.get_tasks(batch_name=name)] == [t.id]
    assert [x.id for x in client.get_tasks(project_name=project)] == [t.id]
