"""Teams through the SDK (scale-api.md §3.5, §4.4): teammates, invitations, roles."""

import pytest
from scaleapi.exceptions import ScaleException, ScaleInvalidRequest
from scaleapi.teams import TeammateRole

from conftest import PASSWORD, RUN
from dashboard import accept_invitation, invite_token
from support import check_error_response, check_ok_json, raises


def by_email(teammates):
    return {t.email: t for t in teammates}


def test_list_teammates_has_the_admin(client, server):
    mates = client.list_teammates()
    assert isinstance(mates, list) and mates
    admin = by_email(mates).get(server.admin_email)
    assert admin is not None, [t.email for t in mates]
    assert admin.role == "admin"
    assert not admin.expiry


def test_teammates_are_account_level(client, live_client):
    assert {t.email for t in client.list_teammates()} == {t.email for t in live_client.list_teammates()}


def test_teammates_are_per_team(client, other_client, server):
    assert server.admin_email not in {t.email for t in other_client.list_teammates()}


def test_teams_list_is_a_bare_array(raw):
    body = check_ok_json(raw.get("teams"))
    assert isinstance(body, list) and body
    for t in body:
        assert isinstance(t.get("email"), str) and isinstance(t.get("role"), str), t


def test_test_keys_cannot_manage_the_team(client, raw, live_client):
    """A test key (the kind put in CI and handed to contractors) never invites or changes roles."""
    email = f"test-key-invite-{RUN}@example.com"
    body = check_error_response(raw.post("teams/invite", json={"emails": [email], "team_role": "manager"}), 403)
    assert "live API key" in body["error"], body
    raises(ScaleException, client.invite_teammates, [email], TeammateRole.Manager, code=403)
    assert email not in {t.email for t in live_client.list_teammates()}
    check_error_response(raw.post("teams/set_role", json={"emails": [email], "team_role": "manager"}), 403)


def test_invite_teammates(live_client):
    emails = [f"invitee-{RUN}-1@example.com", f"invitee-{RUN}-2@example.com"]
    result = live_client.invite_teammates(emails, TeammateRole.Member)
    assert isinstance(result, list)
    found = by_email(result)
    for e in emails:
        assert e in found, f"{e} not in the invite answer {list(found)}"
        assert found[e].role == "member"
        assert found[e].expiry, f"an invited teammate should carry an expiry: {found[e].as_dict()}"
    listed = by_email(live_client.list_teammates())
    for e in emails:
        assert e in listed and listed[e].expiry


def test_invite_manager_and_labeler(live_client):
    m = f"manager-{RUN}@example.com"
    lab = f"labeler-{RUN}@example.com"
    assert by_email(live_client.invite_teammates([m], TeammateRole.Manager))[m].role == "manager"
    assert by_email(live_client.invite_teammates([lab], TeammateRole.Labeler))[lab].role == "labeler"


def test_invite_admin_is_400(live_client):
    raises(
        ScaleInvalidRequest,
        live_client.invite_teammates,
        [f"would-be-admin-{RUN}@example.com"],
        TeammateRole.Admin,
        code=400,
    )
    assert f"would-be-admin-{RUN}@example.com" not in {t.email for t in live_client.list_teammates()}


def test_invite_bad_input_is_400(raw_live):
    check_error_response(raw_live.post("teams/invite", json={"emails": ["not-an-email"], "team_role": "member"}), 400)
    check_error_response(raw_live.post("teams/invite", json={"emails": [f"x-{RUN}@example.com"], "team_role": "overlord"}), 400)
    check_error_response(raw_live.post("teams/invite", json={"emails": [], "team_role": "member"}), 400)
    check_error_response(raw_live.post("teams/invite", json={"team_role": "member"}), 400)


def test_set_role_to_admin_is_400(live_client, server):
    raises(ScaleInvalidRequest, live_client.update_teammates_role, [server.admin_email], TeammateRole.Admin, code=400)
    email = f"invitee-admin-try-{RUN}@example.com"
    live_client.invite_teammates([email], TeammateRole.Member)
    raises(ScaleInvalidRequest, live_client.update_teammates_role, [email], TeammateRole.Admin, code=400)


def test_cannot_change_the_admins_role(live_client, server):
    with pytest.raises(ScaleException) as info:
        live_client.update_teammates_role([server.admin_email], TeammateRole.Member)
    assert info.value.code in (400, 404), info.value
    assert by_email(live_client.list_teammates())[server.admin_email].role == "admin"


def test_set_role_unknown_email_is_an_error(live_client):
    with pytest.raises(ScaleException) as info:
        live_client.update_teammates_role([f"stranger-{RUN}@example.com"], TeammateRole.Manager)
    assert info.value.code in (400, 404), info.value


# --- an invited teammate who accepts ---------------------------------------------------------


def test_update_role_of_accepted_teammate(live_client, server):
    email = f"joiner-{RUN}@example.com"
    live_client.invite_teammates([email], TeammateRole.Member)
    token = invite_token(server, email)
    assert token, "the invitation mail (with its /invite/ link) did not appear in the server log"
    accept_invitation(server, token, PASSWORD)

    mate = by_email(live_client.list_teammates()).get(email)
    assert mate is not None and mate.role == "member", mate and mate.as_dict()
    assert not mate.expiry, f"an accepted teammate has no invitation expiry: {mate.as_dict()}"

    result = by_email(live_client.update_teammates_role([email], TeammateRole.Manager))
    assert result[email].role == "manager"
    assert by_email(live_client.list_teammates())[email].role == "manager"

    # Teammate helper
    result = by_email(by_email(live_client.list_teammates())[email].update_teammate_role(TeammateRole.Member))
    assert result[email].role == "member"

    raises(ScaleInvalidRequest, live_client.update_teammates_role, [email], TeammateRole.Admin, code=400)
    assert by_email(live_client.list_teammates())[email].role == "member"
