// Collects nodes, inputs, outputs and initializers, then serialises a ModelProto. Initializer data is
// produced lazily, so a large model's weights can be streamed one tensor at a time into an external data
// file instead of being held twice (protobuf caps a message at 2 GB anyway).
import { closeSync, openSync, writeSync } from "node:fs";
import { toFloat16 } from "../float16.ts";
import {
  type AttrValue,
  type ElemType,
  encodeModel,
  type GraphDef,
  type NodeDef,
  type TensorDef,
  type ValueInfo,
} from "./onnx-proto.ts";

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

interface LazyInitializer {
  name: string;
  elemType: ElemType;
  dims: number[];
  provide: () => TensorData;
}

function rawBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly initializers: LazyInitializer[] = [];
  private counter = 0;
  private scopeName = "";
  private readonly constants = new Map<string, string>();
  /** Node outputs already exposed as graph outputs, by their original name. */
  private readonly renamed = new Map<string, string>();

  /** Names nodes built inside `fn` under a prefix, so profiles read "layers.3.attn/MatMul_12". */
  scope<T>(name: string, fn: () => T): T {
    const previous = this.scopeName;
    this.scopeName = previous ? `${previous}.${name}` : name;
    try {
      return fn();
    } finally {
      this.scopeName = previous;
    }
  }

  private fresh(op: string): string {
    this.counter += 1;
    return this.scopeName ? `${this.scopeName}/${op}_${this.counter}` : `${op}_${this.counter}`;
  }

  input(name: string, elemType: ElemType, dims: (number | string)[]): string {
    this.inputs.push({ name, elemType, dims });
    return name;
  }

  /**
   * Exposes `value` as graph output `name`. A node's output is renamed in place: an Identity node would cost
   * a copy per run (ORT copies through Identity), which for KV outputs is the whole cache. A value no node
   * produces (a graph input, an initializer, or one already exposed under another name) gets an Identity.
   */
  output(name: string, value: string, elemType: ElemType, dims: (number | string)[]): void {
    const exposedAs = this.renamed.get(value);
    const producer = this.nodes.some((n) => n.outputs.includes(value));
    if (exposedAs !== undefined || !producer) {
      const source = exposedAs ?? value;
      this.nodes.push({
        op: "Identity",
        name: this.fresh("Identity"),
        inputs: [source],
        outputs: [name],
        attrs: {},
      });
    } else {
      const rename = (v: string) => (v === value ? name : v);
      for (const node of this.nodes) {
        node.inputs = node.inputs.map(rename);
        node.outputs = node.outputs.map(rename);
      }
      this.renamed.set(value, name);
    }
    this.outputs.push({ name, elemType, dims });
  }

  initializer(name: string, elemType: ElemType, dims: number[], provide: () => TensorData): string {
    this.initializers.push({ name, elemType, dims, provide });
    return name;
  }

  /** A cached constant tensor (shapes, axes, scalars). */
  constant(
    elemType: "int64" | "float32" | "float16",
    values: number[],
    dims: number[] = [values.length],
  ): string {
    const key = `${elemType}:${dims.join(",")}:${values.join(",")}`;
    const cached = this.constants.get(key);
    if (cached) return cached;
    const name = `const_${this.constants.size}_${elemType}`;
    const data =
      elemType === "int64"
        ? BigInt64Array.from(values, (v) => BigInt(v))
        : elemType === "float16"
          ? toFloat16(Float32Array.from(values))
          : Float32Array.from(values);
    this.initializer(name, elemType, dims, () => data);
    this.constants.set(key, name);
    return name;
  }

  /** Adds a node and returns its output names. An empty input name skips an optional input. */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outputCount = 1,
    domain?: string,
  ): string[] {
    const name = this.fresh(op);
    const outputs = Array.from({ length: outputCount }, (_, i) => `${name}:${i}`);
    // A value exposed as a graph output earlier was renamed; later consumers must use the new name.
    const resolved = inputs.map((i) => this.renamed.get(i) ?? i);
    this.nodes.push({ op, name, inputs: resolved, outputs, attrs, ...(domain ? { domain } : {}) });
    return outputs;
  }

  /** A node with exactly one output. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(op, inputs, attrs, 1)[0] as string;
  }

  private graphDef(initializers: TensorDef[]): GraphDef {
    return { name: "lora-edge", nodes: this.nodes, inputs: this.inputs, outputs: this.outputs, initializers };
  }

  /** The whole model in one buffer, weights embedded. For models well under 2 GB. */
  toBytes(): Uint8Array {
    const tensors = this.initializers.map((t) => ({ ...t, data: rawBytes(t.provide()) }));
    return encodeModel(this.graphDef(tensors)).finish();
  }

  /**
   * Streams every initializer larger than `minBytes` into `dataPath` (one tensor in memory at a time) and
   * returns the model bytes that reference it by `location` (a path relative to the model file).
   */
  toBytesWithExternalData(dataPath: string, location: string, minBytes = 1024): Uint8Array {
    const fd = openSync(dataPath, "w");
    let offset = 0;
    const tensors: TensorDef[] = [];
    try {
      for (const t of this.initializers) {
        const bytes = rawBytes(t.provide());
        if (bytes.byteLength < minBytes) {
          tensors.push({ ...t, data: bytes });
          continue;
        }
        writeSync(fd, bytes);
        tensors.push({ ...t, data: { location, offset, length: bytes.byteLength } });
        offset += bytes.byteLength;
      }
    } finally {
      closeSync(fd);
    }
    return encodeModel(this.graphDef(tensors)).finish();
  }
}
