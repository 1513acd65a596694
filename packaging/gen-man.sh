#!/usr/bin/env bash
# Writes the man page pt(1) from the program's own help, so that it can never disagree with it.
#
#   packaging/gen-man.sh PT_BINARY OUT_FILE
#
# PT_BINARY must run on this machine (build-pi.sh passes the x86_64 build; the help text is the
# same on every architecture). The page holds `pt --help`, then `pt COMMAND --help` for every
# command, then the files, environment and exit codes the Debian package sets up. No date is
# written, so that the page (and the package) is reproducible.
set -euo pipefail

die() { echo "gen-man.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: gen-man.sh PT_BINARY OUT_FILE"
pt=$1 out=$2
"$pt" --version >/dev/null 2>&1 || die "cannot run '$pt' on this machine"

version=$("$pt" --version | awk '{print $2}')
about=$("$pt" --help | head -n 1)
# Commands, in the order `pt --help` lists them, without `help`.
mapfile -t commands < <("$pt" --help | awk '/^Commands:/{on=1; next} /^$/{on=0} on && $1 != "help" {print $1}')
[ ${#commands[@]} -gt 0 ] || die "found no commands in '$pt --help'"

# Preformatted text for roff: escape backslashes, protect lines starting with . or '.
pre() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

{
    printf '.TH PT 1 "" "petit %s" "User Commands"\n' "$version"
    printf '.SH NAME\npt \\- %s\n' "$about"
    printf '.SH SYNOPSIS\n.B pt\n.I COMMAND\n[\\fIOPTIONS\\fR]\n'
    cat <<'ROFF'
.SH DESCRIPTION
Petit runs jobs (YAML files, each a DAG of tasks) on cron schedules, by hand or after other
jobs, and records every run and task attempt in an embedded database before acting on it, so
that after a power cut or a crash every run continues where it stopped.
.PP
Installed by the Debian package, Petit runs as the service
.B petit.service
(user \fBpetit\fR, state in \fI/var/lib/petit\fR, jobs in \fI/etc/petit/jobs\fR).
To use the commands below against it, run them as that user:
.PP
.nf
.RS
sudo \-u petit env PETIT_STATE=/var/lib/petit pt status
.RE
.fi
.SH OVERVIEW
.nf
ROFF
    "$pt" --help | pre
    printf '.fi\n.SH COMMANDS\n'
    for c in "${commands[@]}"; do
        printf '.SS "pt %s"\n.nf\n' "$c"
        "$pt" "$c" --help | pre
        printf '.fi\n'
    done
    cat <<'ROFF'
.SH FILES
.TP
.I /etc/petit/jobs
The job files the service runs (one job per \fB.yaml\fR file). Edits are picked up within a
second; \fBsystemctl reload petit\fR does the same by hand.
.TP
.I /var/lib/petit
The state directory: \fBpetit.redb\fR (runs, attempts, schedule cursors), \fBlogs/\fR (one file
per task attempt) and the control socket of the running daemon.
.TP
.I /usr/lib/systemd/system/petit.service
The systemd unit. Change it with \fBsystemctl edit petit\fR.
.TP
.I /usr/share/doc/petit/
The README, the installation guide, the Raspberry Pi guide and example jobs.
.SH ENVIRONMENT
.TP
.B PETIT_STATE
The state directory when \fB\-\-state\fR is not given (else \fB$XDG_STATE_HOME/petit\fR, else
\fB~/.local/state/petit\fR).
.TP
.B PETIT_JOBS
The jobs directory of \fBpt run\fR when none is given.
.TP
.B RUST_LOG
The log filter (for example \fBdebug\fR).
.TP
.B NO_COLOR
Never colour the output.
.SH EXIT STATUS
0 success; 1 a followed run failed or was cancelled; 2 usage, validation or bad input; 3 the
state is in use by another \fBpt\fR; 4 the state is unreadable, damaged, or written by a newer
Petit (it is never replaced by a fresh database).
.SH UPGRADES
A database written by an older Petit is upgraded when it is opened. One written by a newer Petit
is refused (exit 4): downgrades are not supported.
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1)
ROFF
} >"$out"
