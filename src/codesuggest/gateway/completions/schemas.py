"""Request and response bodies of docs/contracts.md section 6 (`prompt_version` 1), limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_CONTENT = 100_000
MAX_FILE_NAME = 255
MAX_TELEMETRY = 10
MAX_CONTEXT = 100
MAX_CONTEXT_NAME = 4096
"""Context items are named by path, or by URI (the GitLab Language Server sends each open
tab's `file://` URI, which can be longer than a current file's name)."""
MAX_COUNT = 1_000_000

Content = Annotated[str, Field(max_length=MAX_CONTENT)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class CurrentFile(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    file_name: str = Field(max_length=MAX_FILE_NAME)
    language_identifier: str | None = Field(default=None, max_length=64)
    content_above_cursor: Content
    content_below_cursor: Content = ""


class Telemetry(BaseModel):
    """What the client saw since its last request, for one model (folded into usage events)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=(), strict=True)

    model_engine: str | None = Field(default=None, max_length=255)
    model_name: str | None = Field(default=None, max_length=255)
    lang: str | None = Field(default=None, max_length=64)
    requests: Count = 0
    accepts: Count = 0
    errors: Count = 0
    rejects: Count | None = None


def path_of(name: str) -> str:
    """A `file://` URI's path (what prompts show as the file's name); other names as given."""
    return unquote(urlsplit(name).path) if name.startswith("file://") else name


class ContextItem(BaseModel):
    """Another file or snippet the client sends with the request (open tabs, imports). Fields
    such as the Language Server's `resolution_strategies` are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    type: str = Field(default="file", max_length=64)
    name: Annotated[str, Field(max_length=MAX_CONTEXT_NAME), AfterValidator(path_of)] = ""
    content: Content = ""


class CompletionRequest(BaseModel):
    # Strict: JSON types as declared (`false` is not a count, `"1"` not a number).
    model_config = ConfigDict(
        extra="ignore", protected_namespaces=(), allow_inf_nan=False, strict=True
    )

    prompt_version: int = 1
    project_path: str | None = Field(default=None, max_length=MAX_FILE_NAME * 4)
    project_id: int | None = None
    current_file: CurrentFile
    model_provider: str | None = Field(default=None, max_length=255)
    model_name: str | None = Field(default=None, max_length=255)
    stream: bool = False
    choices_count: int = Field(default=0, ge=0, le=10)
    telemetry: list[Telemetry] = Field(default_factory=list, max_length=MAX_TELEMETRY)
    context: list[ContextItem] = Field(default_factory=list, max_length=MAX_CONTEXT)


class GenerationRequest(CompletionRequest):
    """A generation: the completion request plus what the instance adds for code generation."""

    prompt: Content | None = None
    user_instruction: Content | None = None
    generation_type: str | None = Field(default=None, max_length=64)


class ModelInfo(BaseModel):
    engine: str
    name: str
    lang: str | None


class Choice(BaseModel):
    text: str
    index: int = 0
    finish_reason: Literal["length"] = "length"  # always "length", as GitLab's gateway


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: ModelInfo
    experiments: list[Any] = Field(default_factory=list)
    choices: list[Choice]
    metadata: dict[str, Any] = Field(default_factory=lambda: {"enabled_feature_flags": []})
