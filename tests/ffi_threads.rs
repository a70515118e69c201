//! One model queried from many threads at once through the C API, without a
//! host lock, as an engineering host's worker threads do: every thread's
//! values and gradients must be bit-identical to one thread's.

mod common;

use std::ptr::null_mut;

use common::{ok, sphere_mesh, train_tiny};
use hisdf::ffi::*;

/// A model handle shared by threads, as a C host shares the pointer.
#[derive(Clone, Copy)]
struct Shared(*const HisdfModel);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

fn trained_model(device: &str) -> *mut HisdfModel {
    let mesh = sphere_mesh();
    let model = train_tiny(
        mesh,
        &[
            ("iterations", "20"),
            ("width", "64"),
            ("depth", "3"),
            ("device", device),
            ("batch_size", "256"),
            ("surface_samples", "500"),
            ("shells", "500:1e-3"),
            ("uniform_samples", "200"),
        ],
    );
    hisdf_mesh_free(mesh);
    model
}

fn query(model: Shared, points: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut values = vec![0f32; points.len() / 3];
    let mut gradients = vec![0f32; points.len()];
    ok(hisdf_model_query(
        model.0,
        points.as_ptr(),
        points.len(),
        values.as_mut_ptr(),
        values.len(),
        null_mut(),
    ));
    ok(hisdf_model_gradient(
        model.0,
        points.as_ptr(),
        points.len(),
        gradients.as_mut_ptr(),
        gradients.len(),
        null_mut(),
    ));
    (values, gradients)
}

fn eight_threads_agree_with_one(device: &str) {
    let model = trained_model(device);
    let shared = Shared(model);
    let points: Vec<f32> = hisdf::sampling::uniform_ball_points(20_000, 7)
        .into_iter()
        .flatten()
        .collect();
    let alone = query(shared, &points);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (0..3).map(|_| query(shared, &points)).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            for (values, gradients) in h.join().unwrap() {
                assert!(values == alone.0, "{device}: values differ between threads");
                assert!(
                    gradients == alone.1,
                    "{device}: gradients differ between threads"
                );
            }
        }
    });
    assert!(alone.0.iter().all(|v| v.is_finite()));
    hisdf_model_free(model);
}

#[test]
fn a_model_answers_eight_threads_at_once_on_the_cpu() {
    eight_threads_agree_with_one("cpu");
}

/// Skipped without a GPU.
#[test]
fn a_model_answers_eight_threads_at_once_on_cuda() {
    if tch::Cuda::is_available() {
        eight_threads_agree_with_one("cuda");
    }
}
