#!/bin/sh
# A throwaway PostgreSQL server from Debian's postgresql package, for `make bench STORE=postgres`
# (the Swift tests start their own, Tests/Support/PostgresCluster.swift).
#   pg-throwaway.sh start DIR   creates and starts a cluster in DIR, prints its postgres:// address
#   pg-throwaway.sh stop DIR    stops it and removes DIR
set -eu
action=$1
dir=$(realpath -m "$2")
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "pg-throwaway: no PostgreSQL server; install Debian's postgresql package" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $action in
start)
    rm -rf "$dir" && mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U belay -A trust --locale=C -E UTF8 --no-sync >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U belay belay
    echo "postgres://belay@127.0.0.1:$port/belay"
    ;;
stop)
    [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
*) echo "usage: pg-throwaway.sh start|stop DIR" >&2; exit 2 ;;
esac
