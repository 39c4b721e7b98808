//! Unit tests of the ONNX protobuf reader on hand-built bytes, and the tiny protobuf writer
//! that builds them (also used by the import's tests).

use super::*;

pub(crate) fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn key(field: u64, wire: u64) -> Vec<u8> {
    varint(field << 3 | wire)
}

pub(crate) fn int_field(field: u64, v: u64) -> Vec<u8> {
    [key(field, 0), varint(v)].concat()
}

pub(crate) fn len_field(field: u64, bytes: &[u8]) -> Vec<u8> {
    [key(field, 2), varint(bytes.len() as u64), bytes.to_vec()].concat()
}

pub(crate) fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
    let mut out = len_field(3, format!("{op}_node").as_bytes());
    out.extend(len_field(4, op.as_bytes()));
    for i in inputs {
        out.extend(len_field(1, i.as_bytes()));
    }
    for o in outputs {
        out.extend(len_field(2, o.as_bytes()));
    }
    out
}

/// A float32 initializer with its data in `raw_data`.
pub(crate) fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    let mut out: Vec<u8> = dims.iter().flat_map(|d| int_field(1, *d as u64)).collect();
    out.extend(int_field(2, 1));
    out.extend(len_field(8, name.as_bytes()));
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.extend(len_field(9, &raw));
    out
}

pub(crate) fn model(graph: &[u8]) -> Vec<u8> {
    // ir_version and producer_name first, as exporters write them: fields the reader skips.
    [
        int_field(1, 8),
        len_field(2, b"pytorch"),
        len_field(7, graph),
    ]
    .concat()
}

/// A graph with a raw-data matrix (dims unpacked), a packed-float vector (dims packed), one
/// fixed32 float, unknown fields of every wire type, and a MatMul → Add pair.
fn sample() -> Vec<u8> {
    let raw: Vec<u8> = (0..6u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    let w = [
        int_field(1, 2),
        int_field(1, 3),
        int_field(2, 1),
        len_field(8, b"onnx::MatMul_1"),
        len_field(9, &raw),
    ]
    .concat();
    let floats: Vec<u8> = [0.5f32, -2.0, 1e-12]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let dims300 = [varint(300), varint(1)].concat();
    let b = [
        len_field(1, &dims300),
        int_field(2, 1),
        len_field(4, &floats),
        [key(4, 5), 3.25f32.to_le_bytes().to_vec()].concat(),
        len_field(8, b"enc.bias"),
        [key(99, 1), vec![0; 8]].concat(), // unknown fixed64
        [key(98, 5), vec![0; 4]].concat(), // unknown fixed32
        int_field(97, u64::MAX),           // unknown varint, 10 bytes
        len_field(96, b"doc"),             // unknown length-delimited
    ]
    .concat();
    let graph = [
        len_field(1, &node("MatMul", &["x", "onnx::MatMul_1"], &["mm"])),
        len_field(1, &node("Add", &["enc.bias", "mm"], &["y"])),
        len_field(2, b"main_graph"),
        len_field(5, &w),
        len_field(5, &b),
    ]
    .concat();
    model(&graph)
}

#[test]
fn varints_are_little_endian_base_128() {
    for v in [0, 1, 127, 128, 300, 30522, u64::from(u32::MAX), u64::MAX] {
        let bytes = varint(v);
        let mut r = Reader::new(&bytes, 0);
        assert_eq!(r.varint(), Ok(v));
        assert!(r.done());
    }
    assert_eq!(varint(300), [0xac, 0x02]);
    let eleven = [0xff; 11];
    let err = Reader::new(&eleven, 5).varint().err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("byte 15: varint longer than 10 bytes")
    );
}

#[test]
fn reads_initializers_and_nodes() -> Result<(), DecodeError> {
    let bytes = sample();
    let graph = parse_model(&bytes)?;
    assert_eq!(graph.nodes.len(), 2);
    assert_eq!(graph.nodes[0].op_type, "MatMul");
    assert_eq!(graph.nodes[0].name, "MatMul_node");
    assert_eq!(graph.nodes[0].inputs, ["x", "onnx::MatMul_1"]);
    assert_eq!(graph.nodes[1].outputs, ["y"]);
    let [w, b] = &graph.initializers[..] else {
        panic!(
            "two initializers expected, got {}",
            graph.initializers.len()
        );
    };
    assert_eq!(
        (w.name, &w.dims[..], w.data_type),
        ("onnx::MatMul_1", &[2, 3][..], 1)
    );
    let values: Vec<f32> = w
        .f32_le_bytes()
        .map_err(|e| DecodeError { offset: 0, what: e })?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!((b.name, &b.dims[..]), ("enc.bias", &[300, 1][..]));
    assert_eq!(b.floats, [0.5, -2.0, 1e-12, 3.25]);
    // float_data holds 4 values where the dims promise 300.
    assert_eq!(
        b.f32_le_bytes().err().as_deref(),
        Some("dims [300, 1] need 1200 bytes of float32 data, found 16")
    );
    Ok(())
}

#[test]
fn unsupported_tensors_say_why() {
    let mut t = OnnxTensor {
        name: "ids",
        dims: vec![2],
        data_type: 7,
        raw: Some(&[0; 16]),
        floats: vec![],
        external: false,
    };
    assert_eq!(
        t.f32_le_bytes().err().as_deref(),
        Some("data type 7 (int64); only float32 (1) is supported")
    );
    t.data_type = 1;
    t.external = true;
    assert!(t.f32_le_bytes().is_err_and(|e| e.contains("external file")));
    t.external = false;
    t.dims = vec![u64::MAX / 2, 4];
    assert!(t
        .f32_le_bytes()
        .is_err_and(|e| e.contains("need too many bytes")));
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let bytes = sample();
    // Every cut inside the graph message leaves a length that runs past the end.
    let graph_key = 11; // after ir_version (2 bytes) and producer_name (9)
    for cut in graph_key + 1..bytes.len() {
        let err = parse_model(&bytes[..cut]).err();
        let msg = err.map(|e| e.what).unwrap_or_default();
        assert!(msg.starts_with("truncated"), "cut at {cut}: {msg:?}");
    }
}

#[test]
fn malformed_input_names_the_offset() {
    let msg = |bytes: &[u8]| parse_model(bytes).err().map(|e| e.to_string());
    assert_eq!(
        msg(&int_field(1, 8)).as_deref(),
        Some("byte 2: no graph (ModelProto field 7): not an ONNX model")
    );
    assert_eq!(
        msg(&[key(3, 3), vec![0]].concat()).as_deref(),
        Some("byte 1: unsupported wire type 3")
    );
    assert_eq!(
        msg(&[0x00, 0x01]).as_deref(),
        Some("byte 1: field number 0")
    );
    // The graph field as a varint: wrong wire type for a message.
    assert_eq!(
        msg(&int_field(7, 1)).as_deref(),
        Some("byte 2: ModelProto.graph is not length-delimited")
    );
    // A node name that is not UTF-8; the offset points into the graph message.
    let bad = model(&len_field(1, &len_field(3, &[0xff, 0xfe])));
    assert_eq!(
        msg(&bad).as_deref(),
        Some("byte 17: NodeProto.name is not UTF-8")
    );
    // Packed floats whose length is not a multiple of four.
    let bad = model(&len_field(5, &len_field(4, &[0, 0, 0])));
    assert!(msg(&bad).is_some_and(|m| m.contains("not a multiple of 4")));
    // A negative dimension (int64 -1 is ten bytes on the wire).
    let bad = model(&len_field(5, &int_field(1, u64::MAX)));
    assert!(msg(&bad).is_some_and(|m| m.ends_with("negative dimension -1")));
}
