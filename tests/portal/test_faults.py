"""A fault on the portal's side is a 500 with a clear JSON body, never a traceback."""

from __future__ import annotations

from sqlalchemy import delete

from codesuggest.portal.models import SigningKey
from portal.helpers import Portal


def test_missing_signing_key_is_a_clean_500(portal: Portal) -> None:
    key = portal.license_with_addon()
    with portal.admin.sessions.begin() as session:
        session.execute(delete(SigningKey))  # an operator deleted the keys behind our back
    response = portal.access(key)
    assert response.status_code == 500
    assert response.json() == {
        "data": {"cloudConnectorAccess": None},
        "errors": [
            {
                "message": "Internal server error",
                "path": ["cloudConnectorAccess"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ],
    }
    # The license check ran but nothing was written: the call rolled back as a whole.
    [license] = portal.admin.list_licenses()
    assert license.instances == []
