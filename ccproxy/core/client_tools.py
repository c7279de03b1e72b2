"""Anthropic-defined client tools (bash, text editor, memory) as the function definitions they stand for upstream.

A request names these tools by `type` and `name` only: Anthropic keeps their schemas built into its models, and the
client executes the calls. An OpenAI-compatible model knows none of that, so each type becomes a function tool with
the input schema Anthropic documents for it (the SDK's `Tool*Param` and command types) and a description saying
what the client does with it. The function keeps the name the client declared ("bash", "str_replace_editor",
"str_replace_based_edit_tool", "memory"), so the calls need no mapping back.

Only the versions listed here are converted: a future version may change its commands, and guessing would hand the
model a schema the client does not execute. Computer use (`computer_*`) is not converted: it drives a screen through
screenshots and pixel coordinates, a loop Anthropic's models are trained on and OpenAI-compatible ones are not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

BASH_DESCRIPTION = (
    "Run a command in a persistent bash session. The session keeps its state between calls (working directory, "
    "environment variables, files created earlier) and the command's stdout and stderr come back as the result. "
    "Avoid interactive programs (editors, pagers, password prompts): they wait for input that never comes. "
    "Call with `restart: true` to start a fresh session."
)
EDITOR_DESCRIPTION = (
    "View, create and edit text files. `view` shows a file with line numbers (only `view_range` if given) or lists "
    "a directory; `create` writes a new file containing `file_text`; `str_replace` replaces `old_str`, which must "
    "match exactly one place in the file, whitespace included, with `new_str`; `insert` adds `new_str` after line "
    "`insert_line` (0 inserts at the start of the file)"
)
UNDO_DESCRIPTION = "; `undo_edit` reverts the last edit made to the file at `path`"
VIEW_LIMIT_DESCRIPTION = " Viewing a file shows at most {limit} characters of it."
MEMORY_DESCRIPTION = (
    "Your persistent memory: a directory of files under /memories that outlives this conversation. Look at it "
    "before starting a task, and record what you learn and how far you got as you work. `view` lists a directory "
    "or shows a file with line numbers (only `view_range` if given); `create` writes a file containing "
    "`file_text`; `str_replace` replaces the exact text `old_str` with `new_str`; `insert` adds `insert_text` "
    "after line `insert_line`; `delete` removes a file or directory; `rename` moves `old_path` to `new_path`."
)

EDITOR_COMMANDS = ("view", "create", "str_replace", "insert")
MEMORY_COMMANDS = ("view", "create", "str_replace", "insert", "delete", "rename")

Definition = tuple[str, dict[str, Any]]  # (description, parameters)


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _integer(description: str) -> dict[str, Any]:
    return {"type": "integer", "description": description}


def _view_range() -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 2,
        "maxItems": 2,
        "description": "For `view` of a file: the first and last line to show, counted from 1; "
        "-1 as the last line means the end of the file.",
    }


def _command(commands: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(commands), "description": "The operation to perform."}


def bash(tool: Mapping[str, Any]) -> Definition:
    """bash_20241022, bash_20250124: `{command?, restart?}` (a command is needed unless restarting)."""
    properties = {
        "command": _string("The bash command to run; needed on every call except a restart."),
        "restart": {"type": "boolean", "description": "true restarts the bash session; leave it out otherwise."},
    }
    return BASH_DESCRIPTION, {"type": "object", "properties": properties}


def _editor(tool: Mapping[str, Any], commands: tuple[str, ...], description: str) -> Definition:
    properties = {
        "command": _command(commands),
        "path": _string("Path of the file or directory."),
        "view_range": _view_range(),
        "file_text": _string("For `create`: the content of the new file."),
        "old_str": _string("For `str_replace`: the exact text to replace."),
        "new_str": _string("For `str_replace`: the replacement text; for `insert`: the text to insert."),
        "insert_line": _integer("For `insert`: the line after which `new_str` goes (0 = the start of the file)."),
    }
    limit = tool.get("max_characters")
    if isinstance(limit, int) and not isinstance(limit, bool):
        # The client truncates what `view` returns; the model should know why a long file looks cut off.
        description += VIEW_LIMIT_DESCRIPTION.format(limit=limit)
    return description, {"type": "object", "properties": properties, "required": ["command", "path"]}


def text_editor_with_undo(tool: Mapping[str, Any]) -> Definition:
    """text_editor_20241022, text_editor_20250124 (name "str_replace_editor"): the four edits and `undo_edit`."""
    return _editor(tool, (*EDITOR_COMMANDS, "undo_edit"), EDITOR_DESCRIPTION + UNDO_DESCRIPTION + ".")


def text_editor(tool: Mapping[str, Any]) -> Definition:
    """text_editor_20250429, text_editor_20250728 (name "str_replace_based_edit_tool"): no `undo_edit`;
    20250728 takes `max_characters`, the most a `view` shows."""
    return _editor(tool, EDITOR_COMMANDS, EDITOR_DESCRIPTION + ".")


def memory(tool: Mapping[str, Any]) -> Definition:
    """memory_20250818: files under /memories, with `delete` and `rename` besides the editor's commands."""
    properties = {
        "command": _command(MEMORY_COMMANDS),
        "path": _string("Path under /memories of the file or directory (every command except `rename`)."),
        "view_range": _view_range(),
        "file_text": _string("For `create`: the content of the file."),
        "old_str": _string("For `str_replace`: the exact text to replace."),
        "new_str": _string("For `str_replace`: the replacement text."),
        "insert_line": _integer("For `insert`: the line after which `insert_text` goes."),
        "insert_text": _string("For `insert`: the text to insert."),
        "old_path": _string("For `rename`: the current path."),
        "new_path": _string("For `rename`: the new path."),
    }
    return MEMORY_DESCRIPTION, {"type": "object", "properties": properties, "required": ["command"]}


# Tool type -> its definition. Each call builds fresh dicts: the upstream body must not share them across requests.
CLIENT_TOOLS: dict[str, Callable[[Mapping[str, Any]], Definition]] = {
    "bash_20241022": bash,
    "bash_20250124": bash,
    "text_editor_20241022": text_editor_with_undo,
    "text_editor_20250124": text_editor_with_undo,
    "text_editor_20250429": text_editor,
    "text_editor_20250728": text_editor,
    "memory_20250818": memory,
}
# The types that take `max_characters` (validated as a positive integer; other options are ignored).
MAX_CHARACTERS_TYPES = ("text_editor_20250728",)


def client_tool_definition(tool: Mapping[str, Any]) -> Definition | None:
    """(description, parameters) for an Anthropic-defined client tool, or None when its type is not one."""
    kind = tool.get("type")
    build = CLIENT_TOOLS.get(kind) if isinstance(kind, str) else None
    return build(tool) if build is not None else None


def is_computer_use(tool_type: Any) -> bool:
    return isinstance(tool_type, str) and tool_type.startswith("computer_")


def known_versions(tool_type: Any) -> list[str]:
    """The converted types of the same tool as `tool_type` (e.g. every `bash_*` for `bash_20990101`)."""
    if not isinstance(tool_type, str) or "_" not in tool_type:
        return []
    family = tool_type.rsplit("_", 1)[0] + "_"
    return [known for known in CLIENT_TOOLS if known.startswith(family)]
