//! The one-mesh job: prepare the mesh, sample its SDF, train, check that
//! training converged. The C API (`hisdf_train`), the command line (`run`,
//! `train`, `batch`) and, through the C API, every binding call this one
//! function; they only translate its observer and its errors.
//!
//! Many meshes go through the same stages in packs: [`train_pack`] trains
//! several sampled meshes in one batched step ([`train_batch`]) and checks
//! each, and [`train_many`] keeps the next packs sampling on other threads
//! while one trains. `train_mesh` is the pack of one.

use std::sync::mpsc;
use std::time::Instant;

use crate::mesh::Normalisation;
use crate::mesh::{MeshError, TriangleMesh};
use crate::model::SdfNetwork;
use crate::model::TrainedModel;
use crate::sampling::{refinement_samples, Samples};
use crate::sdf::MeshSdf;
use crate::train::{
    batch_incompatibility, train_batch_refined, NoRefinement, Progress, Refiner, TrainError,
    TrainInput,
};
use crate::util::memory::{self, MemoryShortfall};

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
    /// Reading the mesh, where the job did it ([`train_many`]).
    pub load: f64,
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
    #[error("training did not converge: {}; train for more iterations or with a larger network, or keep the unconverged model (the command line's --keep-unconverged)", .0.failures())]
    NotConverged(Box<ConvergenceReport>),
    /// A bug of ours, caught so that the other meshes of a batch go on.
    #[error("internal error: {0}; this is a bug in hisdf: please report it with the input that caused it")]
    Panicked(String),
    /// A size from the recipe does not fit in this process's memory.
    #[error(transparent)]
    Memory(#[from] MemoryShortfall),
}

/// Prepares `mesh`, samples its SDF as `recipe` says, trains and checks. The
/// mesh's exact SDF is built once, for sampling and for the check.
pub fn train_mesh(
    mesh: TriangleMesh,
    recipe: &Recipe,
    policy: ConvergencePolicy,
    observer: &mut dyn Observer,
) -> Result<TrainedMesh, JobError> {
    let sampled = sample_mesh(mesh, recipe, observer)?;
    let mut one = One(observer);
    train_pack(vec![(sampled, recipe)], policy, &mut one)
        .pop()
        .expect("one result for one mesh")
}

/// A mesh ready to train: prepared, with its exact SDF (kept for the
/// convergence check) and its training set.
pub struct SampledMesh {
    pub prepared: PreparedMesh,
    pub samples: Samples,
    sdf: MeshSdf,
    seconds: StageSeconds,
}

/// The first two stages of a job: the recipe validated, the mesh prepared
/// and its SDF sampled.
pub fn sample_mesh(
    mesh: TriangleMesh,
    recipe: &Recipe,
    observer: &mut dyn Observer,
) -> Result<SampledMesh, JobError> {
    recipe
        .validate()
        .map_err(|e| JobError::Train(TrainError::InvalidConfig(e)))?;
    // Before the mesh is prepared: a training set that cannot fit is
    // refused at once, not after the SDF is built.
    memory::ensure(
        recipe.sampling.memory_bytes(),
        || {
            format!(
                "a training set of {} samples",
                recipe.sampling.peak_samples()
            )
        },
        "lower surface_samples, uniform_samples or the shells' counts",
    )?;
    let mut seconds = StageSeconds::default();

    observer.stage(Stage::Prepare);
    let t = Instant::now();
    let prepared = prepare_mesh(mesh)?;
    seconds.prepare = t.elapsed().as_secs_f64();
    if let Some(note) = prepared.open_note(recipe.sampling.surface()) {
        log::warn!("{note}");
    }

    observer.stage(Stage::Sample);
    let t = Instant::now();
    let sdf = MeshSdf::new(&prepared.normalised);
    let samples = recipe.samples_with_sdf(&prepared, &sdf);
    seconds.sample = t.elapsed().as_secs_f64();
    Ok(SampledMesh {
        prepared,
        samples,
        sdf,
        seconds,
    })
}

/// What a front end hears while several meshes train at once: the
/// [`Observer`]'s calls, each naming the mesh by its place in the pack.
pub trait PackObserver {
    fn stage(&mut self, _mesh: usize, _stage: Stage) {}
    /// `false` cancels that mesh; the others go on.
    fn progress(&mut self, _mesh: usize, _progress: &Progress) -> bool {
        true
    }
}

impl PackObserver for Silent {}

/// One mesh's observer as a pack's.
struct One<'a>(&'a mut dyn Observer);

impl PackObserver for One<'_> {
    fn stage(&mut self, _mesh: usize, stage: Stage) {
        self.0.stage(stage);
    }
    fn progress(&mut self, _mesh: usize, progress: &Progress) -> bool {
        self.0.progress(progress)
    }
}

/// Trains sampled meshes together and checks each: the meshes whose
/// recipes can share a step ([`batch_incompatibility`]) train in one
/// batched step, the rest in further steps. Each result is what
/// [`train_mesh`] gives that mesh with its recipe alone, up to rounding:
/// the same seed draws the same weights and batches. Results come in the
/// pack's order.
pub fn train_pack(
    pack: Vec<(SampledMesh, &Recipe)>,
    policy: ConvergencePolicy,
    observer: &mut dyn PackObserver,
) -> Vec<Result<TrainedMesh, JobError>> {
    let mut results: Vec<Option<Result<TrainedMesh, JobError>>> =
        (0..pack.len()).map(|_| None).collect();
    // A cancel that arrived while sampling is honoured before any training.
    let mut waiting = Vec::new();
    for (j, (_, recipe)) in pack.iter().enumerate() {
        if observer.progress(j, &Progress::before_training(&recipe.training)) {
            waiting.push(j);
        } else {
            results[j] = Some(Err(JobError::Cancelled));
        }
    }
    // Each mesh joins the first group it can share a step with.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for j in waiting {
        let fits = |g: &Vec<usize>| {
            let mut inputs: Vec<TrainInput> = g.iter().map(|&i| input_of(&pack[i])).collect();
            inputs.push(input_of(&pack[j]));
            batch_incompatibility(&inputs).is_none()
        };
        match groups.iter_mut().find(|g| fits(g)) {
            Some(g) => g.push(j),
            None => groups.push(vec![j]),
        }
    }
    // Each member is taken out of the pack once its group has trained.
    let mut pack: Vec<Option<(SampledMesh, &Recipe)>> = pack.into_iter().map(Some).collect();
    for group in groups {
        for &j in &group {
            observer.stage(j, Stage::Train);
        }
        let t = Instant::now();
        let trained = {
            let members: Vec<&(SampledMesh, &Recipe)> = group
                .iter()
                .map(|&j| pack[j].as_ref().expect("not yet trained"))
                .collect();
            let inputs: Vec<TrainInput> = members.iter().map(|m| input_of(m)).collect();
            let mut refiner = PackRefiner { members };
            train_batch_observed(&inputs, &group, &mut refiner, observer)
        };
        let train_seconds = t.elapsed().as_secs_f64();
        let trained = match trained {
            Ok(models) => models,
            Err(e) => {
                for &j in &group {
                    results[j] = Some(Err(JobError::Train(for_each_member(&e))));
                }
                continue;
            }
        };
        for (m, model) in trained.into_iter().enumerate() {
            let j = group[m];
            let (sampled, recipe) = pack[j].take().expect("trained once");
            let surface = recipe.sampling.surface();
            let outcome = model.and_then(|(mut model, losses)| {
                model.metadata.surface = surface;
                let mut seconds = sampled.seconds;
                seconds.train = train_seconds;
                check(model, sampled, losses, seconds, policy, &mut |stage| {
                    observer.stage(j, stage)
                })
            });
            results[j] = Some(outcome);
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every mesh has a result"))
        .collect()
}

/// Error-driven refinement of a pack's near-surface sets, as each recipe's
/// `refinement` asks: around the places where the network, part way
/// through training, is furthest from the mesh's surface.
struct PackRefiner<'a> {
    members: Vec<&'a (SampledMesh, &'a Recipe)>,
}

impl Refiner for PackRefiner<'_> {
    fn refine_at(&self, j: usize) -> Option<usize> {
        let recipe = self.members[j].1;
        if recipe.sampling.weighted.is_some() {
            return None;
        }
        recipe
            .sampling
            .refinement
            .iteration(recipe.training.iterations)
    }

    fn refine(&mut self, j: usize, network: &SdfNetwork) -> Option<Samples> {
        let (sampled, recipe) = self.members[j];
        let t = Instant::now();
        let (samples, largest) = refinement_samples(
            &sampled.prepared.normalised,
            &sampled.sdf,
            recipe.sampling.surface(),
            recipe.sampling.refinement.samples,
            recipe.training.seed,
            &sampled.samples,
            &mut |points| network.evaluate(points, 1 << 16),
        );
        log::info!(
            "refinement: {} samples around the largest surface errors (up to {largest:.4}) in {:.2} s",
            samples.len(),
            t.elapsed().as_secs_f64()
        );
        Some(samples)
    }
}

fn input_of<'a>(member: &'a (SampledMesh, &'a Recipe)) -> TrainInput<'a> {
    TrainInput {
        samples: &member.0.samples,
        normalisation: member.0.prepared.normalisation,
        network: &member.1.network,
        config: &member.1.training,
    }
}

/// The convergence check of one trained mesh under `policy`.
fn check(
    model: TrainedModel,
    sampled: SampledMesh,
    losses: Vec<(usize, f64)>,
    mut seconds: StageSeconds,
    policy: ConvergencePolicy,
    stage: &mut dyn FnMut(Stage),
) -> Result<TrainedMesh, JobError> {
    let check = if policy == ConvergencePolicy::Skip {
        None
    } else {
        stage(Stage::Check);
        // A shell is judged against its band: the held-out targets are
        // the band's (so the sign and error rules compare the right field),
        // and a stray surface is one farther than the band's half-width
        // plus the usual distance from the mesh.
        let surface = model.metadata.surface;
        let mut config = ConvergenceConfig::default();
        config.held_out.surface = surface;
        if let crate::sampling::Surface::Shell { thickness } = surface {
            config.stray_distance += thickness / 2.0;
        }
        let report = check_convergence_with_sdf(&model, &sampled.prepared, &sampled.sdf, &config);
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
        prepared: sampled.prepared,
        losses,
        check,
        seconds,
    })
}

/// A batch's error as each of its members' own.
fn for_each_member(e: &TrainError) -> TrainError {
    match e {
        TrainError::NoCuda => TrainError::NoCuda,
        TrainError::InvalidConfig(m) => TrainError::InvalidConfig(m.clone()),
        TrainError::NoSamples => TrainError::NoSamples,
        TrainError::Diverged { iteration, loss } => TrainError::Diverged {
            iteration: *iteration,
            loss: *loss,
        },
        TrainError::Torch(t) => TrainError::Native(t.to_string()),
        TrainError::Native(m) => TrainError::Native(m.clone()),
    }
}

/// One mesh of [`train_many`]: how to load it (called on a sampling
/// thread, when its turn comes) and its recipe.
pub struct ManyInput {
    pub load: Box<dyn FnOnce() -> Result<TriangleMesh, JobError> + Send>,
    pub recipe: Recipe,
}

/// Trains many meshes, `pack` at a time in one batched step, in a
/// pipeline of three threads: one loads, prepares and samples the next pack
/// (the exact SDF of a large mesh takes seconds of CPU that would otherwise
/// leave the GPU idle), this one trains, and one hands each finished mesh
/// to `done(i, result)` (where a front end extracts and evaluates it while
/// the next pack trains). A mesh that fails to load or sample is reported
/// at once and the rest go on; `done` hears every mesh once, in the order
/// they finish. `observer` names meshes by their index in `inputs`.
///
/// `done` runs beside training: work it does under a TF32 scope (a TF32
/// extraction) turns TF32 on for the training's float32 products too, as
/// any two threads sharing libtorch's one switch would.
pub fn train_many(
    inputs: Vec<ManyInput>,
    pack: usize,
    policy: ConvergencePolicy,
    observer: &mut dyn PackObserver,
    done: &mut (dyn FnMut(usize, Result<TrainedMesh, JobError>) + Send),
) {
    let pack = pack.max(1);
    type Sampled = (usize, Recipe, Result<SampledMesh, JobError>);
    // One pack sampled ahead of the one training.
    let (to_train, sampled) = mpsc::sync_channel::<Sampled>(pack);
    let (to_finish, finished) = mpsc::channel::<(usize, Result<TrainedMesh, JobError>)>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (i, input) in inputs.into_iter().enumerate() {
                let result = crate::util::catch_panic(|| {
                    let t = Instant::now();
                    let mesh = (input.load)()?;
                    let load = t.elapsed().as_secs_f64();
                    let mut s = sample_mesh(mesh, &input.recipe, &mut Silent)?;
                    s.seconds.load = load;
                    Ok(s)
                })
                .unwrap_or_else(|p| Err(JobError::Panicked(p.message())));
                if to_train.send((i, input.recipe, result)).is_err() {
                    // The trainer has gone: nothing more to sample for.
                    return;
                }
            }
        });
        scope.spawn(move || {
            for (i, result) in finished {
                done(i, result);
            }
        });
        let mut ready: Vec<(usize, Recipe, SampledMesh)> = Vec::with_capacity(pack);
        let mut train_ready = |ready: &mut Vec<(usize, Recipe, SampledMesh)>| {
            let (mut indices, mut recipes, mut sampled) = (Vec::new(), Vec::new(), Vec::new());
            for (i, recipe, s) in ready.drain(..) {
                indices.push(i);
                recipes.push(recipe);
                sampled.push(s);
            }
            let mut renamed = Renamed {
                inner: &mut *observer,
                indices: &indices,
            };
            let pack = sampled.into_iter().zip(recipes.iter()).collect();
            // A bug of ours in one pack fails that pack, not the batch.
            let results = crate::util::catch_panic(|| train_pack(pack, policy, &mut renamed))
                .unwrap_or_else(|p| {
                    let message = p.message();
                    indices
                        .iter()
                        .map(|_| Err(JobError::Panicked(message.clone())))
                        .collect()
                });
            for (&i, r) in indices.iter().zip(results) {
                // The finisher lives as long as this scope.
                let _ = to_finish.send((i, r));
            }
        };
        for (i, recipe, result) in sampled {
            match result {
                Err(e) => {
                    let _ = to_finish.send((i, Err(e)));
                }
                Ok(s) => {
                    ready.push((i, recipe, s));
                    if ready.len() == pack {
                        train_ready(&mut ready);
                    }
                }
            }
        }
        if !ready.is_empty() {
            train_ready(&mut ready);
        }
        // Closing the channel lets the finisher end.
        drop(to_finish);
    });
}

/// A pack's observer as seen by the caller of [`train_many`]: meshes named
/// by their index in the whole list.
struct Renamed<'a> {
    inner: &'a mut dyn PackObserver,
    indices: &'a [usize],
}

impl PackObserver for Renamed<'_> {
    fn stage(&mut self, mesh: usize, stage: Stage) {
        self.inner.stage(self.indices[mesh], stage);
    }
    fn progress(&mut self, mesh: usize, progress: &Progress) -> bool {
        self.inner.progress(self.indices[mesh], progress)
    }
}

/// Trains on a training set with an observer: the progress reports, the
/// losses the convergence check reads, and cancellation.
pub fn train_observed(
    samples: &Samples,
    normalisation: Normalisation,
    recipe: &Recipe,
    observer: &mut dyn Observer,
) -> Result<(TrainedModel, Vec<(usize, f64)>), JobError> {
    if !observer.progress(&Progress::before_training(&recipe.training)) {
        return Err(JobError::Cancelled);
    }
    observer.stage(Stage::Train);
    let input = TrainInput {
        samples,
        normalisation,
        network: &recipe.network,
        config: &recipe.training,
    };
    train_batch_observed(&[input], &[0], &mut NoRefinement, &mut One(observer))?
        .pop()
        .expect("one result for one training set")
}

/// A trained network and the (iteration, mean loss) pairs of its progress
/// reports.
type Trained = (TrainedModel, Vec<(usize, f64)>);

/// [`train_batch`] heard by a pack's observer (input m is mesh `meshes[m]`
/// to it): each network's model with the (iteration, mean loss) pairs of
/// its progress reports, which the convergence check reads. A `false` at
/// the final report has no iteration left to stop, but the caller asked to
/// stop: that network is cancelled whenever the answer lands.
fn train_batch_observed(
    inputs: &[TrainInput],
    meshes: &[usize],
    refiner: &mut dyn Refiner,
    observer: &mut dyn PackObserver,
) -> Result<Vec<Result<Trained, JobError>>, TrainError> {
    let mut losses = vec![Vec::new(); inputs.len()];
    let mut stopped = vec![false; inputs.len()];
    let trained = train_batch_refined(inputs, refiner, &mut |m, p| {
        losses[m].push((p.iteration, p.loss));
        let go = observer.progress(meshes[m], p);
        stopped[m] |= !go;
        go
    })?;
    Ok(trained
        .into_iter()
        .zip(losses)
        .zip(stopped)
        .map(|((model, losses), stopped)| {
            let model = model?;
            if model.metadata.cancelled || stopped {
                return Err(JobError::Cancelled);
            }
            Ok((model, losses))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::{icosphere, torus, unit_cube};
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

    /// Meshes trained in one pack end as each ends trained alone: same
    /// seed, same weights and batches, the batched step's float32 arithmetic
    /// equal to autograd's up to rounding. A recipe that cannot share the
    /// step (another width) trains in a second step of the same pack.
    #[test]
    fn a_pack_trains_each_mesh_as_it_trains_alone() {
        let recipe = small_recipe(Initialisation::Geometric { radius: 0.5 }, 150);
        let mut seeded = recipe.clone();
        seeded.training.seed = 3;
        let mut wider = recipe.clone();
        wider.network.width = 48;
        let meshes = [unit_cube(), icosphere(2), torus(0.5, 0.2, 24, 12)];
        let recipes = [&recipe, &seeded, &wider];
        let pack = meshes
            .iter()
            .zip(recipes)
            .map(|(m, r)| (sample_mesh(m.clone(), r, &mut Silent).unwrap(), r))
            .collect();
        #[derive(Default)]
        struct Heard {
            stages: Vec<(usize, Stage)>,
            reports: [usize; 3],
        }
        impl PackObserver for Heard {
            fn stage(&mut self, mesh: usize, stage: Stage) {
                self.stages.push((mesh, stage));
            }
            fn progress(&mut self, mesh: usize, _: &Progress) -> bool {
                self.reports[mesh] += 1;
                true
            }
        }
        let mut heard = Heard::default();
        let together = train_pack(pack, ConvergencePolicy::Require, &mut heard);
        // Before training, then every 25 iterations.
        assert_eq!(heard.reports, [7, 7, 7]);
        for j in 0..3 {
            assert!(heard.stages.contains(&(j, Stage::Train)));
            assert!(heard.stages.contains(&(j, Stage::Check)));
        }
        let probe = [[0.1, 0.2, 0.3], [0.0, 0.0, 0.45], [0.5, 0.0, 0.0]];
        for (j, job) in together.into_iter().enumerate() {
            let job = job.unwrap();
            assert!(
                job.check.as_ref().is_some_and(|c| c.converged()),
                "mesh {j}"
            );
            assert_eq!(
                job.prepared.original.triangles.len(),
                meshes[j].triangles.len()
            );
            let alone = train_mesh(
                meshes[j].clone(),
                recipes[j],
                ConvergencePolicy::Skip,
                &mut Silent,
            )
            .unwrap();
            let (a, b) = (job.model.query(&probe), alone.model.query(&probe));
            for (x, y) in a.iter().zip(&b) {
                // 150 Adam steps carry rounding differences a little way
                // (7e-4 seen); another seed lands 0.02 away.
                assert!(
                    (x - y).abs() < 5e-3,
                    "mesh {j}: {a:?} in the pack, {b:?} alone"
                );
            }
            assert_eq!(job.losses.len(), alone.losses.len());
        }
    }

    /// train_many: every mesh is reported once, a mesh that fails to load
    /// or to prepare is an error for it alone, the rest train in packs.
    #[test]
    fn many_meshes_train_in_packs_and_failures_stay_their_own() {
        let recipe = small_recipe(Initialisation::Geometric { radius: 0.5 }, 100);
        let mesh = |m: TriangleMesh| -> Box<dyn FnOnce() -> Result<TriangleMesh, JobError> + Send> {
            Box::new(move || Ok(m))
        };
        let inputs = vec![
            mesh(unit_cube()),
            Box::new(|| {
                Err(JobError::Mesh(MeshError::UnknownFormat {
                    path: "part.step".into(),
                }))
            }) as Box<dyn FnOnce() -> _ + Send>,
            mesh(icosphere(1)),
            mesh(TriangleMesh::default()),
            mesh(icosphere(2)),
            mesh(unit_cube()),
        ]
        .into_iter()
        .map(|load| ManyInput {
            load,
            recipe: recipe.clone(),
        })
        .collect();
        let mut outcomes: Vec<(usize, bool)> = Vec::new();
        train_many(
            inputs,
            2,
            ConvergencePolicy::Require,
            &mut Silent,
            &mut |i, r| {
                if let Ok(job) = &r {
                    assert_eq!(job.model.metadata.iterations, 100);
                }
                outcomes.push((i, r.is_ok()));
            },
        );
        outcomes.sort();
        assert_eq!(
            outcomes,
            [
                (0, true),
                (1, false),
                (2, true),
                (3, false),
                (4, true),
                (5, true)
            ]
        );
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
