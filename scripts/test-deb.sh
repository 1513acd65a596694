#!/usr/bin/env bash
# Installs the Debian package of Petit on THIS machine, checks it, and purges it again.
#
#   scripts/test-deb.sh [DEB]      (default: target/debian/petit_*_<this machine's arch>.deb)
#
# Build the package first with scripts/build-pi.sh. Needs root. It refuses to run where petit is
# already installed, or where a `petit` user or /var/lib/petit exists, so that it never touches a
# real installation; it removes everything it created, also when a check fails.
#
# Checks, in order (each failure names itself and exits non-zero):
#   1. dpkg -i installs it; the files dpkg -L lists are there (binary, unit, conffile, man page,
#      docs); /usr/bin/pt is static and prints the package's version (its size is printed; the
#      6 MiB budget is checked by build-pi.sh on the arm64 binary);
#   2. the postinst made the system user petit (home /var/lib/petit, nologin), /etc/petit and
#      /etc/petit/jobs root:petit 0750, /var/lib/petit petit:petit 0700;
#   3. the unit: systemd-analyze verify (says plainly when systemd-analyze is missing) and the
#      settings the install relies on (Type=notify, User=petit, StateDirectory=petit, ExecStart);
#   4. pt validate /etc/petit/jobs; the man page renders (when man is installed);
#   5. the unit's ExecStart, run as its User= (systemd is not PID 1 in a container): the daemon
#      answers pt status, runs pt trigger hello_world, and exits 0 on SIGTERM;
#   6. systemctl enable petit (offline) creates the enablement link; dpkg -i again (an upgrade
#      in place) keeps user, state and enablement;
#   7. dpkg -r: binary and unit gone; conffile, user and state kept; the unit masked; installing
#      again unmasks it and restores the enablement (then it is removed again);
#   8. dpkg --purge: /etc/petit and every systemd link gone; /var/lib/petit and the user kept
#      (by design, see docs/install-pi.md), then removed by this script.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "test-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "test-deb: ok: $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs a package)"
command -v dpkg >/dev/null || die "dpkg not found: this test needs Debian or Ubuntu"
arch=$(dpkg --print-architecture)
if [ $# -ge 1 ]; then
    deb=$1
else
    target_dir=$(cd "$root" && cargo metadata --no-deps --format-version 1 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' || true)
    deb=$(ls "${target_dir:-$root/target}"/debian/petit_*_"$arch".deb 2>/dev/null | tail -n 1 || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || die "no petit package for $arch in target/debian; build it with scripts/build-pi.sh"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || die "$deb is not for this machine's architecture ($arch)"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
version=$(dpkg-deb -f "$deb" Version)

if dpkg -s petit >/dev/null 2>&1; then
    die "petit is already installed here; this test installs and purges it, so it will not run"
fi
getent passwd petit >/dev/null && die "a user 'petit' exists; remove it (userdel petit) or run this in a throwaway machine"
getent group petit >/dev/null && die "a group 'petit' exists; remove it (groupdel petit) first"
[ -e /var/lib/petit ] && die "/var/lib/petit exists; remove it or run this in a throwaway machine"
[ -e /etc/petit ] && die "/etc/petit exists; remove it or run this in a throwaway machine"

if ! command -v readelf >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils >/dev/null; } \
        || die "readelf missing and binutils cannot be installed"
fi

daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -9 "$daemon_pid" 2>/dev/null || true
    fi
    rm -f /tmp/petit-test-deb.$$.log
    dpkg --purge petit >/dev/null 2>&1 || true
    rm -rf /var/lib/petit /etc/petit
    rm -f /etc/systemd/system/petit.service /etc/systemd/system/multi-user.target.wants/petit.service
    userdel petit 2>/dev/null || true
    groupdel petit 2>/dev/null || true
}
trap cleanup EXIT

# 1. Install; files.
dpkg -i "$deb" || die "dpkg -i $deb failed"
dpkg -s petit | grep -q '^Status: install ok installed' || die "dpkg -s petit: not installed"
files=$(dpkg -L petit)
unit=$(grep -E '^(/usr)?/lib/systemd/system/petit\.service$' <<<"$files" || true)
[ -n "$unit" ] || die "dpkg -L petit lists no petit.service"
for f in /usr/bin/pt "$unit" /etc/petit/jobs/hello.yaml /usr/share/man/man1/pt.1.gz \
    /usr/share/doc/petit/copyright /usr/share/doc/petit/install-pi.md; do
    grep -qx "$f" <<<"$files" || die "dpkg -L petit does not list $f"
    [ -f "$f" ] || die "$f is listed but missing"
done
dpkg-query -W -f='${Conffiles}\n' petit | grep -q '/etc/petit/jobs/hello.yaml' \
    || die "/etc/petit/jobs/hello.yaml is not a conffile"
[ -x /usr/bin/pt ] || die "/usr/bin/pt is not executable"
readelf -l /usr/bin/pt | grep -q 'Requesting program interpreter' && die "/usr/bin/pt is not static"
size=$(stat -c %s /usr/bin/pt)
[ "$(/usr/bin/pt --version)" = "pt ${version%-*}" ] || die "pt --version: '$(/usr/bin/pt --version)', expected 'pt ${version%-*}'"
[ ! -e /etc/systemd/system/multi-user.target.wants/petit.service ] || die "dpkg -i enabled the service (it must not)"
ok "installed $(basename "$deb"): $(wc -l <<<"$files") paths; /usr/bin/pt static, $size bytes, $(/usr/bin/pt --version)"

# 2. User, group, directories.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd petit) || die "postinst created no user petit"
[ "$uid" -lt 1000 ] || die "petit is not a system user (uid $uid)"
[ "$home" = /var/lib/petit ] || die "petit's home is $home, expected /var/lib/petit"
[ "$shell" = /usr/sbin/nologin ] || die "petit's shell is $shell, expected /usr/sbin/nologin"
[ "$(getent group petit | cut -d: -f3)" = "$gid" ] || die "petit's primary group is not petit"
for d in /etc/petit /etc/petit/jobs; do
    [ "$(stat -c '%U:%G %a' "$d")" = "root:petit 750" ] || die "$d is $(stat -c '%U:%G %a' "$d"), expected root:petit 750"
done
[ "$(stat -c '%U:%G %a' /var/lib/petit)" = "petit:petit 700" ] \
    || die "/var/lib/petit is $(stat -c '%U:%G %a' /var/lib/petit), expected petit:petit 700"
ok "user petit (uid $uid, nologin), /etc/petit root:petit 0750, /var/lib/petit petit:petit 0700"

# 3. The unit.
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out" >&2; die "systemd-analyze verify $unit"; }
    # verify also reports problems of other units it loads; only petit.service's count.
    if grep -i 'petit' <<<"$out" >&2; then die "systemd-analyze verify complains about $unit"; fi
    ok "systemd-analyze verify $unit"
else
    echo "test-deb: SKIPPED: systemd-analyze is not installed, the unit's syntax is NOT verified"
fi
for want in 'Type=notify' 'User=petit' 'Group=petit' 'StateDirectory=petit' \
    'ExecStart=/usr/bin/pt run --state /var/lib/petit /etc/petit/jobs' 'WantedBy=multi-user.target'; do
    grep -qx "$want" "$unit" || die "$unit lacks the line $want"
done
ok "unit settings: Type=notify, User=petit, StateDirectory=petit, ExecStart"

# 3b. pt web's unit: shipped, valid, off.
web_unit=$(grep -E '^(/usr)?/lib/systemd/system/petit-web\.service$' <<<"$files" || true)
[ -n "$web_unit" ] || die "dpkg -L petit lists no petit-web.service"
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$web_unit" 2>&1) || { echo "$out" >&2; die "systemd-analyze verify $web_unit"; }
    if grep -i 'petit-web' <<<"$out" >&2; then die "systemd-analyze verify complains about $web_unit"; fi
fi
grep -qx 'ExecStart=/usr/bin/pt web --state /var/lib/petit --listen 127.0.0.1:8080' "$web_unit" \
    || die "$web_unit lacks its ExecStart"
[ ! -e /etc/systemd/system/multi-user.target.wants/petit-web.service ] \
    || die "dpkg -i enabled petit-web.service (it must not)"
ok "petit-web.service shipped, off by default"

# 4. Jobs and man page.
/usr/bin/pt validate /etc/petit/jobs || die "pt validate /etc/petit/jobs"
gzip -t /usr/share/man/man1/pt.1.gz || die "pt.1.gz is not valid gzip"
zcat /usr/share/man/man1/pt.1.gz | grep -q '^\.SS "pt trigger"' || die "the man page has no pt trigger section"
if command -v man >/dev/null; then
    MANWIDTH=80 man -l /usr/share/man/man1/pt.1.gz 2>/dev/null | grep -q 'pt trigger' || die "man -l pt.1.gz does not render"
    ok "pt validate /etc/petit/jobs; man pt renders"
else
    ok "pt validate /etc/petit/jobs; man page present (man not installed, not rendered)"
fi

# 5. The service's command, as its user.
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
as_petit() { setpriv --reuid=petit --regid=petit --init-groups env HOME=/var/lib/petit "$@"; }
# shellcheck disable=SC2086 # ExecStart is split into words as systemd does (no quotes in it).
# Started directly, not through the function, so that $! is pt itself (setpriv and env exec).
setpriv --reuid=petit --regid=petit --init-groups env HOME=/var/lib/petit \
    $execstart --clock-sync-timeout 0 >/tmp/petit-test-deb.$$.log 2>&1 &
daemon_pid=$!
up=
for _ in $(seq 1 50); do
    if as_petit /usr/bin/pt status --state /var/lib/petit >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.2
done
[ -n "$up" ] || { cat /tmp/petit-test-deb.$$.log >&2; die "the unit's ExecStart as user petit did not come up"; }
as_petit /usr/bin/pt trigger hello_world --state /var/lib/petit || die "pt trigger hello_world through the daemon"
as_petit /usr/bin/pt history hello_world --state /var/lib/petit
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
[ "$rc" = 0 ] || { cat /tmp/petit-test-deb.$$.log >&2; die "pt run exited $rc on SIGTERM"; }
rm -f /tmp/petit-test-deb.$$.log
[ "$(stat -c %U /var/lib/petit/petit.redb)" = petit ] || die "the database is not owned by petit"
ok "ExecStart as user petit: daemon up, pt trigger hello_world succeeded, SIGTERM exit 0"

# 6. Enable (what `systemctl enable --now petit` does, minus the start), then reinstall.
wants=/etc/systemd/system/multi-user.target.wants/petit.service
if command -v systemctl >/dev/null; then
    systemctl enable petit.service >/dev/null 2>&1 || die "systemctl enable petit.service"
    [ -L "$wants" ] || die "systemctl enable made no $wants"
fi
dpkg -i "$deb" >/dev/null || die "dpkg -i over the installed package (upgrade path) failed"
[ "$(stat -c '%U:%G %a' /etc/petit/jobs)" = "root:petit 750" ] || die "reinstall lost /etc/petit/jobs' ownership"
[ -f /var/lib/petit/petit.redb ] || die "reinstall lost the database"
if command -v systemctl >/dev/null; then [ -L "$wants" ] || die "reinstall lost the enablement"; fi
ok "systemctl enable; dpkg -i again keeps user, modes, state and enablement"

# 7. Remove.
dpkg -r petit >/dev/null || die "dpkg -r petit failed"
[ ! -e /usr/bin/pt ] || die "dpkg -r left /usr/bin/pt"
[ ! -e "$unit" ] || die "dpkg -r left $unit"
[ -f /etc/petit/jobs/hello.yaml ] || die "dpkg -r deleted the conffile (only purge should)"
getent passwd petit >/dev/null || die "dpkg -r deleted the user"
[ -f /var/lib/petit/petit.redb ] || die "dpkg -r deleted the state"
if command -v deb-systemd-helper >/dev/null; then
    [ "$(readlink /etc/systemd/system/petit.service)" = /dev/null ] || die "dpkg -r did not mask petit.service"
fi
ok "dpkg -r: binary and unit gone; conffile, user, state kept; unit masked"
if command -v deb-systemd-helper >/dev/null; then
    dpkg -i "$deb" >/dev/null || die "dpkg -i after dpkg -r failed"
    [ ! -L /etc/systemd/system/petit.service ] || die "reinstall after dpkg -r left the unit masked"
    [ -L "$wants" ] || die "reinstall after dpkg -r did not restore the enablement"
    dpkg -r petit >/dev/null || die "second dpkg -r petit failed"
    ok "dpkg -i after dpkg -r: unmasked, enablement restored"
fi

# 8. Purge.
dpkg --purge petit >/dev/null || die "dpkg --purge petit failed"
[ ! -e /etc/petit ] || die "dpkg --purge left /etc/petit: $(ls -la /etc/petit)"
[ ! -e /etc/systemd/system/petit.service ] && [ ! -L /etc/systemd/system/petit.service ] || die "purge left the mask"
[ ! -L "$wants" ] || die "purge left $wants"
dpkg-statoverride --list | grep -q '/etc/petit' && die "purge left a dpkg-statoverride for /etc/petit"
[ -d /var/lib/petit ] || die "purge deleted /var/lib/petit (it must be kept)"
getent passwd petit >/dev/null || die "purge deleted the user petit (it must be kept)"
ok "dpkg --purge: /etc/petit, statoverrides, mask and enablement gone; /var/lib/petit and user kept"
# The cleanup trap removes the state and the user this test created.
echo "test-deb: all checks passed"
