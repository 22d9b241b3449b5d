//! Statistics, budgets, and the two renderings of the results: `bench/results.json`
//! and the Markdown table in `bench/results.md` (also printed).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// Median and spread of a series.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n == 0 {
            return Summary {
                n,
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                p10: f64::NAN,
                p90: f64::NAN,
                p99: f64::NAN,
                mean: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        // Nearest rank.
        let rank = |p: f64| s[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Summary {
            n,
            median,
            min: s[0],
            max: s[n - 1],
            p10: rank(0.10),
            p90: rank(0.90),
            p99: rank(0.99),
            mean: s.iter().sum::<f64>() / n as f64,
        }
    }

    /// `12.3 ms (10.1–15.0)`: median (min–max).
    pub fn ms_range(&self) -> String {
        format!(
            "{} ({}–{})",
            fmt_ms(self.median),
            fmt_ms(self.min),
            fmt_ms(self.max)
        )
    }

    /// `12.3 ms (p10 11.0, p90 14.2)`.
    pub fn ms_p(&self) -> String {
        format!(
            "{} (p10 {}, p90 {})",
            fmt_ms(self.median),
            fmt_ms(self.p10),
            fmt_ms(self.p90)
        )
    }
}

pub fn fmt_ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// Bytes as decimal megabytes (the budgets' unit: 1 MB = 1,000,000 bytes, the
/// stricter reading of "MB").
pub fn fmt_mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

pub fn kib_to_bytes(kib: u64) -> u64 {
    kib * 1024
}

/// One budget of issue [7], checked.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// What is limited (`cold start: revoker vs baseline`).
    pub name: String,
    /// The figure, in words (`37.4× faster`).
    pub figure: String,
    /// The limit, in words (`≥ 20×`).
    pub limit: String,
    pub pass: bool,
    /// Why, when it needs saying.
    pub note: Option<String>,
}

impl Budget {
    pub fn new(name: impl Into<String>, figure: String, limit: &str, pass: bool) -> Budget {
        Budget {
            name: name.into(),
            figure,
            limit: limit.to_owned(),
            pass,
            note: None,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Budget {
        self.note = Some(note.into());
        self
    }

    pub fn verdict(&self) -> &'static str {
        if self.pass { "PASS" } else { "FAIL" }
    }
}

/// Markdown table from a header and rows.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// `iam:GetRole ×1, iam:GetRolePolicy ×2, …` for a per-call count map, keeping the
/// calls `keep` selects.
pub fn fmt_counts(counts: &BTreeMap<String, u64>, keep: impl Fn(&str) -> bool) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

pub fn sum_where(counts: &BTreeMap<String, u64>, keep: impl Fn(&str) -> bool) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(_, v)| *v)
        .sum()
}

/// A JSON value's field as text, for tables (`-` when missing).
pub fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_series() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(s.n, 10);
        assert_eq!(s.median, 5.5);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert_eq!((s.p10, s.p90), (1.0, 9.0));
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert!(Summary::of(&[]).median.is_nan());
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(1.234), "1.23 ms");
        assert_eq!(fmt_ms(12.34), "12.3 ms");
        assert_eq!(fmt_ms(1234.0), "1234 ms");
        assert_eq!(fmt_ms(12_345.0), "12.3 s");
        assert_eq!(fmt_mb(16_000_000), "16.00 MB");
        let counts = BTreeMap::from([
            ("iam:GetRole".to_owned(), 1),
            ("dynamodb:PutItem".to_owned(), 2),
        ]);
        assert_eq!(
            fmt_counts(&counts, |k| k.starts_with("iam:")),
            "iam:GetRole ×1"
        );
        assert_eq!(sum_where(&counts, |_| true), 3);
    }
}
