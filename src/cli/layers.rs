//! The layer-list syntax of `--model custom --layers`, for the command line or a small file.
//!
//! Items are separated by commas or new lines; `#` starts a comment. Each item is one layer:
//!   conv:OUT:K[:STRIDE[:PAD]]   Conv2d with OUT channels, a KxK kernel (stride 1, padding 0)
//!   maxpool:K[:STRIDE]          MaxPool2d, stride K by default
//!   flatten                     [c, h, w] -> [c * h * w]
//!   linear:N                    Linear with N outputs (the last one is the classes)
//!   relu
//! LeNet-5: `conv:6:5:1:2,relu,maxpool:2,conv:16:5,relu,maxpool:2,flatten,linear:120,relu,
//! linear:84,relu,linear:10`. The input is an MNIST image, `[1, 28, 28]`, or its 784 pixels
//! when the first layer is linear. The loss is cross-entropy over the last layer's outputs.

use wgrad::data::mnist;
use wgrad::model::{Layer, Loss, ModelSpec};
use wgrad::Error;

/// Parses `text`, or the file it names after `@`, into a model.
pub fn parse_model(text: &str) -> Result<ModelSpec, Error> {
    let (source, body) = match text.strip_prefix('@') {
        Some(path) => {
            let body = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            (format!("{path}: "), body)
        }
        None => ("--layers: ".to_string(), text.to_string()),
    };
    let mut layers = Vec::new();
    for (line_no, line) in body.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for item in line.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let at = if source.starts_with("--") {
                String::new()
            } else {
                format!("line {}: ", line_no + 1)
            };
            layers.push(parse_layer(item).map_err(|e| Error::Config(format!("{source}{at}{e}")))?);
        }
    }
    if layers.is_empty() {
        return Err(Error::Config(format!("{source}no layers given")));
    }
    let input = if matches!(layers[0], Layer::Linear { .. }) {
        vec![mnist::DIM]
    } else {
        vec![1, mnist::SIDE, mnist::SIDE]
    };
    let spec = ModelSpec {
        name: "custom".into(),
        input,
        layers,
        loss: Loss::CrossEntropy,
    };
    spec.resolve()
        .map_err(|e| Error::Config(format!("{source}{e}")))?;
    Ok(spec)
}

fn parse_layer(item: &str) -> Result<Layer, String> {
    let parts: Vec<&str> = item.split(':').collect();
    let num = |i: usize, what: &str| -> Result<usize, String> {
        let s = parts
            .get(i)
            .ok_or_else(|| format!("{item:?} lacks its {what}"))?;
        match s.parse::<usize>() {
            Ok(v) if v > 0 || what == "padding" => Ok(v),
            _ => Err(format!(
                "{item:?}: {what} {s:?} is not a positive whole number"
            )),
        }
    };
    let opt = |i: usize, what: &str, default: usize| {
        if parts.len() > i {
            num(i, what)
        } else {
            Ok(default)
        }
    };
    let max_parts = match parts[0] {
        "conv" => 5,
        "maxpool" => 3,
        "linear" => 2,
        "flatten" | "relu" => 1,
        other => {
            return Err(format!(
                "unknown layer {other:?} in {item:?}; expected conv, maxpool, flatten, linear \
                 or relu"
            ))
        }
    };
    if parts.len() > max_parts {
        return Err(format!("{item:?} has too many fields"));
    }
    Ok(match parts[0] {
        "conv" => Layer::Conv2d {
            out: num(1, "channel count")?,
            kernel: num(2, "kernel size")?,
            stride: opt(3, "stride", 1)?,
            padding: opt(4, "padding", 0)?,
        },
        "maxpool" => {
            let kernel = num(1, "window size")?;
            Layer::MaxPool2d {
                kernel,
                stride: opt(2, "stride", kernel)?,
            }
        }
        "linear" => Layer::Linear {
            out: num(1, "output count")?,
        },
        "flatten" => Layer::Flatten,
        _ => Layer::Relu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet_list_is_the_lenet_preset() {
        let list = "conv:6:5:1:2,relu,maxpool:2,conv:16:5,relu,maxpool:2,flatten,\
                    linear:120,relu,linear:84,relu,linear:10";
        let spec = parse_model(list).unwrap();
        assert_eq!(spec.layers, ModelSpec::lenet5().layers);
        assert_eq!(spec.input, vec![1, 28, 28]);
    }

    #[test]
    fn bad_lists_name_the_item() {
        for (list, part) in [
            ("conv:6", "kernel size"),
            ("conv:6:x", "\"x\""),
            ("pool:2", "unknown layer"),
            ("linear:0", "positive"),
            ("linear:10:3", "too many"),
            ("conv:6:5,relu,linear:10", "flatten first"),
            ("", "no layers"),
        ] {
            let e = parse_model(list).unwrap_err().to_string();
            assert!(e.contains(part), "{list:?}: {e}");
        }
    }
}
