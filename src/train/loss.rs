//! The paper's losses: clamped L1 (Eq. 3) and the curriculum loss (Eq. 4).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// One row of the curriculum schedule (paper Table 2): from iteration `start`
/// on, the smoothness epsilon and the sign-error weight lambda in force.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurriculumStage {
    pub start: usize,
    pub epsilon: f64,
    pub lambda: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Loss {
    /// |clamp(s) - clamp(f)|; `clamp: None` is the unclamped L1 loss.
    ClampedL1 { clamp: Option<f64> },
    /// (1 + lambda sign(s) sign(s - f)) max(|s - f| - epsilon, 0) on clamped
    /// values, with epsilon and lambda following `stages`.
    Curriculum {
        clamp: Option<f64>,
        stages: Vec<CurriculumStage>,
    },
}

impl Loss {
    /// The paper's curriculum (Table 2) with clamp delta 0.1.
    pub fn paper_curriculum() -> Loss {
        let stage = |start, epsilon, lambda| CurriculumStage {
            start,
            epsilon,
            lambda,
        };
        Loss::Curriculum {
            clamp: Some(0.1),
            stages: vec![
                stage(0, 0.025, 0.0),
                stage(200, 0.01, 0.1),
                stage(600, 0.0025, 0.2),
                stage(1000, 0.0, 0.5),
                stage(5000, 0.0, 0.8),
            ],
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let clamp = match self {
            Loss::ClampedL1 { clamp } => clamp,
            Loss::Curriculum { clamp, stages } => {
                if stages.is_empty() || stages[0].start != 0 {
                    return Err("the curriculum must have a stage starting at iteration 0".into());
                }
                if stages.windows(2).any(|w| w[1].start <= w[0].start) {
                    return Err("curriculum stages must start at increasing iterations".into());
                }
                for s in stages {
                    if !(s.epsilon >= 0.0 && s.epsilon.is_finite()) {
                        return Err(format!(
                            "curriculum epsilon must be >= 0, got {}",
                            s.epsilon
                        ));
                    }
                    if !(0.0..1.0).contains(&s.lambda) {
                        return Err(format!(
                            "curriculum lambda must be in [0, 1), got {}",
                            s.lambda
                        ));
                    }
                }
                clamp
            }
        };
        match clamp {
            Some(d) if d.is_nan() || *d <= 0.0 => {
                Err(format!("clamp delta must be positive, got {d}"))
            }
            _ => Ok(()),
        }
    }

    /// The curriculum stage in force at `iteration` (None for L1).
    pub fn stage_at(&self, iteration: usize) -> Option<CurriculumStage> {
        match self {
            Loss::ClampedL1 { .. } => None,
            Loss::Curriculum { stages, .. } => {
                stages.iter().rev().find(|s| s.start <= iteration).copied()
            }
        }
    }

    /// Device-side curriculum parameters, so that a captured CUDA graph of
    /// the training step follows the schedule without being re-captured.
    pub fn state(&self, device: Device) -> LossState {
        self.state_with(device, PredictionClamp::Both)
    }

    /// As [`Loss::state`], choosing how the prediction is clamped.
    pub fn state_with(&self, device: Device, prediction_clamp: PredictionClamp) -> LossState {
        let scalar = |v: f64| Tensor::from(v as f32).to_device(device);
        LossState {
            epsilon: scalar(0.0),
            lambda: scalar(0.0),
            stage: None,
            prediction_clamp,
        }
    }

    /// Moves `state` to the stage in force at `iteration` (no work unless
    /// the stage changes).
    pub fn advance(&self, state: &mut LossState, iteration: usize) {
        if let Some(stage) = self.stage_at(iteration) {
            if state.stage != Some(stage.start) {
                let _guard = tch::no_grad_guard();
                let _ = state.epsilon.fill_(stage.epsilon);
                let _ = state.lambda.fill_(stage.lambda);
                state.stage = Some(stage.start);
            }
        }
    }

    /// Mean loss over the batch: `f` predictions, `s` true SDF values, with
    /// the curriculum parameters held in `state`.
    pub fn evaluate_with(&self, f: &Tensor, s: &Tensor, state: &LossState) -> Tensor {
        self.pointwise(f, s, state).mean(Kind::Float)
    }

    /// The mean loss of every row of [K, B] predictions and targets: K
    /// networks trained in one step, each on its own batch, as [K].
    pub fn evaluate_rows_with(&self, f: &Tensor, s: &Tensor, state: &LossState) -> Tensor {
        self.pointwise(f, s, state)
            .mean_dim([-1i64].as_slice(), false, Kind::Float)
    }

    /// Every sample's loss and the gradient of its row's mean with respect
    /// to f, for [K, B] predictions and targets on CUDA, in one kernel of
    /// hisdf's own (the same arithmetic as [`Loss::evaluate_rows_with`] and
    /// its backward pass). Returns (the rows' mean losses [K], df).
    pub fn rows_and_gradient_fused(
        &self,
        f: &Tensor,
        s: &Tensor,
        state: &LossState,
    ) -> Result<(Tensor, Tensor), String> {
        let clamp = match self {
            Loss::ClampedL1 { clamp } | Loss::Curriculum { clamp, .. } => *clamp,
        };
        // Clamped L1 is the curriculum at epsilon = lambda = 0, which its
        // state holds.
        let (loss, df) = super::native::loss_and_gradient(
            f,
            s,
            clamp,
            state.prediction_clamp == PredictionClamp::TargetSide,
            &state.epsilon,
            &state.lambda,
        )?;
        Ok((loss.mean_dim([-1i64].as_slice(), false, Kind::Float), df))
    }

    /// The loss of every sample, before the mean.
    fn pointwise(&self, f: &Tensor, s: &Tensor, state: &LossState) -> Tensor {
        match self {
            Loss::ClampedL1 { clamp } => {
                let (f, s) = clamp_pair(f, s, *clamp, state.prediction_clamp);
                (s - f).abs()
            }
            Loss::Curriculum { clamp, .. } => {
                let (f, s) = clamp_pair(f, s, *clamp, state.prediction_clamp);
                let diff = &s - &f;
                let l_eps = (diff.abs() - &state.epsilon).clamp_min(0.0);
                let k = s.sign() * diff.sign() * &state.lambda + 1.0;
                k * l_eps
            }
        }
    }

    /// As [`Loss::evaluate_with`] at a given iteration.
    pub fn evaluate(&self, f: &Tensor, s: &Tensor, iteration: usize) -> Tensor {
        let mut state = self.state(f.device());
        self.advance(&mut state, iteration);
        self.evaluate_with(f, s, &state)
    }
}

/// The curriculum's epsilon and lambda as device scalars.
pub struct LossState {
    epsilon: Tensor,
    lambda: Tensor,
    stage: Option<usize>,
    prediction_clamp: PredictionClamp,
}

/// How the clamp delta applies to the network's prediction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PredictionClamp {
    /// clamp(f) always, as the paper (Eq. 3) and DeepSDF do. A prediction
    /// beyond +-delta then gets no gradient even when its target is inside
    /// the band or on the other side, which can lock a network into a
    /// constant "outside everywhere".
    #[default]
    Both,
    /// Clamp f only where the target is clamped, and only on the target's
    /// side: beyond the band on the right side costs nothing (the clamp's
    /// purpose), every other error keeps its gradient.
    TargetSide,
}

/// The clamped (prediction, target) pair under a prediction clamp mode.
fn clamp_pair(
    f: &Tensor,
    s: &Tensor,
    delta: Option<f64>,
    mode: PredictionClamp,
) -> (Tensor, Tensor) {
    let Some(d) = delta else {
        return (f.shallow_clone(), s.shallow_clone());
    };
    let s_bar = s.clamp(-d, d);
    let f_bar = match mode {
        PredictionClamp::Both => f.clamp(-d, d),
        PredictionClamp::TargetSide => {
            let above = s.ge(d);
            let below = s.le(-d);
            let f_hi = f.clamp_max(d);
            let f_lo = f.clamp_min(-d);
            f_hi.where_self(&above, &f_lo.where_self(&below, f))
        }
    };
    (f_bar, s_bar)
}

/// clamp_delta(x) = min(delta, max(-delta, x)); `None` leaves x unclamped.
pub fn clamp_delta(x: &Tensor, delta: Option<f64>) -> Tensor {
    match delta {
        Some(d) => x.clamp(-d, d),
        None => x.shallow_clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss kernel gives autograd's values and gradients for both
    /// losses, with and without the clamp, in both prediction clamp modes,
    /// on predictions and targets that cross every kink (skipped without a
    /// GPU).
    #[test]
    fn fused_loss_matches_autograd() {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        let cuda = Device::Cuda(0);
        tch::manual_seed(3);
        let f = Tensor::randn([3, 1001], (Kind::Float, cuda)) * 0.15;
        let s = Tensor::randn([3, 1001], (Kind::Float, cuda)) * 0.15;
        for loss in [
            Loss::ClampedL1 { clamp: Some(0.1) },
            Loss::ClampedL1 { clamp: None },
            Loss::paper_curriculum(),
        ] {
            for mode in [PredictionClamp::Both, PredictionClamp::TargetSide] {
                for iteration in [0, 700, 6000] {
                    let mut state = loss.state_with(cuda, mode);
                    loss.advance(&mut state, iteration);
                    let leaf = f.detach().set_requires_grad(true);
                    let rows = loss.evaluate_rows_with(&leaf, &s, &state);
                    rows.sum(Kind::Float).backward();
                    let (ours, df) = loss.rows_and_gradient_fused(&f, &s, &state).unwrap();
                    let max = |t: Tensor| t.abs().max().double_value(&[]);
                    let err_rows = max(&ours - rows.detach());
                    let err_df = max(&df - leaf.grad());
                    assert!(
                        err_rows < 1e-6 && err_df < 1e-7,
                        "{loss:?} {mode:?} at {iteration}: rows {err_rows}, df {err_df}"
                    );
                    assert!(max(df) > 0.0, "no gradient");
                }
            }
        }
    }

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    fn value(l: &Loss, f: &[f32], s: &[f32], it: usize) -> f64 {
        l.evaluate(&t(f), &t(s), it).double_value(&[])
    }

    #[test]
    fn clamped_l1_by_hand() {
        let l = Loss::ClampedL1 { clamp: Some(0.1) };
        // |0.1 - 0.05| = 0.05 (target clamped from 0.3); |-0.1 - 0.1| = 0.2
        // (prediction clamped from -0.5, target 0.1); |0 - 0| = 0.
        let v = value(&l, &[0.05, -0.5, 0.0], &[0.3, 0.1, 0.0], 0);
        assert!((v - 0.25 / 3.0).abs() < 1e-7, "{v}");
        let unclamped = Loss::ClampedL1 { clamp: None };
        let v = value(&unclamped, &[0.05, -0.5], &[0.3, 0.1], 0);
        assert!((v - (0.25 + 0.6) / 2.0).abs() < 1e-7, "{v}");
    }

    #[test]
    fn curriculum_by_hand() {
        let l = Loss::paper_curriculum();
        // Iteration 700: epsilon 0.0025, lambda 0.2.
        // Sample 1: s=0.05, f=0.01: diff 0.04 > 0, sign(s)=+1 -> k = 1.2,
        //   L = 0.04 - 0.0025 = 0.0375 -> 0.045.
        // Sample 2: s=0.05, f=0.08: diff -0.03, k = 0.8, L = 0.0275 -> 0.022.
        // Sample 3: s=-0.02, f=0.01: diff -0.03, sign(s)=-1 -> k = 1.2,
        //   L = 0.0275 -> 0.033.
        // Sample 4: s=0.001, f=0.0: |diff| < epsilon -> 0.
        let v = value(
            &l,
            &[0.01, 0.08, 0.01, 0.0],
            &[0.05, 0.05, -0.02, 0.001],
            700,
        );
        let expected = (0.045 + 0.022 + 0.033) / 4.0;
        assert!((v - expected).abs() < 1e-7, "{v} vs {expected}");
    }

    #[test]
    fn curriculum_schedule_follows_table_2() {
        let l = Loss::paper_curriculum();
        let at = |i| {
            let s = l.stage_at(i).unwrap();
            (s.epsilon, s.lambda)
        };
        assert_eq!(at(0), (0.025, 0.0));
        assert_eq!(at(199), (0.025, 0.0));
        assert_eq!(at(200), (0.01, 0.1));
        assert_eq!(at(999), (0.0025, 0.2));
        assert_eq!(at(1000), (0.0, 0.5));
        assert_eq!(at(14_999), (0.0, 0.8));
        // The schedule changes the loss value itself, not just a label: the
        // same residual costs less under stage 0's epsilon than under stage 4.
        let early = value(&l, &[0.0], &[0.05], 0);
        let late = value(&l, &[0.0], &[0.05], 6000);
        assert!(
            (early - 0.025).abs() < 1e-7 && (late - 0.09).abs() < 1e-7,
            "{early} {late}"
        );
    }

    #[test]
    fn target_side_clamp_keeps_gradients_of_real_errors() {
        let l = Loss::ClampedL1 { clamp: Some(0.1) };
        let grad_of = |mode, f0: f32, s0: f32| {
            let f = Tensor::from_slice(&[f0]).set_requires_grad(true);
            let s = Tensor::from_slice(&[s0]);
            let state = l.state_with(tch::Device::Cpu, mode);
            let loss = l.evaluate_with(&f, &s, &state);
            loss.backward();
            (loss.double_value(&[]), f.grad().double_value(&[0]))
        };
        // Target inside the band, prediction far beyond it: the paper's
        // clamp hides the error (no gradient); target-side keeps it.
        let (v, g) = grad_of(PredictionClamp::Both, 0.5, 0.05);
        assert!((v - 0.05).abs() < 1e-7 && g == 0.0, "{v} {g}");
        let (v, g) = grad_of(PredictionClamp::TargetSide, 0.5, 0.05);
        assert!((v - 0.45).abs() < 1e-6 && g > 0.0, "{v} {g}");
        // Target beyond the band and prediction beyond it on the same side:
        // nothing to learn in either mode.
        for mode in [PredictionClamp::Both, PredictionClamp::TargetSide] {
            let (v, g) = grad_of(mode, 0.7, 0.3);
            assert!(v.abs() < 1e-7 && g == 0.0, "{mode:?} {v} {g}");
        }
        // Target far outside, prediction far inside: the paper's clamp
        // still sees 0.2 but no gradient; target-side sees the whole error.
        let (_, g) = grad_of(PredictionClamp::Both, -0.5, 0.3);
        assert_eq!(g, 0.0);
        let (v, g) = grad_of(PredictionClamp::TargetSide, -0.5, 0.3);
        assert!((v - 0.6).abs() < 1e-6 && g < 0.0, "{v} {g}");
    }

    /// Rows are separate batches: each row's value is that row's mean, as
    /// if it were evaluated alone.
    #[test]
    fn row_losses_are_the_losses_of_each_row() {
        let l = Loss::paper_curriculum();
        let mut state = l.state(tch::Device::Cpu);
        l.advance(&mut state, 700);
        let f = [0.01f32, 0.08, 0.01, 0.0, -0.3, 0.2];
        let s = [0.05f32, 0.05, -0.02, 0.001, 0.1, 0.15];
        let rows = l.evaluate_rows_with(&t(&f).view([2, 3]), &t(&s).view([2, 3]), &state);
        assert_eq!(rows.size(), [2]);
        for r in 0..2 {
            let alone = l
                .evaluate_with(&t(&f[3 * r..3 * r + 3]), &t(&s[3 * r..3 * r + 3]), &state)
                .double_value(&[]);
            let row = rows.double_value(&[r as i64]);
            assert!((alone - row).abs() < 1e-7, "row {r}: {row} vs {alone}");
        }
        assert!(rows.double_value(&[0]) != rows.double_value(&[1]));
    }

    #[test]
    fn invalid_losses_are_refused() {
        assert!(Loss::ClampedL1 { clamp: Some(0.0) }.validate().is_err());
        assert!(Loss::Curriculum {
            clamp: None,
            stages: vec![]
        }
        .validate()
        .is_err());
        let mut bad = Loss::paper_curriculum();
        if let Loss::Curriculum { stages, .. } = &mut bad {
            stages[2].lambda = 1.5;
        }
        assert!(bad.validate().is_err());
    }
}
