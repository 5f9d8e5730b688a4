"""HTTP routes of the gateway; each module's `router` is included by `app.create_app`."""
