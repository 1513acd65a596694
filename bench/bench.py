#!/usr/bin/env python3
"""The Petit benchmark harness; run it through bench/run.sh, which builds what it needs.

    python3 bench/bench.py --pt target/release/pt --tools DIR [--quick] [--rounds N] ...

Measures the figures of docs/performance.md (issue #18's table) on this machine, in one session:

1. DAGs of trivial tasks (`true`) run by `make -jN`, `ninja -jN`, the spawn floor
   (`spawnfloor -j N`, bench/tools: a bare program that spawns and reaps the same processes,
   N at a time, in the same dependency order, with `posix_spawnp` and `waitpid`; no state, no
   parsing, nothing durable) and `pt trigger DIR JOB -t N --state <fresh dir on disk>` with each
   pt binary given (--pt, the glibc build, and --pt-musl, the static musl build that ships):
   250 chains of 4 (1,000 tasks), a fan-out/fan-in (1 root, 1,000 middle, 1 sink) and a chain
   of 200. Every round runs every tool once, in a rotated order, after one untimed warm-up run
   of each, so a slow minute of the shared machine hits every tool alike. Each run is executed
   under `measure` (bench/tools), which reports wall time, CPU, peak RSS and `/proc/PID/io` read
   while the process is a zombie. Per-task overhead is wall / tasks (the ideal wall time of
   `true` tasks is about 0). Ratios: pt/make, pt/ninja, pt/floor, make/floor of the medians.
2. Footprint of a `pt trigger` run, per binary: bytes written per task attempt (`write_bytes`
   of `/proc/PID/io`, i.e. pages dirtied, which includes every fsync'd redb page),
   `rchar`/`wchar`, and the size of the state directory. Where the bytes go: one untimed run of
   the glibc pt under `strace -f -y` splits the database writes into commits (the writes up to
   each fdatasync) and gives commits per attempt, pwrites, bytes and distinct 4 KiB pages per
   commit (see `trace_writes`), plus the bytes written to other files. Which tables a commit's
   pages belong to: `pagecount` (bench/tools) runs Petit's store on a counting backend and
   prints the pages of one commit of each kind (meta only, task records, the run record) and of
   the DAG's run replayed with every concurrent exit in one commit.
3. An idle `pt run` with 100 jobs scheduled daily 12 hours from now, per binary: RSS from
   `/proc/PID/smaps_rollup` (Rss; Anonymous; file-backed = Rss - Anonymous; Pss_File), where
   it is from `/proc/PID/smaps` (see `smaps_breakdown`: the executable's clean file pages, its
   written data, heap and anonymous mmaps, stack), and
   wake-ups (voluntary + involuntary context switches, summed over all threads of
   `/proc/PID/task/*/status`, sampled every second so exiting threads are not lost) over 60 s
   (quick: 10 s).
4. A paused job: an `@every 1s` job under `pt run` (glibc), watched 10 s running (what a firing
   costs) and 10 s paused: `write_bytes` of the daemon's `/proc/PID/io` (the verdict) and the
   growth of the database file, wake-ups and history records added; after `pt unpause`,
   `pt history` must show exactly one folded "N firings from X to Y: paused" record.
5. 100,000 runs of history written by `histgen` (bench/tools): `pt history JOB --limit 20`
   latency; restart-to-resumed after `kill -9` of a `pt trigger` whose task is in flight: the
   time from starting `pt run` (or `pt resume`) to the moment the re-run task writes its marker
   (`date +%s.%N`), with the old task process surviving the kill (it must be fenced) and without
   (power cut).
6. `pt web` (issue #16), per binary, started as `pt web --state DIR --listen 127.0.0.1:0` (its
   address from the `listening on` line, the token from DIR/web.token, sent as
   `Authorization: Bearer`; every request a new connection, as `pt web` closes each):
   - beside a daemon with the 100 jobs of the idle figure: `GET /` (must list job000 and
     job099), 2 untimed then 30 (full: 100) timed requests, from sending the request to the
     body's last byte, median;
   - on the 100,000-run database of the history figure (the same `histgen` output), without a
     daemon (pt web reads the database read only per request) and with one (`pt run` on a copy;
     the job has no schedule): `GET /jobs/hist` (the newest 50 runs: the target), and, reported,
     `?before=50000`, `/runs/N` of the newest run and `/`;
   - a state change seen by an open page: one `GET /api/events` held open on a raw socket (what
     a page's EventSource holds), a thread stamping each line as it arrives; then, 3 times (full:
     5), `POST /api/jobs/jobNNN/trigger` and the time from sending it to the `data:` line of that
     run's `run_started` event (the target), and of its end (reported);
   - CPU with five pages open and nothing happening: five `/api/events` open for 10 s (full:
     60 s): context switches of every thread (as the idle figure) and utime+stime ticks
     (/proc/PID/stat) of `pt web` and of the daemon; `pt web` sends each client a keep-alive
     comment every 30 s (counted from what the clients received), and may wake twice for each
     (at its deadline, and, presumably, once more when tokio's timer wheel moves a 30 s timer
     to a finer level: 7 wake-ups for 5 keep-alives were seen over 35 s), with at most one CPU
     tick over the window; the daemon must not wake at all;
   - RSS (smaps_rollup Rss) of `pt web` at start, after the `/` requests, after the events and
     the five pages, and after the 100,000-run pages in each mode: the verdict (at most 8 MiB)
     is on the largest reading after requests.
7. The stripped sizes of the glibc binary (reported), of the static musl x86_64 one and, if
   present in the target directory (scripts/build-pi.sh builds them), of the aarch64 and armv7
   ones: the packaged binaries, at most 6 MiB each and with the TUI.

Sections can be left out (--skip) or run alone (--only web; --only history,web): dags, idle,
paused, history, web, binary (step 1 and 2 are `dags`).

Prints a table (and writes JSON with --json-out). Exits non-zero on any failure. Temporary files
live in one directory (under --tmp-dir, default target/bench-tmp, i.e. on disk) that is removed
at the end; every process started here is killed on exit. Only the standard library is used.
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Processes started here that may need killing if the harness fails half way.
LIVE = set()


class BenchError(Exception):
    pass


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh_out(argv):
    """stdout of a short command, '' if it fails (machine description only)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# ---------------------------------------------------------------------------------------------
# DAGs


def dag_chains(n_chains=250, length=4):
    tasks = []
    for c in range(n_chains):
        for j in range(length):
            tasks.append((f"c{c}_{j}", [f"c{c}_{j - 1}"] if j else []))
    return tasks


def dag_fan(width=1000):
    tasks = [("root", [])]
    tasks += [(f"m{i}", ["root"]) for i in range(width)]
    tasks.append(("sink", [f"m{i}" for i in range(width)]))
    return tasks


def dag_chain(length=200):
    return [(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(length)]


DAGS = [
    ("chains", "1,000 tasks: 250 chains of 4", dag_chains),
    ("fan", "fan-out/fan-in: 1 + 1,000 + 1", dag_fan),
    ("chain200", "a chain of 200", dag_chain),
]


def write_dag(dirpath, job_id, tasks):
    """The same DAG as a Makefile, a build.ninja and jobs/JOB.yaml in `dirpath`."""
    os.makedirs(os.path.join(dirpath, "jobs"))
    has_dependents = {d for _, deps in tasks for d in deps}
    sinks = [name for name, _ in tasks if name not in has_dependents]
    with open(os.path.join(dirpath, "Makefile"), "w") as f:
        f.write(".PHONY: all " + " ".join(n for n, _ in tasks) + "\n")
        f.write("all: " + " ".join(sinks) + "\n")
        for name, deps in tasks:
            f.write(f"{name}: {' '.join(deps)}\n\t@true\n")
    with open(os.path.join(dirpath, "build.ninja"), "w") as f:
        # Outputs are never created, so every invocation runs every edge.
        f.write("rule r\n  command = true\n")
        for name, deps in tasks:
            f.write(f"build {name}: r {' '.join(deps)}\n")
    with open(os.path.join(dirpath, "floor.dag"), "w") as f:
        # For spawnfloor (bench/tools): one task a line, its name then its dependencies.
        for name, deps in tasks:
            f.write(" ".join([name] + deps) + "\n")
    with open(os.path.join(dirpath, "jobs", f"{job_id}.yaml"), "w") as f:
        f.write(f"id: {job_id}\nhistory: {{keep_runs: 10}}\ntasks:\n")
        for name, deps in tasks:
            f.write(f"  - id: {name}\n    command: \"true\"\n")
            if deps:
                f.write(f"    depends_on: [{', '.join(deps)}]\n")
    return len(tasks)


# ---------------------------------------------------------------------------------------------
# Running things


class Ctx:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.pt = os.path.abspath(args.pt)
        # The pt binaries measured side by side: tool name -> path. "pt" is the glibc release
        # build (also the one of the history, restart and paused figures), "pt-musl" the static
        # musl build that ships.
        self.pts = {"pt": self.pt}
        if args.pt_musl:
            self.pts["pt-musl"] = os.path.abspath(args.pt_musl)
        self.measure_bin = os.path.abspath(os.path.join(args.tools, "measure"))
        self.histgen_bin = os.path.abspath(os.path.join(args.tools, "histgen"))
        self.floor_bin = os.path.abspath(os.path.join(args.tools, "spawnfloor"))
        self.pagecount_bin = os.path.abspath(os.path.join(args.tools, "pagecount"))
        self.n = 0
        self.hist = None  # see history_db
        # pt never reads these; keep the environment of every tool the same and quiet.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("RUST_LOG", "PETIT_STATE", "PETIT_NOW", "MAKEFLAGS", "MFLAGS")}
        # The same short PATH for every tool: make and pt look `true` up in it per task.
        self.env["PATH"] = "/usr/local/bin:/usr/bin:/bin"

    def fresh_dir(self, prefix):
        self.n += 1
        return tempfile.mkdtemp(prefix=f"{prefix}{self.n}-", dir=self.tmp)

    def measure(self, argv, cwd=None):
        """Runs argv under `measure`; returns its JSON figures. Fails loudly on a non-zero exit."""
        out = os.path.join(self.tmp, "measure.json")
        err = os.path.join(self.tmp, "stderr.txt")
        with open(err, "w") as ferr:
            p = subprocess.Popen([self.measure_bin, out] + argv, cwd=cwd, env=self.env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=ferr)
            LIVE.add(p)
            try:
                rc = p.wait(timeout=600)
            finally:
                LIVE.discard(p)
        if rc != 0:
            with open(err) as f:
                tail = f.read()[-2000:]
            raise BenchError(f"{' '.join(argv)} exited {rc} (in {cwd}):\n{tail}")
        with open(out) as f:
            return json.load(f)

    def pt_cmd(self, *args, check=True):
        r = subprocess.run([self.pt] + list(args), capture_output=True, text=True, env=self.env)
        if check and r.returncode != 0:
            raise BenchError(f"pt {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
        return r.stdout


def du_bytes(path):
    total = 0
    n_files = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_blocks * 512
            n_files += 1
    return total, n_files


def attempts_of_run(ctx, state, run_id):
    runs = json.loads(ctx.pt_cmd("history", "--run", str(run_id), "--json", "--state", state))
    if isinstance(runs, list):
        runs = runs[0]
    if runs["status"] != "succeeded":
        raise BenchError(f"run {run_id} in {state} is {runs['status']}")
    return sum(len(t["attempts"]) for t in runs["tasks"])


def run_tool(ctx, tool, dag_dir, job_id, jobs_n, keep_footprint):
    if tool == "make":
        return ctx.measure(["make", f"-j{jobs_n}", "-s", "-f", "Makefile", "all"], cwd=dag_dir)
    if tool == "ninja":
        for f in (".ninja_log", ".ninja_deps"):
            if os.path.exists(os.path.join(dag_dir, f)):
                os.remove(os.path.join(dag_dir, f))
        return ctx.measure(["ninja", f"-j{jobs_n}", "-f", "build.ninja"], cwd=dag_dir)
    if tool == "floor":
        return ctx.measure([ctx.floor_bin, "-j", str(jobs_n), "floor.dag"], cwd=dag_dir)
    state = ctx.fresh_dir("state-")
    m = ctx.measure([ctx.pts[tool], "trigger", os.path.join(dag_dir, "jobs"), job_id, "-t",
                     str(jobs_n), "--state", state], cwd=dag_dir)
    if keep_footprint:
        m["attempts"] = attempts_of_run(ctx, state, 1)
        m["state_bytes"], m["state_files"] = du_bytes(state)
        m["db_bytes"] = os.path.getsize(os.path.join(state, "petit.redb"))
    shutil.rmtree(state)
    return m


def fsync_probe(tmp, n=30):
    """Median latency (ms) of a 4 KiB pwrite + fdatasync in tmp: the floor of one durable commit."""
    fn = os.path.join(tmp, "fsync.probe")
    fd = os.open(fn, os.O_RDWR | os.O_CREAT, 0o600)
    samples = []
    try:
        for i in range(n):
            os.pwrite(fd, os.urandom(4096), (i % 16) * 4096)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        os.remove(fn)
    return round(med(samples), 2)


TRACED = ("fdatasync", "fsync", "pwrite64", "pwritev", "pwritev2", "write", "writev", "openat",
          "execve", "ftruncate", "fallocate")
PAGE = 4096


def trace_writes(ctx, dag_dir, job_id):
    """One untimed `pt trigger` (the glibc binary) under `strace -f -y`: syscall counts and where
    the bytes go, or None without strace.

    Every write to the database file between two of its fsync/fdatasync calls belongs to one
    commit (redb, without quick-repair, syncs once per commit). Per commit: pwrite calls, bytes
    passed, and distinct 4 KiB pages touched; the header page (offset 0) separately. The distinct
    pages are what `write_bytes` counts (a page is counted when it is first dirtied after being
    written back, and every commit's sync writes them all back), so commits x pages x 4 KiB
    should come close to the measured bytes per attempt. strace slows pt, so more exits wait per
    turn and a traced run may group more transitions per commit than a timed one: the size of a
    commit is the figure to trust, the commits per attempt of the timed runs follow from it.
    """
    if not shutil.which("strace"):
        return None
    state = ctx.fresh_dir("strace-state-")
    out = os.path.join(ctx.tmp, "strace.txt")
    r = subprocess.run(["strace", "-f", "-y", "-s", "0", "-e", "trace=" + ",".join(TRACED),
                        "-o", out, ctx.pt, "trigger", os.path.join(dag_dir, "jobs"), job_id,
                        "-t", str(ctx.args.jobs), "--state", state],
                       env=ctx.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    db_bytes = os.path.getsize(os.path.join(state, "petit.redb")) if r.returncode == 0 else 0
    shutil.rmtree(state)
    if r.returncode != 0:
        log(f"strace of pt failed ({r.returncode}), no syscall counts: {r.stderr[-300:]}")
        os.remove(out)
        return None
    counts = {name: 0 for name in TRACED}
    commits = []          # per commit: {"writes": n, "bytes": b, "pages": set, "sizes": {}}
    cur = None
    other = {}            # bytes written to files other than the database, by kind
    with open(out) as f:
        for line in f:
            parts = line.split(None, 1)
            if len(parts) < 2 or "(" not in parts[1] or parts[1].startswith(("<...", "---", "+++")):
                continue
            name, args = parts[1].split("(", 1)
            if name not in counts:
                continue
            counts[name] += 1
            path = ""
            if args[:1].isdigit() and "<" in args.split(",", 1)[0]:
                path = args.split("<", 1)[1].split(">", 1)[0]
            is_db = path.endswith("petit.redb")
            if name in ("fdatasync", "fsync") and is_db:
                if cur is not None:
                    commits.append(cur)
                cur = None
            elif name in ("pwrite64", "write"):
                nums = args.split('"', 2)[-1].replace("...", "").replace(")", " ").replace(",", " ")
                nums = [int(x) for x in nums.split() if x.isdigit()]
                if not nums:
                    continue
                size = nums[0]
                if is_db:
                    if cur is None:
                        cur = {"writes": 0, "bytes": 0, "pages": set(), "sizes": {}}
                    off = nums[1] if name == "pwrite64" and len(nums) > 1 else -1
                    cur["writes"] += 1
                    cur["bytes"] += size
                    cur["sizes"][size] = cur["sizes"].get(size, 0) + 1
                    if off >= 0 and size > 0:
                        cur["pages"].update(range(off // PAGE, (off + size - 1) // PAGE + 1))
                else:
                    kind = ("task logs" if "/logs/" in path else
                            "database creation (once)" if "petit.redb" in path else
                            "cgroup files (not disk)" if path.startswith("/sys/fs/cgroup/") else
                            "pipes, /dev/null, eventfds (not disk)"
                            if path.startswith(("/dev/", "pipe:", "anon_inode:", "socket:")) else
                            os.path.basename(path) or "?")
                    other[kind] = other.get(kind, 0) + size
    os.remove(out)
    n = len(commits)
    res = {"counts": counts, "commits": n, "db_bytes": db_bytes, "other_bytes": other}
    if n:
        sizes = {}
        for c in commits:
            for size, k in c["sizes"].items():
                sizes[size] = sizes.get(size, 0) + k
        res.update({
            "writes_per_commit": sum(c["writes"] for c in commits) / n,
            "bytes_per_commit": sum(c["bytes"] for c in commits) / n,
            "pages_per_commit": sum(len(c["pages"]) for c in commits) / n,
            "header_share": sum(1 for c in commits if 0 in c["pages"]) / n,
            "write_sizes": {str(k): v for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])},
        })
    return res


def pagecount(ctx, dag_dir, job_id, jobs_n):
    """The output of `pagecount` (bench/tools) for the DAG's job: pages per kind of commit, on
    Petit's store over a counting backend in memory, and the run replayed with ideal grouping
    (see its doc). None if the tool is missing."""
    if not os.path.exists(ctx.pagecount_bin):
        return None
    r = subprocess.run([ctx.pagecount_bin, os.path.join(dag_dir, "jobs", f"{job_id}.yaml"),
                        "-t", str(jobs_n)], capture_output=True, text=True, env=ctx.env)
    if r.returncode != 0:
        raise BenchError(f"pagecount exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout.splitlines()


def bench_dags(ctx):
    args = ctx.args
    tools = ["make", "ninja", "floor"] + list(ctx.pts)
    results = {}
    for dag_id, title, gen in DAGS:
        dag_dir = ctx.fresh_dir(f"dag-{dag_id}-")
        n_tasks = write_dag(dag_dir, dag_id, gen())
        runs = {t: [] for t in tools}
        log(f"{title}: warm-up")
        for t in tools:
            run_tool(ctx, t, dag_dir, dag_id, args.jobs, keep_footprint=False)
        for r in range(args.rounds):
            k = r % len(tools)
            order = tools[k:] + tools[:k]
            for t in order:
                runs[t].append(run_tool(ctx, t, dag_dir, dag_id, args.jobs,
                                        keep_footprint=t in ctx.pts))
            log(f"{title}: round {r + 1}/{args.rounds}: "
                + ", ".join(f"{t} {runs[t][-1]['wall_s']:.3f}s" for t in order))
        results[dag_id] = {"title": title, "tasks": n_tasks, "runs": runs,
                           "trace": trace_writes(ctx, dag_dir, dag_id),
                           "pagecount": pagecount(ctx, dag_dir, dag_id, args.jobs)}
        shutil.rmtree(dag_dir)
    return results


# ---------------------------------------------------------------------------------------------
# Idle daemon


def ctxt_switches(pid):
    """{tid: voluntary + involuntary context switches} of every thread of pid."""
    out = {}
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/status") as f:
                v = 0
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        v += int(line.split()[1])
            out[int(tid)] = v
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def smaps_rollup(pid):
    """{field: kB} of /proc/PID/smaps_rollup (Rss, Anonymous, Pss_File, ...)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def smaps_breakdown(pid):
    """Where an idle daemon's resident KiB are, from /proc/PID/smaps, mapping by mapping:
    exe_file: clean pages of the executable (code, read-only data: what start-up ran and read,
    mapped in the kernel's fault-around windows); exe_anon: anonymous copies inside the
    executable's mappings (data it wrote, e.g. what a PIE relocates at start); heap: the brk
    heap and anonymous mmaps (the allocator's groups: parsed jobs, redb's cache, tokio);
    stack: the main thread's stack; other: the rest (vdso, shared libraries of a glibc build)."""
    exe = os.path.realpath(f"/proc/{pid}/exe")
    out = {"exe_file": 0, "exe_anon": 0, "heap": 0, "stack": 0, "other": 0}
    name, rss, anon = None, 0, 0

    def flush():
        if name is None:
            return
        if name == exe:
            out["exe_file"] += rss - anon
            out["exe_anon"] += anon
        elif name in ("", "[heap]"):
            out["heap"] += rss
        elif name == "[stack]":
            out["stack"] += rss
        else:
            out["other"] += rss
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if parts and not parts[0].endswith(":") and "-" in parts[0]:
                flush()
                name = " ".join(parts[5:]) if len(parts) > 5 else ""
                rss, anon = 0, 0
            elif len(parts) == 3 and parts[0] == "Rss:":
                rss = int(parts[1])
            elif len(parts) == 3 and parts[0] == "Anonymous:":
                anon = int(parts[1])
    flush()
    return out


def proc_io(pid):
    """{field: value} of /proc/PID/io (all threads of the process)."""
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f if ": " in line)}


def start_daemon(ctx, jobs_dir, state, pt=None):
    err = open(os.path.join(state, "..", f"daemon-{os.path.basename(state)}.log"), "w")
    p = subprocess.Popen([pt or ctx.pt, "run", jobs_dir, "--state", state, "--clock-sync-timeout", "0"],
                         env=ctx.env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    LIVE.add(p)
    err.close()
    return p


def stop_daemon(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        LIVE.discard(p)
        raise BenchError(f"pt run (pid {p.pid}) ignored SIGTERM for {timeout} s")
    LIVE.discard(p)
    if rc != 0:
        raise BenchError(f"pt run exited {rc} after SIGTERM")


def wait_for(pred, timeout, what, poll=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise BenchError(f"timed out after {timeout} s waiting for {what}")


def wait_daemon_ready(ctx, p, state):
    """Waits for a freshly started `pt run` to answer `pt status`; returns its status JSON."""
    wait_for(lambda: any(n.endswith(".sock") or n == "control.sock"
                         for n in os.listdir(state)) or p.poll() is not None,
             30, "the daemon's control socket")
    if p.poll() is not None:
        raise BenchError(f"pt run exited {p.returncode} at start")

    # The socket file can exist a moment before the daemon accepts on it; then `pt status`
    # falls back to opening the database, which the daemon holds (exit 3). Retry.
    def ask_status():
        out = ctx.pt_cmd("status", "--json", "--state", state, check=False)
        try:
            return json.loads(out)
        except ValueError:
            return None
    return wait_for(ask_status, 30, "pt status to answer", poll=0.1)


def watch_idle(p, secs):
    """Watches a daemon for secs seconds; returns (elapsed, wake-ups, threads at start, threads
    seen): context switches summed over every thread, sampled every second."""
    first = ctxt_switches(p.pid)
    last = dict(first)
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        time.sleep(1)
        for tid, v in ctxt_switches(p.pid).items():
            last[tid] = v
        if p.poll() is not None:
            raise BenchError("pt run exited during the idle measurement")
    elapsed = time.monotonic() - t0
    return elapsed, sum(v - first.get(tid, 0) for tid, v in last.items()), len(first), len(last)


def write_idle_jobs(ctx):
    """A fresh jobs directory of 100 jobs scheduled daily, 12 hours from now (UTC), so that no
    job fires during a measurement; returns its path."""
    jobs_dir = ctx.fresh_dir("idle-jobs-")
    t = time.gmtime(time.time() + 12 * 3600)
    for i in range(100):
        with open(os.path.join(jobs_dir, f"job{i:03}.yaml"), "w") as f:
            f.write(f"id: job{i:03}\nschedule: \"{t.tm_min} {t.tm_hour} * * *\"\ntimezone: UTC\n"
                    f"tasks:\n  - id: a\n    command: \"true\"\n")
    return jobs_dir


def bench_idle(ctx, tool):
    pt = ctx.pts[tool]
    secs = ctx.args.idle_secs
    jobs_dir = write_idle_jobs(ctx)
    state = ctx.fresh_dir("idle-state-")
    p = start_daemon(ctx, jobs_dir, state, pt)
    try:
        status = wait_daemon_ready(ctx, p, state)
        time.sleep(2)  # let start-up work (first schedule evaluation, jobs watcher) settle
        rss_start = proc_status(p.pid, "VmRSS")
        elapsed, wakeups, threads_start, threads_seen = watch_idle(p, secs)
        sm = smaps_rollup(p.pid)
        where = smaps_breakdown(p.pid)
        res = {
            "tool": tool,
            "binary": pt,
            "seconds": round(elapsed, 1),
            "wakeups": wakeups,
            "wakeups_per_min": round(wakeups * 60 / elapsed, 1),
            "threads_start": threads_start,
            "threads_seen": threads_seen,
            "rss_kib_start": rss_start,
            "rss_kib_end": sm.get("Rss", -1),
            "hwm_kib": proc_status(p.pid, "VmHWM"),
            # smaps_rollup: Anonymous includes the copy-on-write copies of file pages that were
            # written (e.g. relocated .data.rel.ro); file-backed = Rss - Anonymous.
            "rss_anon_kib": sm.get("Anonymous", -1),
            "rss_file_kib": sm.get("Rss", 0) - sm.get("Anonymous", 0),
            "pss_file_kib": sm.get("Pss_File", -1),
            "smaps_rollup": sm,
            "breakdown_kib": where,
            "status_rss_anon_kib": proc_status(p.pid, "RssAnon"),
            "status_rss_file_kib": proc_status(p.pid, "RssFile"),
            "clock": status.get("clock"),
            "jobs_in_next": len(status.get("next") or []),
        }
    finally:
        stop_daemon(p)
    shutil.rmtree(jobs_dir)
    shutil.rmtree(state)
    return res


# ---------------------------------------------------------------------------------------------
# A paused every-second job

TICK_JOB = """id: tick
schedule: "@every 1s"
tasks:
  - id: a
    command: "true"
"""


def history_of(ctx, state, job):
    out = ctx.pt_cmd("history", job, "--limit", "100000", "--json", "--state", state)
    return json.loads(out)


def daemon_snapshot(p, state):
    return {"io": proc_io(p.pid),
            "db_bytes": os.path.getsize(os.path.join(state, "petit.redb")),
            "t": time.monotonic()}


def bench_paused(ctx):
    """An `@every 1s` job: watched running for secs seconds (the reference: what a firing
    costs), then paused for secs seconds (write_bytes of /proc/PID/io of the daemon, which
    counts every page it dirtied, and the database file's growth), then unpaused: `pt history`
    must then show exactly one folded "N firings from X to Y: paused" record. `pt` commands are
    only run outside the measured windows (they talk to the daemon over its socket)."""
    secs = ctx.args.paused_secs
    jobs_dir = ctx.fresh_dir("paused-jobs-")
    with open(os.path.join(jobs_dir, "tick.yaml"), "w") as f:
        f.write(TICK_JOB)
    state = ctx.fresh_dir("paused-state-")
    p = start_daemon(ctx, jobs_dir, state)
    res = {"seconds": secs}
    try:
        wait_daemon_ready(ctx, p, state)
        wait_for(lambda: len(history_of(ctx, state, "tick")) >= 2, 30,
                 "the every-second job to fire twice", poll=0.2)
        # Running: the reference.
        n0 = len(history_of(ctx, state, "tick"))
        a = daemon_snapshot(p, state)
        time.sleep(secs)
        b = daemon_snapshot(p, state)
        n1 = len(history_of(ctx, state, "tick"))
        res["running"] = {"firings": n1 - n0, "seconds": round(b["t"] - a["t"], 1),
                          "write_bytes": b["io"]["write_bytes"] - a["io"]["write_bytes"],
                          "wchar": b["io"]["wchar"] - a["io"]["wchar"],
                          "db_growth": b["db_bytes"] - a["db_bytes"]}
        ctx.pt_cmd("pause", "tick", "--state", state)

        def settled():
            runs = history_of(ctx, state, "tick")
            return all(r["status"] not in ("running", "waiting", "queued") for r in runs)
        wait_for(settled, 30, "the last run of the paused job to finish", poll=0.2)
        time.sleep(1.5)  # a run that was just recorded finished; nothing else should follow
        records_before = len(history_of(ctx, state, "tick"))
        a = daemon_snapshot(p, state)
        elapsed, wakeups, _, _ = watch_idle(p, secs)
        b = daemon_snapshot(p, state)
        records_after = len(history_of(ctx, state, "tick"))
        res["paused"] = {"seconds": round(elapsed, 1), "firings": int(elapsed),
                         "write_bytes": b["io"]["write_bytes"] - a["io"]["write_bytes"],
                         "wchar": b["io"]["wchar"] - a["io"]["wchar"],
                         "db_growth": b["db_bytes"] - a["db_bytes"],
                         "wakeups": wakeups,
                         "records_added": records_after - records_before}
        ctx.pt_cmd("unpause", "tick", "--state", state)

        def folded():
            return [r for r in history_of(ctx, state, "tick")
                    if "paused" in (r.get("reason") or "")]
        wait_for(folded, 30, "the folded record of the paused span", poll=0.2)
        time.sleep(1.5)  # any second record of the span would be written by now
        recs = folded()
        res["folded"] = [{"status": r["status"], "reason": r["reason"]} for r in recs]
    finally:
        stop_daemon(p)
    shutil.rmtree(jobs_dir)
    shutil.rmtree(state)
    return res


# ---------------------------------------------------------------------------------------------
# Large history: `pt history` latency and restart after kill -9

HIST_JOB = """id: hist
history: {keep_runs: 1000000}
tasks:
  - id: extract
    command: "true"
  - id: transform
    depends_on: [extract]
    command: "true"
  - id: load
    depends_on: [transform]
    command: "true"
"""

RESUME_JOB = """id: resume_me
tasks:
  - id: work
    type: shell
    script: |
      if [ -e {mark} ]; then date +%s.%N >> {mark}; exit 0; fi
      echo "$$ $(date +%s.%N)" > {mark}.tmp && mv {mark}.tmp {mark}
      exec sleep 600
"""


def read_lines(path):
    try:
        with open(path) as f:
            return [l for l in f.read().splitlines() if l]
    except FileNotFoundError:
        return []


def history_db(ctx):
    """The state directory with --history-runs runs of the `hist` job written by `histgen`, and
    the jobs directory with hist.yaml: (state, jobs, seconds histgen took). Written once per
    harness run, shared by the history and the web figures (it lives in the run's temporary
    directory, removed at the end)."""
    if ctx.hist is None:
        base = ctx.fresh_dir("hist-base-")
        hist_jobs = ctx.fresh_dir("hist-jobs-")
        with open(os.path.join(hist_jobs, "hist.yaml"), "w") as f:
            f.write(HIST_JOB)
        log(f"writing {ctx.args.history_runs:,} runs of history")
        t0 = time.monotonic()
        r = subprocess.run([ctx.histgen_bin, os.path.join(base, "petit.redb"),
                            os.path.join(hist_jobs, "hist.yaml"), str(ctx.args.history_runs)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"histgen failed: {r.stderr[-2000:]}")
        ctx.hist = (base, hist_jobs, round(time.monotonic() - t0, 1))
    return ctx.hist


def bench_history(ctx):
    args = ctx.args
    res = {"runs": args.history_runs}
    base, _, res["histgen_s"] = history_db(ctx)
    res["db_bytes"] = os.path.getsize(os.path.join(base, "petit.redb"))

    # pt history latency (warm page cache: the database was just written).
    ctx.pt_cmd("history", "hist", "--limit", "20", "--state", base)
    for fmt, extra in (("table", []), ("json", ["--json"])):
        walls, rss = [], []
        for _ in range(args.history_reps):
            m = ctx.measure([ctx.pt, "history", "hist", "--limit", "20", "--state", base] + extra)
            walls.append(m["wall_s"])
            rss.append(m["maxrss_kib"])
        res[f"history_{fmt}_ms"] = [round(w * 1000, 2) for w in walls]
        res[f"history_{fmt}_rss_kib"] = max(rss)
    lines = ctx.pt_cmd("history", "hist", "--limit", "20", "--state", base).splitlines()
    res["history_lines"] = len(lines)
    # Baseline: a pt command that opens the same database and prints one run.
    walls = []
    for _ in range(args.history_reps):
        walls.append(ctx.measure([ctx.pt, "history", "--run", "1", "--state", base])["wall_s"])
    res["history_run1_ms"] = [round(w * 1000, 2) for w in walls]

    # Restart after kill -9.
    resume_jobs = ctx.fresh_dir("resume-jobs-")
    mark = os.path.join(ctx.tmp, "resume.mark")
    with open(os.path.join(resume_jobs, "resume_me.yaml"), "w") as f:
        f.write(RESUME_JOB.format(mark=mark))
    variants = [
        ("pt run, task survived the kill", "run", False),
        ("pt resume, task survived the kill", "resume", False),
        ("pt run, task killed too (power cut)", "run", True),
    ]
    res["restart"] = {}
    for title, how, kill_task in variants:
        samples = []
        for _ in range(args.restart_reps):
            samples.append(restart_once(ctx, base, resume_jobs, mark, how, kill_task))
        res["restart"][title] = samples
        log(f"restart, {title}: " + ", ".join(f"{s:.1f}" for s in samples) + " ms")
    # Floor: what starting `sh -c date` alone costs from here.
    floor = []
    for _ in range(5):
        t0 = time.time()
        out = subprocess.run(["sh", "-c", "date +%s.%N"], capture_output=True, text=True).stdout
        floor.append((float(out) - t0) * 1000)
    res["restart_floor_ms"] = round(statistics.median(floor), 1)
    shutil.rmtree(resume_jobs)
    return res


def restart_once(ctx, base, jobs, mark, how, kill_task):
    state = ctx.fresh_dir("restart-")
    shutil.copy2(os.path.join(base, "petit.redb"), os.path.join(state, "petit.redb"))
    for f in (mark, mark + ".tmp"):
        if os.path.exists(f):
            os.remove(f)
    trig = subprocess.Popen([ctx.pt, "trigger", jobs, "resume_me", "--state", state],
                            env=ctx.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    LIVE.add(trig)
    wait_for(lambda: read_lines(mark) or trig.poll() is not None, 30, "the task's first marker")
    if trig.poll() is not None:
        raise BenchError(f"pt trigger exited {trig.returncode} before it was killed")
    task_pid = int(read_lines(mark)[0].split()[0])
    time.sleep(0.1)
    trig.kill()
    trig.wait()
    LIVE.discard(trig)
    if kill_task:
        os.killpg(task_pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(task_pid), 10, "the killed task to go")
    t0 = time.time()
    if how == "run":
        p = start_daemon(ctx, jobs, state)
    else:
        p = subprocess.Popen([ctx.pt, "resume", "--state", state], env=ctx.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        LIVE.add(p)
    try:
        lines = wait_for(lambda: len(read_lines(mark)) >= 2 and read_lines(mark), 60,
                         "the resumed task's marker")
        resumed_ms = (float(lines[1]) - t0) * 1000
        if how == "run":
            # Wait for the run to be recorded succeeded before stopping the daemon.
            def done():
                out = ctx.pt_cmd("history", "resume_me", "--json", "--state", state, check=False)
                try:
                    return json.loads(out)[0]["status"] == "succeeded"
                except (ValueError, IndexError, KeyError):
                    return False
            wait_for(done, 30, "the resumed run to succeed", poll=0.05)
            stop_daemon(p)
        else:
            rc = p.wait(timeout=60)
            LIVE.discard(p)
            if rc != 0:
                raise BenchError(f"pt resume exited {rc}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        LIVE.discard(p)
    if pid_alive(task_pid):
        raise BenchError(f"the interrupted task (pid {task_pid}) is still alive after the restart")
    shutil.rmtree(state)
    return resumed_ms


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------
# pt web


def proc_ticks(pid):
    """utime + stime of pid (all its threads, in clock ticks), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Web:
    """A running `pt web --listen 127.0.0.1:0` on `state`: its address (from the `listening on`
    line it prints), its token (STATE/web.token) and plain HTTP/1.1 requests to it (a new
    connection each, as `pt web` closes every answer's connection)."""

    def __init__(self, ctx, pt, state):
        self.state = state
        fd, out_path = tempfile.mkstemp(prefix="web-", suffix=".out", dir=ctx.tmp)
        out = os.fdopen(fd, "w")
        self.p = subprocess.Popen([pt, "web", "--state", state, "--listen", "127.0.0.1:0"],
                                  env=ctx.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        LIVE.add(self.p)
        out.close()

        def started():
            if self.p.poll() is not None:
                return True
            with open(out_path) as f:
                text = f.read()
            return "open http" in text and text
        text = wait_for(started, 30, "pt web to print its URL")
        if self.p.poll() is not None:
            with open(out_path) as f:
                raise BenchError(f"pt web exited {self.p.returncode}: {f.read()[-2000:]}")
        addr = text.split("listening on ", 1)[1].split()[0]
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        with open(os.path.join(state, "web.token")) as f:
            self.token = f.read().strip()
        self.pid = self.p.pid

    def request(self, method, path):
        """(status, body, milliseconds from sending the request to the body's last byte)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            t0 = time.perf_counter()
            conn.request(method, path, headers={"Authorization": f"Bearer {self.token}"})
            r = conn.getresponse()
            body = r.read()
            ms = (time.perf_counter() - t0) * 1000
        finally:
            conn.close()
        return r.status, body, ms

    def get(self, path, expect=None):
        st, body, ms = self.request("GET", path)
        if st != 200:
            raise BenchError(f"pt web: GET {path} answered {st}: {body[:300]!r}")
        for needle in expect or ():
            if needle.encode() not in body:
                raise BenchError(f"pt web: GET {path} lacks {needle!r}")
        return body, ms

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = "killed after ignoring SIGTERM for 30 s"
        LIVE.discard(self.p)
        if rc != 0:
            raise BenchError(f"pt web exited {rc} after SIGTERM")


class Sse:
    """One open `GET /api/events` (what a page's EventSource holds), on a raw socket; a thread
    reads it line by line and stamps each line with time.perf_counter() when it arrives."""

    def __init__(self, web):
        self.sock = socket.create_connection((web.host, web.port), timeout=30)
        self.sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {web.host}:{web.port}\r\n"
                           f"Authorization: Bearer {web.token}\r\n"
                           "Accept: text/event-stream\r\n\r\n").encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline().decode(errors="replace")
        if " 200 " not in status:
            raise BenchError(f"pt web: /api/events answered {status.strip()!r}")
        while self.f.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.sock.settimeout(None)
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for raw in self.f:
                with self.cond:
                    self.lines.append((time.perf_counter(), raw.decode(errors="replace").rstrip()))
                    self.cond.notify_all()
        except (OSError, ValueError):
            pass

    def wait_event(self, pred, timeout, what):
        """The arrival time of the first `data:` line whose JSON satisfies pred."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for t, line in self.lines[seen:]:
                    if line.startswith("data: {"):
                        try:
                            if pred(json.loads(line[6:])):
                                return t
                        except ValueError:
                            pass
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout} s waiting for {what} on "
                                     "/api/events")
                self.cond.wait(left)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


def rss_now(pid):
    sm = smaps_rollup(pid)
    return {"rss_kib": sm.get("Rss", -1), "anon_kib": sm.get("Anonymous", -1),
            "hwm_kib": proc_status(pid, "VmHWM")}


def timed_gets(web, path, n, expect=None, pids=None):
    """Two untimed requests, then n timed ones: milliseconds, body bytes, and the CPU ticks
    (utime+stime) each process of pids ({name: pid}) spent over the n requests."""
    for _ in range(2):
        web.get(path, expect)
    pids = pids or {}
    ticks = {k: proc_ticks(pid) for k, pid in pids.items()}
    samples, size = [], 0
    for _ in range(n):
        body, ms = web.get(path, expect)
        samples.append(round(ms, 2))
        size = len(body)
    return {"ms": samples, "bytes": size,
            "ticks": {k: proc_ticks(pid) - ticks[k] for k, pid in pids.items()}}


def watch_procs(pids, secs):
    """{name: {"wakeups": context switches of every thread, "ticks": utime+stime}} of each
    process over secs seconds, threads sampled every second (as watch_idle)."""
    first = {k: (ctxt_switches(pid), proc_ticks(pid)) for k, pid in pids.items()}
    last = {k: dict(v[0]) for k, v in first.items()}
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        time.sleep(1)
        for k, pid in pids.items():
            if not pid_alive(pid):
                raise BenchError(f"{k} (pid {pid}) exited during the idle measurement")
            last[k].update(ctxt_switches(pid))
    out = {"seconds": round(time.monotonic() - t0, 1)}
    for k, pid in pids.items():
        out[k] = {"wakeups": sum(v - first[k][0].get(tid, 0) for tid, v in last[k].items()),
                  "ticks": proc_ticks(pid) - first[k][1]}
    return out


def bench_web(ctx, tool):
    """`pt web` (binary `tool`): with the 100-job idle daemon of the idle figure, then on the
    history database of the history figure with and without a daemon. See the docstring."""
    pt = ctx.pts[tool]
    args = ctx.args
    n = args.web_reps
    res = {"tool": tool, "binary": pt, "reps": n, "clk_tck": os.sysconf("SC_CLK_TCK")}
    jobs_dir = write_idle_jobs(ctx)
    state = ctx.fresh_dir("web-state-")
    d = start_daemon(ctx, jobs_dir, state, pt)
    web = None
    pages = []
    try:
        wait_daemon_ready(ctx, d, state)
        web = Web(ctx, pt, state)
        time.sleep(1)
        res["rss_start"] = rss_now(web.pid)
        res["overview"] = timed_gets(web, "/", n, expect=["job000", "job099"],
                                     pids={"web": web.pid, "daemon": d.pid})
        time.sleep(1)
        res["rss_after_pages"] = rss_now(web.pid)

        # A state change, from the POST to the event line on an open /api/events.
        sse = Sse(web)
        pages.append(sse)
        time.sleep(0.5)  # the shared upstream follower connects to the daemon
        started, finished, posts = [], [], []
        for i in range(args.web_events):
            t0 = time.perf_counter()
            st, body, ms = web.request("POST", f"/api/jobs/job{i:03}/trigger")
            if st != 200:
                raise BenchError(f"pt web: POST trigger answered {st}: {body[:300]!r}")
            run = json.loads(body)["run"]
            ts = sse.wait_event(lambda e: e.get("run") == run and e.get("kind") == "run_started",
                                10, f"run {run}'s run_started")
            tf = sse.wait_event(lambda e: e.get("run") == run and e.get("kind") in (
                "run_succeeded", "run_failed"), 30, f"run {run}'s end")
            started.append(round((ts - t0) * 1000, 2))
            finished.append(round((tf - t0) * 1000, 2))
            posts.append(round(ms, 2))
            time.sleep(0.3)
        res["event"] = {"started_ms": started, "finished_ms": finished, "post_ms": posts}
        sse.close()
        pages.clear()

        # Five pages open, nothing happening.
        for _ in range(5):
            pages.append(Sse(web))
        time.sleep(2)  # their subscriptions settle; the upstream is already open
        before = [len(s.lines) for s in pages]
        w = watch_procs({"web": web.pid, "daemon": d.pid}, args.web_idle_secs)
        got = [line for s, k in zip(pages, before) for _, line in s.lines[k:]]
        w["keepalives"] = sum(1 for line in got if line.startswith(":"))
        w["other_lines"] = sum(1 for line in got if line and not line.startswith(":"))
        res["idle5"] = w
        for s in pages:
            s.close()
        pages.clear()
        time.sleep(1)
        res["rss_end"] = rss_now(web.pid)
        running, web = web, None
        running.stop()
    finally:
        for s in pages:
            s.close()
        if web is not None:
            web.stop()
        stop_daemon(d)
    shutil.rmtree(jobs_dir)
    shutil.rmtree(state)

    # The 100,000-run database: without a daemon (pt web reads it read only per request), then
    # with one on a copy (the job has no schedule: the daemon idles).
    base, hist_jobs, _ = history_db(ctx)
    hist_pages = [("job", "/jobs/hist"), ("job_older", "/jobs/hist?before=50000"),
                  ("run", f"/runs/{args.history_runs}"), ("overview", "/")]
    for mode in ("snapshot", "daemon"):
        st_dir, d = base, None
        if mode == "daemon":
            st_dir = ctx.fresh_dir("web-hist-")
            shutil.copy2(os.path.join(base, "petit.redb"), os.path.join(st_dir, "petit.redb"))
            d = start_daemon(ctx, hist_jobs, st_dir, pt)
        web = None
        try:
            if d is not None:
                wait_daemon_ready(ctx, d, st_dir)
            web = Web(ctx, pt, st_dir)
            m = {}
            for key, path in hist_pages:
                m[key] = timed_gets(web, path, n, expect=["hist"])
            time.sleep(1)
            m["rss"] = rss_now(web.pid)
            res[f"hist_{mode}"] = m
            running, web = web, None
            running.stop()
        finally:
            if web is not None:
                web.stop()
            if d is not None:
                stop_daemon(d)
        if mode == "daemon":
            shutil.rmtree(st_dir)
        else:
            token = os.path.join(base, "web.token")
            if os.path.exists(token):
                os.remove(token)
    return res


# ---------------------------------------------------------------------------------------------
# Report


def med(xs):
    return statistics.median(xs)


def fmt_mib(kib):
    return f"{kib / 1024:.1f}"


def mount_of(path):
    """'DEVICE FSTYPE' of the mount holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, dev, fstype)
    return f"{best[1]} ({best[2]})"


def machine(tmp, pt):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "tmp_fs": mount_of(tmp),
        "load_avg": os.getloadavg(),
        "pt_version": sh_out([pt, "--version"]),
        "git": sh_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "make": sh_out(["make", "--version"]).splitlines()[0] if shutil.which("make") else "",
        "ninja": sh_out(["ninja", "--version"]),
    }


def ratio(a, b):
    return med(a) / med(b)


def walls(d, tool):
    return [r["wall_s"] for r in d["runs"][tool]]


def report(ctx, res):
    args = ctx.args
    out = []
    p = out.append
    m = res["machine"]
    p(f"machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}, state on {m['tmp_fs']}; "
      f"load average at start {m['load_avg'][0]:.2f}")
    p(f"pt {m['pt_version']} (git {m['git']}); {m['make']}; ninja {m['ninja']}; "
      f"-j/-t {args.jobs}; {args.rounds} rounds, tools alternated; sections: "
      + ", ".join(args.sections))
    p("tools: make, ninja, floor (bench/tools spawnfloor: posix_spawnp + waitpid, nothing else), "
      + ", ".join(f"{t} ({path})" for t, path in ctx.pts.items()))
    p("")
    if "dags" in res:
        hdr = (f"{'DAG':<9} {'tool':<8} {'wall med':>9} {'min-max':>13} {'per task':>9} "
               f"{'CPU u+s':>8} {'own CPU':>8} {'peak RSS':>9} {'/make':>6} {'/ninja':>6} "
               f"{'/floor':>6}")
        p(hdr)
        p("-" * len(hdr))
        for dag_id, d in res["dags"].items():
            for tool, runs in d["runs"].items():
                w = [r["wall_s"] for r in runs]
                cpu = med([r["user_s"] + r["sys_s"] for r in runs])
                own = med([r["self_user_s"] + r["self_sys_s"] for r in runs])
                rss = max(r["maxrss_kib"] for r in runs)
                rel = [f"{ratio(w, walls(d, t)):.2f}x" if t != tool else "" for t in
                       ("make", "ninja", "floor")]
                p(f"{dag_id:<9} {tool:<8} {med(w):>8.3f}s {min(w):>6.3f}-{max(w):<6.3f} "
                  f"{med(w) / d['tasks'] * 1000:>7.2f}ms {cpu:>7.2f}s {own:>7.2f}s "
                  f"{fmt_mib(rss):>5} MiB {rel[0]:>6} {rel[1]:>6} {rel[2]:>6}")
        d = res["dags"]["chains"]
        for t in ctx.pts:
            p(f"1,000 tasks (250 chains of 4), {t}: pt/make {ratio(walls(d, t), walls(d, 'make')):.2f}x, "
              f"pt/ninja {ratio(walls(d, t), walls(d, 'ninja')):.2f}x, "
              f"pt/floor {ratio(walls(d, t), walls(d, 'floor')):.2f}x")
        p(f"1,000 tasks: make/floor {ratio(walls(d, 'make'), walls(d, 'floor')):.2f}x, "
          f"ninja/floor {ratio(walls(d, 'ninja'), walls(d, 'floor')):.2f}x "
          f"(floor {med(walls(d, 'floor')):.3f}s)")
        p("")
        p(f"disk: 4 KiB pwrite + fdatasync takes {res['fsync_ms_before']} ms (median) before the "
          f"DAG rounds, {res['fsync_ms_after']} ms after")
        for dag_id, d in res["dags"].items():
            tr = d.get("trace")
            if tr:
                sc, n = tr["counts"], d["tasks"]
                p(f"pt syscalls per attempt ({dag_id}, strace -f, untimed run): "
                  f"fdatasync {sc['fdatasync'] / n:.2f}, fsync {sc['fsync'] / n:.2f}, "
                  f"pwrite64 {sc['pwrite64'] / n:.1f}, openat {sc['openat'] / n:.1f} "
                  f"(with the children), execve {sc['execve'] / n:.1f}")
        p("")
        p("pt trigger footprint (median over rounds)")
        p(f"{'DAG':<9} {'binary':<8} {'attempts':>8} {'written/attempt':>16} {'wchar/attempt':>14} "
          f"{'rchar/attempt':>14} {'state dir':>10} {'db file':>9} {'files':>6}")
        for dag_id, d in res["dags"].items():
            for t in ctx.pts:
                runs = d["runs"][t]
                att = runs[0]["attempts"]
                wb = med([r["write_bytes"] / r["attempts"] for r in runs])
                wc = med([r["wchar"] / r["attempts"] for r in runs])
                rc = med([r["rchar"] / r["attempts"] for r in runs])
                sb = med([r["state_bytes"] for r in runs])
                db = med([r["db_bytes"] for r in runs])
                p(f"{dag_id:<9} {t:<8} {att:>8} {wb / 1024:>12.1f} KiB {wc / 1024:>10.1f} KiB "
                  f"{rc / 1024:>10.1f} KiB {sb / 2**20:>6.1f} MiB {db / 2**20:>5.1f} MiB "
                  f"{runs[0]['state_files']:>6}")
        if any(d.get("trace") for d in res["dags"].values()):
            p("")
            p("where the bytes per attempt go (strace -f -y of one untimed run of the glibc pt; a "
              "commit = the database writes up to its fdatasync)")
            p(f"{'DAG':<9} {'commits':>7} {'/attempt':>8} {'pwrites':>8} {'bytes':>9} {'pages':>6} "
              f"{'header':>6} {'= KiB/att':>9} {'timed':>7} {'=> commits/att':>14}  write sizes (count)")
            for dag_id, d in res["dags"].items():
                tr = d.get("trace")
                if not tr or not tr["commits"]:
                    continue
                n = d["tasks"]
                per_commit = tr["pages_per_commit"] * PAGE
                est = tr["commits"] / n * per_commit
                timed = med([r["write_bytes"] / r["attempts"] for r in d["runs"]["pt"]])
                sizes = ", ".join(f"{k} B: {v}" for k, v in list(tr["write_sizes"].items())[:4])
                p(f"{dag_id:<9} {tr['commits']:>7} {tr['commits'] / n:>8.2f} "
                  f"{tr['writes_per_commit']:>8.1f} {tr['bytes_per_commit'] / 1024:>5.1f} KiB "
                  f"{tr['pages_per_commit']:>6.1f} {tr['header_share']:>6.2f} {est / 1024:>9.1f} "
                  f"{timed / 1024:>7.1f} {timed / per_commit:>14.2f}  {sizes}")
                if tr["other_bytes"]:
                    p(f"{'':<9} other files: " + ", ".join(
                        f"{k} {v / n:.0f} B/attempt" for k, v in tr["other_bytes"].items()))
            p("  (per commit: pwrite calls, bytes passed, distinct 4 KiB pages of the database touched,"
              " share of commits writing the header page 0; = KiB/att: commits/attempt x pages x 4 KiB"
              " of the traced run; timed: measured write_bytes/attempt of the timed runs; => the"
              " commits/attempt that implies at the traced size of a commit)")
        for dag_id, d in res["dags"].items():
            if d.get("pagecount"):
                p("")
                p(f"pages per kind of commit and an ideally grouped replay ({dag_id}; pagecount, "
                  "Petit's store on a counting backend, no processes):")
                for line in d["pagecount"]:
                    p("  " + line)
    for i in res.get("idle", []):
        p("")
        p(f"idle pt run ({i['tool']}), 100 jobs scheduled daily, {i['seconds']} s: "
          f"{i['wakeups']} wake-ups ({i['wakeups_per_min']}/min) over {i['threads_seen']} threads; "
          f"smaps_rollup Rss {fmt_mib(i['rss_kib_end'])} MiB (anonymous "
          f"{fmt_mib(i['rss_anon_kib'])}, file-backed {fmt_mib(i['rss_file_kib'])}, Pss_File "
          f"{fmt_mib(i['pss_file_kib'])}), VmHWM {fmt_mib(i['hwm_kib'])} MiB; clock {i['clock']}")
        b = i["breakdown_kib"]
        p(f"  where (smaps, MiB): executable's file pages {fmt_mib(b['exe_file'])}, its written "
          f"(relocated) data {fmt_mib(b['exe_anon'])}, heap and anonymous mmaps "
          f"{fmt_mib(b['heap'])}, stack {fmt_mib(b['stack'])}, other {fmt_mib(b['other'])}")
    if "paused" in res:
        q = res["paused"]
        r, z = q["running"], q["paused"]
        p("")
        p(f"an @every 1s job, running, {r['seconds']} s: {r['firings']} firings, daemon "
          f"write_bytes {r['write_bytes'] / 1024:.1f} KiB "
          f"({r['write_bytes'] / max(r['firings'], 1) / 1024:.1f} KiB per firing), database file "
          f"+{r['db_growth'] / 1024:.0f} KiB")
        p(f"the same job paused, {z['seconds']} s (~{z['firings']} firings): daemon write_bytes "
          f"{z['write_bytes']} B, wchar {z['wchar']} B (/proc/PID/io), database file "
          f"+{z['db_growth']} B, {z['wakeups']} wake-ups, {z['records_added']} history records "
          f"added")
        p(f"after unpause, pt history shows {len(q['folded'])} folded record(s): "
          + "; ".join(f"{f['status']} \"{f['reason']}\"" for f in q["folded"]))
    if "history" in res:
        h = res["history"]
        p("")
        p(f"history: {h['runs']:,} runs written by histgen in {h['histgen_s']} s; "
          f"database {h['db_bytes'] / 2**20:.1f} MiB")
        p(f"pt history hist --limit 20: median {med(h['history_table_ms']):.1f} ms "
          f"(max {max(h['history_table_ms']):.1f}), --json {med(h['history_json_ms']):.1f} ms, "
          f"peak RSS {fmt_mib(h['history_table_rss_kib'])} MiB; "
          f"pt history --run 1 (same db): {med(h['history_run1_ms']):.1f} ms")
        for title, samples in h["restart"].items():
            p(f"restart to resumed, {title}: median {med(samples):.1f} ms "
              f"(max {max(samples):.1f})")
        p(f"  (floor: starting sh -c date from the harness takes {h['restart_floor_ms']} ms)")
    for w in res.get("web", []):
        report_web(p, w)
    if "binaries" in res:
        p("")
        for b in res["binaries"]:
            if b["built"] is None:
                p(f"{b['name']}: not built ({b['path']} missing; scripts/build-pi.sh builds it)")
                continue
            p(f"{b['name']}: {b['built'] / 2**20:.2f} MiB as built, {b['stripped'] / 2**20:.2f} "
              f"MiB stripped ({b['strip_tool']}); TUI {'in' if b['tui'] else 'NOT in'} it "
              f"({b['path']})")
    p("")
    p(targets(ctx, res))
    return "\n".join(out)


def ms_stats(samples):
    return f"{med(samples):.1f} ms ({min(samples):.1f}-{max(samples):.1f})"


def web_rss_worst(w):
    """The largest Rss of pt web after serving requests, and how many readings it is of."""
    readings = [w["rss_after_pages"], w["rss_end"], w["hist_snapshot"]["rss"],
                w["hist_daemon"]["rss"]]
    return max(r["rss_kib"] for r in readings), len(readings)


def report_web(p, w):
    """The lines of one pt web measurement (bench_web)."""
    p("")
    p(f"pt web ({w['tool']}), {w['reps']} timed requests per page after 2 untimed (median, "
      "min-max; a new connection each, from sending the request to the body's last byte)")
    o = w["overview"]
    tck = w["clk_tck"]
    cpu = ", ".join(f"{k} {v * 1000 / tck / len(o['ms']):.1f} ms"
                    for k, v in o["ticks"].items())
    p(f"  100-job idle daemon: GET / {ms_stats(o['ms'])}, {o['bytes'] / 1024:.0f} KiB; CPU per "
      f"request: {cpu} (one history request to the daemon per job, for its strip of runs)")
    for mode, title in (("snapshot", "no daemon (read only)"), ("daemon", "with a daemon")):
        h = w[f"hist_{mode}"]
        p(f"  100,000 runs, {title}: GET /jobs/hist {ms_stats(h['job']['ms'])}; "
          f"?before=50000 {ms_stats(h['job_older']['ms'])}; /runs/N (newest) "
          f"{ms_stats(h['run']['ms'])}; / {ms_stats(h['overview']['ms'])}")
    e = w["event"]
    p(f"  a state change, POST /api/jobs/ID/trigger to the event line on an open /api/events "
      f"({len(e['started_ms'])} runs): run_started {ms_stats(e['started_ms'])}, the run's end "
      f"{ms_stats(e['finished_ms'])}; the POST's answer {ms_stats(e['post_ms'])}")
    i = w["idle5"]
    p(f"  five /api/events open, nothing happening, {i['seconds']} s: pt web {i['web']['wakeups']}"
      f" wake-ups, {i['web']['ticks']} CPU ticks (1/{tck} s); the daemon {i['daemon']['wakeups']}"
      f" wake-ups, {i['daemon']['ticks']} ticks; the clients got {i['keepalives']} keep-alive "
      f"comments and {i['other_lines']} other lines")
    hs, hd = w["hist_snapshot"]["rss"], w["hist_daemon"]["rss"]
    p(f"  pt web RSS (smaps_rollup Rss, MiB): at start {fmt_mib(w['rss_start']['rss_kib'])}, "
      f"after the GETs of / {fmt_mib(w['rss_after_pages']['rss_kib'])}, after the events and "
      f"the five pages {fmt_mib(w['rss_end']['rss_kib'])} (anonymous "
      f"{fmt_mib(w['rss_end']['anon_kib'])}, VmHWM {fmt_mib(w['rss_end']['hwm_kib'])}); after "
      f"the 100,000-run pages: no daemon {fmt_mib(hs['rss_kib'])} (VmHWM "
      f"{fmt_mib(hs['hwm_kib'])}), with a daemon {fmt_mib(hd['rss_kib'])} (VmHWM "
      f"{fmt_mib(hd['hwm_kib'])})")


def web_rows(res, rows):
    """The rows of the pt web figures (issue #16)."""
    for w in res.get("web", []):
        t = w["tool"]
        worst, k = web_rss_worst(w)
        rows.append((f"pt web ({t}): idle RSS after requests", "<= 8 MiB",
                     f"{worst / 1024:.1f} MiB (largest of {k})", worst <= 8 * 1024))
        m = med(w["overview"]["ms"])
        rows.append((f"  GET / with 100 jobs (daemon), median", "< 50 ms", f"{m:.1f} ms", m < 50))
        for mode, title in (("snapshot", "no daemon"), ("daemon", "daemon")):
            m = med(w[f"hist_{mode}"]["job"]["ms"])
            rows.append((f"  GET /jobs/ID, 100k runs ({title}), median", "< 50 ms",
                         f"{m:.1f} ms", m < 50))
        e = w["event"]["started_ms"]
        rows.append((f"  trigger to run_started on /api/events, median", "<= 500 ms",
                     f"{med(e):.0f} ms (max {max(e):.0f})", med(e) <= 500))
        i = w["idle5"]
        ka = i["keepalives"]
        rows.append((f"  five idle pages, {i['seconds']:.0f} s: pt web wake-ups",
                     "<= 2/keep-alive",
                     f"{i['web']['wakeups']}, {i['web']['ticks']} ticks ({ka} keep-alives)",
                     i["web"]["wakeups"] <= 2 * ka and i["web"]["ticks"] <= 1))
        rows.append((f"  the same: the daemon's wake-ups", "0",
                     f"{i['daemon']['wakeups']}, {i['daemon']['ticks']} ticks",
                     i["daemon"]["wakeups"] == 0))


def targets(ctx, res):
    """The figure/target/measured/verdict table: issue #18's targets, then the older ones."""
    rows = []
    if "dags" in res:
        dag_rows(ctx, res, rows)
    idle_rows(ctx, res, rows)
    web_rows(res, rows)
    w = max(len(r[0]) for r in rows)
    tw = max([10] + [len(r[1]) for r in rows])
    lines = [f"{'figure':<{w}}  {'target':<{tw}} {'measured':<30} verdict"]
    for name, target, got, ok in rows:
        verdict = "-" if ok is None else "met" if ok else "NOT MET"
        lines.append(f"{name:<{w}}  {target:<{tw}} {got:<30} {verdict}")
    return "\n".join(lines)


def dag_rows(ctx, res, rows):
    """The rows of the DAG rounds' figures (see targets)."""
    d = res["dags"]["chains"]
    for t in ctx.pts:
        r = ratio(walls(d, t), walls(d, "make"))
        rows.append((f"1,000 tasks (250x4, -t 4), {t}: wall vs make -j4", "<= 1.25x",
                     f"{r:.2f}x", r <= 1.25))
        rows.append((f"  the same, {t} vs ninja -j4 / vs spawn floor", "reported",
                     f"{ratio(walls(d, t), walls(d, 'ninja')):.2f}x / "
                     f"{ratio(walls(d, t), walls(d, 'floor')):.2f}x", None))
    if "pt-musl" not in ctx.pts:
        rows.append(("static musl pt (every figure)", "measured", "not measured (no --pt-musl)",
                     None))
    rows.append(("  make -j4 vs spawn floor", "reported",
                 f"{ratio(walls(d, 'make'), walls(d, 'floor')):.2f}x", None))
    for t in ctx.pts:
        rss = max(r["maxrss_kib"] for r in d["runs"][t]) / 1024
        rows.append((f"  the same, {t}: peak RSS", "<= 16 MiB", f"{rss:.1f} MiB", rss <= 16))
    for t in ctx.pts:
        wb = med([r["write_bytes"] / r["attempts"] for r in d["runs"][t]]) / 1024
        rows.append((f"bytes written per attempt (1,000 tasks), {t}", "<= 8 KiB",
                     f"{wb:.1f} KiB", wb <= 8))


def idle_rows(ctx, res, rows):
    """The rows of the other figures (see targets)."""
    for i in res.get("idle", []):
        rss = i["rss_kib_end"] / 1024
        musl = i["tool"] == "pt-musl"
        rows.append((f"idle pt run, 100 jobs, {i['tool']}: RSS (anon + file)",
                     "<= 3 MiB" if musl else "reported",
                     f"{rss:.1f} MiB ({fmt_mib(i['rss_anon_kib'])} + "
                     f"{fmt_mib(i['rss_file_kib'])})", rss <= 3 if musl else None))
        rows.append((f"idle pt run, {i['tool']}: wake-ups between firings", "0",
                     f"{i['wakeups']} in {i['seconds']} s", i["wakeups"] == 0))
    if "paused" in res:
        z = res["paused"]["paused"]
        per = z["write_bytes"] / max(z["firings"], 1)
        rows.append(("paused @every 1s job: bytes written per firing", "0",
                     f"{per:.0f} B ({z['write_bytes']} B/{z['seconds']} s)", z["write_bytes"] == 0))
        nf = len(res["paused"]["folded"])
        rows.append(("  after unpause: folded records in pt history", "1", f"{nf}", nf == 1))
    if "history" in res:
        h = res["history"]
        worst = max(med(s) for s in h["restart"].values())
        rows.append(("restart after kill -9, 100k runs: resumed", "<= 200 ms",
                     f"{worst:.0f} ms (slowest variant)", worst <= 200))
        hm = med(h["history_table_ms"])
        rows.append(("pt history JOB --limit 20, 100k runs", "< 50 ms", f"{hm:.1f} ms", hm < 50))
    for b in res.get("binaries", []):
        if b["built"] is None:
            rows.append((f"{b['short']}, stripped", "<= 6 MiB" if b["packaged"] else "reported",
                         "not built", None))
            continue
        s = b["stripped"] / 2**20
        if b["packaged"]:
            ok = s <= 6 and b["tui"]
            rows.append((f"{b['short']}, stripped, with the TUI", "<= 6 MiB",
                         f"{s:.2f} MiB{'' if b['tui'] else ', NO TUI'}", ok))
        else:
            rows.append((f"{b['short']}, stripped", "reported", f"{s:.2f} MiB", None))


def strip_copy(src, dst):
    """Strips a copy of src into dst with the first tool that can (llvm-strip and rust-objcopy
    read every architecture; GNU strip may not); returns the tool's name."""
    tools = []
    if shutil.which("llvm-strip"):
        tools.append(("llvm-strip", ["llvm-strip", "-o", dst, src]))
    sysroot = sh_out(["rustc", "--print", "sysroot"])
    host = platform.machine() + "-unknown-linux-gnu"
    objcopy = os.path.join(sysroot, "lib", "rustlib", host, "bin", "rust-objcopy")
    if sysroot and os.path.exists(objcopy):
        tools.append(("rust-objcopy", [objcopy, "--strip-all", src, dst]))
    if shutil.which("strip"):
        tools.append(("strip", ["strip", "-o", dst, src]))
    for name, argv in tools:
        if subprocess.run(argv, capture_output=True).returncode == 0:
            return name
    raise BenchError(f"no strip tool could strip {src} (install binutils or llvm)")


def bench_binaries(ctx):
    """Sizes of the pt binaries: the glibc release build (reported), the static musl x86_64 one
    and, if scripts/build-pi.sh left them in the target directory, the aarch64 and armv7 ones
    (the packaged binaries: at most 6 MiB stripped, with the TUI). Whether the TUI is in a
    binary is read from its bytes (ratatui's source paths in panic locations survive strip)."""
    tdir = ctx.args.target_dir
    bins = [("glibc x86_64 release pt", "glibc x86_64 pt", ctx.pt, False)]
    if "pt-musl" in ctx.pts:
        bins.append(("static musl x86_64 pt", "static musl x86_64 pt", ctx.pts["pt-musl"], True))
    for triple, short in (("aarch64-unknown-linux-musl", "static musl aarch64 pt"),
                          ("armv7-unknown-linux-musleabihf", "static musl armv7 pt")):
        bins.append((short, short, os.path.join(tdir, triple, "release", "pt"), True))
    out = []
    for name, short, path, packaged in bins:
        b = {"name": name, "short": short, "path": path, "packaged": packaged, "built": None}
        if os.path.exists(path):
            copy = os.path.join(ctx.tmp, "pt.stripped")
            b["strip_tool"] = strip_copy(path, copy)
            b["built"] = os.path.getsize(path)
            b["stripped"] = os.path.getsize(copy)
            with open(copy, "rb") as f:
                b["tui"] = b"ratatui" in f.read()
            os.remove(copy)
        out.append(b)
    return out


SECTIONS = ("dags", "idle", "paused", "history", "web", "binary")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pt", default=os.path.join(ROOT, "target", "release", "pt"))
    ap.add_argument("--pt-musl", help="the static musl pt, measured next to --pt")
    ap.add_argument("--target-dir", default=os.path.join(ROOT, "target"),
                    help="Cargo's target directory, where the cross-built pt binaries are")
    ap.add_argument("--tools", required=True, help="directory with measure and histgen")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--jobs", type=int, default=4, help="-j of make/ninja, -t of pt")
    ap.add_argument("--idle-secs", type=int)
    ap.add_argument("--paused-secs", type=int, default=10)
    ap.add_argument("--history-runs", type=int, default=100_000)
    ap.add_argument("--skip", default="",
                    help="comma list of sections not to run: " + ",".join(SECTIONS))
    ap.add_argument("--only", default="",
                    help="comma list of the only sections to run (e.g. web), of: "
                    + ",".join(SECTIONS))
    ap.add_argument("--web-idle-secs", type=int,
                    help="how long five SSE clients stay open with nothing happening")
    ap.add_argument("--tmp-dir", default=os.path.join(ROOT, "target", "bench-tmp"))
    ap.add_argument("--json-out")
    args = ap.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.idle_secs = args.idle_secs or (10 if args.quick else 60)
    args.history_reps = 5 if args.quick else 9
    args.restart_reps = 2 if args.quick else 5
    args.web_idle_secs = args.web_idle_secs or (10 if args.quick else 60)
    args.web_reps = 30 if args.quick else 100
    args.web_events = 3 if args.quick else 5
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    for name in skip | only:
        if name not in SECTIONS:
            raise BenchError(f"no section {name!r} (sections: {', '.join(SECTIONS)})")
    if only:
        skip = set(SECTIONS) - only
    args.sections = [s for s in SECTIONS if s not in skip]
    for tool in ("make", "ninja"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed (bench/run.sh installs it)")
    os.makedirs(args.tmp_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="run-", dir=args.tmp_dir)
    ctx = Ctx(args, tmp)
    res = {"machine": machine(tmp, ctx.pt)}
    try:
        if "dags" not in skip:
            res["fsync_ms_before"] = fsync_probe(tmp)
            res["dags"] = bench_dags(ctx)
            res["fsync_ms_after"] = fsync_probe(tmp)
        if "idle" not in skip:
            res["idle"] = []
            for tool in ctx.pts:
                log(f"idle pt run ({tool}) for {args.idle_secs} s")
                res["idle"].append(bench_idle(ctx, tool))
        if "paused" not in skip:
            log(f"an every-second job, running then paused, {args.paused_secs} s each")
            res["paused"] = bench_paused(ctx)
        if "history" not in skip:
            res["history"] = bench_history(ctx)
        if "web" not in skip:
            res["web"] = []
            for tool in ctx.pts:
                log(f"pt web ({tool}): pages, events, five idle pages for {args.web_idle_secs} s")
                res["web"].append(bench_web(ctx, tool))
        if "binary" not in skip:
            res["binaries"] = bench_binaries(ctx)
    finally:
        for p in list(LIVE):
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(ctx, res)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"args": vars(args), "results": res}, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
