"""The instance's GraphQL schema, merged from each module's root types.

To extend it, write a module with a `@strawberry.type` root (e.g. `SeatsMutation`) and add it
to `QUERIES` or `MUTATIONS`. As GitLab, a mutation needs a token with `api`: check
`info.context.viewer.scopes` (a read_api PAT may only query). Resolvers raise
`GraphQLRefusal` (or one of `REFUSALS`) for requests they refuse: the message reaches the
client as a GraphQL error; anything else is reported as an internal error without details.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from codesuggest.instance.graphql.metadata import FlagNameError, MetadataQuery
from codesuggest.instance.graphql.projects import ProjectsQuery
from codesuggest.instance.graphql.seats import SCALARS as SEAT_SCALARS
from codesuggest.instance.graphql.seats import SeatRequestRefused, SeatsMutation, SeatsQuery
from codesuggest.instance.graphql.viewer import ViewerQuery


class GraphQLRefusal(Exception):
    """A request a resolver refuses on purpose; its message is shown to the client."""


QUERIES: tuple[type, ...] = (ViewerQuery, MetadataQuery, ProjectsQuery, SeatsQuery)
MUTATIONS: tuple[type, ...] = (SeatsMutation,)
REFUSALS: tuple[type[Exception], ...] = (GraphQLRefusal, FlagNameError, SeatRequestRefused)


class InstanceSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[no-untyped-def]
        """Errors are logged (without secrets) by the HTTP endpoint, not here."""


def build_schema() -> InstanceSchema:
    return InstanceSchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS) if MUTATIONS else None,
        config=StrawberryConfig(scalar_map=SEAT_SCALARS),
        extensions=[
            lambda: MaxAliasesLimiter(max_alias_count=20),
            lambda: MaxTokensLimiter(max_token_count=2000),
            lambda: QueryDepthLimiter(max_depth=12),
        ],
    )


schema = build_schema()
