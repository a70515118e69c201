//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Scheduler {
    None,
    Plateau(ReduceLrOnPlateau),
    Cosine(CosineDecay),
}

impl std::str::FromStr for Scheduler {
    type Err = String;

    /// The names the CLI, the C API and the bindings accept.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "none" => Ok(Scheduler::None),
            "plateau" => Ok(Scheduler::Plateau(ReduceLrOnPlateau::paper())),
            "cosine" => Ok(Scheduler::Cosine(CosineDecay::default())),
            other => Err(format!(
                "unknown schedule {other:?} (expected none, plateau or cosine)"
            )),
        }
    }
}

impl Scheduler {
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Scheduler::Cosine(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// The rate a fixed schedule sets for `iteration` (0-based) of
    /// `iterations`, from the configured rate `base`; `None` for schedules
    /// that follow the loss instead.
    pub fn planned(&self, iteration: usize, iterations: usize, base: f64) -> Option<f64> {
        match self {
            Scheduler::Cosine(c) => Some(base * c.factor(iteration, iterations)),
            _ => None,
        }
    }

    pub fn needs_every_loss(&self) -> bool {
        matches!(self, Scheduler::Plateau(_))
    }

    /// Feeds one iteration's loss; returns the new learning rate when it
    /// changes.
    pub fn step(&mut self, loss: f64, lr: f64) -> Option<f64> {
        match self {
            Scheduler::None => None,
            Scheduler::Plateau(p) => p.step(loss, lr),
            Scheduler::Cosine(_) => None,
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

/// The rate held until a share `start` of the iterations is done, then
/// lowered along half a cosine to `floor` times itself at the last
/// iteration. Adam at a constant rate keeps moving the weights by about the
/// rate at every step; the fine detail of a shape is smaller than that
/// noise, so the last part of training settles at a lower rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosineDecay {
    pub start: f64,
    pub floor: f64,
}

impl Default for CosineDecay {
    fn default() -> Self {
        CosineDecay {
            start: 0.5,
            floor: 0.01,
        }
    }
}

impl CosineDecay {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.start) {
            return Err(format!(
                "cosine schedule: start is the share of iterations before the decay, in [0, 1); got {}",
                self.start
            ));
        }
        if !(self.floor > 0.0 && self.floor <= 1.0) {
            return Err(format!(
                "cosine schedule: floor is the last rate over the first, in (0, 1]; got {}",
                self.floor
            ));
        }
        Ok(())
    }

    /// The rate at `iteration` over the configured rate.
    pub fn factor(&self, iteration: usize, iterations: usize) -> f64 {
        let first = (self.start * iterations as f64).floor();
        let span = (iterations as f64 - 1.0 - first).max(1.0);
        let t = ((iteration as f64 - first) / span).clamp(0.0, 1.0);
        self.floor + (1.0 - self.floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
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
    fn cosine_holds_then_falls_to_its_floor() {
        let c = CosineDecay {
            start: 0.5,
            floor: 0.01,
        };
        let f = |i| c.factor(i, 1000);
        assert_eq!(f(0), 1.0);
        assert_eq!(f(500), 1.0);
        assert!((f(999) - 0.01).abs() < 1e-12, "{}", f(999));
        // Halfway through the decay, halfway between the rate and the floor.
        assert!((f(750) - 0.505).abs() < 2e-3, "{}", f(750));
        assert!((501..1000).all(|i| f(i) < f(i - 1)));
        let s: Scheduler = "cosine".parse().unwrap();
        assert_eq!(s.planned(999, 1000, 1e-3), Some(1e-3 * c.factor(999, 1000)));
        assert_eq!(Scheduler::None.planned(999, 1000, 1e-3), None);
        assert!("cosin".parse::<Scheduler>().unwrap_err().contains("cosine"));
        for (start, floor) in [
            (1.0, 0.1),
            (-0.1, 0.1),
            (0.5, 0.0),
            (0.5, 1.5),
            (f64::NAN, 0.1),
        ] {
            assert!(Scheduler::Cosine(CosineDecay { start, floor })
                .validate()
                .is_err());
        }
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
