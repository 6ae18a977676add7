"""Sinks: independent consumer groups that turn topics into effects (read model, alerts, callbacks, audit)."""
