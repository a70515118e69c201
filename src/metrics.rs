//! Metrics stage: the mesh-to-mesh metrics of `hisdf_geometry::metrics`
//! (re-exported here), and the held-out SDF error of a trained model.

pub use hisdf_geometry::metrics::*;

use crate::mesh::TriangleMesh;
use crate::model::TrainedModel;
use crate::sdf::MeshSdf;

/// The network of `model` against the exact SDF of `normalised`, the mesh
/// in the model's unit-sphere frame (`model.normalisation` applied to the
/// user's mesh), on held-out samples drawn with `config.seed`
/// ([`held_out_sdf_error`]). `sdf` may pass the mesh's SDF when the caller
/// has it already.
pub fn model_sdf_error(
    model: &TrainedModel,
    normalised: &TriangleMesh,
    sdf: Option<&MeshSdf>,
    config: &HeldOutConfig,
) -> SdfErrorReport {
    let predict = |points: &[[f32; 3]]| model.network.evaluate(points, TrainedModel::QUERY_CHUNK);
    held_out_sdf_error(&predict, normalised, sdf, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::Normalisation;
    use crate::model::{Initialisation, NetworkConfig, SdfNetwork, TrainingMetadata};
    use crate::sampling::GaussianShell;

    /// The geometric initialisation makes an untrained network close to the
    /// SDF of a sphere of the given radius (unit-sphere frame).
    fn sphere_network(radius: f64) -> TrainedModel {
        let config = NetworkConfig {
            depth: 2,
            width: 64,
            tanh_output: false,
            initialisation: Initialisation::Geometric { radius },
            ..NetworkConfig::default()
        };
        TrainedModel {
            network: SdfNetwork::new(&config, tch::Device::Cpu, 1).unwrap(),
            normalisation: Normalisation {
                centre: [0.0; 3],
                scale: 1.0,
            },
            metadata: TrainingMetadata::default(),
        }
    }

    fn scaled(m: &TriangleMesh, r: f32) -> TriangleMesh {
        TriangleMesh {
            vertices: m.vertices.iter().map(|v| v.map(|c| c * r)).collect(),
            triangles: m.triangles.clone(),
        }
    }

    #[test]
    fn a_network_fits_its_own_level_set_and_not_another_shape() {
        let config = HeldOutConfig {
            shells: vec![GaussianShell {
                count: 3000,
                variance: 1e-4,
            }],
            uniform: 3000,
            ..HeldOutConfig::default()
        };
        let model = sphere_network(0.5);
        // The network's own zero level set (the identity frame makes the
        // user's frame the unit-sphere frame): only marching cubes' small
        // interpolation error separates the two.
        let own = crate::extract::extract_mesh(&model, 64, &mut |_| true).unwrap();
        let good = model_sdf_error(&model, &own, None, &config);
        assert_eq!(good.sdf_samples_near, 3000);
        assert_eq!(good.sdf_samples_uniform, 3000);
        assert!(good.wrong_sign_near < 0.05, "{good:?}");
        assert!(good.wrong_sign_far < 0.01, "{good:?}");
        assert!(good.sdf_min < 0.0 && good.sdf_max > 0.0);
        assert!(good.sdf_error_near_p99 < 0.01, "{good:?}");
        assert!(good.sdf_error_near_p99 >= good.sdf_error_near, "{good:?}");

        // Against the same surface 1.6 times larger, the network's surface
        // is far inside: the network calls every near sample outside, so
        // the half inside the big surface has the wrong sign, and so do far
        // points between the two surfaces.
        let big = scaled(&own, 1.6);
        let bad = model_sdf_error(&model, &big, None, &config);
        assert!(
            bad.sdf_error_near > 5.0 * good.sdf_error_near,
            "{good:?} {bad:?}"
        );
        assert!(bad.wrong_sign_near > 0.4, "{bad:?}");
        // The surfaces lie 0.3 apart: so does nearly every near sample.
        assert!((bad.sdf_error_near_p99 - 0.3).abs() < 0.05, "{bad:?}");
        assert!(bad.wrong_sign_far > 0.1, "{bad:?}");
        assert!(bad.sdf_error_uniform_clamped > good.sdf_error_uniform_clamped);
        // Seeded: the same numbers again.
        let again = model_sdf_error(&model, &big, None, &config);
        assert_eq!(again.sdf_error_near, bad.sdf_error_near);
    }
}
