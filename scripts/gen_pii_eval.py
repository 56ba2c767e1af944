#!/usr/bin/env python3
"""Builds data/eval/pii.jsonl: sentences with labelled PII and secret values, and
sentences with look-alikes that must not be reported (wrong check digits, version
numbers, order numbers, times). Each line: {"text", "spans": [{"kind", "start", "end"}]}
with UTF-8 byte offsets.

The values are generated here with this script's own implementations of the check-digit
algorithms (written from the public specifications, independently of the Rust code), so
the evaluation checks the detectors against a second implementation. The detectors were
not tuned on this file's output; it is evaluation data only. No third-party PII data set
is used.

Run: python3 scripts/gen_pii_eval.py   (deterministic)
"""

import base64
import hashlib
import json
import os
import random
import string

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "data", "eval", "pii.jsonl")
rng = random.Random(424242)
D = string.digits


def digits(n):
    return "".join(rng.choice(D) for _ in range(n))


def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        x = int(ch)
        if i % 2 == 0:
            x *= 2
            if x > 9:
                x -= 9
        total += x
    return str((10 - total % 10) % 10)


def card():
    prefix = rng.choice(["4", "51", "52", "53", "54", "55", "2221", "2720", "6011"])
    body = prefix + digits(15 - len(prefix))
    n = body + luhn_digit(body)
    return " ".join(n[i:i + 4] for i in range(0, 16, 4)) if rng.random() < 0.6 else n


def amex():
    body = rng.choice(["34", "37"]) + digits(12)
    n = body + luhn_digit(body)
    return f"{n[:4]} {n[4:10]} {n[10:]}"


IBAN_LEN = {"DE": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "AT": 20, "PL": 28, "PT": 25, "IE": 22}


def iban():
    cc = rng.choice(list(IBAN_LEN))
    n = IBAN_LEN[cc] - 4
    if cc in ("NL", "IE"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + digits(n - 4)
    elif cc == "IT":
        bban = rng.choice(string.ascii_uppercase) + digits(n - 1)
    else:
        bban = digits(n)
    num = "".join(str(int(c, 36)) for c in bban + cc + "00")
    check = 98 - int(num) % 97
    s = f"{cc}{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4)) if rng.random() < 0.5 else s


def ssn():
    while True:
        a, g, s = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        if a != 666:
            return f"{a:03d}-{g:02d}-{s:04d}"


def dni():
    n = rng.randint(10_000_000, 99_999_999)
    return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"


def nie():
    lead = rng.randint(0, 2)
    n = rng.randint(1_000_000, 9_999_999)
    return f"{'XYZ'[lead]}{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[(lead * 10_000_000 + n) % 23]}"


def nir():
    sex = rng.choice("12")
    yy = f"{rng.randint(0, 99):02d}"
    mm = f"{rng.randint(1, 12):02d}"
    dep = f"{rng.randint(1, 95):02d}"
    rest = digits(6)
    number = int(sex + yy + mm + dep + rest)
    key = 97 - number % 97
    return f"{sex} {yy} {mm} {dep} {rest[:3]} {rest[3:]} {key:02d}"


def bsn():
    while True:
        d = [rng.randint(0, 9) for _ in range(8)]
        total = sum(x * w for x, w in zip(d, range(9, 1, -1)))
        last = total % 11
        if last < 10 and len(set(d)) > 1:
            return "".join(map(str, d)) + str(last)


def pesel():
    year, month, day = rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)
    m = month + (20 if year >= 2000 else 0)
    body = f"{year % 100:02d}{m:02d}{day:02d}" + digits(4)
    w = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]
    c = (10 - sum(int(x) * y for x, y in zip(body, w)) % 10) % 10
    return body + str(c)


def de_tax_id():
    while True:
        first = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(9)]
        counts = [first.count(k) for k in range(10)]
        if sum(1 for c in counts if c > 1) != 1 or max(counts) > 3:
            continue
        product = 10
        for x in first:
            s = (x + product) % 10 or 10
            product = (s * 2) % 11
        check = (11 - product) % 10
        return "".join(map(str, first)) + str(check)


ODD = {**{str(i): v for i, v in enumerate([1, 0, 5, 7, 9, 13, 15, 17, 19, 21])},
       **dict(zip(string.ascii_uppercase, [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]))}


def codice_fiscale():
    letters = "".join(rng.choice("BCDFGLMNPRSTVZ") for _ in range(6))
    body = letters + f"{rng.randint(40, 99):02d}" + rng.choice("ABCDEHLMPRST") + f"{rng.randint(1, 71):02d}" \
        + rng.choice("ABCDEFGHLMZ") + f"{rng.randint(1, 999):03d}"
    total = 0
    for i, ch in enumerate(body):
        if i % 2 == 0:
            total += ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - 65
    return body + chr(65 + total % 26)


def email():
    user = rng.choice(["anna", "j.smith", "li.wei", "m.rossi", "kowalski", "o.brien", "sam+news", "dev-team", "ines.ferreira"])
    host = rng.choice(["example.com", "mail.example.org", "corp.example.de", "uni-example.fr", "example.co.uk"])
    return f"{user}{rng.randint(1, 99)}@{host}"


def phone():
    return rng.choice([
        f"+49 30 {digits(4)} {digits(4)}", f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
        f"+1 415 {digits(3)} {digits(4)}", f"({rng.randint(201, 989)}) {digits(3)}-{digits(4)}",
        f"+44 20 {digits(4)} {digits(4)}", f"+39 06 {digits(4)} {digits(4)}", f"030 {digits(8)}",
    ])


def ipv4():
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6():
    return "2001:db8:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(3)) + "::" + f"{rng.randint(1, 65535):x}"


def mac():
    sep = rng.choice(":-")
    return sep.join(f"{rng.randint(0, 255):02X}" for _ in range(6))


def dob():
    y, m, d = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{d:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}"])


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def btc():
    payload = bytes([0]) + bytes(rng.randint(0, 255) for _ in range(20))
    check = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(payload + check, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(payload + check) - len((payload + check).lstrip(b"\0"))) + out


def alnum(n, alphabet=string.ascii_letters + string.digits):
    return "".join(rng.choice(alphabet) for _ in range(n))


def secret(kind):
    return {
        "secret.aws_access_key": lambda: "AKIA" + alnum(16, string.ascii_uppercase + string.digits),
        "secret.github_token": lambda: "ghp_" + alnum(36),
        "secret.gitlab_token": lambda: "glpat-" + alnum(20),
        "secret.slack_token": lambda: f"xoxb-{digits(11)}-{digits(12)}-{alnum(24)}",
        "secret.stripe_key": lambda: "sk_live_" + alnum(24),
        "secret.openai_key": lambda: "sk-proj-" + alnum(48),
        "secret.google_api_key": lambda: "AIza" + alnum(35, string.ascii_letters + string.digits + "_-"),
        "secret.jwt": lambda: ".".join(base64.urlsafe_b64encode(json.dumps(x).encode()).decode().rstrip("=")
                                        for x in [{"alg": "HS256", "typ": "JWT"}, {"sub": digits(8), "exp": 1900000000}]) + "." + alnum(43),
    }[kind]()


# (kind, generator, sentence templates with {v}; context words where a reader would use them)
CASES = [
    ("pii.email", email, ["Contact me at {v} for details.", "cc: {v}", "Send the invoice to {v} please."]),
    ("pii.card", card, ["My card number is {v}, expiry 09/28.", "Charge {v} for the order.", "visa {v}"]),
    ("pii.card", amex, ["Amex: {v}", "Use my amex card {v} please."]),
    ("pii.iban", iban, ["Please transfer to IBAN {v}.", "Bank account: {v}", "Refund to {v} thanks"]),
    ("pii.us_ssn", ssn, ["SSN: {v}", "My social security number is {v}.", "ssn {v} on file"]),
    ("pii.es_dni", dni, ["DNI {v}", "Mi DNI es {v}.", "documento: {v}"]),
    ("pii.es_dni", nie, ["NIE {v}", "Número de NIE: {v}"]),
    ("pii.fr_nir", nir, ["Numéro de sécurité sociale : {v}", "NIR {v}"]),
    ("pii.nl_bsn", bsn, ["Mijn BSN is {v}.", "BSN: {v}", "burgerservicenummer {v}"]),
    ("pii.pl_pesel", pesel, ["PESEL: {v}", "Mój numer PESEL to {v}."]),
    ("pii.de_tax_id", de_tax_id, ["Steuer-IdNr: {v}", "Meine Steuer-ID lautet {v}.", "tax id {v}"]),
    ("pii.it_codice_fiscale", codice_fiscale, ["Codice fiscale: {v}", "CF {v}", "il mio codice fiscale è {v}"]),
    ("pii.phone", phone, ["Call me on {v}.", "Tel: {v}", "My mobile is {v}, text anytime.", "reach us at {v}"]),
    ("pii.ipv4", ipv4, ["The server IP is {v}.", "Login from {v} was blocked.", "ping {v}"]),
    ("pii.ipv6", ipv6, ["Host address {v} is down.", "client ip {v}"]),
    ("pii.mac", mac, ["MAC address {v}", "The device {v} joined the wifi."]),
    ("pii.date_of_birth", dob, ["Date of birth: {v}", "I was born on {v}.", "DOB {v}", "geboren am {v}"]),
    ("pii.crypto_wallet", btc, ["Send BTC to {v}.", "My bitcoin wallet: {v}"]),
]
SECRET_KINDS = ["secret.aws_access_key", "secret.github_token", "secret.gitlab_token", "secret.slack_token",
                "secret.stripe_key", "secret.openai_key", "secret.google_api_key", "secret.jwt"]
SECRET_T = ["Here is my key: {v}", "export TOKEN={v}", "The config has {v} in it, is that bad?", "Authorization: Bearer {v}"]

# Look-alikes that are not the kind they resemble (no span expected).
NEGATIVES = [
    lambda: f"Order number {digits(16)} has shipped.",
    lambda: f"Tracking: {digits(12)}",
    lambda: f"Version {rng.randint(1, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} fixes the bug.",
    lambda: f"The meeting is at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.",
    lambda: f"Invoice {digits(11)} is due next week.",
    lambda: f"ISBN 978-{rng.randint(0, 9)}-{digits(3)}-{digits(5)}-{rng.randint(0, 9)}",
    lambda: f"The population grew to {rng.randint(1, 999)} {digits(3)} {digits(3)} people.",
    lambda: f"Ticket #{digits(9)} was closed.",
    lambda: f"Card ending in {digits(4)} was declined.",
    lambda: f"Reference {rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}{digits(2)} {digits(4)} {digits(4)}",
    lambda: f"The password must be at least {rng.randint(8, 16)} characters long.",
    lambda: f"Use the token placeholder YOUR_API_KEY_HERE in the config.",
    lambda: f"Temperature readings: {rng.randint(10, 30)}.{rng.randint(0, 9)}, {rng.randint(10, 30)}.{rng.randint(0, 9)} and {rng.randint(10, 30)}.{rng.randint(0, 9)}.",
    lambda: f"Compute 4111 1111 1111 1112 minus 1.",  # fails Luhn
    lambda: "The hash is 3f786850e387550fdab836ed7e6dc881de23001b.",
    lambda: f"Coordinates: {rng.randint(10, 80)}.{digits(4)}, {rng.randint(10, 170)}.{digits(4)}",
]


def byte_span(text, value):
    start = text.index(value)
    b0 = len(text[:start].encode())
    return b0, b0 + len(value.encode())


def main():
    rows = []
    for kind, gen, templates in CASES:
        for _ in range(60):
            v = gen()
            t = rng.choice(templates).format(v=v)
            s, e = byte_span(t, v)
            rows.append({"text": t, "spans": [{"kind": kind, "start": s, "end": e}]})
    for kind in SECRET_KINDS:
        for _ in range(40):
            v = secret(kind)
            t = rng.choice(SECRET_T).format(v=v)
            s, e = byte_span(t, v)
            rows.append({"text": t, "spans": [{"kind": kind, "start": s, "end": e}]})
    for _ in range(600):
        rows.append({"text": rng.choice(NEGATIVES)(), "spans": []})
    rng.shuffle(rows)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} texts, {sum(len(r['spans']) for r in rows)} labelled values")


if __name__ == "__main__":
    main()
