"""Every RESP command the daemon lists (COMMAND), tried with redis-py
without AUTH, with a token lacking its scope and with one holding it. A
command this table does not know fails: a new command cannot ship without
a decision on its scope.

Usage: python3 resp_auth.py HOST PORT LACKING READ WRITE
Prints one line per command and a closing "N passed, M failed" line.
"""
import sys
import warnings

import redis
import redis.backoff
import redis.retry

# No CLIENT SETINFO on connect (lib_name=None): the first command a
# connection sends is the one under test. redis-py 8 deprecates the form.
warnings.filterwarnings("ignore", category=DeprecationWarning)

HOST, PORT, LACKING, READ, WRITE = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
HOLDERS = {"read": READ, "write": WRITE, "token": LACKING}
U = "0190b7a4-0000-7000-8000-000000000000"
# command: (scope kind, arguments); "token" is any token, "open" none.
NEEDS = {
    "EAPPEND": ("write", ["s", "T"]),
    "EMAPPEND": ("write", [U, "s", "T"]),
    "EGET": ("read", [U]),
    "ESCAN": ("read", ["s", "-", "+"]),
    "ESVER": ("read", ["s"]),
    "ESUB": ("read", ["s"]),
    "EACK": ("token", [U, "0"]),
    "EPSCAN": ("read", ["0", "-", "+"]),
    "EPSEQ": ("read", ["0"]),
    "EPSUB": ("read", ["*"]),
    "HELLO": ("token", ["3"]),
    "PING": ("token", []),
    "QUIT": ("open", []),
    "CLIENT": ("token", ["GETNAME"]),
    "COMMAND": ("token", []),
    "SELECT": ("token", ["0"]),
    "AUTH": ("open", []),
}


def connect(token):
    # No retries: a refusal is the answer, not a fault to retry.
    no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    return redis.Redis(host=HOST, port=PORT, password=token, lib_name=None, lib_version=None, socket_timeout=10, retry=no_retry)


def error(command, token):
    """The error code the command answers with, or None. Sent and read raw:
    redis-py's reply parsers expect Redis's own commands."""
    kind, args = NEEDS[command]
    conn = None
    try:
        conn = connect(token).connection_pool.get_connection()
        conn.send_command(command, *args)
        conn.read_response()
        return None
    except redis.exceptions.NoPermissionError:
        return "NOPERM"
    except redis.exceptions.AuthenticationError:
        return "NOAUTH"
    except redis.exceptions.RedisError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        if conn is not None:
            conn.disconnect()


# COMMAND's names, read raw: redis-py's own parser expects Redis's
# command details.
conn = connect(WRITE).connection_pool.get_connection()
conn.send_command("COMMAND")
listed = [c.decode() for c in conn.read_response()]
conn.disconnect()
passed = failed = 0
for command in (c.upper() for c in listed):
    problems = []
    if command not in NEEDS:
        problems.append("not in this test's table: decide its scope")
    elif NEEDS[command][0] != "open":
        kind = NEEDS[command][0]
        e = error(command, None)
        if e != "NOAUTH":
            problems.append(f"no token: {e}")
        if kind != "token":
            e = error(command, LACKING)
            if e != "NOPERM":
                problems.append(f"lacking token: {e}")
        e = error(command, HOLDERS[kind])
        if e in ("NOAUTH", "NOPERM"):
            problems.append(f"holding {kind}: {e}")
    if problems:
        failed += 1
        print(f"FAIL {command}: {'; '.join(problems)}")
    else:
        passed += 1
        print(f"ok   {command}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed < len(NEEDS) else 0)
