#!/usr/bin/env bash
# A real Zabbix 6.0 server with its API on loopback, for the end-to-end tests.
#   zabbix-env.sh start   install if needed, create its own PostgreSQL database, start
#                         zabbix_server and the frontend (PHP's built-in server); idempotent
#   zabbix-env.sh stop    stop both by PID
# Nothing goes through systemd. State lives in $ZBX_E2E_DIR (default /tmp/incident-bridge-zabbix).
set -euo pipefail

DIR=${ZBX_E2E_DIR:-/tmp/incident-bridge-zabbix}
DB=${ZBX_E2E_DB:-incident_bridge_zabbix}
SERVER_PORT=${ZBX_E2E_SERVER_PORT:-10061}
WEB_PORT=${ZBX_E2E_WEB_PORT:-18081}
PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

install_packages() {
    command -v zabbix_server >/dev/null && command -v zabbix_sender >/dev/null && command -v php >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null  # start no daemon
    as_root chmod +x /usr/sbin/policy-rc.d
    # php8.2-cgi keeps the PHP dependency from pulling in apache2; zabbix-agent carries zabbix_sender.
    as_root apt-get install -y -qq --no-install-recommends zabbix-server-pgsql zabbix-frontend-php php-pgsql \
        php8.2-cgi zabbix-agent >/dev/null
    as_root rm -f /usr/sbin/policy-rc.d
}

running() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start() {
    install_packages
    mkdir -p "$DIR"
    if ! "${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        "${PSQL[@]}" -c "CREATE DATABASE $DB"
    fi
    if ! "${PSQL[@]}" -d "$DB" -tAc "SELECT to_regclass('public.users')" | grep -q users; then
        for part in schema images data; do
            zcat "/usr/share/zabbix-server-pgsql/$part.sql.gz" | "${PSQL[@]}" -d "$DB" >/dev/null
        done
    fi
    cat > "$DIR/zabbix_server.conf" <<CONF
ListenIP=127.0.0.1
ListenPort=$SERVER_PORT
DBHost=127.0.0.1
DBName=$DB
DBUser=postgres
PidFile=$DIR/zabbix_server.pid
LogFile=$DIR/zabbix_server.log
LogFileSize=0
SocketDir=$DIR
AllowRoot=1
CacheUpdateFrequency=1
StartPollers=1
StartTrappers=2
StartAlerters=2
StartPingers=0
StartDiscoverers=0
StartHTTPPollers=0
StartPreprocessors=1
Timeout=10
CONF
    as_root tee /etc/zabbix/zabbix.conf.php >/dev/null <<PHP
<?php
\$DB['TYPE'] = 'POSTGRESQL';
\$DB['SERVER'] = '127.0.0.1';
\$DB['PORT'] = '5432';
\$DB['DATABASE'] = '$DB';
\$DB['USER'] = 'postgres';
\$DB['PASSWORD'] = '';
\$DB['SCHEMA'] = '';
\$DB['ENCRYPTION'] = false;
\$DB['KEY_FILE'] = '';
\$DB['CERT_FILE'] = '';
\$DB['CA_FILE'] = '';
\$DB['VERIFY_HOST'] = false;
\$DB['CIPHER_LIST'] = '';
\$DB['VAULT_URL'] = '';
\$DB['VAULT_DB_PATH'] = '';
\$DB['VAULT_TOKEN'] = '';
\$DB['DOUBLE_IEEE754'] = true;
\$ZBX_SERVER = '127.0.0.1';
\$ZBX_SERVER_PORT = '$SERVER_PORT';
\$ZBX_SERVER_NAME = 'incident-bridge e2e';
\$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
PHP
    if ! running zabbix_server; then
        zabbix_server -c "$DIR/zabbix_server.conf"  # daemonises and writes its PID file
    fi
    if ! running frontend; then
        nohup php -S "127.0.0.1:$WEB_PORT" -t /usr/share/zabbix >"$DIR/frontend.log" 2>&1 &
        echo $! > "$DIR/frontend.pid"
    fi
    for _ in $(seq 1 60); do
        if curl -fsS -H 'Content-Type: application/json-rpc' \
            -d '{"jsonrpc":"2.0","method":"apiinfo.version","params":{},"id":1}' \
            "http://127.0.0.1:$WEB_PORT/api_jsonrpc.php" >/dev/null 2>&1; then
            echo "ZABBIX_API_URL=http://127.0.0.1:$WEB_PORT"
            echo "ZABBIX_SERVER_PORT=$SERVER_PORT"
            echo "ZABBIX_LOG=$DIR/zabbix_server.log"
            return 0
        fi
        sleep 1
    done
    echo "zabbix-env: the Zabbix API did not answer on port $WEB_PORT" >&2
    return 1
}

stop() {
    for name in frontend zabbix_server; do
        if running "$name"; then
            kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
        fi
    done
    # zabbix_server's children exit with their parent; wait for the PID file owner to go.
    for _ in $(seq 1 20); do running zabbix_server || break; sleep 0.5; done
    rm -f "$DIR/frontend.pid"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
