"""The operator API: projects, keys, callbacks, destinations, audit log — for people and the CLI."""
