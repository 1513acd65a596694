#!/usr/bin/env bash
# Builds the Debian package of Petit from an already built `pt` binary, with dpkg-deb only
# (no cargo-deb, no debhelper: nothing to install on a fresh Debian or Ubuntu).
#
#   packaging/build-deb.sh ARCH PT_BINARY HOST_PT_BINARY OUT_DIR
#
#   ARCH            the Debian architecture of PT_BINARY: arm64, armhf or amd64
#   PT_BINARY       the binary to ship as /usr/bin/pt (scripts/build-pi.sh passes the static musl
#                   build for that architecture)
#   HOST_PT_BINARY  a pt that runs on this machine, to write the man page from its --help
#   OUT_DIR         where petit_VERSION-1_ARCH.deb is written (build-pi.sh: target/debian)
#
# The package installs:
#   /usr/bin/pt                                the binary
#   /usr/lib/systemd/system/petit.service      examples/petit.service with a packaged header
#   /usr/lib/systemd/system/petit-web.service  examples/petit-web.service (pt web; off by default)
#   /etc/petit/jobs/hello.yaml                 conffile: examples/hello.yaml (manual trigger only)
#   /usr/share/man/man1/pt.1.gz                from packaging/gen-man.sh
#   /usr/share/doc/petit/                      README, install guides, example jobs, copyright
# and its maintainer scripts (packaging/deb/) create the `petit` system user, own /etc/petit by
# root:petit 0750, and restart a running service on upgrade. Installing does not enable the
# service: `systemctl enable --now petit` does.
set -euo pipefail

die() { echo "build-deb.sh: $*" >&2; exit 1; }
[ $# -eq 4 ] || die "usage: build-deb.sh ARCH PT_BINARY HOST_PT_BINARY OUT_DIR"
arch=$1 bin=$2 host_bin=$3 out=$4
case "$arch" in arm64|armhf|amd64) ;; *) die "ARCH must be arm64, armhf or amd64, not '$arch'" ;; esac
[ -f "$bin" ] || die "no binary at '$bin'"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (it is part of dpkg, on every Debian)"

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
debversion="$version-1"
# Reproducible timestamps: the last commit's date, when in a git checkout.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/petit"
doc="$pkg/usr/share/doc/petit"
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/system" \
    "$pkg/etc/petit/jobs" "$pkg/usr/share/man/man1" "$doc/examples"

install -m 0755 "$bin" "$pkg/usr/bin/pt"

{
    echo "# Installed by the petit Debian package from examples/petit.service. Do not edit this"
    echo "# file: an upgrade replaces it. Use 'systemctl edit petit' for a drop-in instead. The"
    echo "# package has created the petit user and /etc/petit/jobs; see /usr/share/doc/petit/."
    echo "#"
    cat "$root/examples/petit.service"
} >"$pkg/usr/lib/systemd/system/petit.service"
chmod 0644 "$pkg/usr/lib/systemd/system/petit.service"
install -m 0644 "$root/examples/petit-web.service" "$pkg/usr/lib/systemd/system/petit-web.service"

install -m 0644 "$root/examples/hello.yaml" "$pkg/etc/petit/jobs/hello.yaml"

"$root/packaging/gen-man.sh" "$host_bin" "$stage/pt.1"
gzip -9n <"$stage/pt.1" >"$pkg/usr/share/man/man1/pt.1.gz"
chmod 0644 "$pkg/usr/share/man/man1/pt.1.gz"

install -m 0644 "$root/README.md" "$root/docs/install-pi.md" "$root/docs/raspberry-pi.md" \
    "$root/docs/job-files.md" "$root/docs/schedules.md" "$root/docs/web.md" "$doc/"
install -m 0644 "$root"/examples/*.yaml "$root/examples/petit.service" \
    "$root/examples/petit-web.service" "$doc/examples/"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: petit"
    echo
    echo "Files: *"
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' "$root/LICENSE"
} >"$doc/copyright"
chmod 0644 "$doc/copyright"
{
    echo "petit ($debversion) unstable; urgency=medium"
    echo
    echo "  * Built from the petit source tree, version $version."
    echo
    echo " -- Petit maintainers <petit@example.invalid>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

# pt is static on purpose (one binary for every distribution on the board, no libc to match).
install -d -m 0755 "$pkg/usr/share/lintian/overrides"
{
    echo "# Static on purpose: one binary for any distribution of its architecture, nothing to match."
    echo "petit: statically-linked-binary [usr/bin/pt]"
    echo "# amd64: a static-PIE executable, which lintian takes for a shared library."
    echo "petit: shared-library-lacks-prerequisites [usr/bin/pt]"
} >"$pkg/usr/share/lintian/overrides/petit"
chmod 0644 "$pkg/usr/share/lintian/overrides/petit"

install -m 0755 "$root/packaging/deb/postinst" "$root/packaging/deb/prerm" \
    "$root/packaging/deb/postrm" "$pkg/DEBIAN/"
echo "/etc/petit/jobs/hello.yaml" >"$pkg/DEBIAN/conffiles"
(cd "$pkg" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"

installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: petit
Version: $debversion
Architecture: $arch
Maintainer: Petit maintainers <petit@example.invalid>
Installed-Size: $installed_size
Depends: passwd
Recommends: systemd, curl
Section: admin
Priority: optional
Description: durable task orchestrator for small machines that lose power
 Petit runs jobs (YAML files, each a DAG of shell commands with dependencies,
 retries, timeouts and conditions) on cron schedules with time zones, by hand,
 or after other jobs. Every run and task attempt is recorded in an embedded
 database before anything it implies happens, so that after a power cut the
 next start continues every run where it stopped, never re-runs a finished
 task, and handles missed cron firings exactly once.
 .
 Built for Raspberry Pi and Turing Pi boards: one static binary, a systemd
 service (petit.service, user petit, state in /var/lib/petit, jobs in
 /etc/petit/jobs). The service is not started on install:
 systemctl enable --now petit. A web UI and HTTP API, pt web, comes as
 petit-web.service, also off by default.
CONTROL

# Normalise modes and mtimes so that the same inputs give the same package.
find "$pkg" -type d -exec chmod 0755 {} +
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb="$out/petit_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
