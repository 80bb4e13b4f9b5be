"""Files through the SDK (scale-api.md §3.4, §4.4): multipart upload, import by URL."""

import http.server
import socket
import threading

import pytest
from scaleapi.exceptions import ScaleException
from scaleapi.tasks import TaskType

from support import check_error_response

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)
TEXT = b"hello from the sdk tests\n" * 40


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {
        "/kitten.png": ("image/png", PNG),
        "/notes.txt": ("text/plain", TEXT),
    }

    def do_GET(self):  # noqa: N802
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        ctype, body = route
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def file_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_file(f, size=None):
    assert isinstance(f.id, str) and f.id
    assert isinstance(f.attachment_url, str) and f.attachment_url
    d = f.as_dict()
    if size is not None and "size" in d:
        assert d["size"] == size, d
    return d


def test_upload_file(client, tmp_path, uniq):
    project = uniq("files")
    client.create_project(project, TaskType.ImageAnnotation)
    path = tmp_path / "kitten.png"
    path.write_bytes(PNG)
    with open(path, "rb") as fh:
        f = client.upload_file(fh, project_name=project)
    d = check_file(f, size=len(PNG))
    if "mime_type" in d:
        assert d["mime_type"] == "image/png", d
    if "project_names" in d:
        assert project in d["project_names"], d

    # the attachment_url works as a task attachment
    task = client.create_task(
        TaskType.ImageAnnotation,
        attachment=f.attachment_url,
        geometries={"box": {"objects_to_annotate": ["cat"]}},
    )
    assert task.params["attachment"] == f.attachment_url
    assert task.status == "completed"


def test_upload_without_project(client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(TEXT)
    with open(path, "rb") as fh:
        f = client.upload_file(fh)
    check_file(f, size=len(TEXT))


def test_uploads_get_distinct_ids(client, tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"same content")
    with open(path, "rb") as fh:
        a = client.upload_file(fh)
    with open(path, "rb") as fh:
        b = client.upload_file(fh)
    assert a.id != b.id


def test_upload_without_file_part_is_400(raw):
    resp = raw.post(
        "files/upload",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        data=b'--xyz\r\nContent-Disposition: form-data; name="project_name"\r\n\r\np\r\n--xyz--\r\n',
    )
    check_error_response(resp, 400)


def test_upload_json_instead_of_multipart_is_400(raw):
    check_error_response(raw.post("files/upload", json={"file": "x"}), 400)


def test_import_file(client, file_server, uniq):
    project = uniq("import")
    client.create_project(project, TaskType.Categorization)
    f = client.import_file(f"{file_server}/kitten.png", project_name=project)
    d = check_file(f, size=len(PNG))
    if "mime_type" in d:
        assert d["mime_type"].startswith("image/png"), d
    g = client.import_file(f"{file_server}/notes.txt")
    check_file(g, size=len(TEXT))
    assert g.id != f.id
    task = client.create_task(
        TaskType.Categorization,
        attachment=f.attachment_url,
        attachment_type="image",
        categories=["a", "b"],
    )
    assert task.params["attachment"] == f.attachment_url


@pytest.mark.parametrize(
    "url",
    [
        "missing",  # a 404 from the file server
        "closed",  # nothing listens
        "not a url",
        "ftp://127.0.0.1/file.txt",
        "",
    ],
)
def test_import_bad_url_is_4xx(client, file_server, url):
    if url == "missing":
        url = f"{file_server}/nope.png"
    elif url == "closed":
        url = f"http://127.0.0.1:{closed_port()}/file.png"
    with pytest.raises(ScaleException) as info:
        client.import_file(url)
    assert info.value.code is not None and 400 <= info.value.code < 500, (
        f"expected a 4xx, got {info.value}"
    )


def test_import_without_url_is_400(raw):
    check_error_response(raw.post("files/import", json={"project_name": "x"}), 400)

