// Numbers and times as people read them on the console's pages.

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** ISO time without seconds' fractions, in UTC, so every admin of a tenant reads the same text. */
export function when(iso: string | null): string {
  if (iso === null) return "";
  return `${iso.slice(0, 19).replace("T", " ")} UTC`;
}

export function percent(x: number | null, digits = 1): string {
  return x === null ? "–" : `${(x * 100).toFixed(digits)}%`;
}

export function ms(x: number | null): string {
  return x === null ? "–" : `${Math.round(x)} ms`;
}

export function num(x: number | null, digits = 3): string {
  return x === null ? "–" : x.toFixed(digits);
}

/** `key:<id>` → the key's name (and its short id), else the actor as stored. */
export function actor(names: Map<string, string>, who: string): string {
  const name = names.get(who);
  return name === undefined ? who : `${name} (${who.slice(4, 12)})`;
}
