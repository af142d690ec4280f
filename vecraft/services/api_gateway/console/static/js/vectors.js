// Vectors and JSON typed into the console's forms.

/** A random unit-length vector of `dim` numbers (a Gaussian sample, normalized). */
export function randomVector(dim) {
  const v = [];
  for (let i = 0; i < dim; i += 1) {
    // Box-Muller: a standard normal from two uniforms.
    const u = 1 - Math.random();
    v.push(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random()));
  }
  const norm = Math.hypot(...v) || 1;
  // Six decimals: short to read, and exactly what is sent (JSON numbers are float64).
  return v.map((x) => Number((x / norm).toFixed(6)));
}

/** Parse a pasted vector: a JSON array, or numbers separated by commas or spaces. */
export function parseVector(text, dim) {
  const trimmed = text.trim();
  if (!trimmed) throw new Error(`vector: paste ${dim} numbers or press Random`);
  let values;
  if (trimmed.startsWith("[")) {
    try {
      values = JSON.parse(trimmed);
    } catch (err) {
      throw new Error(`vector: not a JSON array (${err.message})`);
    }
  } else {
    values = trimmed.split(/[\s,]+/).map(Number);
  }
  if (!Array.isArray(values) || values.some((x) => typeof x !== "number" || !Number.isFinite(x))) {
    throw new Error("vector: every value must be a finite number");
  }
  if (dim && values.length !== dim) {
    throw new Error(`vector: ${values.length} numbers given; the collection's dimension is ${dim}`);
  }
  return values;
}

/** Parse an optional JSON text (null when empty); errors name the field. */
export function parseJson(text, what) {
  if (!text || !text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${what}: not valid JSON (${err.message})`);
  }
}
