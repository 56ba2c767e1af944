//! k-anonymity for `rampart redact --k`: generalises quasi-identifier columns of a
//! table until every combination of their values is shared by at least k rows.
//!
//! Each column gets a generalisation hierarchy built from its own values: numbers
//! become ranges of growing width, dates become months, years, five years, decades,
//! codes (postcodes) lose characters from the right, categories rarer than a growing
//! threshold are grouped as `other`; the top of every hierarchy is `*`. One level per
//! column is a node of the lattice; a node is acceptable when the rows left in classes
//! smaller than k fit the suppression budget, and those rows are suppressed (left out)
//! as the last resort. Lattices up to 20 000 nodes are searched for the acceptable
//! node of least information loss (exact, in order of a lower bound); larger ones are
//! walked greedily. Information loss is the normalised certainty penalty (NCP):
//! per cell, the share of the column's domain its generalised value covers (0 exact,
//! 1 `*` or suppressed), averaged over every quasi-identifier cell of every input row.
//! This module owns the algorithm only; reading and writing files is `textjobs.rs`.

use std::collections::{BTreeMap, HashMap};

use rampart_identity::time::{civil_from_days, days_from_civil};

/// How a column is generalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Numbers: ranges of growing width.
    Number,
    /// ISO dates (`YYYY-MM-DD`, optionally followed by a time): month, year, 5 years, decade.
    Date,
    /// Codes such as postcodes: characters masked from the right.
    Prefix,
    /// Anything else: rare values grouped as `other`.
    Category,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "number" => Some(Kind::Number),
            "date" => Some(Kind::Date),
            "prefix" => Some(Kind::Prefix),
            "category" => Some(Kind::Category),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Date => "date",
            Kind::Prefix => "prefix",
            Kind::Category => "category",
        }
    }
}

/// One quasi-identifier column: its values as text in row order (`""` is missing).
pub struct Column {
    pub name: String,
    /// `None`: inferred from the name and the values.
    pub kind: Option<Kind>,
    pub values: Vec<String>,
}

/// A value that does not fit its column's kind.
#[derive(Debug)]
pub struct BadValue {
    pub row: usize,
    pub column: String,
    pub message: String,
}

/// One level of a column's hierarchy: every distinct value's label.
struct Level {
    of: Vec<u32>,
    labels: Vec<String>,
    ncp: Vec<f64>,
    name: String,
}

struct Hierarchy {
    kind: Kind,
    /// Row → distinct value index.
    row: Vec<u32>,
    levels: Vec<Level>,
    /// Mean NCP over rows, per level.
    loss: Vec<f64>,
}

impl Hierarchy {
    fn label(&self, level: usize, row: usize) -> u32 {
        self.levels[level].of[self.row[row] as usize]
    }

    fn ncp(&self, level: usize, row: usize) -> f64 {
        let l = &self.levels[level];
        l.ncp[l.of[self.row[row] as usize] as usize]
    }
}

/// What one column became.
pub struct ColumnOutcome {
    pub name: String,
    pub kind: Kind,
    /// Level 0 (values unchanged) or higher.
    pub level: usize,
    /// What the level does, e.g. `width 10`, `year`, `kept 3 of 5 characters`.
    pub level_name: String,
}

/// The result: which rows stay, and each kept row's generalised values.
pub struct Outcome {
    pub kept: Vec<bool>,
    pub columns: Vec<ColumnOutcome>,
    pub k_reached: usize,
    pub suppressed: usize,
    /// NCP averaged over every quasi-identifier cell of every input row (suppressed = 1).
    pub loss: f64,
    hierarchies: Vec<Hierarchy>,
}

impl Outcome {
    /// The generalised value of `row` in column `col`, or `None` when it is unchanged.
    pub fn value(&self, col: usize, row: usize) -> Option<&str> {
        let level = self.columns[col].level;
        if level == 0 {
            return None;
        }
        let h = &self.hierarchies[col];
        Some(&h.levels[level].labels[h.label(level, row) as usize])
    }
}

/// Generalises `columns` (all of the same length) to k-anonymity, suppressing at most
/// `max_suppressed` rows. Fails on a value that does not fit its column's kind, or when
/// there are fewer rows than k.
pub fn anonymise(columns: &[Column], k: usize, max_suppressed: usize) -> Result<Outcome, BadValue> {
    let n = columns.first().map_or(0, |c| c.values.len());
    let k = k.max(1);
    if n < k {
        return Err(BadValue {
            row: 0,
            column: String::new(),
            message: format!("{n} rows: fewer than k = {k}, no generalisation can reach it"),
        });
    }
    let hierarchies = columns.iter().map(|c| build(c, k)).collect::<Result<Vec<_>, _>>()?;
    // The worst case of the exhaustive search evaluates every node over every cell.
    let lattice = hierarchies
        .iter()
        .try_fold(1usize, |acc, h| acc.checked_mul(h.levels.len()))
        .filter(|&size| size <= MAX_LATTICE)
        .filter(|&size| size.saturating_mul(n).saturating_mul(hierarchies.len()) <= MAX_SEARCH_CELLS);
    let (levels, now) = match lattice {
        Some(_) => optimal(&hierarchies, k, max_suppressed, n),
        None => greedy(&hierarchies, k, max_suppressed, n),
    };
    let kept: Vec<bool> = now.class.iter().map(|&c| now.sizes[c as usize] >= k).collect();
    let suppressed = kept.iter().filter(|k| !**k).count();
    let k_reached = now.sizes.iter().copied().filter(|&s| s >= k).min().unwrap_or(0);
    let loss = total_loss(&hierarchies, &levels, &kept);
    let columns = columns
        .iter()
        .zip(&hierarchies)
        .zip(&levels)
        .map(|((c, h), &level)| ColumnOutcome {
            name: c.name.clone(),
            kind: h.kind,
            level,
            level_name: h.levels[level].name.clone(),
        })
        .collect();
    Ok(Outcome {
        kept,
        columns,
        k_reached,
        suppressed,
        loss,
        hierarchies,
    })
}

/// Lattices up to this many nodes are searched exhaustively (in order of loss, so the
/// search usually stops long before); larger ones are walked greedily.
const MAX_LATTICE: usize = 20_000;
/// And only while nodes × rows × columns stays under this (a few minutes at worst on
/// one core): a million-row table with four quasi-identifiers gets the exact search
/// up to 500 nodes, the greedy walk beyond.
const MAX_SEARCH_CELLS: usize = 2_000_000_000;

/// NCP over every quasi-identifier cell of every row, a suppressed row counting 1.
fn total_loss(hs: &[Hierarchy], levels: &[usize], kept: &[bool]) -> f64 {
    let m = hs.len().max(1);
    let mut loss = 0.0;
    for (r, keep) in kept.iter().enumerate() {
        for (h, &level) in hs.iter().zip(levels) {
            loss += if *keep { h.ncp(level, r) } else { 1.0 };
        }
    }
    loss / (kept.len().max(1) * m) as f64
}

/// The full-domain generalisation of least loss whose small classes fit the budget.
/// Nodes are tried in order of their generalisation loss, a lower bound of their loss
/// after suppression (a suppressed cell costs 1, more than any generalised one), so the
/// first bound at or above the best loss found ends the search with the optimum.
fn optimal(hs: &[Hierarchy], k: usize, budget: usize, n: usize) -> (Vec<usize>, Eval) {
    let m = hs.len().max(1) as f64;
    let mut nodes: Vec<(f64, Vec<usize>)> = vec![(0.0, Vec::new())];
    for h in hs {
        nodes = nodes
            .into_iter()
            .flat_map(|(loss, levels)| {
                (0..h.levels.len()).map(move |l| {
                    let mut next = levels.clone();
                    next.push(l);
                    (loss + h.loss[l] / m, next)
                })
            })
            .collect();
    }
    nodes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best: Option<(f64, Vec<usize>, Eval)> = None;
    for (bound, levels) in nodes {
        if best.as_ref().is_some_and(|(loss, _, _)| bound >= *loss - 1e-12) {
            break;
        }
        let e = evaluate(hs, &levels, k, n);
        if e.small > budget {
            continue;
        }
        let kept: Vec<bool> = e.class.iter().map(|&c| e.sizes[c as usize] >= k).collect();
        let loss = total_loss(hs, &levels, &kept);
        if best.as_ref().is_none_or(|(b, _, _)| loss < *b) {
            best = Some((loss, levels, e));
        }
    }
    match best {
        Some((_, levels, e)) => (levels, e),
        // Unreachable while n ≥ k (every column `*` is one class of n rows); kept safe.
        None => greedy(hs, k, budget, n),
    }
}

/// A greedy walk up the lattice for tables with many quasi-identifiers: each step
/// takes the one-level generalisation that moves the most rows out of small classes
/// per unit of loss, then a pass lowers any column the budget does not need.
fn greedy(hs: &[Hierarchy], k: usize, budget: usize, n: usize) -> (Vec<usize>, Eval) {
    let mut levels = vec![0usize; hs.len()];
    let mut now = evaluate(hs, &levels, k, n);
    while now.small > budget {
        let mut best: Option<(usize, Eval, f64)> = None;
        for c in 0..hs.len() {
            if levels[c] + 1 >= hs[c].levels.len() {
                continue;
            }
            levels[c] += 1;
            let e = evaluate(hs, &levels, k, n);
            levels[c] -= 1;
            let cost = hs[c].loss[levels[c] + 1] - hs[c].loss[levels[c]] + 1e-9;
            // Rows leaving small classes per unit of loss; while no step moves any
            // row, fewer classes per unit of loss (the walk towards the first merge).
            let score = if now.small > e.small {
                (now.small - e.small) as f64 / cost + 1e12
            } else {
                now.classes.saturating_sub(e.classes) as f64 / cost
            };
            if best.as_ref().is_none_or(|(_, _, s)| score > *s) {
                best = Some((c, e, score));
            }
        }
        match best {
            Some((c, e, _)) => {
                levels[c] += 1;
                now = e;
            }
            None => break, // every column is `*`: one class of n ≥ k rows
        }
    }
    loop {
        let mut lowered = false;
        for c in 0..hs.len() {
            while levels[c] > 0 {
                levels[c] -= 1;
                let e = evaluate(hs, &levels, k, n);
                if e.small <= budget {
                    now = e;
                    lowered = true;
                } else {
                    levels[c] += 1;
                    break;
                }
            }
        }
        if !lowered {
            break;
        }
    }
    (levels, now)
}

struct Eval {
    /// Rows in classes smaller than k.
    small: usize,
    classes: usize,
    class: Vec<u32>,
    sizes: Vec<usize>,
}

/// Equivalence classes for one choice of levels, refined column by column (exact:
/// each step maps a (class, label) pair to a new class id).
fn evaluate(hs: &[Hierarchy], levels: &[usize], k: usize, n: usize) -> Eval {
    let mut class = vec![0u32; n];
    let mut classes = 1usize;
    for (h, &level) in hs.iter().zip(levels) {
        let mut ids: HashMap<u64, u32> = HashMap::with_capacity(classes.min(n));
        for (r, c) in class.iter_mut().enumerate() {
            let key = (u64::from(*c) << 32) | u64::from(h.label(level, r));
            let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
            *c = *ids.entry(key).or_insert(next);
        }
        classes = ids.len();
    }
    let mut sizes = vec![0usize; classes];
    for &c in &class {
        sizes[c as usize] += 1;
    }
    let small = class.iter().filter(|&&c| sizes[c as usize] < k).count();
    Eval {
        small,
        classes,
        class,
        sizes,
    }
}

/// Distinct values of a column (sorted, `""` first when present) and each row's index.
fn distinct(values: &[String]) -> (Vec<&str>, Vec<u32>) {
    let mut index: BTreeMap<&str, u32> = values.iter().map(|v| (v.as_str(), 0)).collect();
    for (i, v) in index.values_mut().enumerate() {
        *v = u32::try_from(i).unwrap_or(u32::MAX);
    }
    let row = values.iter().map(|v| index[v.as_str()]).collect();
    (index.into_keys().collect(), row)
}

fn infer(c: &Column) -> Kind {
    if let Some(k) = c.kind {
        return k;
    }
    let name = c.name.to_ascii_lowercase();
    if ["zip", "postcode", "postal", "plz", "post_code"]
        .iter()
        .any(|w| name.contains(w))
    {
        return Kind::Prefix;
    }
    let present: Vec<&str> = c.values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    let most = |f: &dyn Fn(&str) -> bool| present.iter().filter(|v| f(v)).count() * 2 > present.len();
    if !present.is_empty() && most(&|v| parse_date(v).is_some()) {
        Kind::Date
    } else if !present.is_empty() && most(&|v| parse_number(v).is_some()) {
        Kind::Number
    } else {
        Kind::Category
    }
}

fn build(c: &Column, k: usize) -> Result<Hierarchy, BadValue> {
    let kind = infer(c);
    let (values, row) = distinct(&c.values);
    // Rows per distinct value: the category thresholds and every level's loss use it.
    let mut count = vec![0usize; values.len()];
    row.iter().for_each(|&d| count[d as usize] += 1);
    let exact = Level {
        of: (0..values.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect(),
        labels: values.iter().map(|v| (*v).to_owned()).collect(),
        ncp: vec![0.0; values.len()],
        name: "exact".to_owned(),
    };
    let mut levels = vec![exact];
    match kind {
        Kind::Number | Kind::Date => {
            let parse = |v: &str| -> Option<f64> {
                if kind == Kind::Number {
                    parse_number(v)
                } else {
                    parse_date(v).map(|d| d as f64)
                }
            };
            let mut nums = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                let t = v.trim();
                if t.is_empty() {
                    nums.push(None);
                    continue;
                }
                match parse(t) {
                    Some(x) => nums.push(Some(x)),
                    None => {
                        let at = row.iter().position(|&d| d as usize == i).unwrap_or(0);
                        return Err(BadValue {
                            row: at,
                            column: c.name.clone(),
                            message: format!(
                                "{v:?} is not a {} (name the column `{}:category` to group it as text)",
                                if kind == Kind::Number {
                                    "number"
                                } else {
                                    "date (YYYY-MM-DD)"
                                },
                                c.name
                            ),
                        });
                    }
                }
            }
            let (lo, hi) = nums
                .iter()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let range = if hi > lo { hi - lo } else { 0.0 };
            if kind == Kind::Number {
                number_levels(&mut levels, &nums, lo, range);
            } else {
                date_levels(&mut levels, &nums, range);
            }
        }
        Kind::Prefix => prefix_levels(&mut levels, &values),
        Kind::Category => category_levels(&mut levels, &values, &count, row.len(), k),
    }
    levels.push(Level {
        of: vec![0; values.len()],
        labels: vec!["*".to_owned()],
        ncp: vec![1.0],
        name: "*".to_owned(),
    });
    let n = row.len().max(1) as f64;
    let mut loss = Vec::with_capacity(levels.len());
    for l in &levels {
        let total: f64 = count
            .iter()
            .enumerate()
            .map(|(d, &c)| c as f64 * l.ncp[l.of[d] as usize])
            .sum();
        loss.push(total / n);
    }
    Ok(Hierarchy {
        kind,
        row,
        levels,
        loss,
    })
}

/// Groups distinct values by a key; the label's NCP is the share of the column's
/// distinct present values it covers. `None` keys (missing values) keep label `""`.
fn grouped(values: &[&str], name: String, key: impl Fn(usize) -> Option<String>) -> Level {
    let present = values.iter().filter(|v| !v.trim().is_empty()).count();
    let mut labels: Vec<String> = Vec::new();
    let mut members: Vec<usize> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut of = Vec::with_capacity(values.len());
    for d in 0..values.len() {
        let label = key(d).unwrap_or_default();
        let id = *index.entry(label.clone()).or_insert_with(|| {
            labels.push(label.clone());
            members.push(0);
            u32::try_from(labels.len() - 1).unwrap_or(u32::MAX)
        });
        if !label.is_empty() {
            members[id as usize] += 1;
        }
        of.push(id);
    }
    let ncp = members
        .iter()
        .map(|&m| {
            if present > 1 && m > 1 {
                (m - 1) as f64 / (present - 1) as f64
            } else {
                0.0
            }
        })
        .collect();
    Level { of, labels, ncp, name }
}

/// Intervals with a width and a label, for numbers and dates alike.
fn interval_level(nums: &[Option<f64>], range: f64, name: String, bin: impl Fn(f64) -> (f64, String)) -> Level {
    let mut labels: Vec<String> = Vec::new();
    let mut ncp = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let of = nums
        .iter()
        .map(|x| {
            let (width, label) = match x {
                Some(x) => bin(*x),
                None => (0.0, String::new()),
            };
            *index.entry(label.clone()).or_insert_with(|| {
                labels.push(label);
                ncp.push(if range > 0.0 { (width / range).min(1.0) } else { 0.0 });
                u32::try_from(labels.len() - 1).unwrap_or(u32::MAX)
            })
        })
        .collect();
    Level { of, labels, ncp, name }
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "integral values below 1e15 and decimal counts below 400"
)]
fn number_levels(levels: &mut Vec<Level>, nums: &[Option<f64>], lo: f64, range: f64) {
    if range <= 0.0 {
        return;
    }
    let integers = nums.iter().flatten().all(|x| x.fract() == 0.0 && x.abs() < 1e15);
    // Widths 1, 2, 5 × 10^e from about a hundredth of the range (2 for integers).
    let mut width = if integers {
        2.0
    } else {
        10f64.powf((range / 100.0).log10().floor())
    };
    let decimals = |w: f64| (-w.log10().floor()).max(0.0) as usize;
    loop {
        let w = width;
        let d = decimals(w);
        let name = format!("width {}", trim_float(w, d));
        levels.push(interval_level(nums, range, name, |x| {
            let start = (x / w).floor() * w;
            if integers {
                (w, format!("{}-{}", start as i64, (start + w) as i64 - 1))
            } else {
                (w, format!("[{}, {})", trim_float(start, d), trim_float(start + w, d)))
            }
        }));
        if (lo / w).floor() == ((lo + range) / w).floor() {
            break; // one interval holds every value: the next level is `*`
        }
        let m = w / 10f64.powf(w.log10().floor());
        width = if (m - 2.0).abs() < 1e-9 { w * 2.5 } else { w * 2.0 };
    }
}

fn trim_float(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s == "-0" { "0".to_owned() } else { s }
}

#[allow(clippy::cast_possible_truncation, reason = "whole day counts from parse_date")]
fn date_levels(levels: &mut Vec<Level>, nums: &[Option<f64>], range: f64) {
    let civil = |x: f64| civil_from_days(x as i64);
    levels.push(interval_level(nums, range, "month".to_owned(), |x| {
        let (y, m, _) = civil(x);
        (30.44, format!("{y:04}-{m:02}"))
    }));
    levels.push(interval_level(nums, range, "year".to_owned(), |x| {
        (365.25, format!("{:04}", civil(x).0))
    }));
    for span in [5i64, 10, 20] {
        levels.push(interval_level(nums, range, format!("{span} years"), |x| {
            let start = civil(x).0.div_euclid(span) * span;
            (365.25 * span as f64, format!("{start:04}-{:04}", start + span - 1))
        }));
    }
}

fn prefix_levels(levels: &mut Vec<Level>, values: &[&str]) {
    let longest = values.iter().map(|v| v.trim().chars().count()).max().unwrap_or(0);
    for masked in 1..longest {
        let name = format!("last {masked} characters masked");
        levels.push(grouped(values, name, |d| {
            let v = values[d].trim();
            if v.is_empty() {
                return None;
            }
            let len = v.chars().count();
            let keep = len.saturating_sub(masked);
            Some(
                v.chars()
                    .take(keep)
                    .chain(std::iter::repeat_n('*', len - keep))
                    .collect(),
            )
        }));
    }
}

fn category_levels(levels: &mut Vec<Level>, values: &[&str], count: &[usize], rows: usize, k: usize) {
    let present: Vec<usize> = (0..values.len()).filter(|&d| !values[d].trim().is_empty()).collect();
    let mut threshold = k;
    let mut last_grouped = 0;
    loop {
        let grouped_now = present.iter().filter(|&&d| count[d] < threshold).count();
        if grouped_now >= present.len() {
            break; // everything would be `other`: that is the `*` level
        }
        if grouped_now > last_grouped {
            last_grouped = grouped_now;
            let t = threshold;
            levels.push(grouped(
                values,
                format!("values in fewer than {t} rows as other"),
                |d| {
                    let v = values[d].trim();
                    if v.is_empty() {
                        None
                    } else if count[d] < t {
                        Some("other".to_owned())
                    } else {
                        Some(v.to_owned())
                    }
                },
            ));
        }
        threshold = threshold.saturating_mul(2);
        if threshold > rows {
            break;
        }
    }
}

fn parse_number(v: &str) -> Option<f64> {
    let x: f64 = v.trim().parse().ok()?;
    x.is_finite().then_some(x)
}

/// Days since 1970-01-01 of `YYYY-MM-DD`, optionally followed by `T` or a space and a time.
fn parse_date(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || !matches!(b.get(10), None | Some(b'T' | b' ')) {
        return None;
    }
    let num = |s: &str| -> Option<i64> { s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten() };
    let (y, m, d) = (num(v.get(0..4)?)?, num(v.get(5..7)?)?, num(v.get(8..10)?)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in).contains(&d).then(|| days_from_civil(y, m, d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn col(name: &str, values: &[&str]) -> Column {
        Column {
            name: name.to_owned(),
            kind: None,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn classes(out: &Outcome, cols: &[Column]) -> HashMap<Vec<String>, usize> {
        let mut m = HashMap::new();
        for r in 0..cols[0].values.len() {
            if !out.kept[r] {
                continue;
            }
            let key = (0..cols.len())
                .map(|c| out.value(c, r).unwrap_or(&cols[c].values[r]).to_owned())
                .collect();
            *m.entry(key).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn dates_round_trip_through_days() {
        for (s, y, m, d) in [
            ("1970-01-01", 1970, 1, 1),
            ("2000-02-29", 2000, 2, 29),
            ("1899-12-31", 1899, 12, 31),
        ] {
            let days = parse_date(s).unwrap();
            assert_eq!(civil_from_days(days), (y, m, d));
        }
        assert_eq!(parse_date("2024-05-06T10:11:12Z"), parse_date("2024-05-06"));
        for bad in ["2023-02-29", "2024-13-01", "2024-1-01", "06/05/2024", "2024-05-06x"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn kinds_are_inferred_from_names_then_values() {
        assert_eq!(infer(&col("zip", &["01234", "99999"])), Kind::Prefix);
        assert_eq!(infer(&col("dob", &["1990-01-02", "", "1991-03-04"])), Kind::Date);
        assert_eq!(infer(&col("age", &["34", "35.5", "90"])), Kind::Number);
        assert_eq!(infer(&col("sex", &["F", "M"])), Kind::Category);
    }

    #[test]
    fn unique_rows_become_k_anonymous_with_values_that_contain_the_originals() {
        let mut ages = Vec::new();
        let mut zips = Vec::new();
        let mut sexes = Vec::new();
        for i in 0..300u32 {
            ages.push((20 + (i * 7) % 60).to_string());
            zips.push(format!("{:05}", 10_000 + (i * 37) % 900));
            sexes.push(if i % 3 == 0 { "F" } else { "M" }.to_owned());
        }
        let cols = vec![
            Column {
                name: "age".into(),
                kind: None,
                values: ages,
            },
            Column {
                name: "zip".into(),
                kind: None,
                values: zips,
            },
            Column {
                name: "sex".into(),
                kind: None,
                values: sexes,
            },
        ];
        let out = anonymise(&cols, 5, 15).unwrap();
        let classes = classes(&out, &cols);
        assert!(classes.values().all(|&c| c >= 5), "{classes:?}");
        assert_eq!(out.k_reached, *classes.values().min().unwrap());
        assert!(out.suppressed <= 15);
        assert!(out.loss > 0.0 && out.loss < 1.0, "{}", out.loss);
        for r in (0..300).filter(|&r| out.kept[r]) {
            let age: i64 = cols[0].values[r].parse().unwrap();
            if let Some(range) = out.value(0, r).filter(|v| *v != "*") {
                let (a, b) = range.split_once('-').unwrap();
                assert!(
                    a.parse::<i64>().unwrap() <= age && age <= b.parse::<i64>().unwrap(),
                    "{age} in {range}"
                );
            }
            if let Some(z) = out.value(1, r) {
                let kept = z.trim_end_matches('*');
                assert!(cols[1].values[r].starts_with(kept), "{z}");
            }
        }
    }

    #[test]
    fn the_exhaustive_search_loses_no_more_than_the_greedy_walk() {
        let mut ages = Vec::new();
        let mut zips = Vec::new();
        let mut sexes = Vec::new();
        let mut x = 7u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ages.push((18 + (x >> 33) % 70).to_string());
            zips.push(format!(
                "{}{:02}",
                ["101", "102", "803"][((x >> 20) % 3) as usize],
                (x >> 40) % 100
            ));
            sexes.push(["F", "M"][((x >> 50) % 2) as usize].to_owned());
        }
        let cols = [col("age", &[]), col("zip", &[]), col("sex", &[])];
        let cols: Vec<Column> = cols
            .into_iter()
            .zip([ages, zips, sexes])
            .map(|(c, values)| Column { values, ..c })
            .collect();
        let hs: Vec<Hierarchy> = cols.iter().map(|c| build(c, 10).unwrap()).collect();
        for budget in [0, 20, 100] {
            let (lo, eo) = optimal(&hs, 10, budget, 2000);
            let (lg, eg) = greedy(&hs, 10, budget, 2000);
            let kept = |e: &Eval| e.class.iter().map(|&c| e.sizes[c as usize] >= 10).collect::<Vec<_>>();
            assert!(eo.small <= budget && eg.small <= budget);
            let (a, b) = (total_loss(&hs, &lo, &kept(&eo)), total_loss(&hs, &lg, &kept(&eg)));
            assert!(a <= b + 1e-12, "budget {budget}: search {a} {lo:?}, greedy {b} {lg:?}");
        }
    }

    #[test]
    fn an_already_anonymous_table_is_left_alone_and_k_above_the_rows_is_refused() {
        let cols = vec![col("sex", &["F", "F", "M", "M"])];
        let out = anonymise(&cols, 2, 0).unwrap();
        assert_eq!(out.columns[0].level, 0);
        assert_eq!((out.suppressed, out.k_reached), (0, 2));
        assert_eq!(out.loss, 0.0);
        assert!(
            anonymise(&cols, 5, 0)
                .err()
                .unwrap()
                .message
                .contains("fewer than k = 5")
        );
    }

    #[test]
    fn suppression_is_the_last_resort_within_its_budget() {
        // One outlier among 40 identical rows: suppressing it is cheaper than
        // generalising everyone, when the budget allows one row.
        let mut ages = vec!["30"; 40];
        ages.push("97");
        let cols = vec![col("age", &ages)];
        let out = anonymise(&cols, 5, 1).unwrap();
        assert_eq!((out.suppressed, out.columns[0].level), (1, 0));
        assert!(!out.kept[40]);
        let out = anonymise(&cols, 5, 0).unwrap();
        assert_eq!(out.suppressed, 0);
        assert!(out.columns[0].level > 0);
    }

    #[test]
    fn a_value_that_is_not_a_date_names_its_row() {
        let mut c = col("visit", &["2024-01-01", "2024-02-02", "yesterday"]);
        c.kind = Some(Kind::Date);
        let e = anonymise(&[c], 1, 0).err().unwrap();
        assert_eq!((e.row, e.column.as_str()), (2, "visit"));
        assert!(e.message.contains("\"yesterday\" is not a date"), "{}", e.message);
    }

    #[test]
    fn dates_and_categories_generalise() {
        let mut dates = Vec::new();
        let mut jobs = Vec::new();
        for i in 0..100 {
            dates.push(format!("19{:02}-{:02}-{:02}", 50 + i % 40, 1 + i % 12, 1 + i % 28));
            jobs.push(if i < 90 { "nurse".to_owned() } else { format!("job{i}") });
        }
        let cols = vec![
            Column {
                name: "born".into(),
                kind: None,
                values: dates,
            },
            Column {
                name: "job".into(),
                kind: None,
                values: jobs,
            },
        ];
        let out = anonymise(&cols, 4, 0).unwrap();
        let classes = classes(&out, &cols);
        assert!(classes.values().all(|&c| c >= 4), "{classes:?}");
        assert_eq!(out.columns[0].kind, Kind::Date);
        assert_eq!(out.columns[1].kind, Kind::Category);
    }
}
