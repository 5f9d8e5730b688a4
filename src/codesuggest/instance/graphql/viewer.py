"""`currentUser`: who the token belongs to and which Duo features they may use.

A code-suggestions seat decides `duoCodeSuggestionsAvailable`; the instance's
`code_suggestions_contexts` setting decides `codeSuggestionsContexts` (what an IDE may send
with a completion, e.g. open tabs). Duo Chat is not offered, so its fields say so.
"""

from __future__ import annotations

import strawberry

from codesuggest.instance.graphql.context import GraphQLContext


def user_gid(user_id: int) -> strawberry.ID:
    return strawberry.ID(f"gid://gitlab/User/{user_id}")


@strawberry.type(name="CurrentUser")
class CurrentUser:
    id: strawberry.ID
    username: str
    name: str
    avatar_url: str | None
    web_url: str
    duo_code_suggestions_available: bool = strawberry.field(
        description="Whether the user holds a code-suggestions seat."
    )
    duo_chat_available: bool
    duo_chat_available_features: list[str]
    code_suggestions_contexts: list[str] = strawberry.field(
        description="Context kinds the user's IDE may send with completions."
    )


@strawberry.type
class ViewerQuery:
    @strawberry.field(description="The user of the token, or null without one.")
    def current_user(self, info: strawberry.Info) -> CurrentUser | None:
        context: GraphQLContext = info.context
        viewer = context.viewer
        if viewer is None:
            return None
        return CurrentUser(
            id=user_gid(viewer.user_id),
            username=viewer.username,
            name=viewer.username,
            avatar_url=None,
            web_url=f"{context.instance.settings.url.rstrip('/')}/{viewer.username}",
            duo_code_suggestions_available=viewer.has_seat,
            duo_chat_available=False,
            duo_chat_available_features=[],
            code_suggestions_contexts=list(context.info.code_suggestions_contexts)
            if viewer.has_seat
            else [],
        )
