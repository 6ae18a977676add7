"""What `make up` prints (scripts/stack.sh's banner), checked without starting the stack: a real
demo made in a scratch database, its JSON given to ``scripts/stack.sh banner`` as ``up`` gives it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from common.operator_tokens import verify_password
from store import operators
from store.db import open_pool

REPO = Path(__file__).resolve().parents[1]


async def test_the_banner_gives_the_console_url_and_a_sign_in_that_works(database_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "SENDPROMPTLY_DATABASE_URL": database_url,
           "SENDPROMPTLY_KAFKA_BOOTSTRAP": "127.0.0.1:9", "SENDPROMPTLY_HTTP_PORT": "18080"}
    demo = subprocess.run([sys.executable, "-m", "sendpromptly", "demo", "--json"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    printed = subprocess.run(["bash", "scripts/stack.sh", "banner"], input=demo, env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr

    made = json.loads(demo)
    console = re.search(r"^  Console\s+(\S+)\s+\(sign in as (\S+), password (\S+)\)$", printed.stdout,
                        re.MULTILINE)
    assert console, printed.stdout
    assert console.groups() == ("http://127.0.0.1:18080/", made["operator_email"], made["operator_password"])
    # The password printed is the one the console checks (its argon2id hash is all that is stored).
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            operator = await operators.find_by_email(conn, console.group(2))
            assert operator is not None and operator.is_admin
            stored = await operators.password_hash_of(conn, operator.id)
    finally:
        await pool.close()
    assert stored is not None and verify_password(stored, console.group(3))
