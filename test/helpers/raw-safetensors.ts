// Hand-assembled safetensors files, for headers writeSafetensors would never produce.

/** 8-byte LE length + header JSON (or text) + `dataBytes` zero bytes. `declared` overrides the length field. */
export function rawSafetensors(
  header: Record<string, unknown> | string,
  dataBytes: number,
  declared?: bigint,
): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}
