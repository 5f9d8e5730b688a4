"""Alembic environment for the instance; run through `codesuggest.common.db.upgrade`."""

from codesuggest.common.db import run_env
from codesuggest.instance.models import Base

run_env(Base.metadata)
