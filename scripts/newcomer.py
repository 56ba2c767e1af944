#!/usr/bin/env python3
"""The newcomer path: clones the repository fresh, then follows README.md top to bottom,
running its commands in its order, as someone new would, and fails on the first one
that does not do what the README says.

- Every ```sh block runs command by command (a line ending in `\\` continues) in one
  shell state: `export`ed variables carry over, as in a terminal. A command whose
  comment says `# => HTTP 200, "text", no "other"` must print that (the HTTP status
  from curl's `-w`, text it contains, text it must not); every other command must exit 0.
- ```python blocks run with the pinned OpenAI SDK (target/clients/venv, from
  scripts/clients.sh); each `# text` comment on a print line must appear in the output.
- Long-running commands (`cargo run --release -- demo`, `rampart serve`) start in the
  background, as in a second terminal, and the script goes on once they are ready.
- `export RAMPART_KEY=rk_live_…` is the line the demo printed: it is pasted from there.
- HTML comments in README.md say what a reader does between blocks:
  `<!-- newcomer: stop demo -->` (Ctrl-C, then the verify command the demo printed),
  `<!-- newcomer: append rampart.toml -->` (the next ```toml block goes into the
  config), `<!-- newcomer: restart serve -->`, `<!-- newcomer: skip (...) -->`.
- `scripts/test.sh` is not run from here: it is the command that runs this script.

Run by scripts/test.sh after the test suite; alone: `python3 scripts/newcomer.py`.
The clone's `target` is a symlink to this checkout's, so its release build reuses the
dependencies already built there.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PYTHON = os.path.join(REPO, "target/clients/venv/bin/python")
ran = 0


def fail(msg):
    print(f"newcomer path: FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def blocks(readme):
    """(kind, text, marker) for each fenced block; marker: the last newcomer comment before it."""
    out, marker, i = [], None, 0
    lines = readme.splitlines()
    while i < len(lines):
        line = lines[i]
        m = re.match(r"<!-- newcomer: (.*?) -->", line.strip())
        if m:
            out.append(("marker", m.group(1), None))
            marker = m.group(1)
        elif line.startswith("```") and len(line) > 3:
            kind = line[3:].strip()
            body = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((kind, "\n".join(body), marker))
            marker = None
        i += 1
    return out


def commands(text):
    """Logical commands of a shell block, with their `# =>` claims."""
    out, cur = [], ""
    for line in text.splitlines():
        cur += line
        if line.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        if cur.strip():
            claim = None
            m = re.search(r"#\s*=>\s*(.*)$", cur)
            if m:
                claim = m.group(1)
            out.append((cur.strip(), claim))
        cur = ""
    return out


def check_claims(cmd, claim, text):
    rest = claim.strip()
    while rest:
        rest = rest.lstrip(", ")
        m = re.match(r'HTTP (\d+)|no "([^"]*)"|"([^"]*)"', rest)
        if not m:
            # Prose after the claims, e.g. `(exit 1 on findings)`.
            if rest.startswith("("):
                return
            fail(f"cannot read the claim {claim!r} of: {cmd}")
        if m.group(1) and f" HTTP {m.group(1)}" not in text:
            fail(f"{cmd}\nexpected HTTP {m.group(1)}, got:\n{text}")
        if m.group(2) is not None and m.group(2) in text:
            fail(f"{cmd}\nmust not print {m.group(2)!r}:\n{text}")
        if m.group(3) is not None and m.group(3) not in text:
            fail(f"{cmd}\nexpected {m.group(3)!r} in:\n{text}")
        rest = rest[m.end():]


class Shell:
    """One terminal's state: the exported environment, carried from command to command."""

    def __init__(self, cwd, env):
        self.cwd, self.env = cwd, env
        self.state = os.path.join(cwd, ".newcomer-env")
        open(self.state, "w").close()

    def run(self, cmd, timeout=3600):
        global ran
        script = f"set -o pipefail\nsource {shlex.quote(self.state)}\n{cmd}\nrc=$?\nexport -p > {shlex.quote(self.state)}\nexit $rc\n"
        p = subprocess.run(
            ["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        ran += 1
        return p

    def start(self, cmd, log):
        script = f"source {shlex.quote(self.state)}\nexec {cmd}"
        return subprocess.Popen(
            ["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(what, cond, proc, log, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        if proc.poll() is not None:
            fail(f"{what} exited ({proc.returncode}):\n{open(log).read()[-3000:]}")
        time.sleep(0.5)
    fail(f"{what} not ready after {timeout} s:\n{open(log).read()[-3000:]}")


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc, sig):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            fail("a background command did not stop")


def main():
    for port in (8080, 8081, 9901):
        if port_open(port):
            fail(f"port {port} is taken: the README's commands use it")
    work = tempfile.mkdtemp(prefix="rampart-newcomer-")
    clone = os.path.join(work, "rampart")
    subprocess.run(["git", "clone", "--quiet", REPO, clone], check=True)
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    # The clone builds into this checkout's target/ (a symlink): the same commands, with
    # the dependencies' build cache shared instead of rebuilt.
    os.symlink(os.path.join(REPO, "target"), os.path.join(clone, "target"))
    env.pop("RAMPART_KEY", None)
    env.pop("KEY", None)
    sh = Shell(clone, env)
    readme = open(os.path.join(clone, "README.md")).read()
    demo = serve = None
    demo_log, serve_log = os.path.join(work, "demo.log"), os.path.join(work, "serve.log")
    append_next = False
    try:
        for kind, text, marker in blocks(readme):
            if kind == "marker":
                if text == "stop demo":
                    if demo is None:
                        fail("the README stops the demo before starting it")
                    out = open(demo_log).read()
                    verify = next((l.strip() for l in out.splitlines() if " audit verify " in l), None)
                    stop(demo, signal.SIGINT)
                    demo = None
                    if verify is None:
                        fail("the demo printed no audit verify command")
                    p = sh.run(verify)
                    if p.returncode != 0 or "ok: the chain is intact" not in p.stdout:
                        fail(f"{verify}\n{p.stdout}{p.stderr}")
                elif text == "restart serve":
                    stop(serve, signal.SIGTERM)
                    serve = sh.start("rampart serve --config rampart.toml", serve_log)
                    wait_for("rampart serve", lambda: port_open(8080), serve, serve_log, 60)
                elif text.startswith("append "):
                    append_next = text.split(" ", 1)[1]
                continue
            if marker and marker.startswith("skip"):
                continue
            if kind == "toml":
                if append_next:
                    with open(os.path.join(clone, append_next), "a") as f:
                        f.write("\n" + text + "\n")
                    append_next = False
                continue
            if kind == "python":
                p = subprocess.run(
                    [PYTHON, "-c", text], cwd=clone, env={**env, **sh_env(sh)}, capture_output=True, text=True,
                    timeout=120,
                )
                if p.returncode != 0:
                    fail(f"the python block failed:\n{p.stdout}{p.stderr}")
                for line in text.splitlines():
                    m = re.search(r"print\(.*#\s*(.+)$", line)
                    if m and m.group(1).strip() not in p.stdout:
                        fail(f"the python block did not print {m.group(1).strip()!r}:\n{p.stdout}")
                continue
            if kind != "sh":
                continue
            for cmd, claim in commands(text):
                bare = re.sub(r"\s+#.*$", "", cmd)
                if bare == "scripts/test.sh":
                    print("newcomer path: skipping scripts/test.sh (it is what runs this script)", flush=True)
                    continue
                if bare.startswith("cargo run --release -- demo"):
                    demo = sh.start(bare, demo_log)
                    wait_for("the demo", lambda: "Press Ctrl-C" in open(demo_log).read(), demo, demo_log, 3600)
                    continue
                if bare.startswith("rampart serve"):
                    serve = sh.start(bare, serve_log)
                    wait_for("rampart serve", lambda: port_open(8080), serve, serve_log, 60)
                    continue
                if bare.startswith("export RAMPART_KEY=rk_live_"):
                    printed = next(
                        (l.strip() for l in open(demo_log).read().splitlines() if l.strip().startswith("export RAMPART_KEY=")),
                        None,
                    )
                    if printed is None:
                        fail("the demo printed no `export RAMPART_KEY=` line to paste")
                    bare = printed
                p = sh.run(bare)
                if p.returncode != 0:
                    fail(f"{bare}\nexit {p.returncode}:\n{p.stdout}{p.stderr}")
                if claim:
                    check_claims(bare, claim, p.stdout)
    finally:
        stop(demo, signal.SIGINT)
        stop(serve, signal.SIGTERM)
    print(f"newcomer path: {ran} README commands ran on a fresh clone, in README order, and did what it says", flush=True)


def sh_env(sh):
    """The exported variables of the shell state, for the python block."""
    p = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(sh.state)}; env -0"], cwd=sh.cwd, env=sh.env, capture_output=True
    )
    pairs = [kv.split("=", 1) for kv in p.stdout.decode().split("\0") if "=" in kv]
    return {k: v for k, v in pairs}


if __name__ == "__main__":
    main()
