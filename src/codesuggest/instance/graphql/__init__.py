"""The instance's GraphQL API at `POST /api/graphql` (GitLab's schema, the parts IDEs use).

- `context.py`: what every resolver gets (`info.context`): the instance and the viewer.
- `viewer.py`: `currentUser` (Duo availability from seats, allowed suggestion contexts).
- `metadata.py`: `metadata`, `featureFlagEnabled` and the feature flags IDEs ask for.
- `projects.py`: `project` / `projects` (this instance hosts no projects: null / empty).
- `seats.py`: `addOnPurchases`, `userAddOnAssignmentCreate`, `userAddOnAssignmentRemove`.
- `schema.py`: the schema, merged from the `QUERIES` and `MUTATIONS` lists; add a module's
  root type there to extend it.
- `endpoint.py`: the HTTP route.
"""
