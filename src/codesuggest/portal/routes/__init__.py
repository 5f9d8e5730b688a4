"""HTTP routes of the portal; each module's `router` is included by `app.create_app`."""
