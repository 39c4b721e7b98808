//! A reader for the subset of ONNX's protobuf encoding that importing an encoder needs: the
//! graph's initializers (name, dims, data type, data) and nodes (op type, inputs, outputs).
//!
//! Hand-written rather than a protobuf crate: five message types and four wire types are all
//! pets reads, and a generated ONNX schema (or candle-onnx) would cost more to compile than the
//! rest of the assets module. Every length is checked against what is left, so a corrupt file
//! is an error naming the byte offset, never a panic. Tensor data is borrowed from the file's
//! bytes (the word embeddings alone are 47 MB).

use std::borrow::Cow;
use thiserror::Error;

/// Where and why the bytes stopped being a valid ONNX model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("byte {offset}: {what}")]
pub struct DecodeError {
    pub offset: usize,
    pub what: String,
}

/// ONNX's `TensorProto.DataType` code for float32, the only one pets imports.
pub const FLOAT: i32 = 1;

/// An initializer (`TensorProto`): a named constant tensor of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTensor<'a> {
    pub name: &'a str,
    pub dims: Vec<u64>,
    pub data_type: i32,
    /// `raw_data` (little-endian) when present.
    pub raw: Option<&'a [u8]>,
    /// `float_data`, the other way an exporter may store float32 values.
    pub floats: Vec<f32>,
    /// Data kept in a side file (`data_location: EXTERNAL`), which pets does not follow.
    pub external: bool,
}

/// A graph node (`NodeProto`); attributes are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnnxNode<'a> {
    pub name: &'a str,
    pub op_type: &'a str,
    pub inputs: Vec<&'a str>,
    pub outputs: Vec<&'a str>,
}

/// The parts of `ModelProto.graph` pets reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnnxGraph<'a> {
    pub initializers: Vec<OnnxTensor<'a>>,
    pub nodes: Vec<OnnxNode<'a>>,
}

impl OnnxTensor<'_> {
    /// Number of elements the dims promise, if it fits in memory at all.
    pub fn element_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, d| {
            usize::try_from(*d).ok().and_then(|d| n.checked_mul(d))
        })
    }

    /// The values as little-endian float32 bytes, checked against the dims; the error says what
    /// is wrong with this tensor (the caller adds the file and the name).
    pub fn f32_le_bytes(&self) -> Result<Cow<'_, [u8]>, String> {
        if self.external {
            return Err("its data is in an external file, which pets does not read".into());
        }
        if self.data_type != FLOAT {
            return Err(format!(
                "data type {} ({}); only float32 (1) is supported",
                self.data_type,
                dtype_name(self.data_type)
            ));
        }
        let bytes: Cow<'_, [u8]> = match self.raw {
            Some(raw) => Cow::Borrowed(raw),
            None => Cow::Owned(self.floats.iter().flat_map(|f| f.to_le_bytes()).collect()),
        };
        let want = self.element_count().and_then(|n| n.checked_mul(4));
        if want != Some(bytes.len()) {
            return Err(format!(
                "dims {:?} need {} bytes of float32 data, found {}",
                self.dims,
                want.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

/// ONNX's names for its data type codes (for error messages).
fn dtype_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "undefined",
        "float",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "int32",
        "int64",
        "string",
        "bool",
        "float16",
        "double",
        "uint32",
        "uint64",
        "complex64",
        "complex128",
        "bfloat16",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown")
}

/// Decodes a serialized `ModelProto`, keeping only its graph's initializers and nodes.
pub fn parse_model(bytes: &[u8]) -> Result<OnnxGraph<'_>, DecodeError> {
    let mut model = Reader::new(bytes, 0);
    let mut graph = OnnxGraph::default();
    let mut seen = false;
    while let Some((field, value)) = model.field()? {
        if field == 7 {
            // Protobuf merges a repeated embedded message, so a second graph field extends the first.
            parse_graph(value.message(&model, "ModelProto.graph")?, &mut graph)?;
            seen = true;
        }
    }
    if !seen {
        return Err(model.error("no graph (ModelProto field 7): not an ONNX model"));
    }
    Ok(graph)
}

fn parse_graph<'a>(mut r: Reader<'a>, graph: &mut OnnxGraph<'a>) -> Result<(), DecodeError> {
    while let Some((field, value)) = r.field()? {
        match field {
            1 => graph
                .nodes
                .push(parse_node(value.message(&r, "GraphProto.node")?)?),
            5 => graph
                .initializers
                .push(parse_tensor(value.message(&r, "GraphProto.initializer")?)?),
            _ => {}
        }
    }
    Ok(())
}

fn parse_node(mut r: Reader<'_>) -> Result<OnnxNode<'_>, DecodeError> {
    let mut node = OnnxNode::default();
    while let Some((field, value)) = r.field()? {
        match field {
            1 => node.inputs.push(value.string(&r, "NodeProto.input")?),
            2 => node.outputs.push(value.string(&r, "NodeProto.output")?),
            3 => node.name = value.string(&r, "NodeProto.name")?,
            4 => node.op_type = value.string(&r, "NodeProto.op_type")?,
            _ => {}
        }
    }
    Ok(node)
}

fn parse_tensor(mut r: Reader<'_>) -> Result<OnnxTensor<'_>, DecodeError> {
    let mut t = OnnxTensor {
        name: "",
        dims: Vec::new(),
        data_type: 0,
        raw: None,
        floats: Vec::new(),
        external: false,
    };
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            // Repeated scalars may come one per field or packed into one length-delimited field.
            (1, Value::Varint(d)) => t.dims.push(dim(d, &r)?),
            (1, Value::Len(mut packed)) => {
                while !packed.done() {
                    let d = packed.varint()?;
                    t.dims.push(dim(d, &packed)?);
                }
            }
            // int32 fields are varints; negative values are sign-extended to 64 bits.
            (2, Value::Varint(v)) => t.data_type = v as i64 as i32,
            (4, Value::Fixed32(bits)) => t.floats.push(f32::from_bits(bits)),
            (4, Value::Len(packed)) => {
                let bytes = packed.rest();
                if bytes.len() % 4 != 0 {
                    return Err(packed.error("packed float_data length is not a multiple of 4"));
                }
                t.floats.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (8, v) => t.name = v.string(&r, "TensorProto.name")?,
            (9, v) => t.raw = Some(v.message(&r, "TensorProto.raw_data")?.rest()),
            (13, _) => t.external = true,
            (14, Value::Varint(location)) => t.external |= location == 1,
            (1 | 2 | 4 | 14, _) => {
                return Err(r.error(&format!(
                    "TensorProto field {field} has the wrong wire type"
                )))
            }
            _ => {}
        }
    }
    Ok(t)
}

/// A dimension: int64 on the wire, and never negative in an initializer.
fn dim(d: u64, r: &Reader<'_>) -> Result<u64, DecodeError> {
    if (d as i64) < 0 {
        return Err(r.error(&format!("negative dimension {}", d as i64)));
    }
    Ok(d)
}

/// One field's payload, by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Len(Reader<'a>),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    fn message(self, at: &Reader<'a>, what: &str) -> Result<Reader<'a>, DecodeError> {
        match self {
            Value::Len(r) => Ok(r),
            _ => Err(at.error(&format!("{what} is not length-delimited"))),
        }
    }

    fn string(self, at: &Reader<'a>, what: &str) -> Result<&'a str, DecodeError> {
        let r = self.message(at, what)?;
        std::str::from_utf8(r.rest()).map_err(|_| r.error(&format!("{what} is not UTF-8")))
    }
}

/// A cursor over one message's bytes; `base` is where they start in the file (for errors).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    fn error(&self, what: &str) -> DecodeError {
        DecodeError {
            offset: self.base + self.pos,
            what: what.to_string(),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<(&'a [u8], usize), DecodeError> {
        let left = self.buf.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let start = self.pos;
                self.pos += n;
                Ok((&self.buf[start..start + n], self.base + start))
            }
            _ => Err(self.error(&format!("truncated: a field needs {n} bytes, {left} left"))),
        }
    }

    /// The next (field number, value), or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, DecodeError> {
        if self.done() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err(self.error("field number 0"));
        }
        let value = match wire {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = self.varint()?;
                let (bytes, base) = self.take(n)?;
                Value::Len(Reader::new(bytes, base))
            }
            5 => {
                let (b, _) = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            // 3 and 4 are proto2 groups, which ONNX never uses.
            _ => return Err(self.error(&format!("unsupported wire type {wire}"))),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
#[path = "onnx_tests.rs"]
pub(crate) mod tests;
