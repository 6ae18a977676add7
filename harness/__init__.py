"""The real services and processes that the tests and the benchmarks both run against: Kafka and
PostgreSQL (``services``), per-run databases (``db``), SendPromptly's processes as subprocesses
(``processes``, ``stack``) and reading a topic (``kafka``).

Not part of the product (it is not installed); ``tests/`` and ``bench/`` import it, it imports
neither (tests/unit/test_import_hygiene.py).
"""
