#!/usr/bin/env python3
"""Documentation that runs: every shell line of the project's Markdown, typed
as a user would type it.

Each ```sh (or ```bash) block of every Markdown file is read line by line (a
line ending in a backslash continues on the next). For every file, a fresh
copy of the repository (the tracked files only, plus `build` as a link to the
real build directory) is made, and the file's lines run in it in order, each
with `bash -c LINE` from the copy's root: relative paths mean what they mean
to a user in a fresh clone. A line fails when its exit code is not the one
the block allows, when it outlives its timeout, or when it leaves a process
behind (anything whose command line names the copy, e.g. a QEMU guest).

The fence's info string says how a block runs (after the language word):

  skip=REASON     not run; listed with its reason (placeholder, lab, network,
                  install, ci, long, slow, script, other-machine)
  exit=0,1        the exit codes that count as working (default 0)
  interrupt=S     a command that runs until stopped: SIGINT after S seconds,
                  then exit 130 is expected unless exit= says otherwise
  timeout=S       seconds before the line is a failure (default 900)

`skip=long` blocks run too with --all (label `heavy`). Usage:

  docs_test.py --source DIR --build DIR [--all] [--list] [FILE.md ...]
"""
import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SHELL_LANGUAGES = {"sh", "bash", "shell"}
KNOWN_OPTIONS = {"skip", "exit", "interrupt", "timeout"}
SKIP_REASONS = {
    "placeholder": "names a placeholder (PLAN, RUN_DIR, <run-id>, ...) to fill in",
    "lab": "needs a lab: SSH hosts, a Xen lab or a kernel tree",
    "network": "needs the network beyond Debian's mirror",
    "install": "installs packages into this machine (tests/package does it)",
    "ci": "CI's own entry point (.ci/run runs it)",
    "long": "minutes of running (runs with --all: ci/test --all, label heavy)",
    "slow": "runs for many minutes or hours by design (benchmarks, long fuzzing): by hand",
    "script": "the text of a script to save, not a command line",
    "other-machine": "runs on another machine (an installed vmlat, a Dom0)",
}


class DocError(Exception):
    pass


class Line:
    def __init__(self, path, number, text, options):
        self.path, self.number, self.text, self.options = path, number, text, options

    def where(self):
        return f"{self.path}:{self.number}"


def parse_info(info, where):
    words = info.split()
    if not words or words[0] not in SHELL_LANGUAGES:
        return None
    options = {}
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if not eq or key not in KNOWN_OPTIONS:
            raise DocError(f"{where}: unknown fence option '{word}' (known: {', '.join(sorted(KNOWN_OPTIONS))})")
        options[key] = value
    if "skip" in options and options["skip"] not in SKIP_REASONS:
        raise DocError(f"{where}: unknown skip reason '{options['skip']}' (known: {', '.join(sorted(SKIP_REASONS))})")
    for key in ("interrupt", "timeout"):
        if key in options and not options[key].isdigit():
            raise DocError(f"{where}: {key}= takes whole seconds, not '{options[key]}'")
    if "exit" in options:
        try:
            options["exit"] = [int(x) for x in options["exit"].split(",")]
        except ValueError:
            raise DocError(f"{where}: exit= takes exit codes like 0,1, not '{options['exit']}'")
    return options


def complete(text):
    """False while a quoted string is still open (it goes on on the next line)."""
    try:
        shlex.split(text, comments=True)
        return True
    except ValueError:
        return False


def shell_lines(path, text):
    """The command lines of every shell block of one Markdown file."""
    lines = []
    block = None  # the options of the open shell block; {} for a non-shell block
    pending = None
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            if block is None:
                options = parse_info(stripped[3:], f"{path}:{number}")
                block = options if options is not None else {"not-shell": True}
            else:
                if pending:
                    raise DocError(f"{path}:{pending.number}: a line continues past the end of its block")
                block = None
            continue
        if block is None or block.get("not-shell"):
            continue
        if pending is not None:
            pending.text += "\n" + raw
        elif stripped and not stripped.startswith("#"):
            pending = Line(path, number, raw, block)
        if pending is not None and not raw.endswith("\\") and complete(pending.text):
            lines.append(pending)
            pending = None
    if block is not None:
        raise DocError(f"{path}: a ``` block is not closed")
    return lines


def markdown_files(source):
    try:
        listed = subprocess.run(["git", "-C", source, "ls-files", "-z", "--", "*.md"], check=True,
                                capture_output=True).stdout.decode().split("\0")
        return sorted(f for f in listed if f)
    except (subprocess.CalledProcessError, FileNotFoundError):
        found = []
        for root, dirs, files in os.walk(source):
            dirs[:] = [d for d in dirs if not d.startswith(("build", ".", "results"))]
            found += [os.path.relpath(os.path.join(root, f), source) for f in files if f.endswith(".md")]
        return sorted(found)


def fresh_copy(source, build, into):
    """The tracked files of the repository (a fresh clone's content) and
    `build` linking to the real build directory."""
    try:
        listed = subprocess.run(["git", "-C", source, "ls-files", "-z"], check=True,
                                capture_output=True).stdout.decode().split("\0")
        for rel in filter(None, listed):
            src = os.path.join(source, rel)
            if not os.path.lexists(src):
                continue  # deleted in the work tree, not yet committed
            dst = os.path.join(into, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
    except (subprocess.CalledProcessError, FileNotFoundError):
        shutil.copytree(source, into, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("build*", "results", ".git", ".cache"))
    os.symlink(os.path.abspath(build), os.path.join(into, "build"))


def processes_naming(text):
    """(pid, command line) of every process whose command line contains text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(pid), cmdline.strip()))
    return found


def run_line(line, copy, cwd, env, log):
    """(ok, summary, working directory after it) of one line run in the copy.

    The lines of a file run as if typed into one shell: a `cd` holds for
    the lines after it (the working directory is carried from line to line).
    """
    opts = line.options
    interrupt = int(opts["interrupt"]) if "interrupt" in opts else None
    allowed = opts.get("exit", [130] if interrupt else [0])
    timeout = int(opts.get("timeout", 900))
    started = time.monotonic()
    where_after = log + ".pwd"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", 'eval "$1"; code=$?; pwd >"$2"; exit $code', "bash", line.text, where_after],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            if interrupt is not None:
                try:
                    proc.wait(timeout=interrupt)
                except subprocess.TimeoutExpired:
                    # Ctrl-C at a terminal: SIGINT to the foreground group.
                    os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False, f"still running after {timeout} s (killed)", cwd
    took = time.monotonic() - started
    try:
        with open(where_after) as f:
            cwd = f.read().strip() or cwd
    except OSError:
        pass
    left = processes_naming(copy)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if left:
        return False, f"exit {code}, but left running: " + "; ".join(f"{p} {c[:120]}" for p, c in left), cwd
    if code not in allowed:
        return False, f"exit {code} (documented to work: exit {','.join(map(str, allowed))}) after {took:.1f} s", cwd
    return True, f"exit {code} ({took:.1f} s)", cwd


def tail(path, count=40):
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
    return "\n".join("    | " + l for l in text.rstrip("\n").split("\n")[-count:])


def main():
    ap = argparse.ArgumentParser(description="Runs every shell line of the project's Markdown as typed.")
    ap.add_argument("--source", required=True, help="the repository (its tracked files are copied)")
    ap.add_argument("--build", required=True, help="the build directory (`build` in the copy links to it)")
    ap.add_argument("--all", action="store_true", help="also the skip=long lines")
    ap.add_argument("--list", action="store_true", help="list the lines and what would happen, run nothing")
    ap.add_argument("files", nargs="*", help="Markdown files relative to --source (default: every tracked one)")
    args = ap.parse_args()
    source, build = os.path.abspath(args.source), os.path.abspath(args.build)
    if not os.path.isfile(os.path.join(build, "vmlat")):
        sys.exit(f"docs_test: {build}/vmlat does not exist: build first (bash ci/build)")

    try:
        per_file = []
        for rel in args.files or markdown_files(source):
            with open(os.path.join(source, rel), encoding="utf-8") as f:
                per_file.append((rel, shell_lines(rel, f.read())))
    except (DocError, OSError) as e:
        sys.exit(f"docs_test: {e}")

    env = dict(os.environ)
    env.pop("VMLAT_LOCK_DIR", None)  # as a user's shell has it
    ran, skipped, failed = 0, [], []
    for rel, lines in per_file:
        runnable = [l for l in lines if "skip" not in l.options or (args.all and l.options["skip"] == "long")]
        for l in lines:
            if l not in runnable:
                skipped.append(l)
        if args.list:
            for l in lines:
                state = "run " if l in runnable else f"skip ({l.options['skip']})"
                print(f"{state:22} {l.where()}: {l.text}")
            continue
        if not runnable:
            continue
        work = tempfile.mkdtemp(prefix="vmlat-docs-")
        copy = os.path.join(work, "vmlat")
        try:
            os.makedirs(copy)
            fresh_copy(source, build, copy)
            print(f"== {rel}: {len(runnable)} line(s) in a fresh copy ({copy})", flush=True)
            cwd = copy
            for l in runnable:
                log = os.path.join(work, f"line-{l.number}.log")
                ok, summary, cwd = run_line(l, copy, cwd, env, log)
                ran += 1
                print(f"{'ok  ' if ok else 'FAIL'} {l.where()}: {l.text.strip()}  -> {summary}", flush=True)
                if not ok:
                    failed.append(l)
                    print(tail(log), flush=True)
        finally:
            for pid, _ in processes_naming(copy):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            shutil.rmtree(work, ignore_errors=True)

    print()
    for l in skipped:
        reason = l.options["skip"]
        print(f"skipped {l.where()} ({reason}: {SKIP_REASONS[reason]}): {l.text.strip()}")
    print(f"\ndocs_test: {ran} line(s) run, {len(failed)} failed, {len(skipped)} skipped")
    for l in failed:
        print(f"  failed: {l.where()}: {l.text.strip()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
