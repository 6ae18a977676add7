"""PostgreSQL: connections, migrations, and all SQL, one module per table group."""
