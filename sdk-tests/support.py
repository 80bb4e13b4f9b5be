"""Shared data and helpers: valid parameters per supported task type (scale-api.md §5), their
required fields, and assertions on the wire shapes (§2.1, §4)."""

import re
import time

import pytest
from scaleapi.exceptions import ScaleException
from scaleapi.tasks import TaskType

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

IMAGE = "https://example.com/images/kitten.png"

# Valid creation parameters for every supported type: only what is needed, plus the usual extras.
VALID = {
    "imageannotation": dict(
        attachment=IMAGE,
        attachment_type="image",
        geometries={
            "box": {"objects_to_annotate": ["cat", "dog"], "min_height": 5, "min_width": 5}
        },
    ),
    "segmentannotation": dict(attachment=IMAGE, labels=["road", "sky", "tree"]),
    "categorization": dict(
        attachment="https://www.google.com",
        attachment_type="website",
        categories=["public", "private"],
    ),
    "transcription": dict(
        attachment=IMAGE,
        attachment_type="image",
        fields={"title": "Title of the receipt", "total": "Total amount"},
        repeatable_fields={"line_item": "One line of the receipt"},
    ),
    "documenttranscription": dict(
        attachment="https://example.com/docs/invoice.pdf",
        features=[{"type": "block", "label": "paragraph"}],
    ),
    "annotation": dict(
        attachment=IMAGE,
        attachment_type="image",
        objects_to_annotate=["car", "person"],
        with_labels=True,
        min_width="30",  # a string: must be accepted (§5 "be lenient on types")
        min_height=30,
    ),
    "polygonannotation": dict(
        attachment=IMAGE, attachment_type="image", objects_to_annotate=["lake"], with_labels=True
    ),
    "lineannotation": dict(
        attachment=IMAGE, attachment_type="image", objects_to_annotate=["lane"], with_labels=True
    ),
    "pointannotation": dict(
        attachment=IMAGE, attachment_type="image", objects_to_annotate=["eye"], with_labels=True
    ),
    "cuboidannotation": dict(
        attachment=IMAGE, attachment_type="image", objects_to_annotate=["car"], with_labels=True
    ),
    "datacollection": dict(
        attachment="https://www.scale.com",
        attachment_type="website",
        fields={"phone_number": "The phone number", "email": "The email address"},
    ),
    "namedentityrecognition": dict(
        text="Tim Cook leads Apple in Cupertino.",
        labels=[
            {"name": "PERSON", "description": "A person"},
            {"name": "ORG", "description": "An organisation"},
        ],
    ),
    "textcollection": dict(
        attachments=[{"type": "text", "content": "Summarise this paragraph, please."}],
        fields=[{"field_id": "summary", "type": "text", "title": "Summary"}],
    ),
    "comparison": dict(
        attachments=["https://example.com/a.png", "https://example.com/b.png"],
        attachment_type="image",
        choices=["left", "right"],
    ),
}

# Required fields (§5): each inner tuple is one requirement; any of its alternatives satisfies it.
REQUIRED = {
    "imageannotation": [("attachment",), ("geometries",)],
    "segmentannotation": [("attachment",), ("labels",)],
    "categorization": [("attachment",), ("attachment_type",), ("categories", "taxonomies")],
    "transcription": [("attachment",), ("attachment_type",), ("fields",)],
    "documenttranscription": [("attachment",)],
    "annotation": [("attachment",), ("objects_to_annotate",)],
    "polygonannotation": [("attachment",), ("objects_to_annotate",)],
    "lineannotation": [("attachment",), ("objects_to_annotate",)],
    "pointannotation": [("attachment",), ("objects_to_annotate",)],
    "cuboidannotation": [("attachment",), ("objects_to_annotate",)],
    "datacollection": [("attachment",), ("attachment_type",), ("fields",)],
    "namedentityrecognition": [("text",), ("labels",)],
    "textcollection": [("attachments",), ("fields",)],
    "comparison": [("attachments",), ("attachment_type",), ("choices", "fields")],
}

SUPPORTED = sorted(VALID)
UNSUPPORTED = sorted(t.value for t in TaskType if t.value not in VALID)


def task_type(name: str) -> TaskType:
    return TaskType(name)


def small_task(client, **extra):
    """A cheap valid task (categorization)."""
    params = dict(VALID["categorization"])
    params.update(extra)
    return client.create_task(TaskType.Categorization, **params)


def raises(exc_type, fn, *args, code=None, **kwargs):
    """Calls fn expecting exc_type; returns the exception. Also checks `.code` when given."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    err = info.value
    if code is not None:
        assert err.code == code, f"expected HTTP {code}, got {err.code}: {err.message}"
    return err


def check_error_response(resp, status):
    """§2.1: the mapped status, JSON content type, body {"error": str, "status_code": N}."""
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url}: expected {status}, got "
        f"{resp.status_code}: {resp.text[:500]}"
    )
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"error Content-Type is {ctype!r}"
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert body.get("status_code") == status, body
    return body


def check_ok_json(resp):
    assert resp.status_code == 200, (
        f"{resp.request.method} {resp.request.url}: expected 200, got "
        f"{resp.status_code}: {resp.text[:500]}"
    )
    return resp.json()


def check_task_basics(task, type_name):
    d = task.as_dict()
    assert isinstance(d.get("task_id"), str) and d["task_id"], d
    assert d.get("type") == type_name, d
    assert isinstance(d.get("created_at"), str) and ISO_MS_Z.match(d["created_at"]), d.get(
        "created_at"
    )
    assert isinstance(d.get("params"), dict), d
    assert isinstance(d.get("metadata"), dict), d
    return d


def api_error_code(exc: ScaleException):
    return getattr(exc, "code", None)


def pause():
    """Sleep long enough for created_at (millisecond resolution) to differ."""
    time.sleep(0.015)
