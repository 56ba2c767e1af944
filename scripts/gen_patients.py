#!/usr/bin/env python3
"""Writes a synthetic patient table (CSV) for trying and measuring `rampart redact --k`.

Usage: python3 scripts/gen_patients.py [ROWS] > patients.csv

Standard library only, seeded, so the same ROWS give the same file. Columns: direct
identifiers (patient number, name, an e-mail and phone in a free-text note),
quasi-identifiers (age, birth date consistent with it, postcode, sex) and a sensitive
value (an ICD-10 diagnosis). Distributions are skewed the way registry data is: most
patients in a few postcode areas, ages bunched in the middle, a few outliers.
"""
import random
import sys

FIRST = ["Anna", "Ben", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Katarzyna", "Luis", "Mei", "Nils", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tariq"]
LAST = ["Meyer", "Schulz", "Novak", "Rossi", "Kowalski", "Dubois", "Larsen", "Silva", "Okafor",
        "Yilmaz", "Nguyen", "Haddad", "Fischer", "Moreau", "Jansen", "Costa"]
AREAS = {"101": 30, "102": 20, "200": 15, "506": 12, "803": 10, "041": 8, "600": 5}
DIAGNOSES = {"I10": 25, "E11": 15, "J45": 12, "M54": 12, "F32": 10, "K21": 8, "C50": 3, "G35": 1}


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rnd = random.Random(20261205)
    areas, area_w = zip(*AREAS.items())
    dx, dx_w = zip(*DIAGNOSES.items())
    out = sys.stdout
    out.write("patient,name,age,birth_date,zip,sex,diagnosis,note\n")
    for i in range(rows):
        age = rnd.choice([98, 101, 104]) if rnd.random() < 0.002 else min(95, max(18, int(rnd.gauss(52, 16))))
        born = f"{2026 - age}-{rnd.randint(1, 12):02}-{rnd.randint(1, 28):02}"
        zip_code = f"{rnd.randint(10000, 99999)}" if rnd.random() < 0.01 else \
            rnd.choices(areas, area_w)[0] + f"{rnd.randint(0, 99):02}"
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        note = f"follow-up by {first.lower()}.{last.lower()}{i % 97}@example.org or +49 30 {rnd.randint(1000000, 9999999)}"
        out.write(f"P{i:07},{first} {last},{age},{born},{zip_code},{rnd.choice('FM')},"
                  f"{rnd.choices(dx, dx_w)[0]},{note}\n")


if __name__ == "__main__":
    main()
