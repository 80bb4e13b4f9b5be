"""Several SDK clients at once: no lost updates, no duplicate versions, and stable cursor paging
while tasks are being created (and when many share a millisecond)."""

import threading
from concurrent.futures import ThreadPoolExecutor

from scaleapi.exceptions import ScaleInvalidRequest
from scaleapi.tasks import TaskType

from support import small_task


def race(n, fn):
    """Runs fn(i) for i in range(n) at the same moment; returns (results, errors)."""
    barrier = threading.Barrier(n)
    results, errors = [], []
    lock = threading.Lock()

    def run(i):
        barrier.wait()
        try:
            r = fn(i)
            with lock:
                results.append(r)
        except Exception as e:  # noqa: BLE001 - collected for the assertions
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_concurrent_tag_additions_are_not_lost(client):
    task = small_task(client, tags=["base"])
    results, errors = race(8, lambda i: client.add_task_tags(task.id, [f"t{i}"]))
    assert not errors, errors
    tags = client.get_task(task.id).tags
    assert sorted(tags) == sorted(["base"] + [f"t{i}" for i in range(8)]), tags
    assert tags[0] == "base"


def test_concurrent_cancels(live_client):
    task = small_task(live_client)
    results, errors = race(6, lambda i: live_client.cancel_task(task.id))
    assert len(results) == 1, f"{len(results)} cancels succeeded"
    assert all(isinstance(e, ScaleInvalidRequest) for e in errors), errors
    assert live_client.get_task(task.id).status == "canceled"


def test_concurrent_project_updates_get_distinct_versions(client, uniq):
    name = uniq("race-versions")
    client.create_project(name, TaskType.Categorization, params={"instruction": "v0"})
    results, errors = race(6, lambda i: client.update_project(name, instruction=f"from {i}"))
    assert not errors, errors
    versions = [h["version"] for h in client.get_project(name).as_dict()["param_history"]]
    assert versions == list(range(7)), versions
    assert sorted(p.version for p in results) == list(range(1, 7))


def test_cursor_paging_is_stable_while_tasks_are_added(client, uniq):
    project = uniq("stable-cursor")
    client.create_project(project, TaskType.Categorization)
    original = {small_task(client, project=project).id for _ in range(30)}

    seen = []
    page = client.tasks(project=project, limit=7)
    seen += [t.id for t in page]
    added = set()
    while page.has_more:
        # newer tasks arrive between pages: they sort before the cursor, so never show up later
        added.add(small_task(client, project=project).id)
        page = client.tasks(project=project, limit=7, next_token=page.next_token)
        seen += [t.id for t in page]
    assert len(seen) == len(set(seen)), "a task came twice"
    assert set(seen) == original, (
        f"missing: {len(original - set(seen))}, unexpected: {len(set(seen) - original)}"
    )
    assert client.get_tasks_count(project_name=project) == 30 + len(added)


def test_cursor_paging_with_millisecond_ties(client, uniq):
    project = uniq("ties")
    client.create_project(project, TaskType.Categorization)
    with ThreadPoolExecutor(8) as pool:
        created = set(pool.map(lambda _: small_task(client, project=project).id, range(48)))
    assert len(created) == 48
    for limit in (1, 5, 13):
        got = [t.id for t in client.get_tasks(project_name=project, limit=limit)]
        assert len(got) == len(set(got)) == 48, f"limit={limit}: {len(got)} ids, {len(set(got))} distinct"
        assert set(got) == created
