"""A few dashboard steps the API has no endpoint for (sign in, delete a key, invite and accept
an invitation, set the team's default callback URL, rotate a signing secret, label a task),
done with plain HTTP forms."""

import html
import re
import time

import requests

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: requests.Response) -> str:
    m = CSRF.search(page.text)
    assert m, f"no csrf_token on {page.url} ({page.status_code})"
    return m.group(1)


def post_form(session, url, data, page_url=None, ok=(200, 302, 303)):
    page = session.get(page_url or url, timeout=10)
    assert page.status_code == 200, f"GET {page.url}: {page.status_code} {page.text[:300]}"
    resp = session.post(url, data={"csrf_token": csrf_of(page), **data}, timeout=10,
                        allow_redirects=False)
    assert resp.status_code in ok, f"POST {url}: {resp.status_code} {resp.text[:500]}"
    return resp


FLASH = re.compile(r'<div class="flash" role="status">(.*?)</div>', re.S)


def flash_of(page: requests.Response):
    """The one-shot flash message on a page, unescaped (None when there is none)."""
    m = FLASH.search(page.text)
    return html.unescape(m.group(1)).strip() if m else None


def sign_in(server, email, password) -> requests.Session:
    s = requests.Session()
    resp = post_form(s, f"{server.root_url}/login", {"email": email, "password": password, "next": "/"})
    assert resp.status_code in (302, 303), f"sign-in failed: {resp.status_code} {resp.text[:500]}"
    return s


def delete_key_labelled(server, session, label):
    page = session.get(f"{server.root_url}/keys", timeout=10)
    assert page.status_code == 200, page.text[:300]
    for row in re.findall(r"<tr data-key=.*?</tr>", page.text, flags=re.S):
        # The label's cell, whatever attributes it carries (narrow screens label each cell).
        if re.search(rf"<td[^>]*>{re.escape(html.escape(label))}</td>", row):
            m = re.search(r'action="/keys/([^"/]+)/delete"', row)
            assert m, row
            return post_form(session, f"{server.root_url}/keys/{m.group(1)}/delete", {},
                             page_url=f"{server.root_url}/keys")
    raise AssertionError(f"no key labelled {label!r} on /keys")


def set_default_callback(server, session, team_name, url):
    return post_form(
        session,
        f"{server.root_url}/team/details",
        {"name": team_name, "default_callback_url": url},
    )


def invite(server, session, email, role):
    """Invites `email` to the signed-in admin's team with `role` (member, manager, labeler)."""
    return post_form(session, f"{server.root_url}/team/invitations",
                     {"emails": email, "role": role}, page_url=f"{server.root_url}/team")


def rotate_signing_secret(server, session, mode):
    return post_form(session, f"{server.root_url}/keys/signing/{mode}/rotate", {},
                     page_url=f"{server.root_url}/keys")


def invite_token(server, email, timeout=15.0):
    """The invitation link's token from the mail the server logs (no --smtp-url)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for chunk in server.log_text().split("no SMTP server configured")[1:]:
            if email in chunk:
                m = re.search(r"/invite/([A-Za-z0-9_\-]+)", chunk)
                if m:
                    return m.group(1)
        time.sleep(0.2)
    return None


def accept_invitation(server, token, password):
    s = requests.Session()
    return post_form(
        s,
        f"{server.root_url}/invite/{token}",
        {
            "name": "Accepted Person",
            "company": "Tessera SDK tests",
            "job_title": "Tester",
            "phone": "",
            "password": password,
            "confirm_password": password,
        },
    )
