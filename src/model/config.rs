//! The network's settings: its shape, initialisation, activation and input
//! encoding (`NetworkConfig` and its parts), checked by `validate`, and the
//! parameter layout they fix.

use serde::{Deserialize, Serialize};

/// How the weights start. The paper uses PyTorch's default; a geometric
/// initialisation (Atzmon & Lipman, SAL 2020) starts the network as the SDF of
/// a sphere, which keeps training from collapsing to a constant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Initialisation {
    /// PyTorch's `nn.Linear` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    /// weights and biases. tch's own default (Kaiming with ReLU gain) is
    /// larger and saturates the tanh output, so we never use it.
    PytorchDefault,
    /// The network starts as `|x| - radius` (in the unit-sphere frame).
    /// With a Fourier encoding the first layer (and the skip layer's input
    /// part) reads only the raw coordinates at the start: the weights on the
    /// sin/cos features start at zero, so the network still starts as the
    /// sphere and the features come in as training needs them.
    Geometric { radius: f64 },
    /// SIREN's (Sitzmann et al. 2020), the only one that fits the sine
    /// activation and the only activation it fits: first layer
    /// U(-1/fan_in, 1/fan_in), later layers U(-sqrt(6/fan_in)/omega0,
    /// sqrt(6/fan_in)/omega0), biases PyTorch's default.
    Siren,
}

/// The non-linearity between hidden layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// The paper's choice.
    #[default]
    Relu,
    /// softplus(beta x) / beta: a smooth ReLU (beta 100 is common for SDFs),
    /// whose gradients (normals) are continuous.
    Softplus { beta: f64 },
    /// SIREN (Sitzmann et al. 2020): sin(omega0 (W h + b)) in every hidden
    /// layer, including the first; needs `Initialisation::Siren`.
    Sine { omega0: f64 },
}

impl std::str::FromStr for Activation {
    type Err = String;

    /// `relu`, `softplus[:beta]` (beta 100 by default) or `sine[:omega0]`
    /// (omega0 30 by default, SIREN's).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s, None),
        };
        let number = |default: f64| -> Result<f64, String> {
            match arg {
                None => Ok(default),
                Some(a) => a
                    .parse::<f64>()
                    .map_err(|_| format!("{name}: cannot read the number {a:?}")),
            }
        };
        match name {
            "relu" if arg.is_none() => Ok(Activation::Relu),
            "softplus" => Ok(Activation::Softplus {
                beta: number(100.0)?,
            }),
            "sine" => Ok(Activation::Sine {
                omega0: number(30.0)?,
            }),
            _ => Err(format!(
                "expected relu, softplus[:beta] or sine[:omega0], got {s:?}"
            )),
        }
    }
}

/// What the first layer reads. The skip layer reads the same encoded input,
/// so both see the same features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Raw xyz, the paper's input.
    #[default]
    None,
    /// NeRF's positional encoding (Mildenhall et al. 2020; Tancik et al.
    /// 2020): gamma(x) = [x, sin(2^k pi x), cos(2^k pi x)] for k = 0..L-1,
    /// 3 + 6L features. The columns are, in this order: x, y, z; then
    /// sin(2^k pi x_c) at 3 + c L + k; then cos(2^k pi x_c) at 3 + 3L + c L + k.
    /// The model file's first-layer weights depend on this order.
    Fourier { frequencies: usize },
}

impl Encoding {
    /// Largest number of frequencies: 2^15 pi ~ 1e5 is already far beyond
    /// what f32 sin resolves over the unit ball.
    pub const MAX_FREQUENCIES: usize = 16;

    /// Features per point after encoding.
    pub fn features(self) -> i64 {
        match self {
            Encoding::None => 3,
            Encoding::Fourier { frequencies } => 3 + 6 * frequencies as i64,
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;

    /// `none` or `fourier:L`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once(':') {
            None if s == "none" => Ok(Encoding::None),
            Some(("fourier", l)) => l
                .trim()
                .parse::<usize>()
                .map(|frequencies| Encoding::Fourier { frequencies })
                .map_err(|_| format!("fourier: cannot read the frequency count {l:?}")),
            _ => Err(format!(
                "expected none or fourier:L (e.g. fourier:6), got {s:?}"
            )),
        }
    }
}

/// The network's shape. `depth` counts the hidden fully-connected layers of
/// `width` units, each followed by the activation; one more linear layer maps
/// to the SDF value, optionally through tanh. The paper's network is depth 8,
/// width 512, ReLU, tanh, no regularisation (Sec. 4.1); its ablations (weight
/// normalisation, dropout, a skip connection of the input into layer 4) are
/// options here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub depth: usize,
    pub width: usize,
    pub tanh_output: bool,
    pub initialisation: Initialisation,
    #[serde(default)]
    pub activation: Activation,
    /// Weight normalisation (Salimans & Kingma 2016) of every layer:
    /// w = g v / |v| per output unit, with v and g trained.
    #[serde(default)]
    pub weight_norm: bool,
    /// Dropout probability after every hidden activation, in training only.
    #[serde(default)]
    pub dropout: f64,
    /// Hidden layer (0-based) whose input is the previous layer's output
    /// concatenated with the input point, as in DeepSDF (the paper's
    /// "skip connection to layer 4" is `Some(4)`).
    #[serde(default)]
    pub skip: Option<usize>,
    /// Encoding of the input point before the first layer.
    #[serde(default)]
    pub encoding: Encoding,
}

impl Default for NetworkConfig {
    /// The paper's network (Sec. 4.1.2).
    fn default() -> Self {
        NetworkConfig {
            depth: 8,
            width: 512,
            tanh_output: true,
            initialisation: Initialisation::PytorchDefault,
            activation: Activation::Relu,
            weight_norm: false,
            dropout: 0.0,
            skip: None,
            encoding: Encoding::None,
        }
    }
}

/// One linear layer's place in the network.
pub(super) struct LayerShape {
    pub(super) prefix: String,
    pub(super) fan_in: i64,
    pub(super) fan_out: i64,
}

impl NetworkConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.depth == 0 || self.depth > 64 {
            return Err(format!("depth must be 1..=64, got {}", self.depth));
        }
        if self.width == 0 || self.width > 8192 {
            return Err(format!("width must be 1..=8192, got {}", self.width));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if let Some(k) = self.skip {
            if k == 0 || k > self.depth {
                return Err(format!(
                    "skip layer must be 1..={} (a later layer than the first), got {k}",
                    self.depth
                ));
            }
        }
        match self.activation {
            Activation::Softplus { beta } if !(beta.is_finite() && beta > 0.0) => {
                return Err(format!("softplus beta must be positive, got {beta}"));
            }
            Activation::Sine { omega0 } if !(omega0.is_finite() && omega0 > 0.0) => {
                return Err(format!("sine omega0 must be positive, got {omega0}"));
            }
            _ => {}
        }
        // SIREN's initialisation is what makes a sine network work (it keeps
        // every layer's pre-activations spread over a few periods); the
        // geometric one assumes ReLU-like units and PyTorch's gives a
        // near-constant sine network. Refused rather than silently replaced,
        // so the stored configuration says what was trained.
        let sine = matches!(self.activation, Activation::Sine { .. });
        let siren = self.initialisation == Initialisation::Siren;
        if sine && !siren {
            return Err(
                "the sine activation needs initialisation siren (SIREN's own); \
                 geometric and pytorch-default initialisations do not fit sine units"
                    .into(),
            );
        }
        if siren && !sine {
            return Err(
                "initialisation siren is for the sine activation only; use geometric or \
                 pytorch-default with relu or softplus"
                    .into(),
            );
        }
        if let Encoding::Fourier { frequencies } = self.encoding {
            if !(1..=Encoding::MAX_FREQUENCIES).contains(&frequencies) {
                return Err(format!(
                    "fourier encoding needs 1..={} frequencies, got {frequencies}",
                    Encoding::MAX_FREQUENCIES
                ));
            }
        }
        Ok(())
    }

    /// Sets the activation and keeps the initialisation consistent with it:
    /// sine brings SIREN's initialisation, and leaving sine returns to the
    /// geometric one (radius 0.5, that of hisdf's own presets). What the
    /// command line and the C API use, so one setting switches both.
    pub fn set_activation(&mut self, activation: Activation) {
        self.activation = activation;
        match activation {
            Activation::Sine { .. } => self.initialisation = Initialisation::Siren,
            _ if self.initialisation == Initialisation::Siren => {
                self.initialisation = Initialisation::Geometric { radius: 0.5 }
            }
            _ => {}
        }
    }

    pub(super) fn layers(&self) -> Vec<LayerShape> {
        let mut layers = Vec::with_capacity(self.depth + 1);
        let input = self.encoding.features();
        let mut fan_in = input;
        for i in 0..=self.depth {
            let is_output = i == self.depth;
            if self.skip == Some(i) {
                fan_in += input;
            }
            let fan_out = if is_output { 1 } else { self.width as i64 };
            let prefix = if is_output {
                "output".to_string()
            } else {
                format!("hidden.{i}")
            };
            layers.push(LayerShape {
                prefix,
                fan_in,
                fan_out,
            });
            fan_in = fan_out;
        }
        layers
    }

    /// Names and shapes of every parameter, in layer order. The model file
    /// stores exactly these, so this is the one place that fixes the layout.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let mut shapes = Vec::with_capacity(3 * self.depth + 3);
        for l in self.layers() {
            shapes.push((format!("{}.weight", l.prefix), vec![l.fan_out, l.fan_in]));
            if self.weight_norm {
                shapes.push((format!("{}.weight_g", l.prefix), vec![l.fan_out, 1]));
            }
            shapes.push((format!("{}.bias", l.prefix), vec![l.fan_out]));
        }
        shapes
    }
}
