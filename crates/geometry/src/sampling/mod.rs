//! Sampling stage: the training set of (point, true SDF) pairs (paper Sec. 4.2):
//! near-surface sampling (here), weighted sampling and uniform samples
//! (`weighted.rs`), and the `.npy` files samples are exchanged in (`npy.rs`).

use crate::io::npy;
mod weighted;

pub use weighted::{uniform, uniform_cube_points, weighted, UniformDomain, WeightedConfig};

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::mesh::Surface;
use crate::mesh::TriangleMesh;
use crate::sdf::MeshSdf;

/// Points in the unit-sphere frame with their true signed distances.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    pub points: Vec<[f32; 3]>,
    pub sdf: Vec<f32>,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Writes an N x 4 float32 `.npy` file, rows x, y, z, sdf (the layout
    /// DeepSDF-style training code reads), atomically.
    pub fn save_npy(&self, path: &std::path::Path) -> Result<(), npy::NpyError> {
        let rows: Vec<f32> = self
            .points
            .iter()
            .zip(&self.sdf)
            .flat_map(|(p, &s)| [p[0], p[1], p[2], s])
            .collect();
        npy::write(path, &[rows.len() / 4, 4], &rows)
    }

    /// Reads an N x 4 float32 or float64 `.npy` file written by
    /// [`Samples::save_npy`] or by numpy; float64 values are rounded to f32.
    pub fn load_npy(path: &std::path::Path) -> Result<Samples, npy::NpyError> {
        let (rows, n) = npy::read_rows(path, 4, "x, y, z, sdf samples")?;
        let mut s = Samples {
            points: Vec::with_capacity(n),
            sdf: Vec::with_capacity(n),
        };
        for r in rows.chunks_exact(4) {
            s.points.push([r[0] as f32, r[1] as f32, r[2] as f32]);
            s.sdf.push(r[3] as f32);
        }
        Ok(s)
    }
}

/// Points normally distributed around random surface points, with
/// sigma = sqrt(variance).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaussianShell {
    pub count: usize,
    pub variance: f64,
}

/// Near-surface sampling: `surface` points on the surface (SDF 0), one or
/// more Gaussian shells around it, and optionally `uniform` points in the unit
/// ball, which the paper does not use but which keep the network constrained
/// away from the surface (the paper's own convergence failure, Sec. 4.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NearSurfaceConfig {
    pub surface: usize,
    pub shells: Vec<GaussianShell>,
    pub uniform: usize,
    /// When set, the paper's weighted sampling (Sec. 4.2: a uniform pool in
    /// the unit ball, a subset kept with weight exp(-beta |SDF|)) replaces
    /// the near-surface set above.
    #[serde(default)]
    pub weighted: Option<WeightedConfig>,
    /// Error-driven refinement: a block of samples, after the others, that
    /// training replaces part way by samples around the surface points
    /// where the network is most wrong (see [`refinement_samples`]).
    #[serde(default)]
    pub refinement: Refinement,
    /// What the samples' targets are: the signed distance (a solid) or a
    /// thin band around the surface (a shell), see [`Surface`].
    #[serde(default)]
    pub representation: Representation,
    /// The band of a shell, in the unit-sphere frame; kept while the
    /// representation is solid, so the two settings can be set in any order.
    #[serde(default = "default_shell_thickness")]
    pub shell_thickness: f64,
}

fn default_shell_thickness() -> f64 {
    DEFAULT_SHELL_THICKNESS
}

/// The `surface` setting's two words; [`NearSurfaceConfig::surface`] is
/// what they mean with the thickness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Representation {
    #[default]
    Solid,
    Shell,
}

/// The default band of a shell in the unit-sphere frame: 1% of the radius.
pub const DEFAULT_SHELL_THICKNESS: f64 = 0.01;

/// The refinement block of a near-surface set: `samples` points (none when
/// 0), first a tight shell around the whole surface, replaced at the
/// fraction `at` of training by points around the largest errors.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refinement {
    pub samples: usize,
    pub at: f64,
}

impl Refinement {
    pub const NONE: Refinement = Refinement {
        samples: 0,
        at: 0.5,
    };

    pub fn validate(&self) -> Result<(), String> {
        if !(self.at.is_finite() && self.at > 0.0 && self.at < 1.0) {
            return Err(format!(
                "refine_at must be a fraction of the training strictly between 0 and 1, got {}",
                self.at
            ));
        }
        Ok(())
    }

    /// The iteration of `iterations` at which the block is replaced: none
    /// when there is no block, or no iteration strictly inside the run.
    pub fn iteration(&self, iterations: usize) -> Option<usize> {
        let at = (self.at * iterations as f64).round() as usize;
        (self.samples > 0 && at > 0 && at < iterations).then_some(at)
    }
}

impl Default for Refinement {
    fn default() -> Self {
        Refinement::NONE
    }
}

/// Variances of the refinement block's Gaussian offsets, taken in turn:
/// the paper's finer shell and ten times finer, where sharp creases and
/// thin parts need samples closer than the shells give.
pub const REFINEMENT_VARIANCES: [f64; 2] = [1e-5, 1e-6];

/// Refinement points per centre: the centres are the 1/16 of the candidate
/// surface points with the largest error, so that a few hundred badly
/// learned places each get a cloud of samples rather than one point.
const REFINEMENT_POINTS_PER_CENTRE: usize = 16;

/// Training samples further than this from the surface are not refinement
/// candidates: the clamped losses do not look at their exact value there.
pub const REFINEMENT_BAND: f32 = 0.1;

/// Candidate surface points besides the mesh's vertices.
const REFINEMENT_AREA_CANDIDATES: usize = 100_000;
/// At most this many vertices are candidates (evenly strided beyond).
const REFINEMENT_VERTEX_CANDIDATES: usize = 200_000;

/// The most samples one training set may hold (3.2 GB of points and
/// values, 400 times the paper's near-surface set).
pub const MAX_SAMPLES: usize = 200_000_000;

/// Host memory per sample while a training set is made and handed to
/// training: the point and its target (16 bytes) and their copy as the
/// training tensor. Measured with `hisdf train --set surface_samples=N`
/// on the CPU: 16 bytes more per sample at the peak; the copy is counted
/// so that a CUDA run, whose tensor is made from the host's, fits too.
pub const BYTES_PER_SAMPLE: u64 = 32;

impl NearSurfaceConfig {
    /// The paper's near-surface set: 25,000 on the surface, 250,000 at
    /// variance 1e-4 and 250,000 at variance 1e-5.
    pub fn paper() -> Self {
        NearSurfaceConfig {
            surface: 25_000,
            shells: vec![
                GaussianShell {
                    count: 250_000,
                    variance: 1e-4,
                },
                GaussianShell {
                    count: 250_000,
                    variance: 1e-5,
                },
            ],
            uniform: 0,
            weighted: None,
            refinement: Refinement::NONE,
            representation: Representation::Solid,
            shell_thickness: DEFAULT_SHELL_THICKNESS,
        }
    }

    /// What the targets are: the representation with its thickness.
    pub fn surface(&self) -> Surface {
        match self.representation {
            Representation::Solid => Surface::Solid,
            Representation::Shell => Surface::Shell {
                thickness: self.shell_thickness,
            },
        }
    }

    /// Samples of the near-surface set (saturating: counts near usize::MAX
    /// give usize::MAX, which validation refuses).
    pub fn total(&self) -> usize {
        self.shells.iter().fold(
            self.surface
                .saturating_add(self.uniform)
                .saturating_add(self.refinement.samples),
            |t, s| t.saturating_add(s.count),
        )
    }

    /// The most samples held at once while the set is made: the set, or
    /// weighted sampling's larger pool.
    pub fn peak_samples(&self) -> usize {
        self.total()
            .max(self.weighted.as_ref().map_or(0, |w| w.pool))
    }

    /// Host memory making this training set takes at its peak, for the
    /// check before sampling ([`crate::util::memory`]).
    pub fn memory_bytes(&self) -> u64 {
        self.peak_samples() as u64 * BYTES_PER_SAMPLE
    }
}

/// Points drawn per RNG stream. Each chunk has its own stream derived from
/// the seed and the chunk's index, so results do not depend on how rayon
/// schedules the chunks or how many threads there are.
const CHUNK: usize = 4096;

fn stream(seed: u64, kind: u64, chunk: usize) -> Pcg64Mcg {
    let mix = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(kind.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(chunk as u64);
    Pcg64Mcg::seed_from_u64(mix)
}

/// `count` points distributed uniformly over the surface by area, seeded.
pub fn surface_points(mesh: &TriangleMesh, count: usize, seed: u64) -> Vec<[f32; 3]> {
    surface_points_with_triangles(mesh, count, seed).0
}

/// As [`surface_points`], with the triangle each point lies on.
pub fn surface_points_with_triangles(
    mesh: &TriangleMesh,
    count: usize,
    seed: u64,
) -> (Vec<[f32; 3]>, Vec<usize>) {
    let cdf = mesh.area_weighted_cdf();
    let chunks: Vec<(Vec<[f32; 3]>, Vec<usize>)> = (0..count.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = stream(seed, 1, c);
            let n = CHUNK.min(count - c * CHUNK);
            let mut pts = Vec::with_capacity(n);
            let mut tris = Vec::with_capacity(n);
            for _ in 0..n {
                let u = [
                    rng.random::<f64>(),
                    rng.random::<f64>(),
                    rng.random::<f64>(),
                ];
                let (p, t) = mesh.sample_surface(&cdf, u);
                pts.push(p);
                tris.push(t);
            }
            (pts, tris)
        })
        .collect();
    let mut pts = Vec::with_capacity(count);
    let mut tris = Vec::with_capacity(count);
    for (p, t) in chunks {
        pts.extend(p);
        tris.extend(t);
    }
    (pts, tris)
}

/// `count` points uniform in the unit ball, seeded.
pub fn uniform_ball_points(count: usize, seed: u64) -> Vec<[f32; 3]> {
    (0..count.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng = stream(seed, 2, c);
            let n = CHUNK.min(count - c * CHUNK);
            let mut pts = Vec::with_capacity(n);
            while pts.len() < n {
                let p = [
                    rng.random::<f32>() * 2.0 - 1.0,
                    rng.random::<f32>() * 2.0 - 1.0,
                    rng.random::<f32>() * 2.0 - 1.0,
                ];
                if p[0] * p[0] + p[1] * p[1] + p[2] * p[2] <= 1.0 {
                    pts.push(p);
                }
            }
            pts
        })
        .collect()
}

fn gaussian_offsets(centres: &[[f32; 3]], sigma: f64, seed: u64, kind: u64) -> Vec<[f32; 3]> {
    centres
        .par_chunks(CHUNK)
        .enumerate()
        .flat_map_iter(|(c, part)| {
            let mut rng = stream(seed, kind, c);
            part.iter()
                .map(|p| {
                    let mut q = *p;
                    for v in q.iter_mut() {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        *v += (z * sigma) as f32;
                    }
                    q
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Near-surface samples of a mesh already in the unit-sphere frame. Surface
/// points get SDF exactly 0 (they lie on the triangles); every other point
/// gets the exact signed distance.
pub fn near_surface(
    mesh: &TriangleMesh,
    sdf: &MeshSdf,
    config: &NearSurfaceConfig,
    seed: u64,
) -> Samples {
    let mut points = surface_points(mesh, config.surface, seed);
    let mut values = vec![0f32; points.len()];
    for (i, shell) in config.shells.iter().enumerate() {
        let centres = surface_points(mesh, shell.count, seed.wrapping_add(1000 + i as u64));
        let shell_points = gaussian_offsets(&centres, shell.variance.sqrt(), seed, 100 + i as u64);
        values.extend(sdf.signed_distance(&shell_points));
        points.extend(shell_points);
    }
    if config.uniform > 0 {
        let uniform = uniform_ball_points(config.uniform, seed.wrapping_add(7));
        values.extend(sdf.signed_distance(&uniform));
        points.extend(uniform);
    }
    // Last, so that training can replace it as the tail of the set.
    let block = config.refinement.samples;
    if block > 0 {
        let centres = surface_points(mesh, block, seed.wrapping_add(3000));
        let shell = gaussian_offsets(&centres, REFINEMENT_VARIANCES[1].sqrt(), seed, 300);
        values.extend(sdf.signed_distance(&shell));
        points.extend(shell);
    }
    Samples {
        points,
        sdf: values,
    }
}

/// The refinement block's replacement: `count` points around the places
/// where the network is most wrong, with their exact SDF. Candidates are
/// the mesh's vertices (where creases, tips and corners are, and where area
/// samples rarely land) and area samples, whose true SDF is 0, and the
/// points of `known` (the training set) within [`REFINEMENT_BAND`] of the
/// surface, whose SDF is known: those find surface the network put where
/// the mesh has none (a web between teeth, a crumb), which no point of the
/// mesh can see. A candidate's error is |f(p) - s(p)|; the 1/16 with the
/// largest errors are the centres, each of which gets Gaussian offsets at
/// the [`REFINEMENT_VARIANCES`] in turn. Returns the samples and the
/// largest candidate error, for the log.
///
/// `surface` is what the targets are: the mesh's points have a shell's
/// target there, not 0, and the new samples get its targets too (`known`
/// holds targets already).
pub fn refinement_samples(
    mesh: &TriangleMesh,
    sdf: &MeshSdf,
    surface: Surface,
    count: usize,
    seed: u64,
    known: &Samples,
    predict: &mut dyn FnMut(&[[f32; 3]]) -> Vec<f32>,
) -> (Samples, f32) {
    let mut candidates = surface_vertices_strided(mesh, REFINEMENT_VERTEX_CANDIDATES);
    candidates.extend(surface_points(
        mesh,
        REFINEMENT_AREA_CANDIDATES,
        seed.wrapping_add(4000),
    ));
    let mut on_surface = [0f32];
    surface.apply(&mut on_surface);
    let mut truth = vec![on_surface[0]; candidates.len()];
    for (p, &d) in known.points.iter().zip(&known.sdf) {
        if (d - on_surface[0]).abs() < REFINEMENT_BAND {
            candidates.push(*p);
            truth.push(d);
        }
    }
    if count == 0 || candidates.is_empty() {
        return (Samples::default(), 0.0);
    }
    let errors: Vec<f32> = predict(&candidates)
        .into_iter()
        .zip(&truth)
        .map(|(f, s)| {
            let e = (f - s).abs();
            if e.is_finite() {
                e
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    let centres = count
        .div_ceil(REFINEMENT_POINTS_PER_CENTRE)
        .clamp(1, candidates.len());
    // Largest errors first; the order among the kept ones does not matter.
    order.select_nth_unstable_by(centres - 1, |&a, &b| errors[b].total_cmp(&errors[a]));
    order.truncate(centres);
    let largest = order.iter().map(|&i| errors[i]).fold(0.0f32, f32::max);
    let mut points = Vec::with_capacity(count);
    for (v, &variance) in REFINEMENT_VARIANCES.iter().enumerate() {
        // Share `count` between the variances, then cycle over the centres.
        let n = count / REFINEMENT_VARIANCES.len()
            + usize::from(v < count % REFINEMENT_VARIANCES.len());
        let around: Vec<[f32; 3]> = (0..n).map(|i| candidates[order[i % centres]]).collect();
        points.extend(gaussian_offsets(
            &around,
            variance.sqrt(),
            seed,
            310 + v as u64,
        ));
    }
    let mut values = sdf.signed_distance(&points);
    surface.apply(&mut values);
    (
        Samples {
            points,
            sdf: values,
        },
        largest,
    )
}

/// The vertices some triangle uses, at most `max` of them (evenly strided).
fn surface_vertices_strided(mesh: &TriangleMesh, max: usize) -> Vec<[f32; 3]> {
    let used = mesh.used_vertex_positions();
    let stride = used.len().div_ceil(max.max(1)).max(1);
    used.into_iter().step_by(stride).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::icosphere;

    #[test]
    fn samples_round_trip_through_npy() {
        let dir = crate::mesh::test_util::TempDir::new("samples");
        let path = dir.path("s.npy");
        let mesh = icosphere(2);
        let sdf = MeshSdf::new(&mesh);
        let config = NearSurfaceConfig {
            surface: 10,
            shells: vec![GaussianShell {
                count: 100,
                variance: 1e-3,
            }],
            uniform: 30,
            weighted: None,
            refinement: Refinement::NONE,
            representation: Representation::Solid,
            shell_thickness: DEFAULT_SHELL_THICKNESS,
        };
        let s = near_surface(&mesh, &sdf, &config, 1);
        s.save_npy(&path).unwrap();
        assert_eq!(Samples::load_npy(&path).unwrap(), s);
        let a = npy::read(&path).unwrap();
        assert_eq!(a.shape, vec![140, 4]);
        assert_eq!(a.data[4 * 50 + 3], f64::from(s.sdf[50]));
        npy::write(&path, &[2, 3], &[0f32; 6]).unwrap();
        assert!(matches!(
            Samples::load_npy(&path),
            Err(npy::NpyError::WrongShape { .. })
        ));
    }

    /// The block comes last, as a tight shell: close to the surface and
    /// with exact SDF values.
    #[test]
    fn the_refinement_block_is_the_tail_of_the_set() {
        let mesh = icosphere(3);
        let sdf = MeshSdf::new(&mesh);
        let mut config = NearSurfaceConfig {
            uniform: 100,
            ..NearSurfaceConfig::paper()
        };
        config.shells.iter_mut().for_each(|s| s.count = 1000);
        config.surface = 500;
        let plain = near_surface(&mesh, &sdf, &config, 3);
        config.refinement.samples = 2000;
        let refined = near_surface(&mesh, &sdf, &config, 3);
        assert_eq!(refined.len(), plain.len() + 2000);
        assert_eq!(config.total(), refined.len());
        assert_eq!(refined.points[..plain.len()], plain.points[..]);
        let block = &refined.sdf[plain.len()..];
        let sigma = REFINEMENT_VARIANCES[1].sqrt() as f32;
        assert!(block.iter().all(|d| d.abs() < 6.0 * sigma), "{block:?}");
        assert!(block.iter().any(|d| *d > 0.0) && block.iter().any(|d| *d < 0.0));
    }

    /// Where a network is wrong near one point of the surface, the
    /// refinement's samples gather there; their values are the exact SDF.
    #[test]
    fn refinement_samples_gather_where_the_error_is() {
        let mesh = icosphere(3);
        let sdf = MeshSdf::new(&mesh);
        let bad = [0.0f32, 0.0, 1.0];
        let mut predict = |points: &[[f32; 3]]| -> Vec<f32> {
            points
                .iter()
                .map(|p| {
                    let d = ((p[0] - bad[0]).powi(2)
                        + (p[1] - bad[1]).powi(2)
                        + (p[2] - bad[2]).powi(2))
                    .sqrt();
                    0.05 * (-d * 10.0).exp()
                })
                .collect()
        };
        let (s, largest) = refinement_samples(
            &mesh,
            &sdf,
            Surface::Solid,
            3200,
            1,
            &Samples::default(),
            &mut predict,
        );
        assert_eq!(s.len(), 3200);
        assert!((largest - 0.05).abs() < 0.005, "{largest}");
        assert_eq!(s.sdf, sdf.signed_distance(&s.points));
        // A shell's targets, for the same points.
        let shell = Surface::Shell { thickness: 0.02 };
        let (t, _) = refinement_samples(
            &mesh,
            &sdf,
            shell,
            3200,
            1,
            &Samples::default(),
            &mut predict,
        );
        let want: Vec<f32> = sdf
            .signed_distance(&t.points)
            .iter()
            .map(|d| d.abs() - 0.01)
            .collect();
        assert_eq!(t.sdf, want);
        // 200 centres out of ~100,600 candidates: the closest 0.2% of the
        // sphere's area to `bad`, a cap of angular radius about 5 degrees.
        let far = s
            .points
            .iter()
            .filter(|p| (p[0] - bad[0]).abs() + (p[1] - bad[1]).abs() > 0.2)
            .count();
        assert_eq!(far, 0);
        // A web: the network says surface (0) at a training point 0.05
        // outside the sphere, where no point of the mesh is wrong.
        let web = [0.75f32, 0.0, 0.0];
        let known = Samples {
            points: vec![web, [0.0, 0.0, 0.0]],
            sdf: vec![0.05, -1.0],
        };
        let mut says_surface_at_web = |points: &[[f32; 3]]| -> Vec<f32> {
            points
                .iter()
                .map(|p| {
                    if *p == web {
                        0.0
                    } else {
                        sdf.signed_distance(&[*p])[0]
                    }
                })
                .collect()
        };
        let (s, largest) = refinement_samples(
            &mesh,
            &sdf,
            Surface::Solid,
            160,
            1,
            &known,
            &mut says_surface_at_web,
        );
        assert!((largest - 0.05).abs() < 1e-6, "{largest}");
        let near_web = s
            .points
            .iter()
            .filter(|p| (p[0] - web[0]).abs() + p[1].abs() + p[2].abs() < 0.05)
            .count();
        assert!(near_web >= 16, "{near_web} of {}", s.len());
        let (none, _) = refinement_samples(
            &mesh,
            &sdf,
            Surface::Solid,
            0,
            1,
            &Samples::default(),
            &mut predict,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn sampling_is_reproducible_and_seed_dependent() {
        let mesh = icosphere(2);
        let a = surface_points(&mesh, 10_000, 3);
        let b = surface_points(&mesh, 10_000, 3);
        let c = surface_points(&mesh, 10_000, 4);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn near_surface_shells_have_the_requested_spread() {
        let mesh = icosphere(4);
        let sdf = MeshSdf::new(&mesh);
        let config = NearSurfaceConfig {
            surface: 1000,
            shells: vec![
                GaussianShell {
                    count: 20_000,
                    variance: 1e-3,
                },
                GaussianShell {
                    count: 20_000,
                    variance: 1e-5,
                },
            ],
            uniform: 5000,
            weighted: None,
            refinement: Refinement::NONE,
            representation: Representation::Solid,
            shell_thickness: DEFAULT_SHELL_THICKNESS,
        };
        let s = near_surface(&mesh, &sdf, &config, 11);
        assert_eq!(s.len(), config.total());
        assert!(s.sdf[..1000].iter().all(|&d| d == 0.0));
        // For a 3D isotropic Gaussian offset, the distance to a locally flat
        // surface is |N(0, sigma^2)|, whose RMS is sigma.
        let rms = |v: &[f32]| {
            (v.iter().map(|d| (*d as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let r1 = rms(&s.sdf[1000..21_000]);
        let r2 = rms(&s.sdf[21_000..41_000]);
        assert!((r1 / 1e-3f64.sqrt() - 1.0).abs() < 0.1, "shell 1 rms {r1}");
        assert!((r2 / 1e-5f64.sqrt() - 1.0).abs() < 0.1, "shell 2 rms {r2}");
        let uniform = &s.points[41_000..];
        // A shell's targets are the same points' |d| - t/2.
        let mut shell = s.sdf.clone();
        Surface::Shell { thickness: 0.02 }.apply(&mut shell);
        for (t, d) in shell.iter().zip(&s.sdf) {
            assert_eq!(*t, d.abs() - 0.01);
        }
        assert!(shell[..1000].iter().all(|&t| t == -0.01));
        assert!(Surface::Shell { thickness: 0.0 }.validate().is_err());
        assert!(Surface::Shell {
            thickness: f64::NAN
        }
        .validate()
        .is_err());
        assert!(uniform
            .iter()
            .all(|p| p[0] * p[0] + p[1] * p[1] + p[2] * p[2] <= 1.0));
    }
}
