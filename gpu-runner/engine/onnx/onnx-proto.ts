// ONNX ModelProto encoding (onnx/onnx.proto, field numbers cited per message). Only the messages a
// feed-forward graph needs: Model, OperatorSetId, Graph, Node, Attribute, Tensor, ValueInfo, TypeProto.
import { ProtoWriter } from "./proto-writer.ts";

/** TensorProto.DataType values. */
export const ELEM_TYPES = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10 } as const;
export type ElemType = keyof typeof ELEM_TYPES;

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export interface TensorDef {
  name: string;
  elemType: ElemType;
  dims: number[];
  /** Little-endian raw bytes, or a reference into the external data file. */
  data: Uint8Array | ExternalRef;
}

export type AttrValue =
  | { i: number }
  | { f: number }
  | { ints: number[] }
  | { floats: number[] }
  | { s: string }
  | { t: TensorDef };

export interface NodeDef {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  /** Operator set domain; absent for the default ONNX domain ("com.microsoft" for ORT's contrib ops). */
  domain?: string;
}

export interface ValueInfo {
  name: string;
  elemType: ElemType;
  /** A number is a fixed size; a string names a symbolic (dynamic) dimension. */
  dims: (number | string)[];
}

export interface GraphDef {
  name: string;
  nodes: NodeDef[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: TensorDef[];
}

// AttributeProto.AttributeType
const ATTR_TYPE = { f: 1, i: 2, s: 3, t: 4, floats: 6, ints: 7 } as const;

function encodeTensor(t: TensorDef): ProtoWriter {
  // TensorProto: dims=1, data_type=2, name=8, raw_data=9, external_data=13, data_location=14
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, ELEM_TYPES[t.elemType]);
  w.string(8, t.name);
  if (t.data instanceof Uint8Array) return w.bytes(9, t.data);
  const entries: [string, string][] = [
    ["location", t.data.location],
    ["offset", String(t.data.offset)],
    ["length", String(t.data.length)],
  ];
  for (const [key, value] of entries) w.message(13, new ProtoWriter().string(1, key).string(2, value));
  return w.varint(14, 1);
}

function encodeAttribute(name: string, value: AttrValue): ProtoWriter {
  // AttributeProto: name=1, f=2, i=3, s=4, t=5, floats=7, ints=8, type=20
  const w = new ProtoWriter().string(1, name);
  if ("f" in value) w.float(2, value.f).varint(20, ATTR_TYPE.f);
  else if ("i" in value) w.varint(3, value.i).varint(20, ATTR_TYPE.i);
  else if ("s" in value) w.string(4, value.s).varint(20, ATTR_TYPE.s);
  else if ("t" in value) w.message(5, encodeTensor(value.t)).varint(20, ATTR_TYPE.t);
  else if ("floats" in value) {
    for (const f of value.floats) w.float(7, f);
    w.varint(20, ATTR_TYPE.floats);
  } else {
    for (const i of value.ints) w.varint(8, i);
    w.varint(20, ATTR_TYPE.ints);
  }
  return w;
}

function encodeNode(n: NodeDef): ProtoWriter {
  // NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.op);
  for (const [name, value] of Object.entries(n.attrs)) w.message(5, encodeAttribute(name, value));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  // ValueInfoProto: name=1, type=2; TypeProto: tensor_type=1; Tensor: elem_type=1, shape=2;
  // TensorShapeProto: dim=1; Dimension: dim_value=1, dim_param=2
  const shape = new ProtoWriter();
  for (const d of v.dims) {
    const dim = typeof d === "number" ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().varint(1, ELEM_TYPES[v.elemType]).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

function encodeGraph(g: GraphDef): ProtoWriter {
  // GraphProto: node=1, name=2, initializer=5, input=11, output=12
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  for (const v of g.inputs) w.message(11, encodeValueInfo(v));
  for (const v of g.outputs) w.message(12, encodeValueInfo(v));
  return w;
}

/** IR version 8 pairs with opset 17 (onnx/docs/Versioning.md). */
export const IR_VERSION = 8;
export const OPSET = 17;
/** ORT's contrib operator set (GroupQueryAttention, SkipSimplifiedLayerNormalization, ...), version 1. */
export const MS_DOMAIN = "com.microsoft";

export function encodeModel(graph: GraphDef): ProtoWriter {
  // ModelProto: ir_version=1, producer_name=2, producer_version=3, graph=7, opset_import=8
  const opset = new ProtoWriter().string(1, "").varint(2, OPSET);
  const w = new ProtoWriter()
    .varint(1, IR_VERSION)
    .string(2, "lora-edge")
    .string(3, "0.1.0")
    .message(7, encodeGraph(graph))
    .message(8, opset);
  if (graph.nodes.some((n) => n.domain === MS_DOMAIN)) {
    w.message(8, new ProtoWriter().string(1, MS_DOMAIN).varint(2, 1));
  }
  return w;
}
