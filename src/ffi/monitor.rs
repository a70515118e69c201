//! A training's live state for hosts that show more than a fraction:
//! iteration, loss, learning rate, elapsed time and an estimate of the time
//! left. The progress callback keeps its signature (the ABI stays put); the
//! state is published to a monitor handle instead, which any thread reads.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::handles::{HisdfConfig, HisdfTrainMonitor};
use super::{boundary, out_arg, HisdfError, HisdfStatus};
use crate::train::Progress;

/// A snapshot of a training, written by `hisdf_train_monitor_read`.
/// A plain struct whose layout is fixed: fields are never removed or
/// reordered, and new information comes through new functions, never by
/// growing this struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HisdfTrainState {
    /// True from the start of a `hisdf_train` or `hisdf_train_samples` call
    /// (sampling included) until it returns, whatever the outcome.
    pub running: bool,
    /// Iterations completed at the last report (reports come every
    /// `progress_every` iterations and at the end).
    pub iteration: usize,
    /// Iterations the training was asked for; 0 before any training.
    pub iterations: usize,
    /// Mean loss over the iterations since the previous report; NaN before
    /// the first report.
    pub loss: f64,
    /// Learning rate at the last report; NaN before the first report.
    pub learning_rate: f64,
    /// Seconds of training (sampling excluded) at the last report.
    pub elapsed_seconds: f64,
    /// Estimated seconds left, from the mean time per iteration so far; NaN
    /// before the first report, 0 once all iterations are done.
    pub eta_seconds: f64,
    /// Trainings started with this monitor so far: a host sees that a new
    /// training began even when two report the same iteration.
    pub trainings: u64,
}

impl HisdfTrainState {
    fn idle() -> Self {
        HisdfTrainState {
            running: false,
            iteration: 0,
            iterations: 0,
            loss: f64::NAN,
            learning_rate: f64::NAN,
            elapsed_seconds: 0.0,
            eta_seconds: f64::NAN,
            trainings: 0,
        }
    }
}

/// The state behind a monitor handle and in every config it is attached to.
#[derive(Debug)]
pub struct TrainMonitor {
    state: Mutex<HisdfTrainState>,
}

impl TrainMonitor {
    fn new() -> Self {
        TrainMonitor {
            state: Mutex::new(HisdfTrainState::idle()),
        }
    }

    /// A panic elsewhere while the lock was held cannot leave a half-written
    /// snapshot (every write is one assignment), so poisoning is ignored
    /// rather than turned into a panic at the boundary.
    fn lock(&self) -> MutexGuard<'_, HisdfTrainState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn read(&self) -> HisdfTrainState {
        *self.lock()
    }

    pub(super) fn update(&self, p: &Progress) {
        let eta = p.eta_seconds();
        let mut s = self.lock();
        *s = HisdfTrainState {
            running: true,
            iteration: p.iteration,
            iterations: p.iterations,
            loss: p.loss,
            learning_rate: p.learning_rate,
            elapsed_seconds: p.elapsed_seconds,
            eta_seconds: eta,
            trainings: s.trainings,
        };
    }
}

/// Marks a monitor as running for as long as it lives, so that every way
/// out of a training call (success, error, cancel, caught panic) clears the
/// flag.
pub(super) struct Running<'a>(Option<&'a TrainMonitor>);

impl<'a> Running<'a> {
    pub(super) fn start(monitor: Option<&'a TrainMonitor>, iterations: usize) -> Self {
        if let Some(m) = monitor {
            let mut s = m.lock();
            *s = HisdfTrainState {
                running: true,
                iterations,
                trainings: s.trainings.wrapping_add(1),
                ..HisdfTrainState::idle()
            };
        }
        Running(monitor)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            m.lock().running = false;
        }
    }
}

/// A new monitor, not attached to any config; `hisdf_train_monitor_read`
/// gives `running` false, iteration 0 and NaN loss until a training reports.
#[no_mangle]
pub extern "C" fn hisdf_train_monitor_new(
    out: *mut *mut HisdfTrainMonitor,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        out_arg(out, "out")?;
        unsafe { *out = HisdfTrainMonitor::new(Arc::new(TrainMonitor::new())) };
        Ok(())
    })
}

/// Copies the monitor's latest state into `*out`. Safe from any thread at
/// any time, also while a training on another thread updates it: a read
/// takes a short lock and always sees one whole report, never a mix of two.
/// Cheap enough for a UI timer.
#[no_mangle]
pub extern "C" fn hisdf_train_monitor_read(
    monitor: *const HisdfTrainMonitor,
    out: *mut HisdfTrainState,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfTrainMonitor::get(monitor)?;
        out_arg(out, "out")?;
        unsafe { *out = m.read() };
        Ok(())
    })
}

/// Frees a monitor handle; NULL is ignored. Configs it is attached to keep
/// their share of it, so a training in progress is not disturbed; only
/// `hisdf_train_monitor_read` on this handle must not race with the free.
#[no_mangle]
pub extern "C" fn hisdf_train_monitor_free(monitor: *mut HisdfTrainMonitor) {
    super::release(|| HisdfTrainMonitor::free(monitor));
}

/// Attaches `monitor` to `config` (NULL detaches): every later
/// `hisdf_train` or `hisdf_train_samples` with this config publishes its
/// state to it at each progress report (every `progress_every` iterations
/// and at the end), with or without a progress callback. Trainings that run
/// at the same time with configs sharing one monitor overwrite each other's
/// state: give each concurrent training its own monitor. Like
/// `hisdf_config_set`, this must not race with other uses of the config.
#[no_mangle]
pub extern "C" fn hisdf_config_set_monitor(
    config: *mut HisdfConfig,
    monitor: *const HisdfTrainMonitor,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let settings = HisdfConfig::get_mut(config)?;
        settings.monitor = if monitor.is_null() {
            None
        } else {
            Some(Arc::clone(HisdfTrainMonitor::get(monitor)?))
        };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_mean_time_per_iteration_and_running_clears_on_drop() {
        let m = TrainMonitor::new();
        {
            let _run = Running::start(Some(&m), 100);
            let s = m.read();
            assert!(s.running && s.loss.is_nan() && s.eta_seconds.is_nan());
            assert_eq!((s.iterations, s.trainings), (100, 1));
            m.update(&Progress {
                iteration: 25,
                iterations: 100,
                loss: 0.5,
                learning_rate: 1e-3,
                elapsed_seconds: 2.0,
            });
            let s = m.read();
            assert_eq!((s.iteration, s.loss, s.eta_seconds), (25, 0.5, 6.0));
            assert_eq!(s.trainings, 1, "an update keeps the training count");
        }
        let s = m.read();
        assert!(!s.running);
        assert_eq!(s.iteration, 25, "the last report stays readable");
    }
}
