"""Shared pieces of every SendPromptly process: settings, ids, the CLI."""
