"""Test support: a fake OpenAI upstream and helpers that run the real proxy process."""
