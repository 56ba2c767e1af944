//! The kinds of sensitive data the detectors report, with their stable names (used in
//! config, findings, metrics and audit records) and the tag a redaction writes.

macro_rules! kinds {
    ($( $variant:ident => $name:literal, $tag:literal; )*) => {
        /// One kind of finding. The name is stable: config and audit records use it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $( $variant, )* }

        impl Kind {
            /// Every kind, in reporting order.
            pub const ALL: &'static [Kind] = &[ $( Kind::$variant, )* ];

            /// The stable name, `pii.*` or `secret.*`.
            pub fn name(self) -> &'static str {
                match self { $( Kind::$variant => $name, )* }
            }

            /// The upper-case tag a redaction writes, e.g. `EMAIL`.
            pub fn tag(self) -> &'static str {
                match self { $( Kind::$variant => $tag, )* }
            }

            pub fn from_name(name: &str) -> Option<Kind> {
                match name { $( $name => Some(Kind::$variant), )* _ => None }
            }
        }
    };
}

kinds! {
    Email => "pii.email", "EMAIL";
    Phone => "pii.phone", "PHONE";
    Card => "pii.card", "CARD";
    Iban => "pii.iban", "IBAN";
    UsSsn => "pii.us_ssn", "US_SSN";
    DeTaxId => "pii.de_tax_id", "DE_TAX_ID";
    FrNir => "pii.fr_nir", "FR_NIR";
    EsDni => "pii.es_dni", "ES_DNI";
    ItCodiceFiscale => "pii.it_codice_fiscale", "IT_CF";
    NlBsn => "pii.nl_bsn", "NL_BSN";
    PlPesel => "pii.pl_pesel", "PL_PESEL";
    Ipv4 => "pii.ipv4", "IPV4";
    Ipv6 => "pii.ipv6", "IPV6";
    Mac => "pii.mac", "MAC";
    DateOfBirth => "pii.date_of_birth", "DOB";
    UrlCredentials => "pii.url_credentials", "URL_PASSWORD";
    CryptoWallet => "pii.crypto_wallet", "WALLET";
    AwsAccessKey => "secret.aws_access_key", "AWS_KEY";
    GithubToken => "secret.github_token", "GITHUB_TOKEN";
    GitlabToken => "secret.gitlab_token", "GITLAB_TOKEN";
    SlackToken => "secret.slack_token", "SLACK_TOKEN";
    StripeKey => "secret.stripe_key", "STRIPE_KEY";
    OpenaiKey => "secret.openai_key", "OPENAI_KEY";
    AnthropicKey => "secret.anthropic_key", "ANTHROPIC_KEY";
    GoogleApiKey => "secret.google_api_key", "GOOGLE_KEY";
    PrivateKey => "secret.private_key", "PRIVATE_KEY";
    Jwt => "secret.jwt", "JWT";
    RampartKey => "secret.rampart_key", "RAMPART_KEY";
    AssignedSecret => "secret.assigned", "SECRET";
}

impl Kind {
    pub fn is_secret(self) -> bool {
        self.name().starts_with("secret.")
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names = std::collections::HashSet::new();
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(*k));
            assert!(names.insert(k.name()), "{k}");
            assert!(
                k.tag()
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
            );
        }
    }
}
