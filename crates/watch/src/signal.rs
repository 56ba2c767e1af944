//! What a detector reports — a [`Signal`]: which detector, a score (1.0 is its alarm
//! threshold; higher is more certain) and a reason a person can read — and what a
//! route's policy does about it ([`Action`]).

use serde::{Deserialize, Serialize};

/// The detectors, by the name alerts, findings and metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Spacing between a principal's successive queries unlike honest clients' (PRADA).
    ExtractionSpacing,
    /// A principal's share of out-of-distribution queries far above the honest rate.
    ExtractionOod,
    /// A principal's share of low-margin answers (queries at the decision boundary).
    ExtractionBoundary,
    /// A query outside the features' ranges or far from the reference distribution.
    OutOfDistribution,
    /// The route's inputs no longer look like the reference.
    DriftInput,
    /// The route's answers (labels, confidences) no longer look like its first window.
    DriftOutput,
    /// A principal's request rate far above its own baseline.
    RateSpike,
    /// A principal's LLM token rate far above its own baseline.
    TokenSpike,
    /// Many 401/403/404 answers to one principal or address: credential or model
    /// enumeration.
    DeniedBurst,
    /// Many of a principal's recent requests refused by policy (injection, content).
    Refusals,
}

impl Detector {
    pub const ALL: [Self; 10] = [
        Self::ExtractionSpacing,
        Self::ExtractionOod,
        Self::ExtractionBoundary,
        Self::OutOfDistribution,
        Self::DriftInput,
        Self::DriftOutput,
        Self::RateSpike,
        Self::TokenSpike,
        Self::DeniedBurst,
        Self::Refusals,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExtractionSpacing => "extraction_spacing",
            Self::ExtractionOod => "extraction_ood",
            Self::ExtractionBoundary => "extraction_boundary",
            Self::OutOfDistribution => "out_of_distribution",
            Self::DriftInput => "drift_input",
            Self::DriftOutput => "drift_output",
            Self::RateSpike => "rate_spike",
            Self::TokenSpike => "token_spike",
            Self::DeniedBurst => "denied_burst",
            Self::Refusals => "refusals",
        }
    }

    /// The finding kind an exchange carries when this detector fires on it.
    pub fn finding(self) -> &'static str {
        match self {
            Self::ExtractionSpacing => "watch.extraction_spacing",
            Self::ExtractionOod => "watch.extraction_ood",
            Self::ExtractionBoundary => "watch.extraction_boundary",
            Self::OutOfDistribution => "watch.out_of_distribution",
            Self::DriftInput => "watch.drift_input",
            Self::DriftOutput => "watch.drift_output",
            Self::RateSpike => "watch.rate_spike",
            Self::TokenSpike => "watch.token_spike",
            Self::DeniedBurst => "watch.denied_burst",
            Self::Refusals => "watch.refusals",
        }
    }

    /// Whether the detector is about one principal (drift is about a route).
    pub fn per_principal(self) -> bool {
        !matches!(self, Self::DriftInput | Self::DriftOutput)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub detector: Detector,
    /// 1.0 at the alarm threshold.
    pub score: f64,
    /// Names features and bounds, never a request's values.
    pub reason: String,
}

/// What a route does when a detector fires. Each includes the ones before it:
/// `alert` records too, `throttle` and `block` alert too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A finding on the exchange (access log, audit record) and a metric.
    #[default]
    Record,
    /// And an alert: an audit record of its own, the webhook, the alert log line.
    Alert,
    /// And hold the exchange for a person's review. The review queue is not built
    /// yet: until it is, `review` alerts and flags the exchange for it.
    Review,
    /// And slow the principal to the throttle rate for the penalty period.
    Throttle,
    /// And refuse the principal (403) for the penalty period, from this request on.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Alert => "alert",
            Self::Review => "review",
            Self::Throttle => "throttle",
            Self::Block => "block",
        }
    }

    pub fn alerts(self) -> bool {
        self >= Self::Alert
    }
}
