"""`metadata { version revision featureFlags(names:) }` and `featureFlagEnabled(name:)`.

IDEs turn features on from instance feature flags. The flags this instance answers for are
derived from its settings (`FLAGS`); every other name is `false`, as GitLab answers for a flag
that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable

import strawberry

from codesuggest.instance.access import InstanceInfo
from codesuggest.instance.graphql.context import GraphQLContext

MAX_FLAG_NAMES = 50
MAX_FLAG_NAME = 255


def _sends_context(info: InstanceInfo) -> bool:
    return bool(info.code_suggestions_contexts)


FLAGS: dict[str, Callable[[InstanceInfo], bool]] = {
    # The GitLab Language Server sends open-tab context only when both are on.
    "advanced_context_resolver": _sends_context,
    "code_suggestions_context": _sends_context,
}


class FlagNameError(ValueError):
    """A feature flag request the instance refuses (too many names, an over-long name)."""


def flag_enabled(name: str, info: InstanceInfo) -> bool:
    if len(name) > MAX_FLAG_NAME:
        raise FlagNameError(f"feature flag names are at most {MAX_FLAG_NAME} characters")
    check = FLAGS.get(name)
    return check(info) if check is not None else False


@strawberry.type
class FeatureFlag:
    name: str
    enabled: bool


@strawberry.type
class Metadata:
    version: str
    revision: str
    enterprise: bool
    info: strawberry.Private[InstanceInfo]

    @strawberry.field(description="The named flags, in the order asked; unknown names are false.")
    def feature_flags(self, names: list[str]) -> list[FeatureFlag]:
        if len(names) > MAX_FLAG_NAMES:
            raise FlagNameError(f"at most {MAX_FLAG_NAMES} feature flag names per query")
        return [FeatureFlag(name=n, enabled=flag_enabled(n, self.info)) for n in names]


@strawberry.type
class MetadataQuery:
    @strawberry.field(description="The instance's version and feature flags (signed-in users).")
    def metadata(self, info: strawberry.Info) -> Metadata | None:
        context: GraphQLContext = info.context
        if context.viewer is None:
            return None
        return Metadata(
            version=context.info.version,
            revision=context.instance.settings.revision,
            enterprise=True,
            info=context.info,
        )

    @strawberry.field(description="Whether a feature flag is on; unknown flags are false.")
    def feature_flag_enabled(self, info: strawberry.Info, name: str) -> bool:
        context: GraphQLContext = info.context
        return flag_enabled(name, context.info)
