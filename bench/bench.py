#!/usr/bin/env python3
"""The Petit benchmark harness; run it through bench/run.sh, which builds what it needs.

    python3 bench/bench.py --pt target/release/pt --tools DIR [--quick] [--rounds N] ...

Measures the figures of docs/performance.md on this machine, each in one session:

1. DAGs of trivial tasks (`true`) run by `make -jN`, `ninja -jN` and
   `pt trigger DIR JOB -t N --state <fresh dir on disk>`: 250 chains of 4 (1,000 tasks), a
   fan-out/fan-in (1 root, 1,000 middle, 1 sink) and a chain of 200. Every round runs every tool
   once, in a rotated order (make, ninja, pt; then ninja, pt, make; ...), after one untimed
   warm-up run of each, so a slow minute of the shared machine hits every tool alike. Each run is
   executed under `measure` (bench/tools), which reports wall time, CPU, peak RSS and
   `/proc/PID/io` read while the process is a zombie. Per-task overhead is wall / tasks (the
   ideal wall time of `true` tasks is about 0).
2. Footprint of a `pt trigger` run: bytes written per task attempt (`write_bytes` of
   `/proc/PID/io`, i.e. pages dirtied, which includes every fsync'd redb page), `rchar`/`wchar`,
   and the size of the state directory.
3. An idle `pt run` with 100 jobs scheduled daily 12 hours from now: RSS, and wake-ups
   (voluntary + involuntary context switches, summed over all threads of
   `/proc/PID/task/*/status`, sampled every second so exiting threads are not lost) over 60 s
   (quick: 10 s).
4. 100,000 runs of history written by `histgen` (bench/tools): `pt history JOB --limit 20`
   latency; restart-to-resumed after `kill -9` of a `pt trigger` whose task is in flight: the
   time from starting `pt run` (or `pt resume`) to the moment the re-run task writes its marker
   (`date +%s.%N`), with the old task process surviving the kill (it must be fenced) and without
   (power cut).
5. The size of the stripped release binary.

Prints a table (and writes JSON with --json-out). Exits non-zero on any failure. Temporary files
live in one directory (under --tmp-dir, default target/bench-tmp, i.e. on disk) that is removed
at the end; every process started here is killed on exit. Only the standard library is used.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
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
        self.measure_bin = os.path.abspath(os.path.join(args.tools, "measure"))
        self.histgen_bin = os.path.abspath(os.path.join(args.tools, "histgen"))
        self.n = 0
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
    state = ctx.fresh_dir("state-")
    m = ctx.measure([ctx.pt, "trigger", os.path.join(dag_dir, "jobs"), job_id, "-t",
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


def syscall_counts(ctx, dag_dir, job_id):
    """Syscalls of one untimed `pt trigger` under `strace -f -c` ({name: calls}), or None."""
    if not shutil.which("strace"):
        return None
    state = ctx.fresh_dir("strace-state-")
    out = os.path.join(ctx.tmp, "strace.txt")
    r = subprocess.run(["strace", "-f", "-c", "-o", out, ctx.pt, "trigger",
                        os.path.join(dag_dir, "jobs"), job_id, "-t", str(ctx.args.jobs),
                        "--state", state], env=ctx.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    shutil.rmtree(state)
    if r.returncode != 0:
        log(f"strace of pt failed ({r.returncode}), no syscall counts: {r.stderr[-300:]}")
        return None
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


def bench_dags(ctx):
    args = ctx.args
    tools = ["make", "ninja", "pt"]
    results = {}
    for dag_id, title, gen in DAGS:
        dag_dir = ctx.fresh_dir(f"dag-{dag_id}-")
        n_tasks = write_dag(dag_dir, dag_id, gen())
        runs = {t: [] for t in tools}
        log(f"{title}: warm-up")
        for t in tools:
            run_tool(ctx, t, dag_dir, dag_id, args.jobs, keep_footprint=False)
        for r in range(args.rounds):
            order = tools[r % 3:] + tools[:r % 3]
            for t in order:
                runs[t].append(run_tool(ctx, t, dag_dir, dag_id, args.jobs, keep_footprint=True))
            log(f"{title}: round {r + 1}/{args.rounds}: "
                + ", ".join(f"{t} {runs[t][-1]['wall_s']:.3f}s" for t in order))
        results[dag_id] = {"title": title, "tasks": n_tasks, "runs": runs,
                           "syscalls": syscall_counts(ctx, dag_dir, dag_id)}
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


def start_daemon(ctx, jobs_dir, state):
    err = open(os.path.join(state, "..", f"daemon-{os.path.basename(state)}.log"), "w")
    p = subprocess.Popen([ctx.pt, "run", jobs_dir, "--state", state, "--clock-sync-timeout", "0"],
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


def bench_idle(ctx):
    secs = ctx.args.idle_secs
    jobs_dir = ctx.fresh_dir("idle-jobs-")
    # Daily, 12 hours from now (UTC), so no job fires during the measurement.
    t = time.gmtime(time.time() + 12 * 3600)
    for i in range(100):
        with open(os.path.join(jobs_dir, f"job{i:03}.yaml"), "w") as f:
            f.write(f"id: job{i:03}\nschedule: \"{t.tm_min} {t.tm_hour} * * *\"\ntimezone: UTC\n"
                    f"tasks:\n  - id: a\n    command: \"true\"\n")
    state = ctx.fresh_dir("idle-state-")
    p = start_daemon(ctx, jobs_dir, state)
    try:
        sock = os.path.join(state, "control.sock")
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
        status = wait_for(ask_status, 30, "pt status to answer", poll=0.1)
        time.sleep(2)  # let start-up work (first schedule evaluation, jobs watcher) settle
        first = ctxt_switches(p.pid)
        last = dict(first)
        rss_start = proc_status(p.pid, "VmRSS")
        t0 = time.monotonic()
        while time.monotonic() - t0 < secs:
            time.sleep(1)
            for tid, v in ctxt_switches(p.pid).items():
                last[tid] = v
            if p.poll() is not None:
                raise BenchError("pt run exited during the idle measurement")
        elapsed = time.monotonic() - t0
        wakeups = sum(v - first.get(tid, 0) for tid, v in last.items())
        res = {
            "seconds": round(elapsed, 1),
            "wakeups": wakeups,
            "wakeups_per_min": round(wakeups * 60 / elapsed, 1),
            "threads_start": len(first),
            "threads_seen": len(last),
            "rss_kib_start": rss_start,
            "rss_kib_end": proc_status(p.pid, "VmRSS"),
            "hwm_kib": proc_status(p.pid, "VmHWM"),
            "rss_anon_kib": proc_status(p.pid, "RssAnon"),
            "rss_file_kib": proc_status(p.pid, "RssFile"),
            "clock": status.get("clock"),
            "jobs_in_next": len(status.get("next") or []),
        }
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


def bench_history(ctx):
    args = ctx.args
    res = {"runs": args.history_runs}
    base = ctx.fresh_dir("hist-base-")
    hist_jobs = ctx.fresh_dir("hist-jobs-")
    with open(os.path.join(hist_jobs, "hist.yaml"), "w") as f:
        f.write(HIST_JOB)
    log(f"writing {args.history_runs:,} runs of history")
    t0 = time.monotonic()
    r = subprocess.run([ctx.histgen_bin, os.path.join(base, "petit.redb"),
                        os.path.join(hist_jobs, "hist.yaml"), str(args.history_runs)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"histgen failed: {r.stderr[-2000:]}")
    res["histgen_s"] = round(time.monotonic() - t0, 1)
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
    shutil.rmtree(base)
    shutil.rmtree(hist_jobs)
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


def machine(tmp):
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
        "pt_version": sh_out([os.path.join(ROOT, "target", "release", "pt"), "--version"]),
        "git": sh_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "make": sh_out(["make", "--version"]).splitlines()[0] if shutil.which("make") else "",
        "ninja": sh_out(["ninja", "--version"]),
    }


def report(ctx, res):
    args = ctx.args
    out = []
    p = out.append
    m = res["machine"]
    p(f"machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}, state on {m['tmp_fs']}; "
      f"load average at start {m['load_avg'][0]:.2f}")
    p(f"pt {m['pt_version']} (git {m['git']}); {m['make']}; ninja {m['ninja']}; "
      f"-j/-t {args.jobs}; {args.rounds} rounds, tools alternated")
    p("")
    hdr = (f"{'DAG':<9} {'tool':<6} {'wall med':>9} {'min-max':>13} {'per task':>9} "
           f"{'CPU u+s':>8} {'own CPU':>8} {'peak RSS':>9} {'pt/tool':>8}")
    p(hdr)
    p("-" * len(hdr))
    for dag_id, d in res["dags"].items():
        pt_walls = [r["wall_s"] for r in d["runs"]["pt"]]
        for tool, runs in d["runs"].items():
            walls = [r["wall_s"] for r in runs]
            cpu = med([r["user_s"] + r["sys_s"] for r in runs])
            own = med([r["self_user_s"] + r["self_sys_s"] for r in runs])
            rss = max(r["maxrss_kib"] for r in runs)
            ratio = "" if tool == "pt" else f"{med(pt_walls) / med(walls):.2f}x"
            p(f"{dag_id:<9} {tool:<6} {med(walls):>8.3f}s {min(walls):>6.3f}-{max(walls):<6.3f} "
              f"{med(walls) / d['tasks'] * 1000:>7.2f}ms {cpu:>7.2f}s {own:>7.2f}s "
              f"{fmt_mib(rss):>5} MiB {ratio:>8}")
    p("")
    p(f"disk: 4 KiB pwrite + fdatasync takes {res['fsync_ms_before']} ms (median) before the "
      f"DAG rounds, {res['fsync_ms_after']} ms after")
    for dag_id, d in res["dags"].items():
        sc = d.get("syscalls")
        if sc:
            n = d["tasks"]
            p(f"pt syscalls per attempt ({dag_id}, strace -f, untimed run): "
              f"fdatasync {sc.get('fdatasync', 0) / n:.2f}, fsync {sc.get('fsync', 0) / n:.2f}, "
              f"pwrite64 {sc.get('pwrite64', 0) / n:.1f}, openat {sc.get('openat', 0) / n:.1f} "
              f"(with the children), execve {sc.get('execve', 0) / n:.1f}")
    p("")
    p("pt trigger footprint (median over rounds)")
    p(f"{'DAG':<9} {'attempts':>8} {'written/attempt':>16} {'wchar/attempt':>14} "
      f"{'rchar/attempt':>14} {'state dir':>10} {'db file':>9} {'files':>6}")
    for dag_id, d in res["dags"].items():
        runs = d["runs"]["pt"]
        att = runs[0]["attempts"]
        wb = med([r["write_bytes"] / r["attempts"] for r in runs])
        wc = med([r["wchar"] / r["attempts"] for r in runs])
        rc = med([r["rchar"] / r["attempts"] for r in runs])
        sb = med([r["state_bytes"] for r in runs])
        db = med([r["db_bytes"] for r in runs])
        p(f"{dag_id:<9} {att:>8} {wb / 1024:>12.1f} KiB {wc / 1024:>10.1f} KiB "
          f"{rc / 1024:>10.1f} KiB {sb / 2**20:>6.1f} MiB {db / 2**20:>5.1f} MiB "
          f"{runs[0]['state_files']:>6}")
    if "idle" in res:
        i = res["idle"]
        p("")
        p(f"idle pt run, 100 jobs scheduled daily, {i['seconds']} s: {i['wakeups']} wake-ups "
          f"({i['wakeups_per_min']}/min) over {i['threads_seen']} threads; VmRSS "
          f"{fmt_mib(i['rss_kib_end'])} MiB (anon {fmt_mib(i['rss_anon_kib'])}, file "
          f"{fmt_mib(i['rss_file_kib'])}), VmHWM {fmt_mib(i['hwm_kib'])} MiB; clock {i['clock']}")
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
    if "binary" in res:
        b = res["binary"]
        p("")
        p(f"release binary: {b['built'] / 2**20:.2f} MiB as built, "
          f"{b['stripped'] / 2**20:.2f} MiB stripped")
    p("")
    p(targets(res))
    return "\n".join(out)


def targets(res):
    rows = []
    d = res["dags"]["chains"]["runs"]
    ratio = med([r["wall_s"] for r in d["pt"]]) / med([r["wall_s"] for r in d["make"]])
    rows.append(("1,000 tasks (250x4, -t 4) wall vs make -j4", "<= 1.5x", f"{ratio:.2f}x",
                 ratio <= 1.5))
    rss = max(r["maxrss_kib"] for r in d["pt"]) / 1024
    rows.append(("the same, peak RSS", "<= 16 MiB", f"{rss:.1f} MiB", rss <= 16))
    wb = med([r["write_bytes"] / r["attempts"] for r in d["pt"]]) / 1024
    rows.append(("the same, bytes written per attempt", "<= 32 KiB", f"{wb:.1f} KiB", wb <= 32))
    if "idle" in res:
        i = res["idle"]
        rss = i["rss_kib_end"] / 1024
        rows.append(("idle pt run, 100 jobs: RSS", "<= 6 MiB", f"{rss:.1f} MiB", rss <= 6))
        rows.append(("idle pt run: wake-ups between firings", "0",
                     f"{i['wakeups']} in {i['seconds']} s", i["wakeups"] == 0))
    if "history" in res:
        h = res["history"]
        worst = max(med(s) for s in h["restart"].values())
        rows.append(("restart after kill -9, 100k runs: resumed", "<= 200 ms",
                     f"{worst:.0f} ms (slowest variant)", worst <= 200))
        hm = med(h["history_table_ms"])
        rows.append(("pt history JOB --limit 20, 100k runs", "< 50 ms", f"{hm:.1f} ms", hm < 50))
    if "binary" in res:
        s = res["binary"]["stripped"] / 2**20
        rows.append(("release binary, stripped", "<= 6 MiB", f"{s:.2f} MiB", s <= 6))
    w = max(len(r[0]) for r in rows)
    lines = [f"{'figure':<{w}}  {'target':<10} {'measured':<26} verdict"]
    for name, target, got, ok in rows:
        lines.append(f"{name:<{w}}  {target:<10} {got:<26} {'met' if ok else 'NOT MET'}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pt", default=os.path.join(ROOT, "target", "release", "pt"))
    ap.add_argument("--tools", required=True, help="directory with measure and histgen")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--jobs", type=int, default=4, help="-j of make/ninja, -t of pt")
    ap.add_argument("--idle-secs", type=int)
    ap.add_argument("--history-runs", type=int, default=100_000)
    ap.add_argument("--skip", default="", help="comma list of sections: idle,history,binary")
    ap.add_argument("--tmp-dir", default=os.path.join(ROOT, "target", "bench-tmp"))
    ap.add_argument("--json-out")
    args = ap.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.idle_secs = args.idle_secs or (10 if args.quick else 60)
    args.history_reps = 5 if args.quick else 9
    args.restart_reps = 2 if args.quick else 5
    skip = set(filter(None, args.skip.split(",")))
    for tool in ("make", "ninja"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed (bench/run.sh installs it)")
    os.makedirs(args.tmp_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="run-", dir=args.tmp_dir)
    ctx = Ctx(args, tmp)
    res = {"machine": machine(tmp)}
    try:
        res["fsync_ms_before"] = fsync_probe(tmp)
        res["dags"] = bench_dags(ctx)
        res["fsync_ms_after"] = fsync_probe(tmp)
        if "idle" not in skip:
            log(f"idle pt run for {args.idle_secs} s")
            res["idle"] = bench_idle(ctx)
        if "history" not in skip:
            res["history"] = bench_history(ctx)
        if "binary" not in skip:
            copy = os.path.join(tmp, "pt.stripped")
            shutil.copy2(ctx.pt, copy)
            subprocess.run(["strip", copy], check=True)
            res["binary"] = {"built": os.path.getsize(ctx.pt), "stripped": os.path.getsize(copy)}
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
