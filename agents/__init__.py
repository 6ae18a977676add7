"""Stream agents (faust): the only writer of flow state."""
