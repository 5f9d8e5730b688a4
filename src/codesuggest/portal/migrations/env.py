"""Alembic environment for the portal; run through `codesuggest.common.db.upgrade`."""

from codesuggest.common.db import run_env
from codesuggest.portal.models import Base

run_env(Base.metadata)
