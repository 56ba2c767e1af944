#!/usr/bin/env python3
"""Realistic PII evaluation text, written by code that is not Rampart's: values come
from Faker (a third-party library with its own per-locale formats), placed in
form-like text, support tickets, e-mail signatures and chat messages, beside
look-alikes that must not be reported (order and tracking numbers, versions,
timestamps, amounts, ISBNs, SKUs, coordinates, postcodes).

    pip install faker==37.12.0
    python3 scripts/gen_pii_messy.py     # data/eval/pii_messy_{dev,heldout}.jsonl

Two files, split by *locale*: `dev` uses the locales the detectors were tuned on while
this set was being built; `heldout` uses locales that were only ever evaluated. Both
are deterministic (fixed seeds). No third-party PII data set is used.
"""
import json
import os
import random

from faker import Faker

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "eval")
DEV = ["en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pt_BR"]
HELDOUT = ["en_IN", "en_AU", "ja_JP", "pl_PL", "en_CA", "de_AT", "sv_SE", "da_DK", "de_CH", "fi_FI", "en_NZ", "cs_CZ"]
CARD_TYPES = ["visa13", "visa16", "visa19", "mastercard", "amex", "discover", "jcb15", "jcb16", "diners", "maestro"]
PHONE_WORDS = ["Phone", "Tel.", "Mobile", "Cell", "Desk", "Fax", "Telephone", "Registered number", "Contact number", "Ph"]
PHONE_PROSE = ["call me at {}", "you can reach me on {}", "I'm answering at {}", "my mobile is {}",
               "text me at {}", "ring the office on {}", "my direct line: {}", "best number to call is {}"]
CARD_WORDS = ["Card number", "Credit card", "Card", "CC", "Payment card", "Debit card"]
CARD_PROSE = ["please charge my card {}", "the card ending up in the system was {}", "I paid with card {}",
              "refund it to the credit card {}", "my debit card number is {}"]


class Text:
    """Builds a text and records labelled spans as it goes."""

    def __init__(self):
        self.parts, self.spans, self.len = [], [], 0

    def add(self, s, kind=None):
        if kind:
            self.spans.append({"kind": kind, "start": self.len, "end": self.len + len(s.encode())})
        self.parts.append(s)
        self.len += len(s.encode())

    def fill(self, template, value, kind):
        before, after = template.split("{}")
        self.add(before)
        self.add(value, kind)
        self.add(after)

    def row(self):
        return {"text": "".join(self.parts), "spans": self.spans}


def card_value(f, r):
    n = f.credit_card_number(r.choice(CARD_TYPES))
    style = r.random()
    if style < 0.45:
        return n
    sep = r.choice([" ", "-"])
    if len(n) == 15 and n[:2] in ("34", "37"):
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i:i + 4] for i in range(0, len(n), 4))


def iban_value(f, r):
    v = f.iban()
    style = r.random()
    if style < 0.4:
        return v
    grouped = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
    return grouped.lower() if style > 0.85 else grouped


def lookalike(r, f):
    return r.choice([
        lambda: f"Order #{r.randint(10**9, 10**10)}",
        lambda: f"order number {r.randint(100, 999)}-{r.randint(1000000, 9999999)}-{r.randint(1000000, 9999999)}",
        lambda: f"tracking 1Z{r.randint(10**5, 10**6)}A{r.randint(10**9, 10**10)}",
        lambda: f"Tracking ID: {r.randint(10**11, 10**12)}",
        lambda: f"version {r.randint(1, 20)}.{r.randint(0, 99)}.{r.randint(0, 999)}",
        lambda: f"build {r.randint(2020, 2026)}.{r.randint(1, 12):02d}.{r.randint(1, 28):02d}.{r.randint(1, 9999)}",
        lambda: f"at {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
        lambda: f"total {r.randint(1, 99)},{r.randint(100, 999)}.{r.randint(10, 99)} EUR",
        lambda: f"ISBN 978-{r.randint(0, 9)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}",
        lambda: f"SKU {r.randint(100000, 999999)}-{r.randint(10, 99)}",
        lambda: f"coordinates {r.uniform(-80, 80):.6f}, {r.uniform(-170, 170):.6f}",
        lambda: f"postcode {f.postcode()}",
        lambda: f"invoice {r.randint(2020, 2026)}-{r.randint(100000, 999999)}",
        lambda: f"ticket {r.randint(100000, 999999)}",
        lambda: f"case {r.randint(10**7, 10**8)}",
        lambda: f"serial no. {r.randint(10**13, 10**14)}",
        lambda: f"ref {r.randint(1000, 9999)} {r.randint(1000, 9999)} {r.randint(1000, 9999)}",
        lambda: f"on {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{r.randint(2019, 2026)}",
        lambda: f"duration {r.randint(0, 9)}:{r.randint(10, 59)}:{r.randint(10, 59)}",
        lambda: f"meeting ID {r.randint(100, 999)} {r.randint(1000, 9999)} {r.randint(1000, 9999)}",
    ])()


def form(f, r, t):
    t.add(r.choice(["Personal Info:\n", "Customer details\n", "Applicant\n", "Contact form submission\n", ""]))
    t.add(f"Name: {f.name()}\n")
    fields = ["phone", "email", "card", "iban", "ip", "look", "look"]
    r.shuffle(fields)
    for k in fields[: r.randint(2, 5)]:
        if k == "phone":
            t.fill(f"{r.choice(PHONE_WORDS)}: {{}}\n", f.phone_number(), "pii.phone")
        elif k == "email":
            t.fill(f"{r.choice(['Email', 'E-mail', 'Mail'])}: {{}}\n", f.email(), "pii.email")
        elif k == "card":
            t.fill(f"{r.choice(CARD_WORDS)}: {{}}\n", card_value(f, r), "pii.card")
        elif k == "iban":
            t.fill(f"{r.choice(['IBAN', 'Bank account (IBAN)', 'Account'])}: {{}}\n", iban_value(f, r), "pii.iban")
        elif k == "ip":
            v = f.ipv4() if r.random() < 0.7 else f.ipv6()
            t.fill("Last login IP: {}\n", v, "pii.ipv4" if ":" not in v else "pii.ipv6")
        else:
            t.add(f"{lookalike(r, f)}\n")
    t.add("Address: " + f.address().replace("\n", ", ") + "\n")


def ticket(f, r, t):
    t.add(r.choice(["Hi team,\n", "Hello,\n", "Dear support, ", "hey - "]))
    t.add(f"my {lookalike(r, f)} still hasn't arrived. ")
    k = r.random()
    if k < 0.45:
        t.fill(r.choice(PHONE_PROSE).capitalize() + ". ", f.phone_number(), "pii.phone")
    elif k < 0.7:
        t.fill(r.choice(CARD_PROSE).capitalize() + ". ", card_value(f, r), "pii.card")
    elif k < 0.85:
        t.fill("Please refund to IBAN {} asap. ", iban_value(f, r), "pii.iban")
    else:
        t.fill("Reply to {} please. ", f.email(), "pii.email")
    t.add(f"The app says {lookalike(r, f)}. ")
    t.add(r.choice(["Thanks!", "Regards", "Cheers,", "Best"]) + f" {f.first_name()}")


def signature(f, r, t):
    t.add(f"{r.choice(['Thanks for your help.', 'See attached.', 'Talk soon.'])}\n\n--\n{f.name()}\n{f.job()}, {f.company()}\n")
    t.fill(f"{r.choice(['Tel', 'T', 'Phone', 'Office', 'Desk'])}: {{}}", f.phone_number(), "pii.phone")
    if r.random() < 0.5:
        t.fill(f" | {r.choice(['Mobile', 'M', 'Fax', 'Cell'])}: {{}}", f.phone_number(), "pii.phone")
    t.add("\n")
    t.fill("{}\n", f.company_email(), "pii.email")
    t.add(f"{f.address()}\n")


def chat(f, r, t):
    k = r.random()
    if k < 0.3:
        t.fill("ok my number is {} if that's easier", f.phone_number(), "pii.phone")
    elif k < 0.5:
        t.fill("sure, card is {} exp 09/29", card_value(f, r), "pii.card")
    elif k < 0.65:
        t.fill("server {} keeps timing out since " + lookalike(r, f), f.ipv4(), "pii.ipv4")
    elif k < 0.8:
        t.fill("send the invoice to {} thx", f.free_email(), "pii.email")
    else:
        t.add(f"can you check {lookalike(r, f)} and {lookalike(r, f)}?")


def clean(f, r, t):
    t.add(r.choice(["Status update: ", "FYI ", "Note: ", ""]))
    t.add(", ".join(lookalike(r, f) for _ in range(r.randint(2, 4))))
    t.add(".")


def us_ssn(f, r, t):
    t.fill(r.choice(["SSN: {}", "Social Security Number {}", "my social is {} btw", "SSN {} (for the W-9)"]), f.ssn(), "pii.us_ssn")


def build(locales, seed, n):
    r = random.Random(seed)
    rows = []
    fakers = {}
    for loc in locales:
        fk = Faker(loc)
        fk.seed_instance(seed + len(fakers))
        fakers[loc] = fk
    for i in range(n):
        loc = locales[i % len(locales)]
        f = fakers[loc]
        t = Text()
        kind = r.choices([form, ticket, signature, chat, clean], [3, 3, 2, 2, 2])[0]
        kind(f, r, t)
        rows.append(t.row())
        if loc == "en_US" and r.random() < 0.3:
            t = Text()
            us_ssn(f, r, t)
            rows.append(t.row())
    return rows


def main():
    os.makedirs(ROOT, exist_ok=True)
    for name, locales, seed in [("dev", DEV, 11), ("heldout", HELDOUT, 23)]:
        rows = build(locales, seed, 1600)
        path = os.path.join(ROOT, f"pii_messy_{name}.jsonl")
        with open(path, "w") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        labelled = sum(len(r["spans"]) for r in rows)
        print(f"wrote {path}: {len(rows)} texts, {labelled} labelled values")


if __name__ == "__main__":
    main()
