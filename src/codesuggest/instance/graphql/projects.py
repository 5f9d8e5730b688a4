"""`project(fullPath:)` and `projects(...)`: this instance hosts no repositories, so every
project is unknown: `null` and empty lists, as GitLab answers for a project you cannot see."""

from __future__ import annotations

import strawberry


@strawberry.type
class DuoContextExclusionSettings:
    exclusion_rules: list[str] | None


@strawberry.type
class Project:
    id: strawberry.ID
    full_path: str
    duo_features_enabled: bool
    duo_context_exclusion_settings: DuoContextExclusionSettings | None


@strawberry.type
class ProjectEdge:
    node: Project | None


@strawberry.type
class ProjectConnection:
    nodes: list[Project | None]
    edges: list[ProjectEdge | None]


@strawberry.type
class ProjectsQuery:
    @strawberry.field(description="A project by full path; null when it is unknown.")
    def project(self, full_path: strawberry.ID) -> Project | None:
        return None

    @strawberry.field(description="Projects by ids or full paths; only known ones are listed.")
    def projects(
        self,
        ids: list[strawberry.ID] | None = None,
        full_paths: list[str] | None = None,
        with_duo_eligible: bool | None = None,
    ) -> ProjectConnection:
        return ProjectConnection(nodes=[], edges=[])
