"""The ``sendpromptly`` command on top of every other package: running the processes, the bootstrap
and demo commands, the operator API from a shell, and the API clients those use."""
