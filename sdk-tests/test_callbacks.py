"""Task callbacks (scale-api.md §7.1), received by a local HTTP server (the server runs with
--allow-private-callbacks so loopback URLs are allowed)."""

import base64
import hashlib
import hmac
import html
import http.server
import json
import re
import threading
import time

import pytest
import scaleapi
from scaleapi.tasks import TaskType

from conftest import CALLBACK_RETRY_SCHEDULE, PASSWORD, RUN
from dashboard import (
    accept_invitation,
    flash_of,
    invite,
    invite_token,
    post_form,
    rotate_signing_secret,
    set_default_callback,
    sign_in,
)
from support import VALID, small_task

pytestmark = pytest.mark.callbacks

class Receiver:
    def __init__(self):
        self.calls = []  # (path, headers, body)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.calls.append((self.path, dict(self.headers), body))
                status = 500 if self.path.startswith("/fail") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, path, count=1, timeout=8.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = [c for c in self.calls if c[0] == path]
            if len(got) >= count:
                return got
            time.sleep(0.1)
        with self.lock:
            seen = [c[0] for c in self.calls]
        raise AssertionError(f"no callback to {path} within {timeout}s (received: {seen})")

    def exactly_one(self, path, settle=2.0):
        """The one callback to `path`: waits for it, then `settle` seconds more so that a second
        delivery (which must not happen) would be seen."""
        self.wait(path)
        time.sleep(settle)
        with self.lock:
            got = [c for c in self.calls if c[0] == path]
        assert len(got) == 1, f"{len(got)} callbacks to {path}, expected exactly one"
        return got[0]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def signatures(secret, headers, body):
    """Standard Webhooks (https://www.standardwebhooks.com/): which of the `v1,<base64>`
    signatures in `webhook-signature` are HMAC-SHA256 of `{id}.{timestamp}.{body}` under the
    key in `secret` (`whsec_` + base64). Returns (valid, all) lists of signatures."""
    msg_id = header(headers, "webhook-id")
    timestamp = header(headers, "webhook-timestamp")
    sig_header = header(headers, "webhook-signature")
    assert msg_id and timestamp and sig_header, f"Standard Webhooks headers missing: {headers}"
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    every = sig_header.split(" ")
    valid = []
    for part in every:
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            valid.append(part)
    return valid, every


def verifies(secret, headers, body, tolerance=300):
    """True when the callback is signed under `secret` and its timestamp is recent."""
    valid, _ = signatures(secret, headers, body)
    timestamp = int(header(headers, "webhook-timestamp"))
    return bool(valid) and abs(time.time() - timestamp) <= tolerance


def signing_secret(server, team, mode):
    secret = server.admin("callback-signing-secret", "--team", team, "--mode", mode).strip()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret), secret
    return secret


def new_team(server, uniq):
    """A team of its own (created with the CLI) and its admin's email."""
    name = uniq("Callback Team")
    email = f"{uniq('cb-admin')}@example.com"
    server.admin("create-team", "--name", name, "--admin-email", email, "--password", PASSWORD)
    return name, email


def wait_task(client, task_id, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        task = client.get_task(task_id)
        if predicate(task.as_dict()) or time.monotonic() > deadline:
            return task.as_dict()
        time.sleep(0.2)


def test_test_task_callback_is_delivered(client, server, receiver, uniq):
    path = f"/ok/{uniq('cb')}"
    task = small_task(client, callback_url=receiver.url + path)
    _, headers, body = receiver.exactly_one(path)  # a successful callback is not repeated
    assert (header(headers, "Content-Type") or "").startswith("application/json"), headers
    payload = json.loads(body)
    assert payload["task_id"] == task.id
    assert payload["task"]["task_id"] == task.id
    assert payload["task"]["status"] == "completed"
    assert payload["response"] == task.response
    expected = server.admin("callback-auth-key", "--team", server.team, "--mode", "test").strip()
    assert header(headers, "scale-callback-auth") == expected

    d = wait_task(client, task.id, lambda d: d.get("callback_succeeded") is True)
    assert d.get("callback_succeeded") is True, d


def test_callback_auth_keys_differ_per_mode(server):
    test_key = server.admin("callback-auth-key", "--team", server.team, "--mode", "test").strip()
    live_key = server.admin("callback-auth-key", "--team", server.team, "--mode", "live").strip()
    assert test_key and live_key and test_key != live_key


def test_failing_callback_is_not_marked_succeeded(client, receiver, uniq):
    path = f"/fail/{uniq('cb')}"
    task = small_task(client, callback_url=receiver.url + path)
    receiver.wait(path)
    # While retries remain it is neither true nor false; once the schedule (1s,2s) is used
    # up it is false.
    assert client.get_task(task.id).as_dict().get("callback_succeeded") is not True
    d = wait_task(client, task.id, lambda d: d.get("callback_succeeded") is False, timeout=15)
    assert d.get("callback_succeeded") is False, d


def test_live_task_does_not_call_back_while_pending(live_client, receiver, uniq):
    path = f"/ok/{uniq('live')}"
    small_task(live_client, callback_url=receiver.url + path)
    time.sleep(1.0)
    with receiver.lock:
        assert not [c for c in receiver.calls if c[0] == path]


def test_team_default_callback_url(server, other_client, receiver):
    path = f"/ok/default-{RUN}"
    session = sign_in(server, server.other_admin_email, PASSWORD)
    set_default_callback(server, session, server.other_team, receiver.url + path)
    task = other_client.create_task(TaskType.Categorization, **VALID["categorization"])
    if "callback_url" in task.as_dict():
        assert task.callback_url == receiver.url + path
    (_, _, body), *_ = receiver.wait(path)
    assert json.loads(body)["task_id"] == task.id
    # a task's own callback_url wins over the default
    own = f"/ok/own-{RUN}"
    t2 = other_client.create_task(
        TaskType.Categorization, callback_url=receiver.url + own, **VALID["categorization"]
    )
    (_, _, body), *_ = receiver.wait(own)
    assert json.loads(body)["task_id"] == t2.id
    time.sleep(0.3)
    with receiver.lock:
        to_default = [json.loads(c[2])["task_id"] for c in receiver.calls if c[0] == path]
    assert t2.id not in to_default


def test_webhook_signature_verifies_with_the_cli_secret(client, server, receiver, uniq):
    path = f"/ok/{uniq('signed')}"
    task = small_task(client, callback_url=receiver.url + path)
    (_, headers, body), *_ = receiver.wait(path)
    assert json.loads(body)["task_id"] == task.id
    secret = signing_secret(server, server.team, "test")
    assert verifies(secret, headers, body), (secret, headers)
    assert re.fullmatch(r"[0-9]+", header(headers, "webhook-timestamp"))
    # The id is the delivery's, not the task's.
    assert header(headers, "webhook-id") and header(headers, "webhook-id") != task.id
    # Another mode's, another team's secret, or a changed body do not verify.
    assert not verifies(signing_secret(server, server.team, "live"), headers, body)
    assert not verifies(signing_secret(server, server.other_team, "test"), headers, body)
    assert not verifies(secret, headers, body + b" ")


def test_signing_secrets_differ_per_mode_and_team(server):
    secrets = {
        signing_secret(server, server.team, "test"),
        signing_secret(server, server.team, "live"),
        signing_secret(server, server.other_team, "test"),
    }
    assert len(secrets) == 3
    # Printing it again prints the same secret.
    assert signing_secret(server, server.team, "test") in secrets


def test_rotated_secret_signs_beside_the_previous_one(server, receiver, uniq):
    team, admin_email = new_team(server, uniq)
    client = scaleapi.ScaleClient(server.create_key(team, "test"), api_instance_url=server.api_url)
    before = signing_secret(server, team, "test")
    # A callback first, so the worker holds the team's secrets in its cache: the rotation
    # must reach a worker that already has them, within the 5 s the README promises.
    warm = f"/ok/{uniq('before-rotation')}"
    small_task(client, callback_url=receiver.url + warm)
    (_, headers, body), *_ = receiver.wait(warm)
    assert signatures(before, headers, body)[0], "signed with the secret before rotation"
    session = sign_in(server, admin_email, PASSWORD)
    rotate_signing_secret(server, session, "test")
    rotated_at = time.monotonic()
    after = signing_secret(server, team, "test")
    assert after != before

    # Callbacks until one carries both signatures; it must happen within 5 s (plus a second
    # for the callback's own trip).
    while True:
        path = f"/ok/{uniq('rotated')}"
        small_task(client, callback_url=receiver.url + path)
        (_, headers, body), *_ = receiver.wait(path)
        valid_new, every = signatures(after, headers, body)
        if valid_new:
            break
        assert time.monotonic() - rotated_at < 6.0, "no callback carried the new signature within 5 s"
        time.sleep(0.5)
    valid_old, _ = signatures(before, headers, body)
    assert len(every) == 2, f"both secrets sign during a rotation: {every}"
    assert len(valid_new) == 1 and len(valid_old) == 1 and valid_new != valid_old, every


def test_webhook_id_is_stable_across_retries(client, server, receiver, uniq):
    path = f"/fail/{uniq('retried')}"
    task = small_task(client, callback_url=receiver.url + path)
    attempts = 1 + len(CALLBACK_RETRY_SCHEDULE.split(","))  # the first and every retry
    calls = receiver.wait(path, count=attempts, timeout=15.0)
    ids = {header(h, "webhook-id") for _, h, _ in calls}
    assert len(ids) == 1 and None not in ids, f"webhook-id changed between retries: {ids}"
    secret = signing_secret(server, server.team, "test")
    for _, headers, body in calls:
        assert json.loads(body)["task_id"] == task.id
        assert verifies(secret, headers, body), headers  # every attempt is signed afresh
    # The schedule is used up: the delivery is given up, not retried forever.
    time.sleep(2.5)
    with receiver.lock:
        assert len([c for c in receiver.calls if c[0] == path]) == attempts
    d = wait_task(client, task.id, lambda d: d.get("callback_succeeded") is False, timeout=10)
    assert d.get("callback_succeeded") is False, d
    assert d["status"] == "completed"


TEXTAREA = re.compile(r'<textarea name="response"[^>]*>(.*?)</textarea>', re.S)


def test_live_task_labeled_in_the_dashboard_calls_back(server, receiver, uniq):
    # A team of its own, so its labeling queue holds only this test's task.
    team, admin_email = new_team(server, uniq)
    live = scaleapi.ScaleClient(server.create_key(team, "live"), api_instance_url=server.api_url)
    admin = sign_in(server, admin_email, PASSWORD)
    labeler_email = f"{uniq('labeler')}@example.com"
    invite(server, admin, labeler_email, "labeler")
    token = invite_token(server, labeler_email)
    assert token, f"no invitation mail to {labeler_email} in the server log"
    accepted = accept_invitation(server, token, PASSWORD)
    assert accepted.status_code == 303
    assert accepted.headers["Location"] == "/label", "a labeler lands on the labeling queue"
    labeler = sign_in(server, labeler_email, PASSWORD)
    # A labeler works the queue and nothing else.
    for page in ("/team", "/tasks", "/callbacks", "/keys"):
        assert labeler.get(server.root_url + page, timeout=10).status_code == 403, page

    path = f"/ok/{uniq('labeled')}"
    instruction = f"Is {uniq('site')} public or private?"
    task = live.create_task(
        TaskType.Categorization,
        callback_url=receiver.url + path,
        instruction=instruction,
        **VALID["categorization"],
    )
    assert task.status == "pending"
    queue = labeler.get(f"{server.root_url}/label", timeout=10)
    assert queue.status_code == 200
    assert re.search(r'<strong id="queue-length">1</strong>', queue.text), queue.text

    nxt = post_form(labeler, f"{server.root_url}/label/next", {},
                    page_url=f"{server.root_url}/label")
    assert nxt.status_code == 303 and nxt.headers["Location"] == f"/label/{task.id}", nxt.headers
    page = labeler.get(f"{server.root_url}/label/{task.id}", timeout=10)
    assert page.status_code == 200
    assert html.escape(instruction) in page.text
    assert VALID["categorization"]["attachment"] in page.text
    template = json.loads(html.unescape(TEXTAREA.search(page.text).group(1)))
    assert isinstance(template, dict), template

    # Not JSON: the form comes back with the message and what was typed.
    typed = '{"category": "private"'
    bad = post_form(labeler, f"{server.root_url}/label/{task.id}", {"response": typed}, ok=(400,))
    assert "The response is not valid JSON" in bad.text
    assert html.unescape(TEXTAREA.search(bad.text).group(1)) == typed
    # JSON that does not fit the task is refused too.
    bad = post_form(labeler, f"{server.root_url}/label/{task.id}",
                    {"response": '{"category": "secret"}'}, ok=(400,))
    assert "is not one of the categories" in html.unescape(bad.text)
    time.sleep(0.3)
    with receiver.lock:
        assert not [c for c in receiver.calls if c[0] == path], "no callback before the submit"

    response = {"category": "private"}
    done = post_form(labeler, f"{server.root_url}/label/{task.id}",
                     {"response": json.dumps(response)})
    assert done.status_code == 303 and done.headers["Location"] == "/label", done.headers
    after = labeler.get(f"{server.root_url}/label", timeout=10)
    assert flash_of(after) == f"Task {task.id} submitted. Thank you!"
    assert re.search(r'<strong id="queue-length">0</strong>', after.text)

    _, headers, body = receiver.exactly_one(path)  # delivered once
    payload = json.loads(body)
    assert payload["task_id"] == task.id
    assert payload["task"]["status"] == "completed"
    assert payload["response"] == response
    assert payload["task"]["response"] == response
    auth = server.admin("callback-auth-key", "--team", team, "--mode", "live").strip()
    assert header(headers, "scale-callback-auth") == auth
    assert verifies(signing_secret(server, team, "live"), headers, body)

    d = wait_task(live, task.id, lambda d: d.get("callback_succeeded") is True)
    assert d["status"] == "completed", d
    assert d["response"] == response, d
    assert d.get("callback_succeeded") is True, d
