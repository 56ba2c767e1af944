#!/usr/bin/env python3
"""Side by side on the model-scanner corpus: which files each scanner fails at its
default settings (a file "fails" when the tool exits non-zero for it: a finding, or a
file it cannot read — both stop a pipeline that runs the tool).

    pip install picklescan==1.0.5 modelscan==0.8.8
    cargo build --release -p rampart
    python3 bench/scan_compare.py            # prints a Markdown table and the misses

Each tool is run once per file, with no flags beyond the file: `rampart scan FILE`,
`picklescan --path FILE`, `modelscan -p FILE`.
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "crates", "modelscan", "tests", "corpus")
RAMPART = os.path.join(ROOT, "target", "release", "rampart")

TOOLS = {
    "rampart scan": lambda f: [RAMPART, "scan", f],
    "picklescan 1.0.5": lambda f: ["picklescan", "--path", f],
    "modelscan 0.8.8": lambda f: ["modelscan", "-p", f],
}


def exit_code(cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120).returncode


def main():
    for exe in ("picklescan", "modelscan"):
        if not shutil.which(exe):
            sys.exit(f"{exe} is not installed: pip install picklescan==1.0.5 modelscan==0.8.8")
    if not os.path.exists(RAMPART):
        sys.exit("build rampart first: cargo build --release -p rampart")
    rows = {}
    misses = {t: [] for t in TOOLS}
    for kind in ("malicious", "benign"):
        files = sorted(os.listdir(os.path.join(CORPUS, kind)))
        for tool, cmd in TOOLS.items():
            n, found = 0, 0
            for f in files:
                rc = exit_code(cmd(os.path.join(CORPUS, kind, f)))
                n += rc != 0
                found += rc == 1
                if (kind == "malicious") != (rc != 0):
                    misses[tool].append(f"{kind}/{f} (exit {rc})")
            rows.setdefault(tool, {})[kind] = (n, found, len(files))
    print("| scanner (default settings) | malicious files failed (of which exit 1, a finding) | benign files failed (of which exit 1) |")
    print("|---|---|---|")
    for tool, r in rows.items():
        m, b = r["malicious"], r["benign"]
        print(f"| {tool} | {m[0]} of {m[2]} ({m[1]}) | {b[0]} of {b[2]} ({b[1]}) |")
    print()
    for tool, ms in misses.items():
        print(f"{tool} wrong on {len(ms)}: {', '.join(ms) if ms else '-'}")


if __name__ == "__main__":
    main()
