"""Capture what the real Claude Code CLI sends: `python -m tools.capture_claude_code` (see __main__.py)."""
