"""A GraphQL depth limit that counts every field, introspection ones included (strawberry's
`QueryDepthLimiter` skips `__schema`/`__type`, so a deep introspection query passed it)."""

from __future__ import annotations

from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)
from strawberry.extensions import AddValidationRules


def depth_limit(max_depth: int) -> AddValidationRules:
    """A schema extension refusing any operation nested deeper than `max_depth` fields."""

    class DepthRule(ASTValidationRule):
        context: ValidationContext

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            if _depth(node.selection_set, self.context, frozenset(), max_depth) > max_depth:
                name = node.name.value if node.name else "anonymous"
                self.report_error(
                    GraphQLError(f"'{name}' exceeds maximum operation depth of {max_depth}", node)
                )

    return AddValidationRules([DepthRule])


def _depth(
    selections: SelectionSetNode | None,
    context: ValidationContext,
    fragments: frozenset[str],
    limit: int,
) -> int:
    if selections is None:
        return 0
    deepest = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            depth = 1 + _depth(selection.selection_set, context, fragments, limit - 1)
        elif isinstance(selection, InlineFragmentNode):
            depth = _depth(selection.selection_set, context, fragments, limit)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = context.get_fragment(name)
            if fragment is None or name in fragments:
                continue  # unknown or cyclic: other rules report those
            depth = _depth(fragment.selection_set, context, fragments | {name}, limit)
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:  # deep enough to refuse: stop walking
            break
    return deepest
