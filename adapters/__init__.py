"""The outside world (chat platforms, LLMs), each behind a small Protocol in adapters.base."""
