"""Creating tasks of every supported type through the SDK (scale-api.md §3.1, §4.1, §5):
synthetic test-mode responses, required-field validation, unsupported types."""

import copy
import numbers

import pytest
from scaleapi.exceptions import ScaleInvalidRequest, ScaleNotEnabled

from support import (
    REQUIRED,
    SUPPORTED,
    UNSUPPORTED,
    VALID,
    check_error_response,
    check_task_basics,
    raises,
    task_type,
)

TOP_LEVEL = {"instruction", "callback_url", "metadata", "unique_id", "project", "batch", "tags"}


def _labels(values):
    out = set()
    for v in values:
        if isinstance(v, str):
            out.add(v)
        elif isinstance(v, dict):
            out.add(v.get("name") or v.get("choice") or v.get("label"))
    return out


def _num(v):
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


def _annotations(resp):
    anns = resp.get("annotations")
    assert isinstance(anns, list) and anns, f"response.annotations should be a non-empty list: {resp}"
    for a in anns:
        assert isinstance(a, dict), a
    return anns


def check_response_shape(type_name, params, resp):
    assert isinstance(resp, dict), f"response should be an object: {resp!r}"
    if type_name == "imageannotation":
        wanted = set(params["geometries"]["box"]["objects_to_annotate"])
        for a in _annotations(resp):
            assert a.get("label") in wanted, a
            assert a.get("type", "box") == "box", a
            for k in ("left", "top", "width", "height"):
                assert _num(a.get(k)), f"box annotation lacks numeric {k}: {a}"
    elif type_name == "segmentannotation":
        assert "annotations" in resp, resp
        if "labelMapping" in resp:
            assert set(resp["labelMapping"]) <= set(params["labels"]), resp["labelMapping"]
    elif type_name == "categorization":
        assert resp.get("category") in params["categories"], resp
    elif type_name in ("transcription", "datacollection"):
        assert isinstance(resp.get("fields"), dict), resp
        assert set(resp["fields"]) == set(params["fields"]), resp["fields"]
        if type_name == "transcription":
            assert "repeatable_fields" in resp, resp
    elif type_name == "annotation":
        wanted = set(params["objects_to_annotate"])
        for a in _annotations(resp):
            assert a.get("label") in wanted, a
            for k in ("left", "top", "width", "height"):
                assert _num(a.get(k)), f"box lacks numeric {k}: {a}"
    elif type_name in ("polygonannotation", "lineannotation"):
        wanted = set(params["objects_to_annotate"])
        minimum = 3 if type_name == "polygonannotation" else 2
        for a in _annotations(resp):
            assert a.get("label") in wanted, a
            vs = a.get("vertices")
            assert isinstance(vs, list) and len(vs) >= minimum, a
            for v in vs:
                assert _num(v.get("x")) and _num(v.get("y")), a
    elif type_name == "pointannotation":
        wanted = set(params["objects_to_annotate"])
        for a in _annotations(resp):
            assert a.get("label") in wanted, a
            assert _num(a.get("x")) and _num(a.get("y")), a
    elif type_name == "cuboidannotation":
        wanted = set(params["objects_to_annotate"])
        for a in _annotations(resp):
            assert a.get("label") in wanted, a
    elif type_name == "namedentityrecognition":
        wanted = _labels(params["labels"])
        anns = resp.get("annotations")
        assert isinstance(anns, list), resp
        for a in anns:
            assert a.get("label") in wanted, a
            if "start" in a or "end" in a:
                assert _num(a["start"]) and _num(a["end"]) and a["start"] <= a["end"], a
    elif type_name == "textcollection":
        ids = {f["field_id"] for f in params["fields"]}
        answers = resp.get("fields", resp)
        assert isinstance(answers, dict) and ids & set(answers), resp
    elif type_name == "comparison":
        assert resp, "comparison response should not be empty"
        if "choice" in resp:
            assert resp["choice"] in params["choices"], resp


@pytest.mark.parametrize("type_name", SUPPORTED)
def test_create_every_supported_type(client, type_name):
    params = copy.deepcopy(VALID[type_name])
    task = client.create_task(
        task_type(type_name),
        instruction=f"Please do the {type_name} task.",
        metadata={"kind": type_name, "n": 1},
        **params,
    )
    d = check_task_basics(task, type_name)
    assert d["status"] == "completed", d
    assert d.get("is_test") is True, d
    assert isinstance(d.get("completed_at"), str) and d["completed_at"], d
    assert d["completed_at"] >= d["created_at"], d
    # instruction is top level, not inside params (§4.1)
    assert d.get("instruction", "").startswith(f"Please do the {type_name} task."), d
    assert "instruction" not in d["params"], d["params"]
    assert d["metadata"] == {"kind": type_name, "n": 1}
    # every type-specific field is kept in params as submitted
    for key, value in params.items():
        assert d["params"].get(key) == value, f"params.{key}: {d['params'].get(key)!r} != {value!r}"
    for key in TOP_LEVEL - {"instruction", "metadata"}:
        assert key not in d["params"], f"{key} leaked into params: {d['params']}"
    # unset optional keys are absent (§4.1)
    assert "unique_id" not in d, d
    assert "tags" not in d, d
    check_response_shape(type_name, params, d.get("response"))

    # get_task returns the same object, created_at byte-identical
    again = client.get_task(task.id)
    assert again.id == task.id
    assert again.as_dict()["created_at"] == d["created_at"]
    assert again.as_dict()["response"] == d["response"]
    assert again.status == "completed"


def test_categorization_with_taxonomies(client):
    params = dict(VALID["categorization"])
    del params["categories"]
    params["taxonomies"] = {
        "ownership": {"type": "category", "choices": ["public", "private"]},
    }
    task = client.create_task(task_type("categorization"), **params)
    d = check_task_basics(task, "categorization")
    assert d["status"] == "completed"
    assert d["params"]["taxonomies"] == params["taxonomies"]
    assert isinstance(d.get("response"), dict) and d["response"], d


def test_extra_fields_are_kept_in_params(client):
    task = client.create_task(
        task_type("categorization"), force=True, something_else={"a": [1, 2]}, **VALID["categorization"]
    )
    assert task.params["force"] is True
    assert task.params["something_else"] == {"a": [1, 2]}


def test_callback_url_is_top_level(client):
    task = client.create_task(
        task_type("categorization"),
        callback_url="http://127.0.0.1:9/callback",
        **VALID["categorization"],
    )
    d = task.as_dict()
    assert d.get("callback_url") == "http://127.0.0.1:9/callback", d
    assert "callback_url" not in d["params"]


def test_create_without_project_or_batch(client):
    task = client.create_task(task_type("documenttranscription"), attachment="https://example.com/x.pdf")
    d = task.as_dict()
    assert d["status"] == "completed"
    assert not d.get("project") and not d.get("batch"), d


def _missing_cases():
    for type_name in SUPPORTED:
        for group in REQUIRED[type_name]:
            yield pytest.param(type_name, group, id=f"{type_name}-{'|'.join(group)}")


@pytest.mark.parametrize("type_name,group", list(_missing_cases()))
def test_missing_required_field_is_400_naming_it(client, raw, type_name, group):
    params = copy.deepcopy(VALID[type_name])
    for key in group:
        params.pop(key, None)
    err = raises(ScaleInvalidRequest, client.create_task, task_type(type_name), code=400, **params)
    assert any(key in err.message for key in group), (
        f"the 400 message should name {' or '.join(group)}: {err.message!r}"
    )
    # the raw error body follows §2.1
    check_error_response(raw.post(f"task/{type_name}", json=params), 400)


@pytest.mark.parametrize("type_name", ["imageannotation", "categorization", "namedentityrecognition"])
def test_empty_or_null_required_field_is_400(client, type_name):
    params = copy.deepcopy(VALID[type_name])
    first = REQUIRED[type_name][0][0]
    params[first] = None
    err = raises(ScaleInvalidRequest, client.create_task, task_type(type_name), **params)
    assert first in err.message, err.message


def test_empty_body_on_create_is_400(raw):
    resp = raw.post("task/imageannotation")
    check_error_response(resp, 400)


@pytest.mark.parametrize("type_name", UNSUPPORTED)
def test_unsupported_type_is_402(client, type_name):
    err = raises(
        ScaleNotEnabled,
        client.create_task,
        task_type(type_name),
        code=402,
        attachment="https://example.com/video.mp4",
        attachment_type="video",
        instruction="x",
    )
    assert err.message


def test_unsupported_type_raw_body(raw):
    body = check_error_response(raw.post("task/videoannotation", json={"attachment": "x"}), 402)
    assert body["error"]


def test_unknown_type_path_is_an_error(raw):
    resp = raw.post("task/notatype", json={"attachment": "x"})
    assert resp.status_code in (400, 402, 404), resp.text
    check_error_response(resp, resp.status_code)


def test_create_returns_exactly_200(raw):
    resp = raw.post("task/categorization", json=VALID["categorization"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")


def test_task_id_not_found(client, raw):
    from scaleapi.exceptions import ScaleResourceNotFound

    err = raises(ScaleResourceNotFound, client.get_task, "5c84d0fe958593004f13e5ba", code=404)
    assert "not found" in err.message.lower(), err.message
    for bad in ("zzz", "not-an-id", "0" * 24, "%20"):
        check_error_response(raw.get(f"task/{bad}"), 404)


def test_task_objects_have_ids_unique(client):
    ids = {client.create_task(task_type("categorization"), **VALID["categorization"]).id for _ in range(5)}
    assert len(ids) == 5

