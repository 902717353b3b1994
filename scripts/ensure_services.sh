#!/usr/bin/env bash
# Make sure Postgres and Redis answer on 127.0.0.1 before the tests run: start them where they are installed but
# stopped (the commands these machines use), fail with a clear message otherwise.
set -u
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}; REDIS_PORT=${REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null || python3 - "$PGHOST" "$PGPORT" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}
redis_up() { python3 - "$REDIS_PORT" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"PING\r\n"); ok = s.recv(16).startswith(b"+PONG"); s.close()
    sys.exit(0 if ok else 1)
except OSError:
    sys.exit(1)
PY
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    echo "Postgres is not answering on $PGHOST:$PGPORT: starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "ERROR: Postgres is not reachable on $PGHOST:$PGPORT and could not be started. Install and start PostgreSQL (trust auth for user postgres on 127.0.0.1), or set DATABASE_URL." >&2; exit 1; }
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Redis is not answering on 127.0.0.1:$REDIS_PORT: starting it"
    mkdir -p /tmp/alweb-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir /tmp/alweb-redis >/dev/null
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  fi
  redis_up || { echo "ERROR: Redis is not reachable on 127.0.0.1:$REDIS_PORT and could not be started. Install redis-server or set CELERY_BROKER_URL." >&2; exit 1; }
fi
echo "Postgres and Redis are up."
