//! The check a model passes before it may answer: every number it computes
//! with is finite in the precision it runs in. Queries, gradients and
//! extraction run the network in single precision (f32; TF32 and bf16 have
//! f32's exponent range) and map points through the normalisation into f32,
//! so a weight that is NaN or infinite, a centre of 1e308 (finite in f64,
//! infinite in f32) or a weight too large to multiply with would otherwise
//! turn every answer into NaN. A model file is refused at load instead
//! (`file.rs` calls [`check_runnable`] once the model is built), with the
//! tensor or field named and what to do.

use tch::{Device, Kind};

use super::{Activation, NetworkConfig, SdfNetwork, TrainedModel};
use crate::mesh::Normalisation;

/// What the user can do about any of these findings: the numbers were
/// written wrong, and nothing at load can recover the model they meant.
const WHAT_TO_DO: &str =
    "the file is damaged or its training diverged: retrain the model or use an intact copy";

/// Refuses a model that cannot answer in single precision, naming the
/// first number at fault.
pub(crate) fn check_runnable(model: &TrainedModel) -> Result<(), String> {
    check_runnable_finding(model).map_err(|finding| format!("{finding}; {WHAT_TO_DO}"))
}

/// The finding alone, for a caller with its own advice (saving).
pub(crate) fn check_runnable_finding(model: &TrainedModel) -> Result<(), String> {
    check_activation(&model.network.config)
        .and_then(|()| check_normalisation(&model.normalisation))
        .and_then(|()| check_weights(&model.network))
        .and_then(|()| check_answers(&model.network))
}

/// Whether `x` survives the conversion to f32 as a finite number.
fn finite_in_f32(x: f64) -> bool {
    x.is_finite() && x.abs() <= f64::from(f32::MAX)
}

/// The activation's own constants multiply every hidden unit in f32.
fn check_activation(config: &NetworkConfig) -> Result<(), String> {
    let (name, value) = match config.activation {
        Activation::Relu => return Ok(()),
        Activation::Softplus { beta } => ("softplus beta", beta),
        Activation::Sine { omega0 } => ("sine omega0", omega0),
    };
    // Softplus also divides by beta.
    let ok = value > 0.0 && finite_in_f32(value) && finite_in_f32(1.0 / value);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the network's {name} {value:e} is not a positive number finite in single precision"
        ))
    }
}

/// The frame `normalised = (p - centre) * scale` in single precision: the
/// scale and the radius 1 / scale of the unit sphere must be finite and
/// nonzero in f32 (distances map back by dividing by the scale), and so
/// must every point of the unit sphere in the user's coordinates (extracted
/// vertices are written there in f32).
fn check_normalisation(n: &Normalisation) -> Result<(), String> {
    let radius = 1.0 / n.scale;
    let normal_f32 = |x: f64| finite_in_f32(x) && x >= f64::from(f32::MIN_POSITIVE);
    if !(normal_f32(n.scale) && normal_f32(radius)) {
        return Err(format!(
            "the normalisation scale {:e} (unit-sphere radius {radius:e}) is not a positive \
             number finite in single precision",
            n.scale
        ));
    }
    for (axis, c) in ["x", "y", "z"].iter().zip(n.centre) {
        if !finite_in_f32(c.abs() + radius) {
            return Err(format!(
                "the normalisation centre {c:e} ({axis}), with the unit-sphere radius \
                 {radius:e}, is not finite in single precision"
            ));
        }
    }
    Ok(())
}

/// Every parameter tensor, element by element.
fn check_weights(network: &SdfNetwork) -> Result<(), String> {
    for (name, tensor) in network.parameters() {
        let values = tensor
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .flatten(0, -1);
        let n = values.numel();
        let mut host = vec![0f32; n];
        values.copy_data(&mut host, n);
        if let Some(k) = host.iter().position(|v| !v.is_finite()) {
            let size = tensor.size();
            let place = match size.as_slice() {
                [_, cols] if *cols > 0 => {
                    let cols = *cols as usize;
                    format!("element {k} (row {}, column {})", k / cols, k % cols)
                }
                _ => format!("element {k}"),
            };
            return Err(format!("tensor {name} holds {} at {place}", host[k]));
        }
    }
    Ok(())
}

/// Points where a finite network must answer finitely: the centre of its
/// frame, the unit sphere's poles along each axis and a point inside. Finite
/// weights can still overflow f32 when multiplied through the layers
/// (weights near 1e38), which no element-wise check sees.
const PROBES: [[f32; 3]; 8] = [
    [0.0, 0.0, 0.0],
    [1.0, 0.0, 0.0],
    [-1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, -1.0, 0.0],
    [0.0, 0.0, 1.0],
    [0.0, 0.0, -1.0],
    [0.3, -0.4, 0.5],
];

fn check_answers(network: &SdfNetwork) -> Result<(), String> {
    let values = network.evaluate(&PROBES, PROBES.len());
    if let Some((p, v)) = PROBES.iter().zip(&values).find(|(_, v)| !v.is_finite()) {
        return Err(format!(
            "every weight is finite, but the network answers {v} at {p:?} of its unit-sphere \
             frame: its weights are too large to compute with in single precision"
        ));
    }
    let gradients = network
        .gradient(&PROBES, PROBES.len())
        .map_err(|e| format!("the network's gradient cannot be evaluated: {e}"))?;
    if let Some((p, g)) = PROBES
        .iter()
        .zip(&gradients)
        .find(|(_, g)| !g.iter().all(|c| c.is_finite()))
    {
        return Err(format!(
            "every weight is finite, but the network's gradient is {g:?} at {p:?} of its \
             unit-sphere frame: its weights are too large to compute with in single precision"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Encoding, Initialisation, TrainingMetadata};

    fn model(config: &NetworkConfig) -> TrainedModel {
        TrainedModel {
            network: SdfNetwork::new(config, Device::Cpu, 3).unwrap(),
            normalisation: Normalisation {
                centre: [2.0, -1.0, 0.5],
                scale: 0.25,
            },
            metadata: TrainingMetadata::default(),
        }
    }

    fn small() -> NetworkConfig {
        NetworkConfig {
            depth: 2,
            width: 8,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            encoding: Encoding::Fourier { frequencies: 2 },
            ..NetworkConfig::default()
        }
    }

    fn set(model: &TrainedModel, tensor: usize, element: i64, value: f64) {
        let _guard = tch::no_grad_guard();
        let (_, t) = &model.network.parameters()[tensor];
        let _ = t.shallow_clone().view([-1]).get(element).fill_(value);
    }

    fn set_all(model: &TrainedModel, tensor: usize, value: f64) {
        let _guard = tch::no_grad_guard();
        let (_, t) = &model.network.parameters()[tensor];
        let _ = t.shallow_clone().fill_(value);
    }

    #[test]
    fn a_finite_model_passes() {
        check_runnable(&model(&small())).unwrap();
        let sine = NetworkConfig {
            activation: Activation::Sine { omega0: 30.0 },
            initialisation: Initialisation::Siren,
            ..small()
        };
        check_runnable(&model(&sine)).unwrap();
    }

    /// Each kind of number at fault is named, with what to do.
    #[test]
    fn each_number_at_fault_is_named() {
        type Damage = Box<dyn Fn(&mut TrainedModel)>;
        let cases: Vec<(Damage, &str)> = vec![
            (
                Box::new(|m| set(m, 0, 9, f64::NAN)),
                "tensor hidden.0.weight holds NaN at element 9 (row 0, column 9)",
            ),
            (
                Box::new(|m| set(m, 3, 2, f64::INFINITY)),
                "tensor hidden.1.bias holds inf at element 2",
            ),
            (
                Box::new(|m| m.normalisation.centre[1] = 1e308),
                "centre 1e308 (y)",
            ),
            (
                // Finite alone, but the unit sphere reaches past f32::MAX.
                Box::new(|m| {
                    m.normalisation.centre[0] = 3.0e38;
                    m.normalisation.scale = 2e-38;
                }),
                "centre 3e38 (x)",
            ),
            (Box::new(|m| m.normalisation.scale = 1e-300), "scale 1e-300"),
            (Box::new(|m| m.normalisation.scale = 1e300), "scale 1e300"),
            (Box::new(|m| m.normalisation.scale = -1.0), "scale -1e0"),
            (
                Box::new(|m| m.network.config.activation = Activation::Softplus { beta: 1e39 }),
                "softplus beta 1e39",
            ),
            (
                // Every weight of a hidden layer finite but huge: its units
                // overflow to inf, and an output weight of each sign makes
                // inf - inf.
                Box::new(|m| {
                    set_all(m, 1, 1.0);
                    set_all(m, 2, 3e38);
                    set(m, 4, 0, -1.0);
                }),
                "too large to compute with",
            ),
        ];
        for (corrupt, needle) in cases {
            let mut m = model(&small());
            corrupt(&mut m);
            let err = check_runnable(&m).unwrap_err();
            assert!(err.contains(needle), "{err} lacks {needle:?}");
            assert!(err.contains("retrain"), "{err}");
        }
    }
}
