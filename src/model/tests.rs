use tch::{Device, Kind, Tensor};

use super::*;
use crate::mesh::Normalisation;

#[test]
fn pytorch_default_output_is_not_saturated() {
    let net = SdfNetwork::new(&NetworkConfig::default(), Device::Cpu, 0).unwrap();
    let x = Tensor::rand([1000, 3], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let y = net.forward(&x);
    let max = y.abs().max().double_value(&[]);
    // tch's default init gives |y| near 1 here (tanh saturated); the
    // PyTorch-style bound keeps outputs small, so gradients flow.
    assert!(max < 0.5, "output saturated: max |f| = {max}");
}

#[test]
fn geometric_initialisation_is_close_to_a_sphere() {
    let config = NetworkConfig {
        depth: 4,
        width: 256,
        tanh_output: false,
        initialisation: Initialisation::Geometric { radius: 0.5 },
        ..NetworkConfig::default()
    };
    let net = SdfNetwork::new(&config, Device::Cpu, 1).unwrap();
    let x = Tensor::randn([2000, 3], (Kind::Float, Device::Cpu)) * 0.5;
    let y = net.forward(&x);
    let truth = x.norm_scalaropt_dim(2.0, [1], false) - 0.5;
    let err = (y - truth).abs().mean(Kind::Float).double_value(&[]);
    // The SAL initialisation is exact only in the infinite-width limit.
    assert!(err < 0.15, "mean deviation from the sphere SDF {err}");
}

#[test]
fn parameter_layout_matches_config() {
    let config = NetworkConfig {
        depth: 3,
        width: 16,
        ..NetworkConfig::default()
    };
    let net = SdfNetwork::new(&config, Device::Cpu, 1).unwrap();
    let params = net.parameters();
    assert_eq!(params.len(), 8);
    for ((name, t), (ename, shape)) in params.iter().zip(config.parameter_shapes()) {
        assert_eq!(name, &ename);
        assert_eq!(t.size(), shape);
    }
}

fn ablation(weight_norm: bool, dropout: f64, skip: Option<usize>) -> NetworkConfig {
    NetworkConfig {
        depth: 4,
        width: 16,
        weight_norm,
        dropout,
        skip,
        ..NetworkConfig::default()
    }
}

#[test]
fn ablation_layouts_match_their_configs() {
    for config in [
        ablation(true, 0.0, None),
        ablation(false, 0.2, Some(2)),
        ablation(true, 0.2, Some(4)),
    ] {
        let net = SdfNetwork::new(&config, Device::Cpu, 3).unwrap();
        for ((name, t), (ename, shape)) in net.parameters().iter().zip(config.parameter_shapes()) {
            assert_eq!(name, &ename);
            assert_eq!(t.size(), shape, "{name}");
        }
        let y = net.forward(&Tensor::rand([7, 3], (Kind::Float, Device::Cpu)));
        assert_eq!(y.size(), vec![7]);
    }
    let skip = ablation(false, 0.0, Some(2)).parameter_shapes();
    assert_eq!(skip[4], ("hidden.2.weight".to_string(), vec![16, 19]));
}

#[test]
fn weight_norm_starts_as_the_plain_network() {
    // g starts at |v|, so before training the normalised network is the
    // same function as the plain one drawn from the same seed.
    let plain = SdfNetwork::new(&ablation(false, 0.0, None), Device::Cpu, 9).unwrap();
    let normed = SdfNetwork::new(&ablation(true, 0.0, None), Device::Cpu, 9).unwrap();
    let x = Tensor::rand([100, 3], (Kind::Float, Device::Cpu));
    let diff = (plain.forward(&x) - normed.forward(&x))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn dropout_acts_in_training_only() {
    let net = SdfNetwork::new(&ablation(false, 0.5, None), Device::Cpu, 2).unwrap();
    let x = Tensor::rand([200, 3], (Kind::Float, Device::Cpu));
    let eval_a = net.forward(&x);
    let eval_b = net.forward(&x);
    assert_eq!(f64::try_from((&eval_a - &eval_b).abs().max()).unwrap(), 0.0);
    let trained = net.forward_t(&x, true);
    assert!(f64::try_from((&eval_a - trained).abs().max()).unwrap() > 0.0);
}

fn encoded(encoding: Encoding, activation: Activation, skip: Option<usize>) -> NetworkConfig {
    let mut config = NetworkConfig {
        depth: 4,
        width: 16,
        skip,
        encoding,
        initialisation: Initialisation::Geometric { radius: 0.5 },
        ..NetworkConfig::default()
    };
    config.set_activation(activation);
    config
}

const FOURIER6: Encoding = Encoding::Fourier { frequencies: 6 };
const SINE: Activation = Activation::Sine { omega0: 30.0 };

#[test]
fn encoding_and_sine_layouts_match_their_configs() {
    for config in [
        encoded(FOURIER6, Activation::Relu, None),
        encoded(FOURIER6, Activation::Relu, Some(2)),
        encoded(Encoding::None, SINE, Some(3)),
        encoded(FOURIER6, SINE, None),
        NetworkConfig {
            weight_norm: true,
            dropout: 0.1,
            ..encoded(FOURIER6, SINE, Some(2))
        },
    ] {
        let net = SdfNetwork::new(&config, Device::Cpu, 3).unwrap();
        for ((name, t), (ename, shape)) in net.parameters().iter().zip(config.parameter_shapes()) {
            assert_eq!(name, &ename);
            assert_eq!(t.size(), shape, "{name}");
        }
        let y = net.forward_t(&Tensor::rand([7, 3], (Kind::Float, Device::Cpu)), true);
        assert_eq!(y.size(), vec![7]);
    }
    // gamma(x) has 3 + 6L features; the skip layer reads them again.
    let shapes = encoded(FOURIER6, Activation::Relu, Some(2)).parameter_shapes();
    assert_eq!(shapes[0], ("hidden.0.weight".to_string(), vec![16, 39]));
    assert_eq!(
        shapes[4],
        ("hidden.2.weight".to_string(), vec![16, 16 + 39])
    );
    // Sine changes no shape.
    assert_eq!(
        encoded(Encoding::None, SINE, Some(3)).parameter_shapes(),
        ablation(false, 0.0, Some(3)).parameter_shapes()
    );
}

#[test]
fn the_encoding_is_x_then_sines_then_cosines() {
    let config = encoded(Encoding::Fourier { frequencies: 2 }, Activation::Relu, None);
    let net = SdfNetwork::new(&config, Device::Cpu, 0).unwrap();
    let x = Tensor::from_slice(&[0.25f32, -0.5, 0.125]).view([1, 3]);
    let g = Vec::<f32>::try_from(net.encode(&x).view([-1])).unwrap();
    assert_eq!(g.len(), 15);
    let pi = std::f32::consts::PI;
    let xs = [0.25f32, -0.5, 0.125];
    for c in 0..3 {
        assert_eq!(g[c], xs[c]);
        for k in 0..2 {
            let phase = 2f32.powi(k as i32) * pi * xs[c];
            assert!((g[3 + c * 2 + k] - phase.sin()).abs() < 1e-6);
            assert!((g[9 + c * 2 + k] - phase.cos()).abs() < 1e-6);
        }
    }
}

#[test]
fn geometric_initialisation_with_fourier_features_is_still_a_sphere() {
    for skip in [None, Some(2)] {
        let sphere = |encoding| NetworkConfig {
            depth: 4,
            width: 256,
            tanh_output: false,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            encoding,
            skip,
            ..NetworkConfig::default()
        };
        let plain = SdfNetwork::new(&sphere(Encoding::None), Device::Cpu, 1).unwrap();
        let fourier = SdfNetwork::new(&sphere(FOURIER6), Device::Cpu, 1).unwrap();
        let x = Tensor::randn([2000, 3], (Kind::Float, Device::Cpu)) * 0.5;
        let y = fourier.forward(&x);
        if skip.is_none() {
            // With a skip the SAL start is off the sphere already for raw
            // xyz (the concatenation adds |x| to the layer's input norm),
            // so there only the equality with the plain network is tested.
            let truth = x.norm_scalaropt_dim(2.0, [1], false) - 0.5;
            let err = (&y - truth).abs().mean(Kind::Float).double_value(&[]);
            assert!(err < 0.15, "mean deviation from the sphere {err}");
        }
        // The sin/cos weights start at zero and the xyz ones are drawn
        // as the plain network draws them: the same function.
        let diff = (&y - plain.forward(&x)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "skip {skip:?}: {diff}");
        // Zero at the start, yet connected: training moves them.
        let first = &fourier.parameters()[0].1;
        let start = first.slice(1, 3, 39, 1).abs().max().double_value(&[]);
        assert_eq!(start, 0.0);
        fourier.forward(&x).sum(Kind::Float).backward();
        let grad = first
            .grad()
            .slice(1, 3, 39, 1)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            grad > 0.0,
            "skip {skip:?}: no gradient reaches the features"
        );
    }
}

#[test]
fn siren_initialisation_uses_its_bounds() {
    let config = NetworkConfig {
        width: 256,
        ..encoded(Encoding::None, SINE, None)
    };
    assert_eq!(config.initialisation, Initialisation::Siren);
    let net = SdfNetwork::new(&config, Device::Cpu, 4).unwrap();
    let params = net.parameters();
    let max = |i: usize| params[i].1.abs().max().double_value(&[]);
    // First layer U(-1/3, 1/3); hidden and output layers
    // U(-sqrt(6/256)/30, sqrt(6/256)/30).
    let first = 1.0 / 3.0;
    assert!(max(0) <= first && max(0) > 0.9 * first, "{}", max(0));
    let later = (6.0f64 / 256.0).sqrt() / 30.0;
    for i in [2, 4, 6, 8] {
        assert!(
            max(i) <= later * 1.0001 && max(i) > 0.9 * later,
            "{i}: {}",
            max(i)
        );
    }
    // Not saturated, not constant.
    let x = Tensor::rand([2000, 3], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let y = net.forward(&x);
    let (top, spread) = (
        y.abs().max().double_value(&[]),
        y.std(true).double_value(&[]),
    );
    assert!(top < 0.9 && spread > 1e-3, "max {top}, std {spread}");
}

#[test]
fn options_parse_from_text() {
    assert_eq!("none".parse::<Encoding>(), Ok(Encoding::None));
    assert_eq!("fourier:6".parse::<Encoding>(), Ok(FOURIER6));
    for bad in ["fourier", "fourier:x", "gauss:3", ""] {
        assert!(bad.parse::<Encoding>().is_err(), "{bad}");
    }
    assert_eq!("relu".parse::<Activation>(), Ok(Activation::Relu));
    assert_eq!(
        "softplus".parse::<Activation>(),
        Ok(Activation::Softplus { beta: 100.0 })
    );
    assert_eq!("sine".parse::<Activation>(), Ok(SINE));
    assert_eq!(
        "sine:12.5".parse::<Activation>(),
        Ok(Activation::Sine { omega0: 12.5 })
    );
    for bad in ["relu:2", "sine:fast", "tanh"] {
        assert!(bad.parse::<Activation>().is_err(), "{bad}");
    }
}

#[test]
fn set_activation_keeps_the_initialisation_consistent() {
    let mut c = NetworkConfig::default();
    c.set_activation(SINE);
    assert_eq!(c.initialisation, Initialisation::Siren);
    assert!(c.validate().is_ok());
    c.set_activation(Activation::Relu);
    assert_eq!(c.initialisation, Initialisation::Geometric { radius: 0.5 });
    assert!(c.validate().is_ok());
    // PyTorch's default stays when sine was never involved.
    let mut d = NetworkConfig::default();
    d.set_activation(Activation::Softplus { beta: 100.0 });
    assert_eq!(d.initialisation, Initialisation::PytorchDefault);
}

#[test]
fn older_configs_without_an_encoding_load_as_raw_xyz() {
    let old = r#"{"depth":8,"width":512,"tanh_output":true,
        "initialisation":"pytorch-default","activation":"relu"}"#;
    let c: NetworkConfig = serde_json::from_str(old).unwrap();
    assert_eq!(c.encoding, Encoding::None);
    let json = serde_json::to_value(encoded(FOURIER6, SINE, None)).unwrap();
    assert_eq!(
        json["encoding"],
        serde_json::json!({"fourier": {"frequencies": 6}})
    );
    assert_eq!(
        json["activation"],
        serde_json::json!({"sine": {"omega0": 30.0}})
    );
    assert_eq!(json["initialisation"], serde_json::json!("siren"));
}

#[test]
fn invalid_encodings_and_sine_settings_are_refused() {
    let message = |c: NetworkConfig| SdfNetwork::new(&c, Device::Cpu, 0).unwrap_err();
    for l in [0, 17] {
        let e = message(encoded(
            Encoding::Fourier { frequencies: l },
            Activation::Relu,
            None,
        ));
        assert!(e.contains("frequencies"), "{e}");
    }
    for omega0 in [0.0, -30.0, f64::NAN, f64::INFINITY] {
        let e = message(encoded(Encoding::None, Activation::Sine { omega0 }, None));
        assert!(e.contains("omega0"), "{e}");
    }
    let geometric_sine = NetworkConfig {
        initialisation: Initialisation::Geometric { radius: 0.5 },
        ..encoded(Encoding::None, SINE, None)
    };
    assert!(message(geometric_sine).contains("needs initialisation siren"));
    let siren_relu = NetworkConfig {
        initialisation: Initialisation::Siren,
        ..encoded(Encoding::None, Activation::Relu, None)
    };
    assert!(message(siren_relu).contains("sine activation only"));
}

/// Trains a 3x32 network with a Fourier encoding and a SIREN on the cube
/// and checks that the loss halves and the sign is right away from the
/// surface.
fn fourier_and_sine_train(device: crate::train::DeviceChoice, cuda_graph: bool) {
    use crate::train::{train, Scheduler, TrainConfig};
    let samples = crate::train::cube_samples(20_000);
    let small = |encoding, activation| NetworkConfig {
        depth: 3,
        width: 32,
        ..encoded(encoding, activation, None)
    };
    let config = TrainConfig {
        iterations: 300,
        batch_size: 512,
        device,
        cuda_graph,
        scheduler: Scheduler::None,
        progress_every: 10,
        ..TrainConfig::default()
    };
    for network in [
        small(FOURIER6, Activation::Relu),
        small(Encoding::None, SINE),
        small(Encoding::Fourier { frequencies: 4 }, SINE),
    ] {
        let mut losses = Vec::new();
        let model = train(
            &samples,
            Normalisation::identity(),
            &network,
            &config,
            &mut |p| {
                losses.push(p.loss);
                true
            },
        )
        .unwrap();
        let (first, last) = (losses[0], *losses.last().unwrap());
        assert!(
            last < 0.5 * first,
            "{:?}/{:?} on {device:?} (graph {cuda_graph}): loss went from {first} to {last}",
            network.encoding,
            network.activation
        );
        let q = model.query(&[[0.0, 0.0, 0.0], [0.0, 0.0, 0.95]]);
        assert!(q[0] < 0.0 && q[1] > 0.0, "{network:?}: {q:?}");
    }
}

#[test]
fn short_trainings_with_fourier_features_and_sine_lower_the_loss() {
    fourier_and_sine_train(crate::train::DeviceChoice::Cpu, false);
}

/// The encoding and the sine units inside a captured CUDA graph; skipped
/// without a GPU.
#[test]
fn cuda_trainings_with_fourier_features_and_sine_lower_the_loss() {
    if !tch::Cuda::is_available() {
        return;
    }
    for graph in [false, true] {
        fourier_and_sine_train(crate::train::DeviceChoice::Cuda, graph);
    }
}

#[test]
fn invalid_configs_are_refused() {
    let no_layers = NetworkConfig {
        depth: 0,
        ..NetworkConfig::default()
    };
    assert!(SdfNetwork::new(&no_layers, Device::Cpu, 0).is_err());
    let no_width = NetworkConfig {
        width: 0,
        ..NetworkConfig::default()
    };
    assert!(SdfNetwork::new(&no_width, Device::Cpu, 0).is_err());
    for bad in [
        ablation(false, 1.0, None),
        ablation(false, -0.1, None),
        ablation(false, 0.0, Some(0)),
        ablation(false, 0.0, Some(5)),
    ] {
        assert!(SdfNetwork::new(&bad, Device::Cpu, 0).is_err(), "{bad:?}");
    }
}
