//! Figures beside their baselines, printed as a table and written as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// One measured figure and the baseline measured in the same run.
#[derive(Debug, Serialize)]
pub(crate) struct Figure {
    /// Section it belongs to.
    pub(crate) section: &'static str,
    /// What was measured.
    pub(crate) name: String,
    /// The measurement.
    pub(crate) value: f64,
    /// Its unit.
    pub(crate) unit: &'static str,
    /// What the baseline is.
    pub(crate) baseline_name: String,
    /// The baseline, same unit.
    pub(crate) baseline: f64,
    /// The ratio the target speaks about.
    pub(crate) ratio: f64,
    /// How the ratio reads (e.g. `value/baseline`).
    pub(crate) ratio_means: &'static str,
    /// The target, if any.
    pub(crate) target: Option<String>,
    /// Whether the target was met.
    pub(crate) met: Option<bool>,
}

impl Figure {
    /// A figure whose ratio is `value / baseline`.
    pub(crate) fn new(
        section: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        baseline_name: impl Into<String>,
        baseline: f64,
    ) -> Self {
        Self {
            section,
            name: name.into(),
            value,
            unit,
            baseline_name: baseline_name.into(),
            baseline,
            ratio: ratio(value, baseline),
            ratio_means: "value/baseline",
            target: None,
            met: None,
        }
    }

    /// The ratio read the other way: `baseline / value` (a speed-up).
    pub(crate) fn speedup(mut self) -> Self {
        self.ratio = ratio(self.baseline, self.value);
        self.ratio_means = "baseline/value";
        self
    }

    /// Attaches the target and whether it holds.
    pub(crate) fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = Some(target.into());
        self.met = Some(met);
        self
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// What a device load sent, got acknowledged, and found stored.
#[derive(Debug, Serialize)]
pub(crate) struct LoadCounts {
    /// Which run.
    pub(crate) run: String,
    /// Events written to the sockets.
    pub(crate) sent: u64,
    /// Events acknowledged.
    pub(crate) acked: u64,
    /// Events counted in PostgreSQL afterwards.
    pub(crate) stored: u64,
    /// Events refused (nack).
    pub(crate) nacked: u64,
    /// Refused events by `nack` code.
    pub(crate) nack_codes: std::collections::BTreeMap<String, u64>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// Smoke (tiny sizes) or full.
    pub(crate) mode: &'static str,
    /// The machine and services.
    pub(crate) machine: serde_json::Value,
    /// Every figure.
    pub(crate) figures: Vec<Figure>,
    /// Every device load's counts.
    pub(crate) loads: Vec<LoadCounts>,
    /// Remarks a reader needs (fallbacks, corrections).
    pub(crate) notes: Vec<String>,
    /// Wall time of the run.
    pub(crate) elapsed_s: f64,
}

impl Report {
    /// An empty report.
    pub(crate) fn new(smoke: bool, machine: serde_json::Value) -> Self {
        Self {
            mode: if smoke { "smoke" } else { "full" },
            machine,
            figures: Vec::new(),
            loads: Vec::new(),
            notes: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Adds a figure.
    pub(crate) fn add(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    /// Adds a remark.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The table, Markdown-compatible.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| section | figure | value | baseline | ratio | target | met |"
        );
        let _ = writeln!(out, "|---|---|---:|---|---:|---|---|");
        for f in &self.figures {
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} {} | {}: {} | {:.2} ({}) | {} | {} |",
                f.section,
                f.name,
                num(f.value),
                f.unit,
                f.baseline_name,
                num(f.baseline),
                f.ratio,
                f.ratio_means,
                f.target.as_deref().unwrap_or(""),
                met
            );
        }
        let _ = writeln!(out, "\n| load | sent | acked | stored | nacked |");
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        for l in &self.loads {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} {:?} |",
                l.run, l.sent, l.acked, l.stored, l.nacked, l.nack_codes
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "\n- {n}");
        }
        let _ = writeln!(out, "\n({} mode, {:.0} s)", self.mode, self.elapsed_s);
        out
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
