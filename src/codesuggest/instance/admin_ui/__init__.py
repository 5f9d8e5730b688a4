"""The instance's admin pages (`/admin`): see `routes.py`; sign-in rules in `security.py`."""
