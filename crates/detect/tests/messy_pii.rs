//! PII written the way people write it: each format the context rules exist for is
//! found (with the right kind), and the look-alikes next to the same words are not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rampart_detect::kinds::Kind;
use rampart_detect::scan::Scanner;

fn kinds_in(text: &str) -> Vec<(Kind, String)> {
    let s = Scanner::all(0.5).unwrap();
    s.scan(text)
        .iter()
        .map(|f| (f.kind, text[f.start..f.end].to_owned()))
        .collect()
}

#[test]
fn phones_in_any_national_grouping_next_to_phone_words() {
    for (text, value) in [
        ("Phone: (0161) 4960066", "(0161) 4960066"),
        ("Tel.: +44(0)28 9018 0877", "+44(0)28 9018 0877"),
        ("Mobile: 070-6115-8289", "070-6115-8289"),
        ("Desk: 951.236.2157 | M: 304.218.7457", "951.236.2157"),
        ("call me at 206.269.0743x9150 tomorrow", "206.269.0743x9150"),
        ("Fax 797-386-9073 ext. 12", "797-386-9073 ext. 12"),
        ("I'm answering at 3420837783.", "3420837783"),
        ("Registered number: 04234/13576509", "04234/13576509"),
        ("ok my number is 3533 7406 if that's easier", "3533 7406"),
        ("Telephone: 2946.2519", "2946.2519"),
        ("T: 06622386538", "06622386538"),
        ("Reach me on (+358) 474206666", "(+358) 474206666"),
        ("Contact number: 00420 726 462 839", "00420 726 462 839"),
        ("+49 (0) 9141 777631", "+49 (0) 9141 777631"),
        ("office line 0044 20 7946 0958", "0044 20 7946 0958"),
    ] {
        let found = kinds_in(text);
        assert!(
            found.iter().any(|(k, v)| *k == Kind::Phone && v == value),
            "{value:?} in {text:?}: {found:?}"
        );
    }
}

#[test]
fn numbers_that_only_look_like_phones_are_not_phones() {
    for text in [
        "Tracking: 007592417569",
        "Phone support ticket 977244 was closed; order number 206-2829509-1649219",
        "Call logged at 2019-05-28 18:19:51.",
        "ISBN 978-7-511-76160-0 is out of print, call the shop",
        "version 16.62.550 fixes the phone app",
        "postcode 74349-063",
        "coordinates 25.322089, 96.218440",
        "meeting ID 130 8601 6345",
        "Phone: see ref 4828 5819 9188",
        "Last login from 192.168.100.200",
        "total 44,610.26 EUR",
    ] {
        let found = kinds_in(text);
        assert!(!found.iter().any(|(k, _)| *k == Kind::Phone), "{text:?}: {found:?}");
    }
}

#[test]
fn cards_of_any_issuer_next_to_card_words() {
    for (text, value) in [
        ("Card number: 1800 0320 1995 251", "1800 0320 1995 251"), // old JCB, 15 digits
        ("CC: 2131 5948 2012 652", "2131 5948 2012 652"),          // old JCB
        ("Debit card 6761-7357-1404", "6761-7357-1404"),           // Maestro, 12 digits
        ("my card is 3597 9781 1646 4033", "3597 9781 1646 4033"), // JCB range outside 3528–3589
        ("Payment card: 6212345678901265", "6212345678901265"),    // UnionPay
        ("Charge 5505658089203834 for the order.", "5505658089203834"), // a card word beats "order"
        ("card 4111.1111.1111.1111", "4111.1111.1111.1111"),       // dots
    ] {
        let found = kinds_in(text);
        assert!(
            found.iter().any(|(k, v)| *k == Kind::Card && v == value),
            "{value:?} in {text:?}: {found:?}"
        );
    }
}

#[test]
fn luhn_valid_numbers_without_card_words_or_beside_other_words_are_not_cards() {
    for text in [
        "serial no. 36515235272544",
        "Order number 4910343723038571 has shipped.",
        "Tracking ID: 595395756924",
        "ref 1800 0320 1995 251", // an old-JCB-shaped number with no card word
    ] {
        let found = kinds_in(text);
        assert!(!found.iter().any(|(k, _)| *k == Kind::Card), "{text:?}: {found:?}");
    }
}

#[test]
fn ibans_lower_case_grouped_or_off_length_next_to_iban_words() {
    for (text, value) in [
        ("IBAN: de89 3704 0044 0532 0130 00", "de89 3704 0044 0532 0130 00"),
        ("Account: GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
        (
            "Please refund to IBAN fr1420041010050500013m02606 asap",
            "fr1420041010050500013m02606",
        ),
    ] {
        let found = kinds_in(text);
        assert!(
            found.iter().any(|(k, v)| *k == Kind::Iban && v == value),
            "{value:?} in {text:?}: {found:?}"
        );
    }
    // Right shape, wrong check digits: not an IBAN, whatever the words say.
    let found = kinds_in("IBAN: de88 3704 0044 0532 0130 00");
    assert!(!found.iter().any(|(k, _)| *k == Kind::Iban), "{found:?}");
}
