#!/usr/bin/env bash
# A real Request Tracker 5 (Debian packages) with REST2 on loopback, for the end-to-end tests.
#   rt-env.sh install   install request-tracker5 and rt5-db-sqlite if needed (no daemon starts);
#                       exit 3 when they cannot be installed (the tests then skip, saying so)
#   rt-env.sh start     install if needed, start RT's standalone server on $RT_E2E_PORT; idempotent
#   rt-env.sh stop      stop it by PID
#   rt-env.sh custom-field NAME
#                       create the ticket custom field NAME (one value, free text) unless it exists, and
#                       apply it to every queue: until applied, RT drops its values silently (what an
#                       RT administrator does in the web UI, through RT's own Perl API)
#   rt-env.sh backdate TICKET 'YYYY-MM-DD HH:MM:SS'
#                       set a ticket's LastUpdated (UTC) through RT's database handle: a change made in a
#                       given second, whatever the time RT's slow answers took (tests of the watermark)
# Nothing goes through systemd or Apache. Debian's dbconfig-common makes the SQLite database
# (queue General, user root, password "password"). State lives in $RT_E2E_DIR.
set -euo pipefail

DIR=${RT_E2E_DIR:-/tmp/incident-bridge-rt}
PORT=${RT_E2E_PORT:-18090}
SERVER=/usr/share/request-tracker5/libexec/rt-server

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

install_packages() {
    [ -x "$SERVER" ] && [ -f /var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    {
        as_root apt-get update -qq &&
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null &&  # start no daemon
        as_root chmod +x /usr/sbin/policy-rc.d &&
        as_root apt-get install -y -qq --no-install-recommends request-tracker5 rt5-db-sqlite >/dev/null
    } || { as_root rm -f /usr/sbin/policy-rc.d; echo "rt-env: cannot install request-tracker5" >&2; exit 3; }
    as_root rm -f /usr/sbin/policy-rc.d
}

# rt-server forks its workers: it runs in a session of its own (setsid), and the whole process group,
# whose id is the recorded PID of the session leader, is signalled.
running() { [ -f "$DIR/rt.pid" ] && kill -0 -- "-$(cat "$DIR/rt.pid")" 2>/dev/null; }

start() {
    install_packages
    mkdir -p "$DIR"
    if ! running; then
        rm -f "$DIR/rt.pid"
        # shellcheck disable=SC2016 # $$ and $0 belong to the inner shell: the session leader, whose PID is the group's
        (cd "$DIR" && exec setsid sh -c 'echo $$ >rt.pid; exec "$0" --port "$1"' "$SERVER" "$PORT") \
            >"$DIR/rt.log" 2>&1 </dev/null &
        for _ in $(seq 1 50); do [ -s "$DIR/rt.pid" ] && break; sleep 0.1; done
    fi
    for _ in $(seq 1 90); do
        if curl -fsS -u root:password "http://127.0.0.1:$PORT/REST/2.0/queues/all" >/dev/null 2>&1; then
            echo "RT_URL=http://127.0.0.1:$PORT"
            echo "RT_LOG=$DIR/rt.log"
            return 0
        fi
        running || { echo "rt-env: rt-server exited; see $DIR/rt.log" >&2; tail -20 "$DIR/rt.log" >&2; return 1; }
        sleep 1
    done
    echo "rt-env: RT's REST2 did not answer on port $PORT" >&2
    return 1
}

stop() {
    if running; then
        kill -- "-$(cat "$DIR/rt.pid")" 2>/dev/null || true
        for _ in $(seq 1 30); do running || break; sleep 0.5; done
        running && kill -KILL -- "-$(cat "$DIR/rt.pid")" 2>/dev/null || true
    fi
    rm -f "$DIR/rt.pid"
}

custom_field() {
    install_packages
    # shellcheck disable=SC2016 # the Perl program's variables are Perl's
    as_root env CF_NAME="$1" perl -I/usr/share/request-tracker5/lib -MRT -e '
        RT::LoadConfig(); RT::Init();
        my $cf = RT::CustomField->new(RT->SystemUser);
        $cf->LoadByName(Name => $ENV{CF_NAME}, LookupType => "RT::Queue-RT::Ticket");
        unless ($cf->id) {
            my ($ok, $why) = $cf->Create(Name => $ENV{CF_NAME}, Type => "FreeformSingle",
                                         LookupType => "RT::Queue-RT::Ticket");
            die "cannot create custom field $ENV{CF_NAME}: $why\n" unless $ok;
        }
        my ($ok, $why) = $cf->AddToObject(RT::Queue->new(RT->SystemUser));
        print "custom field $ENV{CF_NAME} (", $cf->id, "): ", ($ok ? "applied" : $why), "\n";
    '
}

backdate() {
    # shellcheck disable=SC2016 # the Perl program's variables are Perl's
    as_root env TICKET="$1" WHEN="$2" perl -I/usr/share/request-tracker5/lib -MRT -e '
        RT::LoadConfig(); RT::Init();
        my $done = RT->DatabaseHandle->dbh->do(
            "UPDATE Tickets SET LastUpdated = ? WHERE id = ?", undef, $ENV{WHEN}, $ENV{TICKET});
        die "no ticket $ENV{TICKET}\n" unless $done && $done > 0;
        print "ticket $ENV{TICKET} last updated $ENV{WHEN}\n";
    '
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    custom-field) custom_field "${2:?usage: $0 custom-field NAME}" ;;
    backdate) backdate "${2:?usage: $0 backdate TICKET WHEN}" "${3:?usage: $0 backdate TICKET WHEN}" ;;
    *) echo "usage: $0 install|start|stop|custom-field NAME|backdate TICKET WHEN" >&2; exit 2 ;;
esac
