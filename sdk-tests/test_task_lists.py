"""Listing tasks through the SDK (scale-api.md §3.1, §3.1.1, §4.5): filters, cursor paging over
more than 100 tasks, counts, newest-first order."""

import datetime as dt

import pytest
from scaleapi.exceptions import ScaleException, ScaleInvalidRequest
from scaleapi.tasks import TaskReviewStatus, TaskStatus, TaskType

from support import VALID, check_error_response, check_ok_json, pause, raises, small_task

N_PAGED = 150


def ids(tasks):
    return [t.id for t in tasks]


def parse_ts(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


# --- filters -----------------------------------------------------------------------------------


def test_filters(client, uniq):
    project = uniq("filters")
    client.create_project(project, TaskType.Categorization)
    batch = uniq("filters-batch")
    client.create_batch(project, batch)
    tag_a, tag_b, uid = uniq("tagA"), uniq("tagB"), uniq("uid")

    t1 = small_task(client, project=project)
    t2 = client.create_task(
        TaskType.ImageAnnotation, project=project, tags=[tag_a], **VALID["imageannotation"]
    )
    t3 = small_task(client, batch=batch, unique_id=uid, tags=[tag_a, tag_b])
    assert t3.project == project and t3.batch == batch
    outsider = small_task(client, tags=[tag_a])  # no project

    everything = client.tasks(project=project)
    assert set(ids(everything)) == {t1.id, t2.id, t3.id}
    assert everything.total == 3
    # list entries are the same objects get_task returns (created_at byte-identical)
    listed = {t.id: t.as_dict() for t in everything}
    for t in (t1, t2, t3):
        got = client.get_task(t.id).as_dict()
        assert listed[t.id]["created_at"] == got["created_at"] == t.as_dict()["created_at"]
        assert listed[t.id]["params"] == got["params"]
        assert listed[t.id]["response"] == got["response"]

    assert set(ids(client.tasks(project=project, type="categorization"))) == {t1.id, t3.id}
    assert set(ids(client.tasks(project=project, type="imageannotation"))) == {t2.id}
    assert ids(client.tasks(batch=batch)) == [t3.id]
    assert ids(client.tasks(project=project, batch=batch)) == [t3.id]
    assert set(ids(client.tasks(project=project, tags=tag_a))) == {t2.id, t3.id}
    assert set(ids(client.tasks(tags=tag_a))) == {t2.id, t3.id, outsider.id}
    # several tags (repeated keys): any-vs-all is open (§8.3), but t3 has both
    both = set(ids(client.tasks(project=project, tags=[tag_a, tag_b])))
    assert t3.id in both and both <= {t2.id, t3.id}
    assert ids(client.tasks(unique_id=uid)) == [t3.id]
    assert ids(client.tasks(unique_id=[uid, uniq("absent")])) == [t3.id]
    assert set(ids(client.tasks(project=project, status="completed"))) == {t1.id, t2.id, t3.id}
    assert ids(client.tasks(project=project, status="pending")) == []
    assert client.tasks(project=project, status="pending").total == 0

    # the generator and the counter
    got = set(ids(client.get_tasks(project_name=project, task_type=TaskType.Categorization)))
    assert got == {t1.id, t3.id}
    assert ids(client.get_tasks(batch_name=batch)) == [t3.id]
    assert client.get_tasks_count(project_name=project) == 3
    assert client.get_tasks_count(project_name=project, status=TaskStatus.Completed) == 3
    assert client.get_tasks_count(project_name=project, tags=tag_b) == 1
    assert client.get_tasks_count(project_name=project, task_type=TaskType.ImageAnnotation) == 1

    # audit state filter through the SDK's comma-joined review_status
    client.audit_task(t1.id, True)
    client.audit_task(t2.id, False, "no")
    got = set(ids(client.get_tasks(project_name=project, review_status=TaskReviewStatus.Accepted)))
    assert got == {t1.id}
    got = set(
        ids(
            client.get_tasks(
                project_name=project,
                review_status=[TaskReviewStatus.Accepted, TaskReviewStatus.Rejected],
            )
        )
    )
    assert got == {t1.id, t2.id}


def test_status_filter_in_live_mode(live_client, uniq):
    project = uniq("live-status")
    live_client.create_project(project, TaskType.Categorization)
    a = small_task(live_client, project=project)
    b = small_task(live_client, project=project)
    live_client.cancel_task(b.id)
    assert ids(live_client.tasks(project=project, status="pending")) == [a.id]
    assert ids(live_client.tasks(project=project, status="canceled")) == [b.id]
    assert ids(live_client.tasks(project=project, status="completed")) == []
    assert live_client.get_tasks_count(project_name=project, status=TaskStatus.Pending) == 1
    assert live_client.get_tasks_count(project_name=project, status=TaskStatus.Canceled) == 1


def test_unknown_project_filter_is_empty_or_an_error(client, uniq):
    try:
        found = client.tasks(project=uniq("no-such-project"))
    except ScaleException as e:
        assert e.code in (400, 404), e
    else:
        assert list(found) == [] and found.total == 0


# --- time filters ------------------------------------------------------------------------------


def test_time_filters(client, uniq):
    project = uniq("times")
    client.create_project(project, TaskType.Categorization)
    a = small_task(client, project=project)
    pause()
    b = small_task(client, project=project)
    pause()
    c = small_task(client, project=project)
    ca, cb, cc = (t.as_dict()["created_at"] for t in (a, b, c))
    assert ca < cb < cc, (ca, cb, cc)

    def created(**kw):
        return set(ids(client.tasks(project=project, **kw)))

    # bounds are inclusive (§3.1.1)
    assert created(start_time=cb) == {b.id, c.id}
    assert created(end_time=cb) == {a.id, b.id}
    assert created(start_time=cb, end_time=cb) == {b.id}
    got = set(ids(client.get_tasks(project_name=project, created_after=cb)))
    assert got == {b.id, c.id}
    got = set(ids(client.get_tasks(project_name=project, created_before=ca)))
    assert got == {a.id}

    # the accepted spellings of the same instant
    t = parse_ts(cb)
    spellings = [
        t.strftime("%Y-%m-%d %H:%M:%S.%f"),  # the SDK docstring form
        t.replace(tzinfo=None).isoformat(),  # datetime.utcnow().isoformat()
        t.astimezone(dt.timezone(dt.timedelta(hours=-7))).isoformat(timespec="milliseconds"),
        t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    ]
    for s in spellings:
        assert created(start_time=s) == {b.id, c.id}, s

    # date-only values
    day = t.date()
    assert created(start_time=(day - dt.timedelta(days=1)).isoformat()) == {a.id, b.id, c.id}
    assert created(start_time=(day + dt.timedelta(days=2)).isoformat()) == set()
    assert created(end_time=(day - dt.timedelta(days=1)).isoformat()) == set()

    # completed_at bounds (test tasks complete at creation)
    assert created(completed_after=b.as_dict()["completed_at"]) == {b.id, c.id}
    assert created(completed_before=a.as_dict()["completed_at"]) == {a.id}

    # updated_at bounds, when the server reports updated_at
    pause()
    touched = client.set_task_metadata(a.id, {"touched": True}).as_dict()
    if "updated_at" in touched:
        assert touched["updated_at"] > cc
        assert created(updated_after=touched["updated_at"]) == {a.id}
        assert a.id not in created(updated_before=cc)


@pytest.mark.parametrize("param", ["start_time", "end_time", "completed_after", "updated_before"])
def test_bad_timestamp_is_400(raw, param):
    check_error_response(raw.get("tasks", params={param: "not a date"}), 400)


# --- paging ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paged_project(client):
    from conftest import RUN

    project = f"paged-{RUN}"
    client.create_project(project, TaskType.Categorization)
    created = [small_task(client, project=project).id for _ in range(N_PAGED)]
    return project, created


def check_newest_first(tasks):
    stamps = [t.as_dict()["created_at"] for t in tasks]
    assert stamps == sorted(stamps, reverse=True), "tasks are not newest-first"


def test_get_tasks_pages_over_all(client, paged_project):
    project, created = paged_project
    got = list(client.get_tasks(project_name=project))
    assert len(got) == N_PAGED, f"{len(got)} tasks came back"
    assert len(set(ids(got))) == N_PAGED, "duplicates across pages"
    assert set(ids(got)) == set(created), "gaps across pages"
    check_newest_first(got)
    stamp = {t.id: t.as_dict()["created_at"] for t in got}
    # newest first; ties on the millisecond may come in either order
    assert stamp[got[0].id] == stamp[created[-1]], "the newest task should come first"
    assert stamp[got[-1].id] == stamp[created[0]], "the oldest task should come last"

    small = list(client.get_tasks(project_name=project, limit=7))
    assert ids(small) == ids(got), "paging with limit=7 gives a different sequence"


def test_tasks_page_envelope(client, paged_project):
    project, created = paged_project
    first = client.tasks(project=project, limit=10)
    assert len(first) == 10
    assert first.total == N_PAGED
    assert first.limit == 10
    assert first.has_more is True
    assert first.next_token
    assert isinstance(first.offset, int)

    second = client.tasks(project=project, limit=10, next_token=first.next_token)
    assert len(second) == 10
    assert second.total == N_PAGED, "total must not depend on the page"
    assert not set(ids(first)) & set(ids(second))
    check_newest_first(list(first) + list(second))

    p1 = client.tasks(project=project)  # default limit 100
    assert len(p1) == 100 and p1.has_more and p1.next_token and p1.total == N_PAGED
    p2 = client.tasks(project=project, next_token=p1.next_token)
    assert len(p2) == N_PAGED - 100
    assert p2.has_more is False
    assert not p2.next_token
    assert p2.total == N_PAGED
    assert set(ids(p1)) | set(ids(p2)) == set(created)


def test_tasks_page_envelope_raw(raw, paged_project):
    project, _ = paged_project
    body = check_ok_json(raw.get("tasks", params={"project": project, "limit": 5}))
    for key in ("docs", "total", "limit", "offset", "has_more", "next_token"):
        assert key in body, f"list envelope lacks {key}: {sorted(body)}"
    assert body["total"] == N_PAGED and body["limit"] == 5 and body["has_more"] is True
    assert isinstance(body["next_token"], str) and body["next_token"]
    body2 = check_ok_json(
        raw.get("tasks", params={"project": project, "limit": 5, "next_token": body["next_token"]})
    )
    assert body2["total"] == N_PAGED
    assert not {d["task_id"] for d in body["docs"]} & {d["task_id"] for d in body2["docs"]}


def test_get_tasks_count(client, paged_project):
    project, _ = paged_project
    assert client.get_tasks_count(project_name=project) == N_PAGED
    assert client.get_tasks_count(project_name=project, status=TaskStatus.Completed) == N_PAGED
    assert client.get_tasks_count(project_name=project, status=TaskStatus.Pending) == 0
    assert client.get_tasks_count(project_name=project, task_type=TaskType.ImageAnnotation) == 0


def test_limited_response_and_attachment_url(client, paged_project):
    project, created = paged_project
    limited = client.tasks(project=project, limit=5, limited_response=True)
    assert len(limited) == 5
    for t in limited:
        assert t.id in created
        d = t.as_dict()
        assert "status" in d
        extra = set(d) - {"task_id", "status", "metadata", "project", "otherVersion"}
        assert not extra, f"limited_response tasks carry more than documented: {sorted(extra)}"
    for flag in (True, False):
        page = client.tasks(project=project, limit=3, include_attachment_url=flag)
        assert len(page) == 3 and page.total == N_PAGED


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_out_of_range_is_400(client, raw, limit):
    raises(ScaleInvalidRequest, client.tasks, limit=limit, code=400)
    check_error_response(raw.get("tasks", params={"limit": limit}), 400)


def test_limit_bounds_are_accepted(client):
    assert client.tasks(limit=1).limit == 1
    assert client.tasks(limit=100).limit == 100


def test_bad_next_token_is_not_a_server_error(raw):
    resp = raw.get("tasks", params={"next_token": "garbage!!"})
    if resp.status_code != 200:
        check_error_response(resp, 400)
