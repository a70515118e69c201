//! The one-mesh job: prepare the mesh, sample its SDF, train, check that
//! training converged. The C API (`hisdf_train`), the command line (`run`,
//! `train`, `batch`) and, through the C API, every binding call this one
//! function; they only translate its observer and its errors.

use std::time::Instant;

use crate::mesh::Normalisation;
use crate::mesh::{MeshError, TriangleMesh};
use crate::model::TrainedModel;
use crate::sampling::Samples;
use crate::sdf::MeshSdf;
use crate::train::{train, Progress, TrainError};

use super::convergence::check_convergence_with_sdf;
use super::{prepare_mesh, ConvergenceConfig, ConvergenceReport, PreparedMesh, Recipe};

/// The job's stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Prepare,
    Sample,
    Train,
    Check,
}

/// What a front end hears while a job runs. Both methods have defaults, so
/// an observer implements only what it shows.
pub trait Observer {
    /// A stage begins.
    fn stage(&mut self, _stage: Stage) {}
    /// Training progress; `false` cancels. Also asked once before training
    /// starts (iteration 0), so a cancel that arrived while sampling is
    /// honoured before any training.
    fn progress(&mut self, _progress: &Progress) -> bool {
        true
    }
}

/// An observer that hears nothing and never cancels.
pub struct Silent;

impl Observer for Silent {}

/// What to do with the convergence check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvergencePolicy {
    /// No check.
    Skip,
    /// A model that did not converge is an error
    /// ([`JobError::NotConverged`]).
    Require,
    /// Check and report; the caller keeps the model either way.
    Report,
}

/// Seconds spent in each stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageSeconds {
    pub prepare: f64,
    pub sample: f64,
    pub train: f64,
    pub check: f64,
}

/// A finished job.
pub struct TrainedMesh {
    pub model: TrainedModel,
    pub prepared: PreparedMesh,
    /// The (iteration, mean loss) pairs of every progress report.
    pub losses: Vec<(usize, f64)>,
    /// `None` when the policy was [`ConvergencePolicy::Skip`].
    pub check: Option<ConvergenceReport>,
    pub seconds: StageSeconds,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("training cancelled")]
    Cancelled,
    /// The check failed under [`ConvergencePolicy::Require`].
    #[error("training did not converge: {}", .0.failures())]
    NotConverged(Box<ConvergenceReport>),
}

/// Prepares `mesh`, samples its SDF as `recipe` says, trains and checks. The
/// mesh's exact SDF is built once, for sampling and for the check.
pub fn train_mesh(
    mesh: TriangleMesh,
    recipe: &Recipe,
    policy: ConvergencePolicy,
    observer: &mut dyn Observer,
) -> Result<TrainedMesh, JobError> {
    recipe
        .validate()
        .map_err(|e| JobError::Train(TrainError::InvalidConfig(e)))?;
    let mut seconds = StageSeconds::default();

    observer.stage(Stage::Prepare);
    let t = Instant::now();
    let prepared = prepare_mesh(mesh)?;
    seconds.prepare = t.elapsed().as_secs_f64();

    observer.stage(Stage::Sample);
    let t = Instant::now();
    let sdf = MeshSdf::new(&prepared.normalised);
    let samples = recipe.samples_with_sdf(&prepared, &sdf);
    seconds.sample = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (model, losses) = train_observed(&samples, prepared.normalisation, recipe, observer)?;
    seconds.train = t.elapsed().as_secs_f64();

    let check = if policy == ConvergencePolicy::Skip {
        None
    } else {
        observer.stage(Stage::Check);
        let report = check_convergence_with_sdf(
            &model,
            &prepared,
            &sdf,
            &losses,
            &ConvergenceConfig::for_training(&recipe.training),
        );
        seconds.check = report.seconds;
        log::info!(
            "convergence check: {} in {:.2} s",
            if report.converged() {
                "passed"
            } else {
                "failed"
            },
            report.seconds
        );
        if policy == ConvergencePolicy::Require && !report.converged() {
            return Err(JobError::NotConverged(Box::new(report)));
        }
        Some(report)
    };
    Ok(TrainedMesh {
        model,
        prepared,
        losses,
        check,
        seconds,
    })
}

/// Trains on a training set with an observer: the progress reports, the
/// losses the convergence check reads, and cancellation. A `false` at the
/// final report has no iteration left to stop, but the caller asked to
/// stop: the job is cancelled whenever the answer lands.
pub fn train_observed(
    samples: &Samples,
    normalisation: Normalisation,
    recipe: &Recipe,
    observer: &mut dyn Observer,
) -> Result<(TrainedModel, Vec<(usize, f64)>), JobError> {
    let start = Progress {
        iteration: 0,
        iterations: recipe.training.iterations,
        loss: f64::NAN,
        learning_rate: recipe.training.learning_rate,
        elapsed_seconds: 0.0,
    };
    if !observer.progress(&start) {
        return Err(JobError::Cancelled);
    }
    observer.stage(Stage::Train);
    let mut losses = Vec::new();
    let mut stopped = false;
    let model = train(
        samples,
        normalisation,
        &recipe.network,
        &recipe.training,
        &mut |p| {
            losses.push((p.iteration, p.loss));
            let go = observer.progress(p);
            stopped |= !go;
            go
        },
    )?;
    if model.metadata.cancelled || stopped {
        return Err(JobError::Cancelled);
    }
    Ok((model, losses))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::unit_cube;
    use crate::model::Initialisation;

    use crate::pipeline::small_test_recipe as small_recipe;

    /// Records what it hears; cancels at the report `cancel_at` (in order,
    /// counting the one before training).
    #[derive(Default)]
    struct Recorder {
        stages: Vec<Stage>,
        iterations: Vec<usize>,
        cancel_at: Option<usize>,
    }

    impl Observer for Recorder {
        fn stage(&mut self, stage: Stage) {
            self.stages.push(stage);
        }
        fn progress(&mut self, p: &Progress) -> bool {
            self.iterations.push(p.iteration);
            self.cancel_at != Some(self.iterations.len() - 1)
        }
    }

    #[test]
    fn a_job_runs_every_stage_in_order_and_reports_progress() {
        let recipe = small_recipe(Initialisation::Geometric { radius: 0.5 }, 600);
        let mut seen = Recorder::default();
        let job = train_mesh(unit_cube(), &recipe, ConvergencePolicy::Require, &mut seen).unwrap();
        assert_eq!(
            seen.stages,
            [Stage::Prepare, Stage::Sample, Stage::Train, Stage::Check]
        );
        // Once before training, then every 25 iterations.
        assert_eq!(seen.iterations[0], 0);
        assert_eq!(
            seen.iterations[1..],
            (1..=24).map(|k| 25 * k).collect::<Vec<_>>()
        );
        assert_eq!(job.losses.len(), 24);
        assert!(job.check.as_ref().is_some_and(|c| c.converged()));
        assert_eq!(job.model.metadata.iterations, 600);
        assert!(job.seconds.train > 0.0 && job.seconds.check > 0.0);
        // Without a check there is no report and no check stage.
        let mut seen = Recorder::default();
        let job = train_mesh(unit_cube(), &recipe, ConvergencePolicy::Skip, &mut seen).unwrap();
        assert!(job.check.is_none());
        assert!(!seen.stages.contains(&Stage::Check));
    }

    #[test]
    fn a_cancel_before_training_or_at_the_last_report_cancels_the_job() {
        let recipe = small_recipe(Initialisation::Geometric { radius: 0.5 }, 100);
        let mut before = Recorder {
            cancel_at: Some(0),
            ..Recorder::default()
        };
        let err = train_mesh(unit_cube(), &recipe, ConvergencePolicy::Skip, &mut before)
            .err()
            .unwrap();
        assert!(matches!(err, JobError::Cancelled), "{err}");
        assert!(!before.stages.contains(&Stage::Train));
        // Reports at 0, 25, 50, 75 and 100: a false at the last still
        // cancels.
        let mut last = Recorder {
            cancel_at: Some(4),
            ..Recorder::default()
        };
        let err = train_mesh(unit_cube(), &recipe, ConvergencePolicy::Skip, &mut last)
            .err()
            .unwrap();
        assert!(matches!(err, JobError::Cancelled), "{err}");
        assert_eq!(last.iterations, [0, 25, 50, 75, 100]);
    }

    /// An untrained network fails the check: an error under Require, a
    /// report under Report.
    #[test]
    fn the_policy_decides_what_an_unconverged_model_is() {
        let recipe = small_recipe(Initialisation::PytorchDefault, 1);
        let err = train_mesh(
            unit_cube(),
            &recipe,
            ConvergencePolicy::Require,
            &mut Silent,
        )
        .err()
        .unwrap();
        match err {
            JobError::NotConverged(report) => {
                assert!(!report.converged());
                let message = JobError::NotConverged(report).to_string();
                assert!(
                    message.starts_with("training did not converge: "),
                    "{message}"
                );
            }
            other => panic!("expected NotConverged, got {other}"),
        }
        let job = train_mesh(unit_cube(), &recipe, ConvergencePolicy::Report, &mut Silent).unwrap();
        assert!(job.check.is_some_and(|c| !c.converged()));
    }

    #[test]
    fn bad_meshes_and_recipes_are_refused_before_any_work() {
        let recipe = small_recipe(Initialisation::Geometric { radius: 0.5 }, 10);
        let mut seen = Recorder::default();
        let err = train_mesh(
            TriangleMesh::default(),
            &recipe,
            ConvergencePolicy::Skip,
            &mut seen,
        )
        .err()
        .unwrap();
        assert!(matches!(err, JobError::Mesh(_)), "{err}");
        let mut bad = recipe.clone();
        bad.training.batch_size = 0;
        let mut seen = Recorder::default();
        let err = train_mesh(unit_cube(), &bad, ConvergencePolicy::Skip, &mut seen)
            .err()
            .unwrap();
        assert!(
            matches!(err, JobError::Train(TrainError::InvalidConfig(_))),
            "{err}"
        );
        assert!(seen.stages.is_empty(), "{:?}", seen.stages);
    }
}
