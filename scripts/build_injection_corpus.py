#!/usr/bin/env python3
"""Builds data/injection/public.jsonl: labelled prompts from public repositories, each
row tagged with its source, de-duplicated across sources (and against the generated
training set) on normalised text.

    RAMPART_MIRRORS=/work/.mirror python3 scripts/build_injection_corpus.py
    ... --include-restricted    # also GPL-3.0 and non-commercial sources (local experiments only)

The sources are git repositories read at the commit recorded below (a bare clone of
each, `owner+name/repo`, under RAMPART_MIRRORS). It prints one line per source: rows
kept, licence, commit. None of the data sets reserved for independent evaluation is
read: not PurpleLlama's prompt-injection benchmark, not Tensor Trust, not garak or its
in-the-wild jailbreak source (verazuo/jailbreak_llms) — rows another repository took
from garak are dropped by their recorded source — not InjecGuard, and not
JailbreakBench's JBC artifacts (one jailbreakchat.com template, the same origin as the
reserved in-the-wild list).
"""
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys

import yaml  # PyYAML 6

MIRRORS = os.environ.get("RAMPART_MIRRORS", "/work/.mirror")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "data", "injection", "public.jsonl")
MAX_CHARS = 6000

SOURCES = {
    # name: (repository, commit, licence, label, what)
    "jbb-pair": ("JailbreakBench/artifacts", "909e68c", "MIT", 1, "PAIR attack prompts (role-play, hypothetical framing)"),
    "jbb-gcg": ("JailbreakBench/artifacts", "909e68c", "MIT", 1, "GCG adversarial-suffix prompts"),
    "jbb-search": ("JailbreakBench/artifacts", "909e68c", "MIT", 1, "random-search and DSN template prompts"),
    "community-jailbreaks": ("CyberAlbSecOP/Awesome_GPT_Super_Prompting", "15334d8", "GPL-3.0", 1, "community jailbreaks, 2023-2026 ('Latest Jailbreaks')"),
    "promptmap": ("utkusen/promptmap", "d305132", "GPL-3.0", 1, "injection test rules: jailbreak, prompt stealing, distraction"),
    "promptinject": ("Giskard-AI/giskard", "814a9dda6", "Apache-2.0", 1, "PromptInject goal-hijacking prompts (rows from garak dropped)"),
    "act-as-prompts": ("f/awesome-chatgpt-prompts", "2ac0eb31", "CC0-1.0", 0, "role-play prompts ('Act as a Linux terminal'): hard negatives"),
    "act-as-2025": ("rahulkolekardev/awesome-ai-prompts", "cfe79d8", "MIT", 0, "newer act-as prompts by another author: hard negatives"),
    "system-personas": ("mustvlad/ChatGPT-System-Prompts", "e19d82a", "MIT", 0, "persona system messages ('You are a math tutor …'): hard negatives"),
    "self-instruct": ("yizhongw/self-instruct", "0b26cca", "Apache-2.0", 0, "seed tasks and T0 prompt templates with passages"),
    "mt-bench": ("lm-sys/FastChat", "0e6d3e4b", "Apache-2.0", 0, "MT-Bench and Vicuna-Bench user questions"),
    "gsm8k": ("openai/grade-school-math", "3101c7d", "MIT", 0, "grade-school maths questions"),
    "code-alpaca": ("sahil280114/codealpaca", "2f78ddc", "CC-BY-NC-4.0", 0, "programming instructions"),
}


def git_dir(repo):
    return os.path.join(MIRRORS, repo.replace("/", "+"), "repo")


def show(repo, path, rev="HEAD"):
    r = subprocess.run(["git", "--git-dir", git_dir(repo), "show", f"{rev}:{path}"], capture_output=True, check=True)
    return r.stdout.decode("utf-8", "replace")


def ls(repo, prefix):
    r = subprocess.run(["git", "--git-dir", git_dir(repo), "ls-tree", "-r", "--name-only", "HEAD", prefix],
                       capture_output=True, check=True)
    return sorted(r.stdout.decode().splitlines())


def head(repo):
    r = subprocess.run(["git", "--git-dir", git_dir(repo), "rev-parse", "--short=7", "HEAD"], capture_output=True, check=True)
    return r.stdout.decode().strip()


def jbb(kinds):
    out = []
    for kind in kinds:
        for path in ls("JailbreakBench/artifacts", f"attack-artifacts/{kind}/"):
            if path.endswith(".json") and "attack-info" not in path:
                for j in json.loads(show("JailbreakBench/artifacts", path)).get("jailbreaks", []):
                    if j.get("prompt"):
                        out.append(j["prompt"])
    return out


def community():
    out = []
    for path in ls("CyberAlbSecOP/Awesome_GPT_Super_Prompting", "Latest Jailbreaks/"):
        if path.endswith(".md") and "Datasets" not in path:
            text = show("CyberAlbSecOP/Awesome_GPT_Super_Prompting", path)
            text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text).strip()
            if len(text) > 80:
                out.append(text)
    return out


def promptmap():
    out = []
    for folder in ("jailbreak", "prompt_stealing", "distraction"):
        for path in ls("utkusen/promptmap", f"rules/{folder}/"):
            rule = yaml.safe_load(show("utkusen/promptmap", path))
            if isinstance(rule, dict) and rule.get("prompt"):
                out.append(rule["prompt"])
    return out


def promptinject():
    rows = csv.DictReader(io.StringIO(show("Giskard-AI/giskard", "giskard/llm/loaders/local/prompt_injections.csv")))
    return [r["prompt"] for r in rows if "garak" not in r["source"]]


JAILBREAK_MARKERS = re.compile(r"\bDAN\b|do anything now|jailbr|developer mode|no (?:ethical|moral) (?:guidelines|restrictions)", re.I)


def act_as():
    # The 2025-12 version: the classic act-as prompts (the newest file is over the
    # mirror's size limit). The list carries a few jailbreaks (a DAN prompt): those
    # are attacks, not benign role play, and are left out.
    rows = csv.DictReader(io.StringIO(show("f/awesome-chatgpt-prompts", "prompts.csv", "2ac0eb31")))
    return [r["prompt"] for r in rows if r.get("prompt") and not JAILBREAK_MARKERS.search(r["prompt"])]


def act_as_2025():
    rows = json.loads(show("rahulkolekardev/awesome-ai-prompts", "prompts.json"))
    return [r["prompt"] for r in rows if r.get("prompt") and not JAILBREAK_MARKERS.search(r["prompt"])]


def system_personas():
    repo = "mustvlad/ChatGPT-System-Prompts"
    out = []
    for path in ls(repo, "prompts/"):
        text = show(repo, path)
        if "## System Message" in text:
            out.append(text.split("## System Message", 1)[1].strip())
    return out


def self_instruct():
    """The 175 seed tasks (instruction and input), and T0 prompt templates filled with
    passages (long benign documents with questions), 20 rows from every 8th template."""
    repo = "yizhongw/self-instruct"
    out = []
    for line in show(repo, "data/seed_tasks.jsonl").splitlines():
        t = json.loads(line)
        for inst in t.get("instances", [])[:1]:
            out.append((t["instruction"] + ("\n" + inst["input"] if inst.get("input") else "")).strip())
    templates = ls(repo, "data/finetuning/t0_train_50k/data_per_template/")
    for path in templates[::8]:
        for line in show(repo, path).splitlines()[:20]:
            out.append(json.loads(line)["prompt"])
    return out


def mt_bench():
    out = []
    for path in ("fastchat/llm_judge/data/mt_bench/question.jsonl", "fastchat/llm_judge/data/vicuna_bench/question.jsonl"):
        for line in show("lm-sys/FastChat", path).splitlines():
            q = json.loads(line)
            out.extend(q.get("turns") or [q.get("text", "")])
    return [t for t in out if t]


def gsm8k():
    return [json.loads(l)["question"] for l in show("openai/grade-school-math", "grade_school_math/data/train.jsonl").splitlines()[:1500]]


def code_alpaca():
    rows = json.loads(show("sahil280114/codealpaca", "data/code_alpaca_2k.json"))
    return [(r["instruction"] + ("\n" + r["input"] if r.get("input") else "")).strip() for r in rows]


# Sources whose licence does not let their text ship inside an Apache-2.0 product
# (GPL-3.0, CC BY-NC): read only with --include-restricted, never committed, never in
# the shipped weights.
RESTRICTED = {"community-jailbreaks", "promptmap", "code-alpaca"}

READERS = {
    "jbb-pair": lambda: jbb(["PAIR"]),
    "jbb-gcg": lambda: jbb(["GCG"]),
    "jbb-search": lambda: jbb(["prompt_with_random_search", "DSN"]),
    "community-jailbreaks": community,
    "promptmap": promptmap,
    "promptinject": promptinject,
    "act-as-prompts": act_as,
    "act-as-2025": act_as_2025,
    "system-personas": system_personas,
    "self-instruct": self_instruct,
    "mt-bench": mt_bench,
    "gsm8k": gsm8k,
    "code-alpaca": code_alpaca,
}


def key(text):
    return hashlib.sha256(re.sub(r"\W+", " ", text.lower()).strip().encode()).hexdigest()


def main():
    seen = set()
    for name in ("train.jsonl", "eval.jsonl", "handwritten.jsonl"):
        with open(os.path.join(ROOT, "data", "injection", name)) as f:
            for line in f:
                seen.add(key(json.loads(line)["text"]))
    rows = []
    restricted = "--include-restricted" in sys.argv[1:]
    for name, (repo, commit, licence, label, what) in SOURCES.items():
        if name in RESTRICTED and not restricted:
            print(f"{name:22}     - rows  (licence {licence}: only with --include-restricted)")
            continue
        if not os.path.isdir(git_dir(repo)):
            sys.exit(f"{name}: no mirror of {repo} under {MIRRORS}")
        actual = head(repo)
        if name != "act-as-prompts" and not actual.startswith(commit[:7]):
            print(f"warning: {repo} is at {actual}, the corpus was built from {commit}", file=sys.stderr)
        kept = 0
        for text in READERS[name]():
            text = text.strip()[:MAX_CHARS]
            k = key(text)
            if len(text) < 8 or k in seen:
                continue
            seen.add(k)
            rows.append({"text": text, "label": label, "source": name})
            kept += 1
        print(f"{name:22} {kept:5} rows  label {label}  {licence:14} {repo}@{commit}  {what}")
    with open(OUT, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(rows)} rows")


if __name__ == "__main__":
    main()
