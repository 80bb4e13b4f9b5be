"""Authentication (401) and test/live/team separation (scale-api.md §1)."""

import base64

import pytest
import requests
import scaleapi
from scaleapi.exceptions import ScaleResourceNotFound, ScaleUnauthorized
from scaleapi.tasks import TaskType

from conftest import PASSWORD
from dashboard import delete_key_labelled, sign_in
from support import VALID, check_error_response, check_ok_json, raises, small_task


@pytest.mark.parametrize(
    "key",
    [
        "test_0000000000000000000000000000000000000000",
        "live_doesnotexist",
        "garbage",
        "scaleint_0123456789abcdef0123456789abcdef|0123456789abcdef01234567|test",
    ],
)
def test_unknown_key_is_401(server, key):
    bad = scaleapi.ScaleClient(key, api_instance_url=server.api_url)
    raises(ScaleUnauthorized, bad.get_task, "5c84d0fe958593004f13e5ba", code=401)
    raises(ScaleUnauthorized, bad.tasks, code=401)
    raises(ScaleUnauthorized, bad.projects, code=401)
    raises(ScaleUnauthorized, bad.list_teammates, code=401)
    raises(ScaleUnauthorized, bad.create_task, TaskType.Categorization, code=401, **VALID["categorization"])


def test_truncated_key_is_401(server):
    bad = scaleapi.ScaleClient(server.test_key[:-1], api_instance_url=server.api_url)
    raises(ScaleUnauthorized, bad.tasks, code=401)
    bad = scaleapi.ScaleClient(server.test_key + "x", api_instance_url=server.api_url)
    raises(ScaleUnauthorized, bad.tasks, code=401)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer not-a-key",
        "Digest {key}",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),
        "Basic",
    ],
)
def test_malformed_authorization_is_401(server, header):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header.format(key=server.test_key)
    resp = requests.get(f"{server.api_url}/tasks", headers=headers, timeout=10)
    check_error_response(resp, 401)


def test_password_part_is_ignored(server):
    resp = requests.get(f"{server.api_url}/tasks", auth=(server.test_key, "whatever"), timeout=10)
    check_ok_json(resp)


def test_401_on_every_surface(server):
    for method, path in [
        ("GET", "tasks"),
        ("GET", "task/abc"),
        ("POST", "task/categorization"),
        ("GET", "projects"),
        ("GET", "batches"),
        ("GET", "teams"),
        ("POST", "files/import"),
    ]:
        resp = requests.request(method, f"{server.api_url}/{path}", auth=("nope", ""), timeout=10)
        check_error_response(resp, 401)


def test_test_and_live_are_separate(client, live_client, uniq):
    uid = uniq("sep")
    t = small_task(client, unique_id=uid)
    l = small_task(live_client, unique_id=uid)

    raises(ScaleResourceNotFound, live_client.get_task, t.id, code=404)
    raises(ScaleResourceNotFound, client.get_task, l.id, code=404)
    assert t.id not in {x.id for x in live_client.tasks(unique_id=uid)}
    assert l.id not in {x.id for x in client.tasks(unique_id=uid)}
    # the other mode cannot touch it either
    raises(ScaleResourceNotFound, live_client.set_task_metadata, t.id, {"x": 1}, code=404)
    raises(ScaleResourceNotFound, client.cancel_task, l.id, code=404)
    raises(ScaleResourceNotFound, live_client.set_task_tags, t.id, ["x"], code=404)
    raises(ScaleResourceNotFound, client.audit_task, l.id, True, code=404)
    assert live_client.get_task(l.id).status == "pending"
    assert client.get_task(t.id).metadata == {}


def test_projects_and_batches_are_per_mode(client, live_client, uniq):
    p = uniq("mode-proj")
    client.create_project(p, TaskType.Categorization)
    b = uniq("mode-batch")
    client.create_batch(p, b)

    raises(ScaleResourceNotFound, live_client.get_project, p, code=404)
    assert p not in {x.name for x in live_client.projects()}
    raises(ScaleResourceNotFound, live_client.get_batch, b, code=404)
    assert b not in {x.name for x in live_client.batches(limit=100)}
    # a live task may not reference a test-mode project or batch
    with pytest.raises(scaleapi.exceptions.ScaleException) as info:
        small_task(live_client, project=p)
    assert info.value.code in (400, 404), info.value
    with pytest.raises(scaleapi.exceptions.ScaleException) as info:
        small_task(live_client, batch=b)
    assert info.value.code in (400, 404), info.value

    # the same names are free in the other mode
    live_client.create_project(p, TaskType.Categorization)
    live_client.create_batch(p, b)
    assert live_client.get_batch(b).project == p
    assert client.get_batch(b).project == p


def test_teams_are_separate(client, other_client, uniq):
    p = uniq("team-proj")
    client.create_project(p, TaskType.Categorization)
    t = small_task(client, project=p)
    raises(ScaleResourceNotFound, other_client.get_task, t.id, code=404)
    raises(ScaleResourceNotFound, other_client.get_project, p, code=404)
    assert p not in {x.name for x in other_client.projects()}
    assert t.id not in {x.id for x in other_client.tasks(limit=100)}
    # the same project name is free for another team
    other_client.create_project(p, TaskType.Categorization)


def test_deleted_key_is_401_at_once(server, uniq):
    """A key deleted in the dashboard is refused on the next request, even right after use."""
    label = uniq("doomed key")
    key = server.create_key(server.team, "test", label)
    doomed = scaleapi.ScaleClient(key, api_instance_url=server.api_url)
    task = small_task(doomed)  # the key works (and is now warm in any cache)
    assert doomed.get_task(task.id).id == task.id

    session = sign_in(server, server.admin_email, PASSWORD)
    delete_key_labelled(server, session, label)

    raises(ScaleUnauthorized, doomed.get_task, task.id, code=401)
    raises(ScaleUnauthorized, doomed.tasks, code=401)
    # the team's other keys keep working, and still see the task (same mode)
    keep = scaleapi.ScaleClient(server.test_key, api_instance_url=server.api_url)
    assert keep.get_task(task.id).id == task.id


def test_new_key_of_same_mode_sees_same_data(server, client):
    task = small_task(client)
    second = scaleapi.ScaleClient(server.create_key(server.team, "test"), api_instance_url=server.api_url)
    assert second.get_task(task.id).id == task.id


def test_same_project_name_in_both_modes_is_independent(client, live_client, uniq):
    name = uniq("twin")
    client.create_project(name, TaskType.Categorization, params={"instruction": "test side"})
    live_client.create_project(name, TaskType.Categorization, params={"instruction": "live side"})
    live_client.update_project(name, instruction="live v1")
    assert client.get_project(name).version == 0
    assert client.get_project(name).instruction == "test side"
    assert live_client.get_project(name).version == 1
    t = small_task(client, project=name)
    assert "test side" in t.instruction and "live" not in t.instruction
