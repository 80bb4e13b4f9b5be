"""Projects through the SDK (scale-api.md §3.3, §4.3): create, get, list, setParams with
param_history versions, project params as task defaults."""

from scaleapi.exceptions import (
    ScaleDuplicateResource,
    ScaleException,
    ScaleInvalidRequest,
    ScaleResourceNotFound,
)
from scaleapi.tasks import TaskType

import pytest

from support import IMAGE, ISO_MS_Z, VALID, check_error_response, check_ok_json, raises


def test_create_get_list_project(client, uniq):
    name = uniq("proj")
    p = client.create_project(name, TaskType.ImageAnnotation, params={"instruction": "Label the kittens"})
    assert p.name == name
    assert p.type == "imageannotation"
    d = p.as_dict()
    assert isinstance(d["param_history"], list) and len(d["param_history"]) == 1
    entry = d["param_history"][0]
    assert entry["version"] == 0
    assert entry["instruction"] == "Label the kittens"
    assert ISO_MS_Z.match(entry.get("created_at", "")), entry
    assert p.version == 0 and p.instruction == "Label the kittens"
    if "created_at" in d:
        assert ISO_MS_Z.match(d["created_at"]), d

    got = client.get_project(name)
    assert got.name == name and got.type == "imageannotation" and got.version == 0
    assert got.as_dict()["param_history"] == d["param_history"]

    listed = client.projects()
    assert isinstance(listed, list)
    assert name in {x.name for x in listed}
    assert name in {x.name for x in client.get_projects()}


def test_projects_list_is_a_bare_array(raw):
    body = check_ok_json(raw.get("projects"))
    assert isinstance(body, list)
    for p in body:
        assert {"name", "type", "param_history"} <= set(p), p


def test_create_project_without_params(client, uniq):
    p = client.create_project(uniq("noparams"), TaskType.Categorization)
    hist = p.as_dict()["param_history"]
    assert len(hist) == 1 and hist[0]["version"] == 0, hist
    assert p.instruction is None


def test_duplicate_project_is_409(client, uniq):
    name = uniq("dup-proj")
    client.create_project(name, TaskType.Categorization)
    raises(ScaleDuplicateResource, client.create_project, name, TaskType.Categorization, code=409)


def test_project_with_bad_type_is_400(raw, uniq):
    body = {"type": "notatype", "name": uniq("bad-type"), "params": None, "rapid": False,
            "studio": False, "datasetId": None}
    check_error_response(raw.post("projects", json=body), 400)
    body = {"name": uniq("no-type"), "params": None}
    check_error_response(raw.post("projects", json=body), 400)


def test_unknown_project_is_404(client, uniq):
    raises(ScaleResourceNotFound, client.get_project, uniq("missing"), code=404)
    raises(ScaleResourceNotFound, client.update_project, uniq("missing"), instruction="x", code=404)


def test_update_project_param_history(client, uniq):
    name = uniq("params")
    geometries = {"box": {"objects_to_annotate": ["cat"]}}
    client.create_project(
        name, TaskType.ImageAnnotation, params={"instruction": "v0", "geometries": geometries}
    )

    p1 = client.update_project(name, patch=True, instruction="v1")
    hist = p1.as_dict()["param_history"]
    assert [h["version"] for h in hist] == [0, 1]
    assert p1.version == 1 and p1.instruction == "v1"
    assert hist[-1].get("geometries") == geometries, "patch=true should keep earlier params"
    assert ISO_MS_Z.match(hist[-1].get("created_at", "")), hist[-1]

    p2 = client.update_project(name, patch=False, instruction="v2")
    hist = p2.as_dict()["param_history"]
    assert [h["version"] for h in hist] == [0, 1, 2]
    assert p2.version == 2 and p2.instruction == "v2"
    assert "geometries" not in hist[-1], "patch=false should replace the params"
    assert hist[0]["instruction"] == "v0" and hist[1]["instruction"] == "v1"

    p3 = client.update_project(name, geometries={"point": {"objects_to_annotate": ["eye"]}})
    assert p3.version == 3

    got = client.get_project(name)
    assert got.version == 3
    assert [h["version"] for h in got.as_dict()["param_history"]] == [0, 1, 2, 3]


def test_project_params_are_task_defaults(client, uniq):
    name = uniq("defaults")
    geometries = {"box": {"objects_to_annotate": ["zebra"]}}
    client.create_project(
        name,
        TaskType.ImageAnnotation,
        params={"instruction": "Project instruction.", "geometries": geometries},
    )
    # geometries come from the project: a task with only an attachment is valid
    task = client.create_task(
        TaskType.ImageAnnotation, project=name, attachment=IMAGE, instruction="Task instruction."
    )
    d = task.as_dict()
    assert d["project"] == name
    assert d["params"].get("geometries") == geometries, d["params"]
    labels = {a.get("label") for a in d["response"]["annotations"]}
    assert labels == {"zebra"}, d["response"]
    # the project instruction is appended after the task's own
    ins = d.get("instruction", "")
    assert "Task instruction." in ins and "Project instruction." in ins, ins
    assert ins.index("Task instruction.") < ins.index("Project instruction."), ins

    # values on the task override the project's
    own = {"box": {"objects_to_annotate": ["horse"]}}
    task = client.create_task(TaskType.ImageAnnotation, project=name, attachment=IMAGE, geometries=own)
    assert task.params["geometries"] == own
    assert {a.get("label") for a in task.response["annotations"]} == {"horse"}

    # a new params version applies to new tasks
    client.update_project(name, patch=True, geometries={"box": {"objects_to_annotate": ["lion"]}})
    task = client.create_task(TaskType.ImageAnnotation, project=name, attachment=IMAGE)
    assert {a.get("label") for a in task.response["annotations"]} == {"lion"}


def test_task_without_required_field_and_without_project_default_is_400(client, uniq):
    name = uniq("nodefaults")
    client.create_project(name, TaskType.ImageAnnotation)
    err = raises(
        ScaleInvalidRequest, client.create_task, TaskType.ImageAnnotation, project=name,
        attachment=IMAGE, code=400,
    )
    assert "geometries" in err.message


def test_task_in_unknown_project_is_rejected(client, uniq):
    with pytest.raises(ScaleException) as info:
        client.create_task(TaskType.Categorization, project=uniq("ghost"), **VALID["categorization"])
    assert info.value.code in (400, 404), info.value


def test_project_names_with_slash_and_space(client, raw, uniq):
    name = uniq("team a/b c") + "/x%2Fy"
    client.create_project(name, TaskType.Categorization)
    assert client.get_project(name).name == name
    assert client.update_project(name, instruction="hi").instruction == "hi"
    t = client.create_task(TaskType.Categorization, project=name, **VALID["categorization"])
    assert t.project == name
    assert [x.id for x in client.get_tasks(project_name=name)] == [t.id]
    b = client.create_batch(name, uniq("in-slashed"))
    assert b.project == name
    # raw: %2F stays inside one path segment
    from urllib.parse import quote

    body = check_ok_json(raw.get("projects/" + quote(name, safe="")))
    assert body["name"] == name


def test_concurrent_project_creates_with_one_name(client, uniq):
    import threading

    name = uniq("race-proj")
    barrier = threading.Barrier(6)
    outcomes = []

    def run():
        barrier.wait()
        try:
            client.create_project(name, TaskType.Categorization)
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
    assert [p.name for p in client.projects()].count(name) == 1


def test_project_template(client, uniq):
    """§3.3 (opt): taskTemplates for textcollection/chat projects; others -> 400."""
    name = uniq("tc-template")
    client.create_project(
        name,
        TaskType.TextCollection,
        params={"fields": [{"field_id": "summary", "type": "text", "title": "Summary"}]},
    )
    template = client.get_project_template(name)  # the SDK requires id, version, created_at,
    assert template.id  # updated_at and template_variables
    assert isinstance(template.version, int)
    assert ISO_MS_Z.match(template.created_at) and ISO_MS_Z.match(template.updated_at)
    assert template.template_variables is not None

    other = uniq("img-template")
    client.create_project(other, TaskType.ImageAnnotation)
    raises(ScaleInvalidRequest, client.get_project_template, other, code=400)
    raises(ScaleResourceNotFound, client.get_project_template, uniq("missing"), code=404)
