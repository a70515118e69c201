//! Progress on stderr through indicatif: training (iterations per second
//! and ETA), extraction, and a batch's total with one bar per shape that is
//! training. indicatif draws nothing when stderr is not a terminal, so the
//! logs of scripts keep only the lines printed through [`Bars::line`].

use std::time::Duration;

use hisdf::train::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Fraction steps of an extraction's bar.
const EXTRACT_STEPS: u64 = 1000;

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates below are valid")
        .progress_chars("=> ")
}

/// A training bar: iterations, their rate, the loss and the ETA.
pub fn training(label: &str, iterations: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(iterations as u64), ProgressDrawTarget::stderr());
    bar.set_style(style(
        "{prefix:>8} [{bar:24}] {pos}/{len} {per_sec} eta {eta} {msg}",
    ));
    bar.set_prefix(label.to_string());
    // Redrawn on a timer as well, so the ETA moves between reports.
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Moves a training bar to a progress report.
/// The report before training (iteration 0) starts the bar's clock, so
/// that sampling does not count in the rate; the last one stops it.
pub fn show_training(bar: &ProgressBar, p: &Progress) {
    if bar.length() != Some(p.iterations as u64) {
        bar.set_length(p.iterations as u64);
    }
    if p.iteration == 0 {
        bar.reset();
        return;
    }
    bar.set_position(p.iteration as u64);
    bar.set_message(format!("loss {:.2e}", p.loss));
    if p.iteration >= p.iterations {
        bar.finish();
    }
}

/// An extraction bar over the fraction of the grid done.
pub fn extraction() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(EXTRACT_STEPS), ProgressDrawTarget::stderr());
    bar.set_style(style("{prefix:>8} [{bar:24}] {percent:>3}% eta {eta}"));
    bar.set_prefix("extract");
    bar
}

pub fn show_fraction(bar: &ProgressBar, fraction: f64) {
    bar.set_position((fraction.clamp(0.0, 1.0) * EXTRACT_STEPS as f64) as u64);
}

/// A batch's bars: the total over its shapes, and one training bar per
/// shape in training, removed when it ends.
#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
}

impl Bars {
    pub fn new(shapes: usize, label: &str) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(shapes as u64));
        total.set_style(style(
            "{prefix:>8} [{bar:24}] {pos}/{len} shapes, eta {eta} {msg}",
        ));
        total.set_prefix(format!("batch{label}"));
        total.enable_steady_tick(Duration::from_millis(250));
        Bars { multi, total }
    }

    /// A line for the log, printed above the bars (or alone without them).
    pub fn line(&self, text: &str) {
        self.multi.suspend(|| eprintln!("{text}"));
    }

    /// Shapes finished so far (those of an earlier run included), and how
    /// many of them failed.
    pub fn finished(&self, done: usize, failed: usize) {
        self.total.set_position(done as u64);
        self.total.set_message(format!("{failed} failed"));
    }

    /// Shapes finished by an earlier run: the bar starts after them, so
    /// that rate and ETA count only shapes worked on.
    pub fn resumed(&self, skipped: usize) {
        self.total.set_position(skipped as u64);
        self.total.reset_eta();
    }

    pub fn shape(&self, name: &str, iterations: usize) -> ProgressBar {
        let bar = self
            .multi
            .insert_before(&self.total, training(name, iterations));
        bar.set_prefix(name.to_string());
        bar
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}
