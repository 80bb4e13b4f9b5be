"""Wire tolerance checked with raw `requests` (scale-api.md §2, §3.0, Appendix A): what the SDK
sends on the wire must be accepted, and errors must have the documented shape."""

from urllib.parse import quote

import pytest
from scaleapi.tasks import TaskType

from support import VALID, check_error_response, check_ok_json, small_task


def test_empty_json_body_on_cancel(raw_live, live_client):
    task = small_task(live_client)
    resp = raw_live.post(f"task/{task.id}/cancel")  # Content-Type json, Content-Length 0
    assert resp.request.headers.get("Content-Length") == "0"
    body = check_ok_json(resp)
    assert body["status"] == "canceled"


def test_empty_json_body_on_cancel_with_clear(raw_live, live_client, uniq):
    task = small_task(live_client, unique_id=uniq("wire-clear"))
    body = check_ok_json(raw_live.post(f"task/{task.id}/cancel?clear_unique_id=true"))
    assert body["status"] == "canceled" and "unique_id" not in body


@pytest.mark.parametrize("flag", ["True", "TRUE", "1"])
def test_clear_unique_id_flag_spellings(raw_live, live_client, uniq, flag):
    task = small_task(live_client, unique_id=uniq("flag"))
    body = check_ok_json(raw_live.post(f"task/{task.id}/cancel?clear_unique_id={flag}"))
    assert "unique_id" not in body


def test_empty_json_body_on_finalize_and_clear_unique_id(raw, client, uniq):
    project = uniq("wire-proj")
    client.create_project(project, TaskType.Categorization)
    batch = uniq("wire-batch")
    client.create_batch(project, batch)
    body = check_ok_json(raw.post(f"batches/{quote(batch, safe='')}/finalize"))
    assert body["name"] == batch

    task = small_task(client, unique_id=uniq("wire-uid"))
    body = check_ok_json(raw.delete(f"task/{task.id}/unique_id"))
    assert "unique_id" not in body


def test_delete_with_json_body_on_tags(raw, client):
    task = small_task(client, tags=["a", "b", "c"])
    body = check_ok_json(raw.delete(f"task/{task.id}/tags", json=["a", "c"]))
    assert body["tags"] == ["b"]
    body = check_ok_json(raw.put(f"task/{task.id}/tags", json=["d"]))
    assert body["tags"] == ["b", "d"]
    body = check_ok_json(raw.post(f"task/{task.id}/tags", json=["z"]))
    assert body["tags"] == ["z"]


def test_tags_body_must_be_a_list(raw, client):
    task = small_task(client)
    for method in ("POST", "PUT", "DELETE"):
        resp = raw.request(method, f"task/{task.id}/tags", json={"tags": ["a"]})
        check_error_response(resp, 400)


def test_set_metadata_body_must_be_an_object(raw, client):
    task = small_task(client)
    check_error_response(raw.post(f"task/{task.id}/setMetadata", json=["not", "an", "object"]), 400)


def test_malformed_json_is_400(raw):
    resp = raw.post("task/categorization", data=b"{not json")
    check_error_response(resp, 400)


def test_percent_2f_in_project_names(raw, client, uniq):
    name = uniq("wire a/b")
    body = check_ok_json(
        raw.post(
            "projects",
            json={"type": "categorization", "name": name, "params": None, "rapid": False,
                  "studio": False, "datasetId": None},
        )
    )
    assert body["name"] == name
    encoded = quote(name, safe="")
    assert "%2F" in encoded and "%20" in encoded
    assert check_ok_json(raw.get(f"projects/{encoded}"))["name"] == name
    body = check_ok_json(raw.post(f"projects/{encoded}/setParams", json={"patch": False, "instruction": "i"}))
    assert body["name"] == name
    # the unencoded slash is a different path: not this project
    resp = raw.get(f"projects/{name.replace(' ', '%20')}")
    assert resp.status_code == 404, resp.text


def test_plus_and_repeated_keys_in_queries(raw, client, uniq):
    project = uniq("wire q")
    client.create_project(project, TaskType.Categorization)
    batch = uniq("b b")
    client.create_batch(project, batch)
    u1, u2 = uniq("u1"), uniq("u2")
    t1 = small_task(client, batch=batch, unique_id=u1)
    t2 = small_task(client, batch=batch, unique_id=u2)
    # spaces as "+" (what requests sends)
    url_batch = batch.replace(" ", "+")
    body = check_ok_json(raw.get(f"tasks?batch={url_batch}"))
    assert {d["task_id"] for d in body["docs"]} == {t1.id, t2.id}
    body = check_ok_json(raw.get(f"tasks?unique_id={u1}&unique_id={u2}"))
    assert {d["task_id"] for d in body["docs"]} == {t1.id, t2.id}


@pytest.mark.parametrize("value", ["True", "False", "true", "false", "1", "0", "TRUE"])
def test_boolean_query_values(raw, value):
    check_ok_json(raw.get("tasks", params={"include_attachment_url": value, "limit": 1}))
    check_ok_json(raw.get("batches", params={"exclude_archived": value, "offset": 0}))
    check_ok_json(raw.get("tasks", params={"limited_response": value, "limit": 1}))


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-5"])
def test_limit_validation(raw, limit):
    check_error_response(raw.get("tasks", params={"limit": limit}), 400)


def test_error_body_shape(raw):
    body = check_error_response(raw.get("task/5c84d0fe958593004f13e5ba"), 404)
    assert body["error"] == "Task with that ID not found."


def test_no_409_on_task_paths_except_create_and_unique_id(raw, client, raw_live, live_client):
    """§2.3: a 409 on a task path with a non-object body crashes the SDK."""
    done = small_task(client)
    resp = raw.post(f"task/{done.id}/cancel")
    assert resp.status_code == 400, resp.text
    pending = small_task(live_client)
    check_ok_json(raw_live.post(f"task/{pending.id}/cancel"))
    resp = raw_live.post(f"task/{pending.id}/cancel")
    assert resp.status_code == 400, resp.text
    resp = raw.put(f"task/{done.id}/tags", json=["x", "x"])
    assert resp.status_code == 200, resp.text
    assert "x" in resp.json()["tags"]


def test_duplicate_unique_id_409_body(raw, client, uniq):
    uid = uniq("wire-dup")
    first = small_task(client, unique_id=uid)
    body = check_error_response(
        raw.post("task/categorization", json={**VALID["categorization"], "unique_id": uid}), 409
    )
    assert first.id in body["error"] and uid in body["error"], body


def test_unknown_v1_route_is_404_json(raw):
    check_error_response(raw.get("no/such/route"), 404)


def test_wrong_method_is_an_error(raw):
    resp = raw.request("PATCH", "tasks")
    assert resp.status_code in (404, 405), resp.text


def test_openapi_document(server):
    import requests

    resp = requests.get(f"{server.api_url}/openapi.json", timeout=10)
    doc = check_ok_json(resp)
    assert str(doc.get("openapi", "")).startswith("3."), doc.get("openapi")
    assert isinstance(doc.get("info"), dict) and doc["info"].get("title")
    paths = doc.get("paths")
    assert isinstance(paths, dict) and paths
    joined = " ".join(paths)
    for fragment in ("/task/", "/tasks", "/batches", "/projects", "/files/upload", "/teams"):
        assert fragment in joined, f"openapi.json has no path containing {fragment}: {sorted(paths)}"


def test_success_is_exactly_200(raw, client, uniq):
    project = uniq("exact200")
    resp = raw.post("projects", json={"type": "categorization", "name": project, "params": None,
                                      "rapid": False, "studio": False, "datasetId": None})
    assert resp.status_code == 200, resp.text
    resp = raw.post("batches", json={"project": project, "name": uniq("b"), "calibration_batch": False,
                                     "self_label_batch": False, "callback": "", "metadata": {}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] in ("in_progress", "staging")
