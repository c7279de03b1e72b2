"""Developer tools that make the repository's own test data (see tools/capture_claude_code)."""
