//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Scheduler {
    None,
    Plateau(ReduceLrOnPlateau),
}

impl Scheduler {
    pub fn needs_every_loss(&self) -> bool {
        matches!(self, Scheduler::Plateau(_))
    }

    /// Feeds one iteration's loss; returns the new learning rate when it
    /// changes.
    pub fn step(&mut self, loss: f64, lr: f64) -> Option<f64> {
        match self {
            Scheduler::None => None,
            Scheduler::Plateau(p) => p.step(loss, lr),
        }
    }
}

/// PyTorch's ReduceLROnPlateau in mode "min" with a relative threshold: a loss
/// counts as an improvement when it is below best * (1 - threshold); after
/// more than `patience` iterations without one, the rate is multiplied by
/// `factor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub factor: f64,
    pub patience: usize,
    pub threshold: f64,
    #[serde(skip, default = "infinity")]
    best: f64,
    #[serde(skip)]
    bad_iterations: usize,
}

fn infinity() -> f64 {
    f64::INFINITY
}

impl ReduceLrOnPlateau {
    pub fn new(factor: f64, patience: usize, threshold: f64) -> Self {
        ReduceLrOnPlateau {
            factor,
            patience,
            threshold,
            best: f64::INFINITY,
            bad_iterations: 0,
        }
    }

    /// The paper's setting: factor 0.5, patience 200, threshold 1e-4.
    pub fn paper() -> Self {
        Self::new(0.5, 200, 1e-4)
    }

    pub fn step(&mut self, loss: f64, lr: f64) -> Option<f64> {
        if loss < self.best * (1.0 - self.threshold) {
            self.best = loss;
            self.bad_iterations = 0;
            return None;
        }
        self.bad_iterations += 1;
        if self.bad_iterations > self.patience {
            self.bad_iterations = 0;
            let new_lr = lr * self.factor;
            // PyTorch ignores changes smaller than eps = 1e-8.
            if lr - new_lr > 1e-8 {
                return Some(new_lr);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_reduces_after_patience_and_resets() {
        let mut s = ReduceLrOnPlateau::new(0.5, 2, 0.1);
        let mut lr = 1.0;
        let mut lrs = Vec::new();
        // 1.0 improves on inf; 0.95 is not 10% better; neither is 0.92; 0.91
        // is the third bad one in a row (> patience 2) -> halve. Then 0.5 is
        // better than 1.0 * 0.9, and the count starts again.
        for loss in [1.0, 0.95, 0.92, 0.91, 0.5, 0.49, 0.48, 0.47] {
            if let Some(n) = s.step(loss, lr) {
                lr = n;
            }
            lrs.push(lr);
        }
        assert_eq!(lrs, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn steadily_improving_loss_never_reduces() {
        let mut s = ReduceLrOnPlateau::paper();
        let mut loss = 1.0;
        for _ in 0..10_000 {
            loss *= 0.999;
            assert_eq!(s.step(loss, 1e-3), None);
        }
    }
}
