#!/usr/bin/env bash
# test_units.sh - the installed systemd layout: an install into a scratch DESTDIR
# (PREFIX /usr/local) as `make install` does it, then scripts/check-units on that
# tree (systemd-analyze verify, systemd-analyze security --offline with an exposure
# of 2.5 or lower, sysusers.d, tmpfiles.d, the udev rule), the installed
# configuration as jetprofd reads it, and the installed token as a bearer token.
#
# When the Makefile's install target installs the units, `make install` itself builds
# the tree; until then the script installs the files the way docs/systemd.md tells
# the Makefile to. Where systemd-analyze is missing or too old, check-units says SKIP.
. "$(dirname "$0")/lib.sh"

PREFIX=/usr/local
DEST="$TMP/destdir"
mkdir -p "$DEST"

# install_like_make DESTDIR PREFIX: the install steps of docs/systemd.md ("make
# install"), for a Makefile that does not install the units yet.
install_like_make() {
  local d=$1 p=$2
  local unitdir=$p/lib/systemd/system sysusersdir=$p/lib/sysusers.d tmpfilesdir=$p/lib/tmpfiles.d
  local udevdir=/etc/udev/rules.d
  [ "$p" = /usr ] && udevdir=/usr/lib/udev/rules.d
  install -d "$d$p/bin" "$d/etc/jetprof" "$d$unitdir" "$d$sysusersdir" "$d$tmpfilesdir" \
    "$d$udevdir" || return 1
  install -m 0755 "$JETPROFD" "$JETPROF" "$d$p/bin/" || return 1
  sed "s|@BINDIR@|$p/bin|g" systemd/jetprofd.service >"$d$unitdir/jetprofd.service" || return 1
  chmod 0644 "$d$unitdir/jetprofd.service"
  install -m 0644 systemd/jetprof.sysusers "$d$sysusersdir/jetprof.conf" || return 1
  install -m 0644 systemd/jetprof.tmpfiles "$d$tmpfilesdir/jetprof.conf" || return 1
  install -m 0644 systemd/90-jetprof.rules "$d$udevdir/90-jetprof.rules" || return 1
  if [ ! -f "$d/etc/jetprof/jetprofd.conf" ]; then
    sed 's|^#token_file =$|token_file = /etc/jetprof/token|' systemd/jetprofd.conf \
      >"$d/etc/jetprof/jetprofd.conf" || return 1
    chmod 0644 "$d/etc/jetprof/jetprofd.conf"
  fi
  if [ ! -f "$d/etc/jetprof/token" ]; then
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$d/etc/jetprof/token" &&
      echo >>"$d/etc/jetprof/token") || return 1
  fi
}

if grep -q 'jetprofd\.service' Makefile; then
  echo "# the Makefile installs the units: make install DESTDIR=$DEST PREFIX=$PREFIX"
  if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory install \
      DESTDIR="$DEST" PREFIX="$PREFIX" SAN="$SAN" >"$TMP/install.log" 2>&1; then
    ok "make install DESTDIR=... PREFIX=$PREFIX"
  else
    not_ok "make install DESTDIR=... PREFIX=$PREFIX" "$(tail -n 15 "$TMP/install.log")"
    finish
  fi
else
  echo "# the Makefile does not install the units yet: installing as docs/systemd.md describes"
  install_like_make "$DEST" "$PREFIX" || bail "install into DESTDIR as docs/systemd.md describes"
fi

# not COMMAND...: succeeds when COMMAND fails.
not() { ! "$@"; }

# ---- the tree ----
unit="$DEST$PREFIX/lib/systemd/system/jetprofd.service"
check "jetprofd and jetprof are installed in PREFIX/bin" \
  test -x "$DEST$PREFIX/bin/jetprofd" -a -x "$DEST$PREFIX/bin/jetprof"
check "jetprofd.service is installed in PREFIX/lib/systemd/system" test -f "$unit"
check "sysusers.d and tmpfiles.d files are installed in PREFIX/lib" \
  test -f "$DEST$PREFIX/lib/sysusers.d/jetprof.conf" -a -f "$DEST$PREFIX/lib/tmpfiles.d/jetprof.conf"
rules_found=""
for d in "$PREFIX/lib/udev/rules.d" /etc/udev/rules.d /usr/lib/udev/rules.d; do
  [ -f "$DEST$d/90-jetprof.rules" ] && rules_found="$d"
done
check "90-jetprof.rules is installed in a udev rules directory" test -n "$rules_found"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit" 2>/dev/null)
check "ExecStart runs the installed jetprofd with /etc/jetprof/jetprofd.conf" \
  test "$exec_start" = "$PREFIX/bin/jetprofd --config /etc/jetprof/jetprofd.conf"

conf="$DEST/etc/jetprof/jetprofd.conf"
token="$DEST/etc/jetprof/token"
check "the configuration is installed as /etc/jetprof/jetprofd.conf" test -f "$conf"
# token_is_good FILE: one word of at least 32 printable ASCII characters (what
# jetprofd accepts as a bearer token, and enough randomness to be one).
token_is_good() {
  local value
  value=$(tr -d ' \n' <"$1")
  [ "$(wc -w <"$1")" = 1 ] && [ ${#value} -ge 32 ] && [[ "$value" =~ ^[!-~]+$ ]]
}
if [ -f "$token" ]; then
  check "the install writes /etc/jetprof/token with mode 0600" test "$(stat -c '%a' "$token")" = 600
  check "the token is one word of at least 32 printable characters" token_is_good "$token"
else
  not_ok "the install writes /etc/jetprof/token"
fi

# ---- systemd's checks ----
out=$(scripts/check-units "$DEST" "$PREFIX" 2>&1)
rc=$?
printf '%s\n' "$out"
PASSED=$((PASSED + $(printf '%s\n' "$out" | grep -c '^ok ')))
FAILED=$((FAILED + $(printf '%s\n' "$out" | grep -c '^not ok ')))
if [ "$rc" -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok '; then
  not_ok "scripts/check-units exits 0" "exit status $rc"
fi

# ---- the installed configuration, as jetprofd reads it ----
"$JETPROFD" --config "$conf" --check-config >"$TMP/check-config" 2>&1
rc=$?
check "jetprofd --check-config accepts the installed configuration" test "$rc" = 0
check "the installed daemon keeps its database in /var/lib/jetprof/jetprof.db (StateDirectory=jetprof)" \
  grep -qE '^storage\.db = /var/lib/jetprof/jetprof\.db( |$)' "$TMP/check-config"
check "the installed configuration names the installed token (server.token_file)" \
  grep -qE '^server\.token_file = /etc/jetprof/token( |$)' "$TMP/check-config"

# ---- the installed token works as the bearer token ----
if [ -f "$token" ]; then
  if start_daemon --token-file "$token"; then
    http DELETE /v1/jobs/999999999
    check "without the token a mutating request is refused (401)" test "$STATUS" = 401
    http DELETE /v1/jobs/999999999 "" -H "Authorization: Bearer $(tr -d ' \n' <"$token")"
    check "with the installed token it gets past auth (404 for a job that does not exist)" \
      test "$STATUS" = 404
    check "jetprofd does not warn about the token file's mode" \
      not grep -q "readable by group or others" "$LOG"
    stop_daemon
  else
    not_ok "jetprofd starts with the installed token file"
  fi
fi

finish
