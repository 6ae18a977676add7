"""The low pieces every SendPromptly process shares: settings, ids, keys and tokens, the keyring and
what it encrypts, failure classification, logging and metrics set-up, outbound-target checks.

Nothing here imports ``store``, ``agents``, ``sinks``, ``api_gateway`` or the CLI (``sendpromptly``);
only ``topics`` beside it. The import contracts in ``pyproject.toml`` hold every package to its layer.
"""
